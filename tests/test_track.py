"""Trackers through Ray Tune's own callbacks, read back with the real libraries (no mocks):
one MLflow run / W&B offline run / TensorBoard event folder per (λ, seed) trial, grouped or not."""
import glob
import json
import os
import sys

import pandas as pd
import pytest

from tests._sweep_helpers import parquet, run_family

SWEEP = ["--epochs", "2", "--progress-interval", "30", "--lambdas", "0.3,0.5", "--n", "1"]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """Two tiny sweeps in one Ray instance: a grouped one (2 members in one Tune trial) with all three
    trackers, and an ungrouped one (one Tune trial per (λ, seed)) with MLflow and TensorBoard, whose
    trials each fail once and are retried from their checkpoint (the same logged run goes on)."""
    import ray
    from dgl_ray.tune.runner import init_ray
    tmp = tmp_path_factory.mktemp("track")
    os.environ["WANDB_MODE"] = "offline"          # before Ray starts: the logging actors inherit it
    os.environ["WANDB_SILENT"] = "true"
    os.environ.setdefault("WANDB_CONFIG_DIR", str(tmp / "wandb-config"))
    import contextlib
    import io
    import urllib.error
    import urllib.request
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        init_ray(None, num_cpus=2, dashboard=True)          # --dashboard: Ray's dashboard, address printed
    uri = tmp / "mlruns"
    try:
        line = [l for l in printed.getvalue().splitlines() if l.startswith("Ray dashboard: ")]
        url = line[0].split(": ", 1)[1]
        try:
            with urllib.request.urlopen(url + "/api/version", timeout=30) as r:
                dashboard = (url, r.status, json.loads(r.read()))
        except urllib.error.HTTPError as e:    # Ray >= 2.59 token auth: the dashboard answers 401
            dashboard = (url, e.code, None)
        rc_g = run_family("coexistence", tmp / "res", *SWEEP, "--group-size", "2", "--name", "grouped",
                          "--mlflow", str(uri), "--wandb", "dgl-test", "--tensorboard")
        rc_s = run_family("coexistence", tmp / "res", *SWEEP, "--group-size", "1", "--name", "single",
                          "--mlflow", str(uri), "--tensorboard",     # each trial fails once, is retried:
                          "--fail-at-epoch", "1", "--max-failures", "1", "--checkpoint-every", "1")
    finally:
        ray.shutdown()
    assert rc_g == 0 and rc_s == 0
    return tmp, "file:" + str(uri), dashboard


def test_dashboard_address_is_printed_and_answers(tracked):
    import ray
    url, status, version = tracked[2]
    assert url.startswith("http://127.0.0.1:") or url.startswith("http://")
    assert status == 401 or (status == 200 and version["ray_version"] == ray.__version__)


@pytest.mark.parametrize("name,tune_trials", [("grouped", 1), ("single", 2)])
def test_mlflow_one_run_per_lambda_seed(tracked, name, tune_trials):
    import mlflow
    tmp, uri, _ = tracked
    df = parquet(tmp / "res", name)
    assert df["tune_trial"].nunique() == tune_trials and df["run"].nunique() == 2
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    found = client.search_runs([exp.experiment_id])
    runs = {r.info.run_name: r for r in found}
    assert len(found) == len(runs) and set(runs) == set(df["run"])   # one MLflow run per (λ, seed)
    for run, g in df.groupby("run"):
        r = runs[run]
        assert r.info.status == "FINISHED"
        assert float(r.data.params["lambda"]) == pytest.approx(g["lambda"].iloc[0])   # its own config
        assert int(r.data.params["seed"]) == g["seed"].iloc[0]
        hist = client.get_metric_history(r.info.run_id, "test_error")
        logged = sorted((m.step, round(m.value, 6)) for m in hist)
        expect = sorted((int(e), round(v, 6)) for e, v in zip(g["epoch"], g["test_error"]))
        assert logged == expect                                  # every evaluation, step = epoch


@pytest.mark.parametrize("name", ["grouped", "single"])
def test_tensorboard_one_curve_per_lambda_seed(tracked, name):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tmp, _, _ = tracked
    df = parquet(tmp / "res", name)
    folders = {os.path.basename(p): p for p in glob.glob(str(tmp / "res" / name / "*" / "runs" / "*"))}
    assert set(folders) == set(df["run"])
    for run, g in df.groupby("run"):
        ea = EventAccumulator(folders[run])
        ea.Reload()
        got = sorted((s.step, round(s.value, 5)) for s in ea.Scalars("ray/tune/test_error"))
        assert got == sorted((int(e), round(v, 5)) for e, v in zip(g["epoch"], g["test_error"]))


def test_no_default_tensorboard_without_the_flag(tmp_path):
    """Ray's default logger would interleave a group's members in one curve: without --tensorboard no
    event file is written (its callback is replaced)."""
    import pickle
    from types import SimpleNamespace
    from ray.tune.logger import TBXLoggerCallback
    from dgl_ray.tune.trackers import tracker_callbacks
    cbs = tracker_callbacks(SimpleNamespace(name="x", mlflow=None, wandb=None, tensorboard=False))
    assert [type(c).__name__ for c in cbs] == ["NoTensorBoard"] and isinstance(cbs[0], TBXLoggerCallback)
    assert type(pickle.loads(pickle.dumps(cbs[0]))) is type(cbs[0])      # Tune saves its callbacks


def test_wandb_offline_run_per_lambda_seed(tracked):
    tmp, _, _ = tracked
    df = parquet(tmp / "res", "grouped")
    for run in df["run"].unique():
        offline = glob.glob(str(tmp / "res" / "grouped" / "*" / "runs" / run / "wandb" / f"offline-run-*-{run}"))
        assert len(offline) == 1, run
        assert glob.glob(os.path.join(offline[0], "*.wandb"))     # the run's own log file


@pytest.mark.parametrize("flag,module", [("--mlflow", "mlflow"), ("--wandb", "wandb")])
def test_missing_tracker_package_is_one_line(tmp_path, capsys, monkeypatch, flag, module):
    monkeypatch.setitem(sys.modules, module, None)               # as if it were not installed
    rc = run_family("coexistence", tmp_path, "--lambdas", "0.3", "--n", "1", flag, "x")
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert err.startswith("error: ") and flag in err and ".[track]" in err
    assert not os.path.exists(tmp_path / "coexistence")          # before Ray, before any work


def test_sweep_parquet_says_where_its_rows_came_from(tracked):
    from dgl_ray import __version__
    from dgl_ray.analysis import load_experiment
    tmp, _, _ = tracked
    rec = load_experiment(tmp / "res" / "grouped").attrs["provenance"]
    assert len(rec) == 1 and rec[0]["dgl_ray"] == __version__ and rec[0]["nodes"]   # Ray was running


def test_wandb_online_without_a_key_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))                      # no ~/.netrc login
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    rc = run_family("coexistence", tmp_path, "--lambdas", "0.3", "--n", "1", "--wandb", "proj")
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: --wandb proj: no W&B API key") and len(err.splitlines()) == 1
