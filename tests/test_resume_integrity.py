"""Issue 21: resume integrity. One driver per sweep (a lock file); a Tune state that cannot be read stops
--resume before anything is touched; finished rows of the previous results.parquet survive a rebuild."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests._sweep_helpers import ROOT, finals, parquet, run_family

SWEEP = ["--lambdas", "0.3,0.5", "--n", "1", "--epochs", "3", "--group-size", "1", "--num-cpus", "2",
         "--checkpoint-every", "1", "--progress-interval", "30"]


def _module():
    import importlib
    return importlib.import_module("dgl_ray.sweeps.coexistence")


def _plant_manifest(storage, name):
    """The folder a started sweep leaves before its first trial: its manifest (written exactly as the
    CLI writes it, no Ray)."""
    from dgl_ray.tune import cli, options, plan
    from dgl_ray.manifest import write_manifest
    mod = _module()
    opts = options.parse(mod.FAMILY, ["--storage", str(storage), "--name", name, *SWEEP])
    spec = mod.plan(opts)
    spec, group_size = plan.pack_plan(spec, opts)
    opts = opts.replace(group_size=group_size)
    write_manifest(opts.storage, opts.name, cli.sweep_manifest(opts, spec))


def _write_lock(storage, name, pid, host=None):
    from dgl_ray.tune.lock import LOCK_FILE
    p = storage / name / LOCK_FILE
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"host": host or socket.gethostname(), "pid": pid, "since": "2026-01-01T00:00:00Z"}))
    return p


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# ---- the lock itself ---------------------------------------------------------------------------------

def test_lock_is_released_on_every_exit_and_second_holder_is_named(tmp_path):
    from dgl_ray.errors import ConfigError
    from dgl_ray.tune.lock import LOCK_FILE, acquire, sweep_lock
    lock = tmp_path / "y" / LOCK_FILE
    with pytest.raises(RuntimeError):
        with sweep_lock(str(tmp_path), "y"):
            held = json.loads(lock.read_text())
            assert held["pid"] == os.getpid() and held["host"] == socket.gethostname() and held["since"]
            raise RuntimeError("boom")
    assert not lock.exists()
    # a live driver (another process of this host) holds it: a second driver is refused, naming it
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write_lock(tmp_path, "y", holder.pid)
        with pytest.raises(ConfigError, match=f"sweep y is being run by pid {holder.pid} on host "
                                              f"{socket.gethostname()} since 2026-01-01T00:00:00Z"):
            acquire(str(tmp_path), "y")
        assert json.loads(lock.read_text())["pid"] == holder.pid        # not touched
    finally:
        holder.kill()
        holder.wait()
    # another host's lock is never taken over (its PID cannot be checked from here)
    _write_lock(tmp_path, "y", 1, host="elsewhere.example")
    with pytest.raises(ConfigError, match="on host elsewhere.example"):
        acquire(str(tmp_path), "y")


def test_stale_lock_of_dead_pid_is_taken_over_with_a_note(tmp_path, capsys):
    from dgl_ray.tune.lock import LOCK_FILE, sweep_lock
    dead = _dead_pid()
    _write_lock(tmp_path, "y", dead)
    with sweep_lock(str(tmp_path), "y"):
        assert json.loads((tmp_path / "y" / LOCK_FILE).read_text())["pid"] == os.getpid()
    err = capsys.readouterr().err.strip()
    assert err.startswith("note: taking over the stale lock of sweep y") and f"pid {dead}" in err
    assert "\n" not in err
    assert not (tmp_path / "y" / LOCK_FILE).exists()


def test_lock_on_s3_uri(tmp_path):
    """The best pyarrow allows on S3 (write, read back): the holder is named, release removes it. A real S3
    server (moto) on 127.0.0.1."""
    pytest.importorskip("moto")
    import pyarrow.fs as pafs
    from dgl_ray.errors import ConfigError
    from dgl_ray.tune.lock import LOCK_FILE, acquire, sweep_lock
    from moto.server import ThreadedMotoServer
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            fs = pafs.S3FileSystem(endpoint_override=f"http://{host}:{port}", scheme="http", region="us-east-1",
                                    allow_bucket_creation=True)
            fs.create_dir("bucket")
            uri = f"s3://bucket?endpoint_override=http://{host}:{port}&scheme=http&region=us-east-1"
            with sweep_lock(uri, "y"):
                assert fs.get_file_info(f"bucket/y/{LOCK_FILE}").type == pafs.FileType.File
                from dgl_ray.tune import lock as L
                with pytest.raises(ConfigError, match=f"being run by pid {os.getpid()}"):
                    L.acquire(uri, "y")        # a second acquire (not the re-entrant context) is refused
            assert fs.get_file_info(f"bucket/y/{LOCK_FILE}").type == pafs.FileType.NotFound
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    finally:
        server.stop()


# ---- the CLI, before Ray starts ----------------------------------------------------------------------

def test_second_driver_exits_2_naming_the_first(tmp_path, capsys):
    import ray
    _plant_manifest(tmp_path, "y")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write_lock(tmp_path, "y", holder.pid)
        rc = run_family("coexistence", tmp_path, *SWEEP, "--resume", name="y")
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith(f"error: sweep y is being run by pid {holder.pid} on host ") and "\n" not in err
    assert not ray.is_initialized()
    assert sorted(p.name for p in (tmp_path / "y").iterdir()) == [".dgl_driver.lock", "dgl_sweep.json"]


def test_unreadable_tune_state_stops_resume_before_touching_anything(tmp_path, capsys):
    import ray
    _plant_manifest(tmp_path, "x")
    exp = tmp_path / "x"
    trial = exp / "any_trainable_abcdef01_1_lambda=0.3_2026-01-01"
    trial.mkdir()
    (trial / "result.json").write_text('{"epoch": 1}\n')
    state = exp / "experiment_state-2026-01-01_00-00-00.json"
    state.write_text('{"trial_data": [["{\\"trial_id\\": \\"abcdef01\\"}", "{}"]], "runner_d')   # cut in half
    before = {p.relative_to(exp): p.read_bytes() for p in exp.rglob("*") if p.is_file()}
    rc = run_family("coexistence", tmp_path, *SWEEP, "--resume", name="x")
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err, err
    assert err.startswith(f"error: --resume: Tune's experiment state {state} cannot be read")
    assert "nothing was touched" in err and "another --name" in err and "--resume" not in err.split("cannot be read")[1]
    assert not ray.is_initialized()
    after = {p.relative_to(exp): p.read_bytes() for p in exp.rglob("*") if p.is_file()}
    assert after == before                    # no folder moved to .orphaned, no state rewritten, lock released


# ---- a real sweep ----------------------------------------------------------------------------------

def _run(storage, name, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "dgl_ray.sweeps.coexistence", "--storage", str(storage), "--name", name,
           *SWEEP, *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow   # two sweeps: ≈ 40-60 s on 2 cores
def test_lost_finished_trial_folder_keeps_its_rows(tmp_path):
    r = _run(tmp_path, "z")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    first = parquet(tmp_path, "z")
    assert first["run"].nunique() == 2 and len(first) == 6
    from dgl_ray.tune.lock import LOCK_FILE
    assert not (tmp_path / "z" / LOCK_FILE).exists()            # released at the end
    lost = sorted(p for p in (tmp_path / "z").iterdir() if (p / "params.json").exists())[0]
    shutil.rmtree(lost)
    r = _run(tmp_path, "z", "--resume")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "never started" not in r.stdout and "continue it with" not in r.stdout
    assert "kept 1 finished trial(s) from the previous results.parquet" in r.stdout
    df = parquet(tmp_path, "z")
    assert len(df) == 6 and df["run"].nunique() == 2 and (df["run_status"] == "completed").all()
    f = finals(df)
    assert sorted(f["lambda"].round(6)) == [0.3, 0.5] and (f["epoch"] == 3).all()
    cols = ["run", "epoch", "test_error"]
    pd.testing.assert_frame_equal(df[cols].sort_values(cols[:2]).reset_index(drop=True),
                                  first[cols].sort_values(cols[:2]).reset_index(drop=True))
    assert not (tmp_path / "z" / LOCK_FILE).exists()


@pytest.mark.slow   # three sweeps of a few epochs: ≈ 60-90 s on 2 cores
def test_corrupt_checkpoint_and_lost_unfinished_folder_retried_with_retry_errored(tmp_path):
    from dgl_ray.tune.lock import LOCK_FILE
    # both trials crash after epoch 2's checkpoint (no retry): errored, each with one checkpoint
    crash = ["--epochs", "4", "--fail-at-epoch", "2", "--max-failures", "0", "--keep-checkpoints", "1"]
    r = _run(tmp_path, "e", *crash)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    exp = tmp_path / "e"
    folders = sorted(p for p in exp.iterdir() if (p / "params.json").exists())
    assert len(folders) == 2
    corrupt, lost = folders
    cks = list(corrupt.glob("checkpoint_*/trial.pt"))
    assert len(cks) == 1                                           # --keep-checkpoints 1: no fallback
    cks[0].write_bytes(cks[0].read_bytes()[:1000])
    shutil.rmtree(lost)
    r = _run(tmp_path, "e", *crash, "--resume")
    out = r.stdout + r.stderr
    assert r.returncode == 1, out[-3000:]
    assert "--retry-errored" in out
    df = parquet(tmp_path, "e")
    msgs = df.loc[df["run_status"] == "error"].groupby("run")["error"].last()
    assert msgs.str.contains("cannot be read").any() and msgs.str.contains("--retry-errored").all(), msgs
    r = _run(tmp_path, "e", *crash, "--resume", "--retry-errored")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "--retry-errored: 2 errored Tune trial(s) run again" in r.stdout      # (the trials' warnings go to Ray's logs)
    df = parquet(tmp_path, "e")
    f = finals(df)
    assert sorted(f["lambda"].round(6)) == [0.3, 0.5] and (f["status"] == "completed").all()
    assert (f["epoch"] == 4).all() and (df["run_status"] == "completed").all()
    evaluated = df[df["status"] != "error"].groupby("run")["epoch"].apply(sorted)
    assert (evaluated.map(tuple) == (1, 2, 3, 4)).all(), evaluated        # every epoch, once
    assert "continue it with" not in r.stdout and not (exp / LOCK_FILE).exists()


@pytest.mark.slow   # one sweep: ≈ 30 s on 2 cores
def test_real_truncated_tune_state_stops_resume(tmp_path):
    """Tune's own state file of a finished sweep reads; cut to half (a full disk), --resume exits 2 and every
    file stays as it was (no trial folder moved to .orphaned, the Parquet kept)."""
    r = _run(tmp_path, "x")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    exp = tmp_path / "x"
    state = sorted(exp.glob("experiment_state-*.json"))[-1]
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    before = {p.relative_to(exp): p.read_bytes() for p in exp.rglob("*") if p.is_file()}
    r = _run(tmp_path, "x", "--resume")
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert r.stderr.strip().startswith(f"error: --resume: Tune's experiment state {state} cannot be read")
    assert "\n" not in r.stderr.strip() and "Started a local Ray instance" not in r.stdout + r.stderr
    after = {p.relative_to(exp): p.read_bytes() for p in exp.rglob("*") if p.is_file()}
    assert after == before and len(parquet(tmp_path, "x")) == 6


def test_a_newer_checkpoint_is_tried_when_the_one_tunes_state_names_is_gone(tmp_path):
    """A driver SIGKILLed after Tune's keep-N removed checkpoint_000000 (its new checkpoint_000001 written)
    but before Tune saved the state naming the new one: the restored trial reads checkpoint_000001, not an
    error row (seen in test_sigkill_driver_then_resume under load)."""
    from ray import tune
    from dgl_ray.tune.trainable import _checkpoints_to_try
    trial = tmp_path / "trial"
    for name in ("checkpoint_000001", "checkpoint_000003", "checkpoint_000000"):   # 000000: re-made empty
        (trial / name).mkdir(parents=True)
    restored = tune.Checkpoint(path=str(trial / "checkpoint_000002"))
    order = [os.path.basename(c.path) for c in _checkpoints_to_try(restored)]
    assert order == ["checkpoint_000002", "checkpoint_000001", "checkpoint_000000", "checkpoint_000003"]
