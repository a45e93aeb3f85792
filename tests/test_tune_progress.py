"""The progress view stays one short line at 400+ trials."""
import io
import pickle

import pytest
from types import SimpleNamespace as NS

from dgl_ray.tune.progress import ProgressLine


def test_one_line_for_many_trials():
    buf = io.StringIO()
    p = ProgressLine(total=450, interval=0, stream=buf)
    trials = []
    for i in range(450):
        t = NS(trial_id=f"t{i}", config={"lambda": 0.42 + 0.02 * (i % 8), "seed": i // 8},
               last_result={"test_error": 0.05 + (i % 8) * 0.1}, status="TERMINATED" if i < 300 else
               "RUNNING" if i < 302 else "PENDING")
        trials.append(t)
        if i < 300:
            p.on_trial_start(0, trials, t)
            p.on_trial_complete(0, trials, t)
    p.on_trial_error(0, trials, NS(trial_id="t301"))
    p.on_step_end(0, trials)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1 and len(lines[0]) < 200, lines
    line = lines[0]
    assert "done 300/450" in line and "running 2" in line and "pending 147" in line and "errored 1" in line
    assert "best 0.050 (λ=0.42 s=0)" in line and "worst 0.750 (λ=0.56 s=0)" in line and "ETA" in line
    pickle.dumps(p)                        # Tune pickles callbacks with the experiment state


def test_grouped_trials_are_counted_one_by_one():
    buf = io.StringIO()
    p = ProgressLine(total=16, interval=0, stream=buf, members=400)
    t = NS(trial_id="g0", config={}, last_result={}, status="RUNNING")
    for i in range(25):   # one Tune trial of 25 members: each finishes with its own last row
        p.on_trial_result(0, [t], t, {"run": f"g0_{i:03d}", "status": "completed", "test_error": 0.1 + i / 100,
                                      "lambda": 0.42, "seed": i})
    p.on_trial_result(0, [t], t, {"run": "g0_000", "status": "running", "test_error": 0.9})   # not final: ignored
    p.on_trial_complete(0, [t], t)
    p.print_line([t])
    line = buf.getvalue().strip()
    assert "done 25/400 trials (1/16 Tune trials)" in line
    assert "best 0.100 (λ=0.42 s=0)" in line and "worst 0.340 (λ=0.42 s=24)" in line


def test_fatal_error_rows_count_as_errored_not_done():
    # the trainable ends a trial with a fatal config/data error as a final row of status "error"
    # (not raised, so Ray does not retry it): the line counts it as errored, never as done
    buf = io.StringIO()
    p = ProgressLine(total=3, interval=0, stream=buf)
    ok = NS(trial_id="a", config={"lambda": 0.3, "seed": 0}, last_result={"status": "completed", "test_error": 0.1},
            status="TERMINATED")
    bad = NS(trial_id="b", config={"lambda": 0.3, "seed": 1}, last_result={"status": "error", "test_error": None},
             status="TERMINATED")
    for t in (ok, bad):
        p.on_trial_start(0, [ok, bad], t)
        p.on_trial_complete(0, [ok, bad], t)
    p.print_line([ok, bad])
    assert "done 1/3 (errored 1)" in buf.getvalue()

    buf = io.StringIO()
    g = ProgressLine(total=1, interval=0, stream=buf, members=3)
    t = NS(trial_id="g0", config={}, last_result={}, status="RUNNING")
    g.on_trial_result(0, [t], t, {"run": "g0_000", "status": "completed", "test_error": 0.1, "lambda": 0.3, "seed": 0})
    g.on_trial_result(0, [t], t, {"run": "g0_001", "status": "error", "test_error": None})
    g.print_line([t])
    assert "done 1/3 trials (errored 1)" in buf.getvalue()


@pytest.mark.slow   # a sweep in its own process (~60 s on 2 loaded cores); tests/test_track.py checks the lines in-process
def test_a_retried_trial_is_one_line_in_the_progress_and_the_summary(tmp_path):
    """Each Tune trial fails once (an injected error at epoch 1) and is retried from its checkpoint:
    the output says so in one line each time and once in the summary, with no traceback (Tune keeps
    it in the trial's error.txt)."""
    import glob
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cmd = [sys.executable, "-m", "dgl_ray.sweeps.coexistence", "--storage", str(tmp_path), "--name", "f",
           "--lambdas", "0.3,0.5", "--n", "1", "--epochs", "2", "--group-size", "1", "--num-cpus", "2",
           "--progress-interval", "60", "--fail-at-epoch", "1", "--max-failures", "1", "--checkpoint-every", "1"]
    env = dict(os.environ, PYTHONPATH=root, OMP_NUM_THREADS="1", RAY_AUTH_MODE="disabled")
    p = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    (tmp_path / "out.txt").write_text(out)
    assert p.returncode == 0, out
    retrying = [l for l in out.splitlines() if "retrying from its last checkpoint" in l]
    assert len(retrying) == 2 and all("failed (InjectedFailure)" in l and "error.txt" in l for l in retrying), out
    assert len([l for l in out.splitlines() if "resumed from epoch 1" in l and l.startswith("[")]) == 2, out
    assert "2 Tune trials failed (InjectedFailure), resumed from epoch 1" in out.splitlines(), out
    assert "Traceback" not in out, out
    errors = glob.glob(str(tmp_path / "f" / "*" / "error.txt"))
    assert len(errors) == 2 and all("InjectedFailure" in open(e).read() for e in errors)   # the full text


def test_fault_lines_count_each_retry_once(tmp_path):
    """No Ray: the summary of retries by cause, epochs the trials resumed from, and those not resumed."""
    err = tmp_path / "error.txt"
    err.write_text("ray.exceptions.ActorDiedError: The actor died unexpectedly\n"
                   "The actor died because its node has died. Node Id: abc\n")
    buf = io.StringIO()
    p = ProgressLine(total=4, interval=0, stream=buf)
    trials = [NS(trial_id=f"t{i}", config={}, error_file=str(err), path=str(tmp_path)) for i in range(3)]
    for t in trials:
        p.on_trial_recover(0, trials, t)
    p.on_trial_result(0, trials, trials[0], {"epoch": 16, "test_error": 0.1})
    p.on_trial_result(0, trials, trials[1], {"epoch": 16, "test_error": 0.1})
    p.on_trial_result(0, trials, trials[1], {"epoch": 17, "test_error": 0.1})   # counted once
    assert p.fault_lines() == ["3 Tune trials lost with their nodes, resumed from epoch 15 (1 not resumed)"]
    lines = buf.getvalue().splitlines()
    assert len(lines) == 5 and sum("resumed from epoch 15" in l for l in lines) == 2
    assert all(str(err) in l for l in lines if "retrying" in l)
    p2 = ProgressLine(total=1, interval=0, stream=io.StringIO())
    p2.on_trial_recover(0, trials, trials[0])
    p2.on_trial_result(0, trials, trials[0], {"epoch": 16})
    assert p2.fault_lines() == ["1 Tune trial lost with its node, resumed from epoch 15"]


def test_a_progress_line_saved_before_retries_were_counted_still_counts_them():
    p = ProgressLine(total=1, interval=0, stream=io.StringIO())
    state = p.__getstate__()
    del state["retried"]                   # as pickled in an experiment state by the previous version
    q = ProgressLine.__new__(ProgressLine)
    q.__setstate__(state)
    assert q.fault_lines() == [] and pickle.loads(pickle.dumps(q)).retried == {}


def test_a_resumed_sweep_counts_the_tune_trials_it_had_finished():
    """Restored from its saved experiment (pickled before any trial ran, or by an older release without
    the new fields), the line of a resumed sweep counts the Tune trials already TERMINATED, members
    included: not "done 0/24" at the start, not "20/24" at the end."""
    old = ProgressLine(total=6, interval=0, members=24)
    for k in ("members_before", "_restored_seen"):
        del old.__dict__[k]                                       # as an older release pickled it
    p = pickle.loads(pickle.dumps(old))
    buf = io.StringIO()
    p.stream = buf
    group = {"group": [{"seed": i} for i in range(4)], "lambda": 0.4}
    trials = [NS(trial_id=f"t{i}", config=group, last_result={}, status="TERMINATED" if i == 0 else "PENDING")
              for i in range(6)]
    p.on_step_begin(0, trials)
    p.print_line(trials)
    assert "done 4/24 trials (1/6 Tune trials)" in buf.getvalue() and "pending 5" in buf.getvalue()
    p.on_step_begin(1, trials)                                    # counted once
    trials[1].status = "RUNNING"
    for i in range(4):
        p.on_trial_result(1, trials, trials[1], {"run": f"t1_{i}", "status": "completed", "test_error": 0.1})
    p.on_trial_complete(1, trials, trials[1])
    p.print_line(trials)
    assert "done 8/24 trials (2/6 Tune trials)" in buf.getvalue().splitlines()[-1]


def test_a_restored_trial_that_ended_with_an_error_row_stays_errored():
    buf = io.StringIO()
    p = ProgressLine(total=3, interval=0, stream=buf)
    trials = [NS(trial_id="a", config={"lambda": 0.3, "seed": 0}, last_result={"status": "completed"}, status="TERMINATED"),
              NS(trial_id="b", config={"lambda": 0.3, "seed": 1}, last_result={"status": "error"}, status="TERMINATED"),
              NS(trial_id="c", config={"lambda": 0.3, "seed": 2}, last_result={}, status="PENDING")]
    p.on_step_begin(0, trials)
    p.print_line(trials)
    assert "done 1/3 (errored 1)" in buf.getvalue() and "pending 1" in buf.getvalue()
