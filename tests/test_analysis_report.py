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
