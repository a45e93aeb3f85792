"""Trackers through Ray Tune's own callbacks, read back with the real libraries (no mocks):
one MLflow run / W&B offline run / TensorBoard event folder per (λ, seed) trial, grouped or not."""
import glob
import json
import os
import struct
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
    uri = tmp / "mlruns"                  # the ungrouped sweep: a file: store (a bare folder)
    db = f"sqlite:///{tmp / 'mlflow.db'}"    # the grouped sweep: the SQLite store the docs recommend
    try:
        line = [l for l in printed.getvalue().splitlines() if l.startswith("Ray dashboard: ")]
        url = line[0].split(": ", 1)[1].split(" ", 1)[0]
        try:
            with urllib.request.urlopen(url + "/api/version", timeout=30) as r:
                dashboard = (url, r.status, json.loads(r.read()), line[0])
        except urllib.error.HTTPError as e:    # Ray >= 2.59 token auth: the dashboard answers 401
            dashboard = (url, e.code, _with_token(url + "/api/version", line[0]), line[0])
        rc_g = run_family("coexistence", tmp / "res", *SWEEP, "--group-size", "2", "--name", "grouped",
                          "--mlflow", db, "--wandb", "dgl-test", "--tensorboard")
        import logging
        tune_logs = _Records()                  # what Tune logs at the driver while trials fail
        logging.getLogger("ray.tune").addHandler(tune_logs)
        single_out = io.StringIO()
        with contextlib.redirect_stdout(single_out):
            rc_s = run_family("coexistence", tmp / "res", *SWEEP, "--group-size", "1", "--name", "single",
                              "--mlflow", str(uri), "--tensorboard",     # each trial fails once, is retried:
                              "--fail-at-epoch", "1", "--max-failures", "1", "--checkpoint-every", "1")
        logging.getLogger("ray.tune").removeHandler(tune_logs)
    finally:
        ray.shutdown()
    assert rc_g == 0 and rc_s == 0
    faults = (single_out.getvalue(), tune_logs.records)
    return tmp, {"grouped": db, "single": "file:" + str(uri)}, dashboard, faults


class _Records(__import__("logging").Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


def test_retried_trials_are_one_line_each_and_one_in_the_summary(tracked):
    """Issue 17 item 7: a retried Tune trial is a line in the progress and one in the summary; Tune's
    traceback is not logged at the driver (its full text stays in the trial's error.txt)."""
    out, records = tracked[3]
    lines = out.splitlines()
    retrying = [l for l in lines if "retrying from its last checkpoint" in l]
    assert len(retrying) == 2 and all("failed (InjectedFailure)" in l and "error.txt" in l for l in retrying), out
    assert sum(l.startswith("[") and l.endswith("resumed from epoch 1") for l in lines) == 2, out
    assert "2 Tune trials failed (InjectedFailure), resumed from epoch 1" in lines, out
    assert not [r for r in records if r.exc_info], [r.getMessage() for r in records]
    for line in retrying:
        path = line.split("full error in ", 1)[1]
        assert "InjectedFailure" in open(path).read()


# the config fields every logged run must carry as params (the trial's whole resolved config)
CONFIG_PARAMS = ("lambda", "seed", "eta", "width", "model", "dataset", "lr", "batch_size", "momentum",
                 "weight_decay", "K", "lambda_schedule", "lr_milestones", "epochs", "noise", "family")
MEASURED = {"test_error", "train_loss", "avg_cos", "gs_norm", "gv_norm"}

def _with_token(url: str, printed: str):
    """The dashboard's answer with the token got the way the printed line says (`ray get-auth-token`)."""
    import subprocess
    import urllib.request
    assert "`ray get-auth-token`" in printed and "Authorization: Bearer" in printed
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    token = subprocess.run([ray_cli, "get-auth-token"], capture_output=True, text=True, check=True).stdout.strip()
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())


def test_dashboard_address_is_printed_and_answers(tracked):
    import ray
    url, status, version, _line = tracked[2]
    assert url.startswith("http://127.0.0.1:") or url.startswith("http://")
    assert status in (200, 401) and version["ray_version"] == ray.__version__   # 401: opened with the token


@pytest.mark.parametrize("name,tune_trials", [("grouped", 1), ("single", 2)])
def test_mlflow_one_run_per_lambda_seed(tracked, name, tune_trials):
    import mlflow
    tmp, uris = tracked[:2]
    df = parquet(tmp / "res", name)
    assert df["tune_trial"].nunique() == tune_trials and df["run"].nunique() == 2
    client = mlflow.MlflowClient(tracking_uri=uris[name])    # sqlite:/// (grouped) or file: (single)
    exp = client.get_experiment_by_name(name)                # the sweep is the experiment
    found = client.search_runs([exp.experiment_id])
    runs = {r.data.tags["run"]: r for r in found}
    assert len(found) == len(runs) and set(runs) == set(df["run"])   # one MLflow run per (λ, seed)
    for run, g in df.groupby("run"):
        r = runs[run]
        assert r.info.status == "FINISHED"
        lam, seed = g["lambda"].iloc[0], g["seed"].iloc[0]
        assert r.info.run_name == f"lambda={lam:g} seed={seed}"          # readable
        params = r.data.params
        assert set(CONFIG_PARAMS) <= set(params)                         # the whole config
        assert float(params["lambda"]) == pytest.approx(lam) and int(params["seed"]) == seed
        row = g.iloc[0]
        assert (params["model"], int(params["batch_size"]), float(params["lr"])) == (
            row["model"], row["batch_size"], row["lr"])                  # resolved defaults, not omitted
        assert float(params["momentum"]) == row["momentum"] and float(params["weight_decay"]) == row["weight_decay"]
        assert MEASURED <= set(r.data.metrics)
        assert not set(r.data.metrics) & (set(CONFIG_PARAMS) | {"training_iteration", "epoch", "member"})
        hist = client.get_metric_history(r.info.run_id, "test_error")
        logged = sorted((m.step, round(m.value, 6)) for m in hist)
        expect = sorted((int(e), round(v, 6)) for e, v in zip(g["epoch"], g["test_error"]))
        assert logged == expect                                  # every evaluation, step = epoch


@pytest.mark.parametrize("name", ["grouped", "single"])
def test_tensorboard_one_curve_per_lambda_seed(tracked, name):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tmp = tracked[0]
    df = parquet(tmp / "res", name)
    folders = {os.path.basename(p): p for p in glob.glob(str(tmp / "res" / name / "*" / "runs" / "*"))}
    assert set(folders) == set(df["run"])
    for run, g in df.groupby("run"):
        ea = EventAccumulator(folders[run])
        ea.Reload()
        got = sorted((s.step, round(s.value, 5)) for s in ea.Scalars("ray/tune/test_error"))
        assert got == sorted((int(e), round(v, 5)) for e, v in zip(g["epoch"], g["test_error"]))
        scalars = {t.split("/")[-1] for t in ea.Tags()["scalars"]}
        assert MEASURED <= scalars and not scalars & set(CONFIG_PARAMS)   # measured values only
        hparams = _tb_hparams(ea)                                       # the config, as hparams
        assert set(CONFIG_PARAMS) <= set(hparams) and hparams["lambda"] == pytest.approx(g["lambda"].iloc[0])
        assert hparams["model"] == g["model"].iloc[0] and hparams["batch_size"] == g["batch_size"].iloc[0]


def _tb_hparams(ea) -> dict:
    """The hparams of a TensorBoard run (the session start info of tensorboard's hparams plugin)."""
    from tensorboard.plugins.hparams import plugin_data_pb2
    for raw in ea.PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(raw)
        if data.HasField("session_start_info"):
            return {k: getattr(v, v.WhichOneof("kind")) for k, v in data.session_start_info.hparams.items()}
    return {}


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


def wandb_records(path: str):
    """The records of an offline W&B run file (``run-<id>.wandb``): LevelDB-log framing (a 7-byte file
    header, 32 KiB blocks, 7-byte chunk headers: crc, length, type full/first/middle/last) around the
    wandb library's own protobuf ``Record``s (wandb >= 0.19 writes no config.yaml offline)."""
    from wandb.proto import wandb_internal_pb2
    data, pos, block, buf = open(path, "rb").read(), 7, 32768, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if block - pos % block < 7:                  # a block's tail too short for a header: padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            yield wandb_internal_pb2.Record.FromString(buf)


def test_wandb_offline_run_per_lambda_seed(tracked):
    tmp = tracked[0]
    df = parquet(tmp / "res", "grouped")
    for run, g in df.groupby("run"):
        offline = glob.glob(str(tmp / "res" / "grouped" / "*" / "runs" / run / "wandb" / f"offline-run-*-{run}"))
        assert len(offline) == 1, run
        files = glob.glob(os.path.join(offline[0], "*.wandb"))     # the run's own log file
        assert len(files) == 1
        records = list(wandb_records(files[0]))
        kinds = [r.WhichOneof("record_type") for r in records]
        assert "run" in kinds, (files[0], os.path.getsize(files[0]), kinds)
        start = records[kinds.index("run")].run
        lam, seed = g["lambda"].iloc[0], g["seed"].iloc[0]
        assert (start.run_id, start.display_name, start.run_group) == (run, f"lambda={lam:g} seed={seed}", "grouped")
        config = {i.key: json.loads(i.value_json) for i in start.config.update}
        assert set(CONFIG_PARAMS) <= set(config)
        assert (config["lambda"], config["seed"], config["model"], config["lr"]) == (
            pytest.approx(lam), seed, g["model"].iloc[0], pytest.approx(g["lr"].iloc[0]))
        history = [{(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item}
                   for r in records if r.WhichOneof("record_type") == "history"]
        logged = set().union(*history)
        assert MEASURED <= logged and not logged & set(CONFIG_PARAMS)   # measured values only
        assert sorted((h["training_iteration"], round(h["test_error"], 6)) for h in history) == sorted(
            (int(e), round(v, 6)) for e, v in zip(g["epoch"], g["test_error"]))   # step = epoch


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
    tmp = tracked[0]
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


def test_run_params_names_and_metrics_of_a_scheduled_run():
    """No Ray: a run's params are its resolved config; λ and lr are metrics only when they follow a
    schedule within the run; the name adds η/width when the sweep varies them."""
    from types import SimpleNamespace
    from dgl_ray.tune.trackers import measured, run_name, run_params, scheduled_keys, varied_keys
    const = run_params({"lambda": 0.44, "seed": 7, "eta": 0.2, "epochs": 3, "family": "coexistence",
                        "checkpoint_every": 1})
    assert const["lambda"] == 0.44 and const["model"] == "tinycnn" and const["batch_size"] == 32
    assert "checkpoint_every" not in const                       # run-time, not the experiment's config
    assert run_name(const) == "lambda=0.44 seed=7" and run_name(const, ("eta",)) == "lambda=0.44 seed=7 eta=0.2"
    assert scheduled_keys(const) == frozenset()
    row = {"lambda": 0.44, "lr": 0.1, "seed": 7, "K": 16, "test_error": 0.3, "epoch": 1, "global_step": 9,
           "member": 0, "time_total_s": 2.0, "status": "running"}
    assert measured(row, const, scheduled_keys(const)) == {"test_error": 0.3}
    ramp = run_params({"lambda_schedule": [{"kind": "constant", "value": 0.3, "epochs": 1},
                                           {"kind": "constant", "value": 0.5, "epochs": 1}],
                       "seed": 1, "lr_milestones": [1]})
    assert "lambda" not in ramp and run_name(ramp) == "lambda=scheduled seed=1"
    assert scheduled_keys(ramp) == {"lambda", "lr"}
    assert measured(row, ramp, scheduled_keys(ramp)) == {"lambda": 0.44, "lr": 0.1, "test_error": 0.3}
    assert varied_keys(SimpleNamespace(etas="0.2:0.4:0.1", widths="1")) == ("eta",)
