"""python -m dgl_ray.campaign paper: plan, bad input, resumable smoke run, claims from known frames."""
import os

import pandas as pd
import pytest

from dgl_ray import campaign


def test_dry_run_plans_every_step_and_runs_nothing(tmp_path, capsys):
    assert campaign.main(["paper", "--dry-run", "--storage", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for s in campaign.steps():
        assert s.name in out
    assert "total: " in out and not any(tmp_path.iterdir())
    import ray
    assert not ray.is_initialized()


@pytest.mark.parametrize("argv,word", [(["paper", "--scale", "0"], "--scale"), (["paper", "--only", "nope"], "nope"),
                                        (["other"], "other")])
def test_bad_input_is_one_line(argv, word, tmp_path, capsys):
    assert campaign.main([*argv, "--storage", str(tmp_path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and word in err


def _loop_rows(up, down, lams=(0.22, 0.30, 0.40, 0.50)):
    rows, ep = [], 0
    for run, (u, d) in enumerate(zip(up, down)):
        for leg, errs in (("up", u), ("down", d)):
            for lam, e in zip(lams if leg == "up" else lams[::-1], errs if leg == "up" else errs[::-1]):
                ep += 1
                rows.append({"run": f"r{run}", "epoch": ep, "lambda": lam, "direction": leg, "phase": "ladder",
                             "test_error": e, "status": "completed", "seed": run})
    return pd.DataFrame(rows)


def test_hysteresis_claim_is_h_up_minus_l_down():
    c = campaign.claim_hysteresis(_loop_rows([[0.6, 0.5, 0.5, 0.5]], [[0.1, 0.1, 0.1, 0.3]]), None)[0]
    assert c.shows == "yes" and "+50.0% at 0.22" in c.measured and "+20.0% at 0.50" in c.measured
    c = campaign.claim_hysteresis(_loop_rows([[0.15, 0.1, 0.3, 0.5]], [[0.1, 0.1, 0.1, 0.3]]), None)[0]
    assert c.shows == "no"


def test_trap_claim_counts_escapes():
    df = pd.DataFrame([dict(run="a", epoch=1, phase="intervention", test_error=0.9, lr_multiplier=1.0, **{"lambda": 0.0}),
                       dict(run="b", epoch=1, phase="intervention", test_error=0.5, lr_multiplier=1.0, **{"lambda": 0.2}),
                       dict(run="p", epoch=1, phase="init", test_error=0.9, **{"lambda": 0.6})])
    c = campaign.claim_trap(df)
    assert c.measured.startswith("1 of 2 escape") and c.shows == "no"
    assert campaign.claim_trap(None).measured == "not run"


def test_smoke_campaign_runs_reports_and_resumes(tmp_path, capsys):
    argv = ["paper", "--smoke", "--only", "trap", "--storage", str(tmp_path), "--num-cpus", "2"]
    try:
        assert campaign.main(argv) == 0
        report = (tmp_path / "campaign_report.md").read_text()
        assert "Trap (Tδ)" in report and "Hysteresis loop (R1)" in report and "not run" in report   # R1: not run
        assert "Preparation runs" in report                     # the trap's preparation run is counted
        trials = sorted(os.listdir(tmp_path / "trap"))
        capsys.readouterr()
        assert campaign.main(argv) == 0                         # resumed: both steps kept, nothing rerun
        out = capsys.readouterr().out
        assert "trap: done, kept" in out and "hysteresis_loop" not in out
        assert sorted(os.listdir(tmp_path / "trap")) == trials
    finally:
        import ray
        ray.shutdown()
