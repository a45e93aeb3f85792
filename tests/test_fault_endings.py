"""Issue 21, items 4, 5, 9: every fault ends the same way (one-line cause, the log holding the traceback,
the --resume command, the README's exit code), in every phase; a failed start leaves nothing that blocks
the plain command; a renamed sweep folder resumes. Full disks are real: a small tmpfs (root only: skipped
where mount is not allowed)."""
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._sweep_helpers import ROOT, no_ray, one_line_error, run_family  # noqa: F401  (no_ray: a fixture)


@pytest.fixture
def small_disk(tmp_path):
    """A 20 MB tmpfs (skipped where this process may not mount one)."""
    d = tmp_path / "disk"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(d)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip() or r.returncode})")
    yield d
    subprocess.run(["umount", "-l", str(d)], capture_output=True)


def fill(disk: Path) -> None:
    """Fill the disk up to its last byte (unbuffered writes, smaller chunks at the end)."""
    with open(disk / "fill", "wb", buffering=0) as f:
        for chunk in (1 << 16, 512, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError:
                pass


# ---- a failed start ------------------------------------------------------------------------------------

def test_full_disk_at_start_is_one_line_and_leaves_nothing(small_disk, capsys, no_ray):  # noqa: F811
    fill(small_disk)
    assert run_family("coexistence", small_disk, "--lambdas", "0.3", "--n", "1", "--epochs", "1") == 2
    err = one_line_error(capsys)
    assert "cannot start the sweep" in err and "No space left on device" in err and "nothing was run" in err
    assert not (small_disk / "coexistence").exists()          # no dgl_sweep.json.tmp, no empty folder


def test_a_leftover_manifest_tmp_does_not_block_the_plain_command(tmp_path, no_ray):  # noqa: F811
    from dgl_ray.sweeps import coexistence
    from dgl_ray.tune import options, preflight
    exp = tmp_path / "coexistence"
    exp.mkdir()
    (exp / "dgl_sweep.json.tmp").write_text('{"tool": "dgl_')      # an older version's failed start
    o = options.parse(coexistence.FAMILY, ["--storage", str(tmp_path), "--lambdas", "0.3", "--n", "1"])
    preflight.check_storage(o)                                     # no "already holds a sweep"
    assert not (exp / "dgl_sweep.json.tmp").exists()
    (exp / "dgl_sweep.json.tmp").write_text("{}")                  # beside other files it is left alone
    (exp / "results.parquet").write_text("x")
    with pytest.raises(Exception, match="already holds a sweep"):
        preflight.check_storage(o)
    assert (exp / "dgl_sweep.json.tmp").exists()


# ---- a renamed folder resumes ---------------------------------------------------------------------------

def _start(tmp_path, family, name, *args):
    import importlib
    from dgl_ray import manifest
    from dgl_ray.tune import cli, options, plan
    mod = importlib.import_module(f"dgl_ray.sweeps.{family}")
    o = options.parse(mod.FAMILY, ["--storage", str(tmp_path), "--name", name, *args])
    spec = mod.plan(o)
    spec, group_size = plan.pack_plan(spec, o)
    o = o.replace(group_size=group_size)
    manifest.write_manifest(o.storage, o.name, cli.sweep_manifest(o, spec))
    (tmp_path / name / "experiment_state-x.json").write_text("{}")


def test_a_renamed_grid_folder_resumes(tmp_path, capsys, no_ray):  # noqa: F811
    args = ["--lambdas", "0.3,0.5", "--n", "2", "--epochs", "3"]
    _start(tmp_path, "coexistence", "first", *args)
    os.rename(tmp_path / "first", tmp_path / "second")
    assert run_family("coexistence", tmp_path, "--resume", "--dry-run", *args, name="second") == 0
    # the plan itself is still compared
    assert run_family("coexistence", tmp_path, "--resume", "--dry-run", "--lambdas", "0.3", "--n", "2",
                      "--epochs", "3", name="second") == 2
    assert "the plan differs" in capsys.readouterr().err


def test_a_manifest_of_an_older_version_still_matches(tmp_path, no_ray):  # noqa: F811
    """Before, the fingerprint hashed the plan with its name: such a folder resumes under that name."""
    from dgl_ray.tune.runner import plan_fingerprint
    args = ["--lambdas", "0.3,0.5", "--n", "2", "--epochs", "3"]
    _start(tmp_path, "coexistence", "old", *args)
    m = json.loads((tmp_path / "old" / "dgl_sweep.json").read_text())
    from dgl_ray.sweeps import coexistence
    from dgl_ray.tune import options, plan, preflight
    o = options.parse(coexistence.FAMILY, ["--storage", str(tmp_path), "--name", "old", *args])
    spec = coexistence.plan(o)
    spec, group_size = plan.pack_plan(spec, o)
    o = o.replace(group_size=group_size)
    m["fingerprint"] = plan_fingerprint(spec.searcher.plan_configs())
    assert m["fingerprint"] != plan_fingerprint(preflight.unnamed(spec.searcher.plan_configs()))
    (tmp_path / "old" / "dgl_sweep.json").write_text(json.dumps(m))
    assert run_family("coexistence", tmp_path, "--resume", "--dry-run", *args, name="old") == 0


def test_a_renamed_chained_folder_is_refused_with_its_name(tmp_path, capsys, no_ray):  # noqa: F811
    args = ["--n", "2"]
    _start(tmp_path, "trap", "first", *args)
    os.rename(tmp_path / "first", tmp_path / "second")
    assert run_family("trap", tmp_path, "--resume", "--dry-run", *args, name="second") == 2
    err = one_line_error(capsys)
    assert "was started as 'first'" in err and "rename it back" in err


# ---- the ending's pieces --------------------------------------------------------------------------------

def _opts(tmp_path):
    from dgl_ray.sweeps import coexistence
    from dgl_ray.tune import options
    return options.parse(coexistence.FAMILY, ["--storage", str(tmp_path), "--name", "f", "--lambdas", "0.3", "--n", "1"])


def test_a_fault_ends_with_one_line_the_log_and_the_resume_command(tmp_path, capsys):
    from dgl_ray.tune import faults
    o = _opts(tmp_path)
    (tmp_path / "f").mkdir()
    try:
        try:
            raise OSError(28, "No space left on device", str(tmp_path / "f" / "x.json"))
        except OSError as inner:
            raise RuntimeError("Tune wrapped it") from inner
    except RuntimeError as e:
        faults.set_phase("writing the results")
        assert faults.end_by_fault(o, e) == 1
    out = capsys.readouterr()
    errors = [ln for ln in out.err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1
    assert "while writing the results: no space left on the device" in errors[0]
    log = tmp_path / "f" / "dgl_driver.log"
    assert f"full traceback: {log}" in errors[0]
    text = log.read_text()
    assert "Traceback" in text and "Tune wrapped it" in text and "No space left" in text
    assert out.out.splitlines()[-1].strip().endswith("--resume") and "continue it with:" in out.out


def test_long_ray_log_records_go_to_the_log(tmp_path):
    import io
    import ray  # noqa: F401  (Ray's logger and its handler)
    from dgl_ray.tune import faults
    o = _opts(tmp_path)
    terminal = io.StringIO()
    handler = logging.StreamHandler(terminal)       # a handler of Ray's logger, as Ray's own to stderr
    logging.getLogger("ray").addHandler(handler)
    logger = logging.getLogger("ray.tune.some_module")
    try:
        with faults.compact_ray_logs(o):
            logger.error("Trial task failed for trial t1\nTraceback (most recent call last):\n  x\nOSError: boom")
            logger.error("one line stays")
        logger.error("after the sweep\nthe records are whole again")
    finally:
        logging.getLogger("ray").removeHandler(handler)
    err = terminal.getvalue()
    log = tmp_path / "f" / "dgl_driver.log"
    assert f"Trial task failed for trial t1 (details: {log})" in err and "one line stays" in err
    assert "OSError: boom" not in err and "OSError: boom" in log.read_text()
    assert "the records are whole again" in err


# ---- signals, in every phase ----------------------------------------------------------------------------

def _sweep(storage, *extra, epochs=2):
    return [sys.executable, "-m", "dgl_ray.sweeps.coexistence", "--lambdas", "0.3,0.5", "--n", "2", "--epochs",
            str(epochs), "--group-size", "1", "--storage", str(storage), "--name", "f", "--num-cpus", "2",
            "--checkpoint-every", "1", "--progress-interval", "2", *extra]


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [pytest.param(signal.SIGINT, marks=pytest.mark.slow), signal.SIGTERM])
def test_signal_while_ray_starts(tmp_path, sig):
    """The manifest is written right before ray.init: a signal then lands while Ray starts."""
    p = subprocess.Popen(_sweep(tmp_path), cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        while not (tmp_path / "f" / "dgl_sweep.json").exists() and p.poll() is None:
            time.sleep(0.02)
        os.kill(p.pid, sig)
        out, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 128 + sig, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert f"{signal.Signals(sig).name} while starting Ray: the sweep stopped" in out
    assert out.strip().splitlines()[-1].endswith("--resume")


def _trial_running(exp: Path) -> bool:
    for rj in exp.glob("*/result.json"):
        if rj.read_text().strip():
            return True
    return False


def _wait_for_a_trial(p: subprocess.Popen, exp: Path, before: str) -> None:
    """Until a trial of the sweep ``p`` has reported (at most 240 s); the sweep must still be running."""
    deadline = time.time() + 240
    while time.time() < deadline and not _trial_running(exp) and p.poll() is None:
        time.sleep(0.2)
    assert p.poll() is None, f"the sweep ended before {before}"


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_sigterm_to_the_process_group_ends_in_seconds_then_resumes(tmp_path):
    """A batch scheduler signals the whole process group: the Ray head dies too. The driver does not wait
    60 s for it: it ends within seconds with 143, the Parquet of what is on disk and the resume command;
    the resume finishes every trial."""
    p = subprocess.Popen(_sweep(tmp_path, epochs=15), cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        _wait_for_a_trial(p, tmp_path / "f", "the signal")
        t0 = time.monotonic()
        os.killpg(p.pid, signal.SIGTERM)
        out, _ = p.communicate(timeout=120)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 143, out[-3000:]
    assert took < 45, f"{took:.0f}s: the driver waited for the dead Ray head"
    assert (tmp_path / "f" / "results.parquet").exists() and "results so far:" in out
    cmd = out.strip().splitlines()[-1].strip()
    assert cmd.endswith("--resume")
    r = subprocess.run(["bash", "-c", cmd], env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    import pandas as pd
    df = pd.read_parquet(tmp_path / "f" / "results.parquet")
    assert df["run"].nunique() == 4 and (df["run_status"] == "completed").all()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_full_disk_mid_run_ends_with_one_line_and_the_resume_command(small_disk, tmp_path):
    p = subprocess.Popen(_sweep(small_disk, epochs=150), cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        _wait_for_a_trial(p, small_disk / "f", "the disk filled")
        fill(small_disk)
        out, _ = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 1, out[-3000:]
    errors = [ln for ln in out.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "the disk of --storage" in errors[0] and "is full" in errors[0], out[-3000:]
    assert "Traceback" not in out and len(out.splitlines()) < 200, out[-3000:]
    log = errors[0].split("full traceback: ")[1].rstrip(")")
    assert "Traceback" in Path(log).read_text()
    assert out.strip().splitlines()[-1].strip().endswith("--resume")


def test_a_trial_killed_before_its_first_report_counts_as_errored():
    """A Tune trial whose process the OS killed before it reported has an error and no rows: its (λ, seed)
    trials are errored (as the progress line says), not "never started"."""
    import pandas as pd
    from ray.tune import Result
    from dgl_ray.tune.faults import errored_without_rows
    killed = Result(metrics={"config": {"group": [{"seed": 0}, {"seed": 1}, {"seed": 2}]}}, checkpoint=None,
                    error=RuntimeError("worker died"), path="/x/dgl_trainable_aaaa0001_1_K=16_2026-01-01_00-00-00")
    reported = Result(metrics={"trial_id": "bbbb0002", "config": {"seed": 3}}, checkpoint=None,
                      error=RuntimeError("failed later"), path="/x/dgl_trainable_bbbb0002_2_K=16_2026-01-01_00-00-00")
    fine = Result(metrics={"trial_id": "cccc0003", "config": {"seed": 4}}, checkpoint=None, error=None, path="/x/c")
    df = pd.DataFrame({"run": ["bbbb0002", "cccc0003"], "tune_trial": ["bbbb0002", "cccc0003"]})
    assert errored_without_rows([killed, reported, fine], df) == 3
