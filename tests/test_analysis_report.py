"""The report CLI on the paper's S1 archive and on a fake sweep folder."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dgl_ray.analysis import write_fake_sweep

REPO = Path(__file__).resolve().parents[1]


def _archive() -> Path:
    """$DGL_SHARED/paper-results when set, else the copy in tests/data (a plain clone has it)."""
    env = os.environ.get("DGL_SHARED")
    return Path(env) / "paper-results" if env else Path(__file__).resolve().parent / "data" / "paper-results"


ARCHIVE = _archive()
S1 = ARCHIVE / "S1"


def _cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO), MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "dgl_ray.analysis", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not S1.is_dir(), reason=f"paper archive not found at {S1} (set DGL_SHARED)")
def test_report_on_the_s1_archive(tmp_path):
    out = tmp_path / "rep"
    r = _cli("report", S1, "--out", out, "--n-boot", "50", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "S1/branch_table" in r.stdout and "intermediate" in r.stdout  # printed to the terminal
    md = (out / "report.md").read_text()
    for section in ("## S1", "### branch_table", "### bimodality", "### critical_point"):
        assert section in md
    assert "| 0.48 | 50 | 30 | 20 | 0 |" in md  # λ=0.48: n, L, intermediate, H
    pngs = list((out / "figures").glob("*.png"))
    assert {p.name for p in pngs} >= {"S1_coexistence_map.png", "S1_error_histograms.png"}
    assert all(p.stat().st_size > 0 for p in pngs)
    assert "spinodal" not in md and "hysteresis" not in md  # only what applies


def test_report_on_a_fake_sweep_storage_folder(tmp_path):
    storage = tmp_path / "storage"
    write_fake_sweep(storage, name="coexistence", lambdas=(0.3, 0.45, 0.6), seeds=range(4), epochs=3,
                     diverged=[(0.6, 0)], drop_from_parquet=2)
    r = _cli("report", storage, "--n-boot", "20", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "report-storage" / "report.md").read_text()
    assert "12 runs" in md and "### branch_table" in md and "n_diverged" in md
    assert (tmp_path / "report-storage" / "figures" / "S1_coexistence_map.png").exists()


def test_report_errors_are_one_line_naming_the_path(tmp_path):
    r = _cli("report", tmp_path / "absent", cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "absent" in lines[0] and "expected" in lines[0]
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.txt").write_text("x")
    r = _cli("report", tmp_path / "junk", cwd=tmp_path)
    assert r.returncode == 2 and "junk" in r.stderr.splitlines()[0]


def test_build_report_sections_for_ladders_survival_and_origins(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import pandas as pd

    from dgl_ray.analysis import build_report, normalise

    rows = []
    for seed in range(3):
        # an up-then-down loop (R1-like) -> hysteresis
        for i, (lam, leg, e) in enumerate([(0.2, "up", 0.6), (0.4, "up", 0.5), (0.6, "up", 0.6),
                                           (0.4, "down", 0.3), (0.2, "down", 0.15)]):
            rows.append(dict(run=f"loop{seed}", family="R1", seed=seed, **{"lambda": lam}, epoch=i + 1,
                             direction=leg, phase="ladder", test_error=e, hold=1))
        # one-leg sweeps from checkpoints (Tα-like) -> hysteresis by origin and gap by origin,
        # never a spinodal table (they are not spinodal runs)
        for i, lam in enumerate([0.4, 0.5, 0.6, 0.7]):
            rows.append(dict(run=f"up{seed}", family="Ta", seed=seed, **{"lambda": lam}, epoch=i + 1,
                             direction="up", origin="ordered", phase="ladder", test_error=0.12))
            rows.append(dict(run=f"dn{seed}", family="Ta", seed=seed, **{"lambda": 1.1 - lam},
                             epoch=i + 1, direction="down", origin="collapse", phase="ladder",
                             test_error=0.6 if i < 2 else 0.2))
        # one-leg ladders after an init phase (R3-like) -> spinodal
        rows.append(dict(run=f"sp{seed}", family="R3", seed=seed, **{"lambda": 0.35}, epoch=30,
                         direction="up", phase="init", test_error=0.15))
        for i, lam in enumerate([0.4, 0.42, 0.44, 0.46]):
            rows.append(dict(run=f"sp{seed}", family="R3", seed=seed, **{"lambda": lam}, epoch=31 + i,
                             direction="up", phase="ladder", test_error=0.5))
        # a lifetime run (T13-like) -> survival
        for i in range(8):
            rows.append(dict(run=f"life{seed}", family="T13", seed=seed, **{"lambda": 0.54}, epoch=i + 1,
                             phase="observe", test_error=0.5 if (seed == 0 and i > 1) else 0.1))
    rep = build_report(normalise(pd.DataFrame(rows)), tmp_path / "r", n_boot=10)
    assert {"R1/hysteresis_table", "Ta/hysteresis_table", "Ta/gap_table_by_origin",
            "R3/spinodal_table", "T13/survival_table"} <= set(rep.tables)
    assert "Ta/spinodal_table" not in rep.tables and "R3/hysteresis_table" not in rep.tables
    # one gap convention: H − L, positive for both the in-run loop and the checkpoint sweeps
    assert (rep.tables["R1/hysteresis_table"].set_index("lambda").loc[0.2, "gap"]
            == pytest.approx(0.6 - 0.15))
    ta = rep.tables["Ta/hysteresis_table"].set_index("lambda")
    assert ta.loc[0.6, "H_leg"] == "down" and ta.loc[0.6, "gap"] == pytest.approx(0.6 - 0.12)
    assert ta.loc[0.6, "up_minus_down"] == pytest.approx(0.12 - 0.6)
    assert rep.tables["R3/spinodal_table"].iloc[0]["lambda_mean"] == pytest.approx(0.44)
    assert rep.tables["T13/survival_table"].iloc[0]["died"] == 1
    assert rep.tables["Ta/gap_table_by_origin"].set_index("lambda").loc[0.5, "n_pairs"] == 3
    assert "R1/spinodal_table" not in rep.tables  # loops are not one-leg ladders
    assert all(p.exists() for p in rep.figures) and len(rep.figures) >= 3
    assert "![" in rep.path.read_text()


# -------------------------------------------------------------------------------- fits the data

def _report(rows, tmp_path, **kw):
    import matplotlib
    matplotlib.use("Agg")
    import pandas as pd

    from dgl_ray.analysis import build_report, normalise
    return build_report(normalise(pd.DataFrame(rows)), tmp_path / "r", n_boot=10, figures=False, **kw)


def test_one_way_ladders_of_two_experiments_are_not_a_hysteresis_loop(tmp_path):
    """R3-like up ladders (R3a) and down ladders (R3b): spinodal table, no hysteresis table."""
    rows = []
    for seed in range(3):
        for exp, leg, lams, e in (("R3a", "up", [0.40, 0.42, 0.44], 0.5),
                                  ("R3b", "down", [0.30, 0.28, 0.26], 0.2)):
            rows.append(dict(run=f"{exp}-{seed}", experiment=exp, family="R3", seed=seed, epoch=30,
                             phase="init", direction=leg, test_error=0.3, **{"lambda": 0.35}))
            rows += [dict(run=f"{exp}-{seed}", experiment=exp, family="R3", seed=seed, epoch=31 + i,
                          phase="ladder", direction=leg, test_error=e, **{"lambda": l})
                     for i, l in enumerate(lams)]
    rep = _report(rows, tmp_path)
    assert "R3/spinodal_table" in rep.tables and "R3/hysteresis_table" not in rep.tables
    assert "hysteresis_table: no run or checkpoint sweep pairs" in rep.markdown


def test_ladders_that_are_not_spinodal_runs_get_no_spinodal_table(tmp_path):
    rows = [dict(run=f"l{s}", family="X", seed=s, epoch=i + 1, phase="ladder", direction="up",
                 test_error=0.5, **{"lambda": l}) for s in range(3) for i, l in enumerate([0.4, 0.5, 0.6])]
    rep = _report(rows, tmp_path)
    assert not any(k.endswith("spinodal_table") for k in rep.tables)
    assert "spinodal_table: 3 one-way ladders are not spinodal runs" in rep.markdown


def test_intervention_sets_get_escapes_not_a_critical_point(tmp_path):
    rows = []
    for i, (lam, mult) in enumerate([(0.6, 0.01), (0.0, 0.01), (0.2, 0.01), (0.6, 0.1), (0.6, 1.0)]):
        for seed in range(5):
            rows += [dict(run=f"iv{i}-{seed}", family="trap", seed=seed, epoch=e, phase="intervention",
                          origin="collapse", lr_multiplier=mult, test_error=0.9, **{"lambda": lam})
                     for e in (1, 2)]
    rep = _report(rows, tmp_path)
    assert set(rep.tables) == {"trap/escape_table"}
    t = rep.tables["trap/escape_table"]
    assert len(t) == 5 and t["escaped"].sum() == 0 and t["n"].eq(5).all()
    assert "an intervention set is not a λ scan" in rep.markdown


def test_schedules_get_one_row_per_schedule_never_pooled_by_final_lambda(tmp_path):
    rows = []
    for kind, final_lam, err in (("ramp_up", 0.6, 0.8), ("quench_down", 0.6, 0.1),
                                 ("fixed_collapse", 0.6, 0.85)):
        for seed in range(5):
            rows += [dict(run=f"{kind}-{seed}", family="schedules", schedule_kind=kind, seed=seed,
                          epoch=e, phase="main", test_error=err, **{"lambda": final_lam})
                     for e in (1, 2)]
    rep = _report(rows, tmp_path)
    assert set(rep.tables) == {"schedules/schedule_table"}
    t = rep.tables["schedules/schedule_table"].set_index("schedule_kind")
    assert t.loc["quench_down", "L"] == 5 and t.loc["ramp_up", "H"] == 5
    assert "pooling them by final λ would mix schedules" in rep.markdown


def test_few_seeds_per_lambda_get_no_critical_point_or_dip_test(tmp_path):
    rows = [dict(run=f"r{l}-{s}", family="S1", seed=s, epoch=100, test_error=0.1 + l, **{"lambda": l})
            for l in (0.3, 0.4, 0.5, 0.6) for s in range(3)]
    rep = _report(rows, tmp_path)
    assert set(rep.tables) >= {"S1/branch_table"}
    assert not {"S1/critical_point", "S1/bimodality"} & set(rep.tables)
    assert "critical_point: needs >= 3 λ with >= 5 runs each; here 0" in rep.markdown
    assert "Uses 12 runs" in rep.markdown


def test_every_run_is_counted_in_its_section(tmp_path):
    rows = [dict(run="life0", family="T1a", seed=0, epoch=e, phase="observe", test_error=0.1,
                 **{"lambda": 0.46}) for e in range(1, 7)]
    rows.append(dict(run="life1", family="T1a", seed=1, phase="observe", test_error=None,
                     status="no_evaluation", init_success=False, **{"lambda": 0.46}))
    rep = _report(rows, tmp_path)
    assert "2 runs (1 without any evaluation)" in rep.markdown
    assert rep.tables["T1a/survival_table"].iloc[0]["n_excluded"] == 1


def test_report_exits_0_on_every_folder_of_the_archive(tmp_path, capsys):
    """In-process (one import) to stay fast: each folder and the whole archive."""
    from dgl_ray.analysis.__main__ import main
    folders = sorted(p for p in ARCHIVE.iterdir() if p.is_dir()) + [ARCHIVE]
    assert len(folders) >= 6
    for f in folders:
        out = tmp_path / f"rep-{f.name}"
        assert main(["report", str(f), "--out", str(out), "--no-figures", "--n-boot", "10",
                     "--quiet"]) == 0, f
        md = (out / "report.md").read_text()
        assert "runs" in md and "## " in md
    md = (tmp_path / f"rep-{ARCHIVE.name}" / "report.md").read_text()
    for section in ("## Q1", "## R1", "## S1", "## S2", "## Ta"):
        assert section in md
    assert "S1a_results.csv: η not given" in md  # said, not assumed


def test_report_eta_default_is_stated_by_the_user_and_checked(tmp_path, capsys):
    import pandas as pd

    from dgl_ray.analysis.__main__ import main
    src = tmp_path / "S1z_results.csv"
    pd.DataFrame({"lambda": [0.4, 0.5], "seed": [0, 1], "final_error": [0.1, -1.0]}).to_csv(src, index=False)
    assert main(["report", str(src), "--out", str(tmp_path / "a"), "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert "note: S1z_results.csv: η not given" in out
    assert "excluded 1 rows of S1z: error outside [0, 1]" in out
    assert main(["report", str(src), "--out", str(tmp_path / "b"), "--no-figures",
                 "--eta-default", "0.4"]) == 0
    assert "note:" not in capsys.readouterr().out
    assert main(["report", str(src), "--eta-default", "4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --eta-default 4")


def test_every_sweep_carries_lr_multiplier_so_that_alone_is_not_a_trap_set(tmp_path):
    from dgl_ray.analysis import build_report, fake_sweep_frame, normalise
    df = fake_sweep_frame(lambdas=(0.3, 0.4, 0.5), seeds=range(5), epochs=2).assign(lr_multiplier=1.0)
    rep = build_report(normalise(df), tmp_path / "r", n_boot=10, figures=False)
    assert {"S1/branch_table", "S1/critical_point", "S1/bimodality"} <= set(rep.tables)
    assert not any("escape" in k for k in rep.tables)


def test_lifetime_preparation_runs_are_not_timed_for_critical_slowing(tmp_path):
    rows = [dict(run=f"prep{s}", family="lifetime", seed=s, epoch=e, phase="init", test_error=0.15,
                 **{"lambda": 0.35}) for s in range(2) for e in (1, 2)]
    rows += [dict(run=f"obs{s}", family="lifetime", seed=s, epoch=e, phase="observe", origin="ordered",
                  test_error=0.1, **{"lambda": 0.46}) for s in range(2) for e in (3, 4)]
    rep = _report(rows, tmp_path)
    assert "lifetime/convergence_table" not in rep.tables
    assert "convergence_table: no evaluation outside an init phase" in rep.markdown
    assert rep.tables["lifetime/survival_table"].iloc[0]["n"] == 2


def test_report_says_why_the_logistic_width_is_not_given(tmp_path):
    """One mixed λ (the digits coexistence sweep): the width is empty and the report says why."""
    import matplotlib
    matplotlib.use("Agg")
    import pandas as pd

    from dgl_ray.analysis import build_report, normalise
    rows = []
    for lam, n_high in ((0.35, 0), (0.40, 0), (0.45, 3), (0.50, 6), (0.55, 6)):
        rows += [dict(run=f"{lam}-{i}", seed=i, epoch=1, status="completed", family="S1",
                      test_error=0.85 if i < n_high else 0.1, **{"lambda": lam}) for i in range(6)]
    rep = build_report(normalise(pd.DataFrame(rows)), tmp_path / "r", n_boot=20, figures=True)
    cp = rep.tables["S1/critical_point"].iloc[0]
    assert not cp["width_identifiable"] and pd.isna(cp["logistic_width"])
    assert "Logistic width not identifiable: 1 mixed λ (needs >= 2)" in rep.markdown
    # every figure that needs it says what its marks are, under it
    assert "_Bars: share of runs per branch" in rep.markdown and "Wilson" in rep.markdown


def test_the_hysteresis_figure_states_its_statistic_under_it(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import pandas as pd

    from dgl_ray.analysis import build_report, normalise
    rows = []
    for seed in range(3):
        for i, (lam, leg, e) in enumerate([(0.2, "up", 0.6), (0.4, "up", 0.5), (0.4, "down", 0.3),
                                           (0.2, "down", 0.15)]):
            rows.append(dict(run=f"loop{seed}", experiment="R1", family="R1", seed=seed, epoch=i + 1,
                             direction=leg, test_error=e + 0.01 * seed, **{"lambda": lam}))
    rep = build_report(normalise(pd.DataFrame(rows)), tmp_path / "r", n_boot=10)
    after = rep.markdown.split("R1_hysteresis_loop.png)")[1].lstrip("\n").split("\n")[0]   # the caption line
    assert "mean ± std" in after and "L ≤ 0.20" in after and "H ≥ 0.40" in after


def test_loops_and_checkpoint_sweeps_of_one_family_are_not_pooled(tmp_path):
    """`hysteresis --mode loop` and `--mode sweep` land in one section: the loop's H leg is up, the
    sweeps' H leg is down (from collapse); pooled, one H leg coloured and subtracted both wrongly."""
    import pandas as pd

    from dgl_ray.analysis import build_report, normalise
    rows = []
    for seed in range(2):
        for i, (lam, leg, e) in enumerate([(0.3, "up", 0.6), (0.4, "up", 0.6), (0.4, "down", 0.1),
                                           (0.3, "down", 0.1)]):
            rows.append(dict(run=f"loop{seed}", experiment="loop", family="hysteresis", seed=seed,
                             epoch=i + 1, direction=leg, test_error=e, **{"lambda": lam}))
        for leg, origin, e in (("up", "ordered", 0.05), ("down", "collapse", 0.9)):
            for i, lam in enumerate([0.3, 0.4] if leg == "up" else [0.4, 0.3]):
                rows.append(dict(run=f"{origin}{seed}", experiment="sweep", family="hysteresis", seed=seed,
                                 epoch=i + 1, direction=leg, origin=origin, test_error=e, **{"lambda": lam}))
    rep = build_report(normalise(pd.DataFrame(rows)), tmp_path / "r", n_boot=10)
    loop = rep.tables["hysteresis/hysteresis_table"]
    swept = rep.tables["hysteresis/hysteresis_table_from_checkpoints"]
    assert set(loop["H_leg"]) == {"up"} and set(swept["H_leg"]) == {"down"}
    assert (loop["gap"] > 0).all() and (swept["gap"] > 0).all()
    names = {p.name for p in rep.figures}
    assert {"hysteresis_hysteresis_loop.png", "hysteresis_hysteresis_loop_from_checkpoints.png"} <= names
