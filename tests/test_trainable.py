"""The one Tune trainable (single and grouped trials), called as Tune would, without Ray: rows,
checkpoints and fatal errors."""
import os
import types

import pytest
import torch
from ray import tune

from dgl_ray import rows as wire
from dgl_ray.tune import trainable as tr

BASE = dict(dataset="digits", epochs=2, batch_size=128, device="cpu", family="s1", experiment="x")


@pytest.fixture
def fake_tune(monkeypatch, tmp_path):
    """Tune's session functions replaced by a recorder: rows, and each checkpoint's files."""
    rec = {"rows": [], "ckpts": [], "results": []}

    def report(result, checkpoint=None):
        rec["results"].append(dict(result))
        rec["rows"].extend(dict(r) for r in wire.result_rows(result))
        if checkpoint is not None:
            with checkpoint.as_directory() as d:
                rec["ckpts"].append(sorted(os.listdir(d)))

    monkeypatch.setattr(tune, "report", report)
    monkeypatch.setattr(tune, "get_checkpoint", lambda: None)
    monkeypatch.setattr(tr, "_node_info", lambda: {"host": "h", "worker_pid": 1, "node_id": None})  # no Ray start
    monkeypatch.setattr(tune, "get_context", lambda: types.SimpleNamespace(get_trial_id=lambda: "abc_00001"))
    n = torch.get_num_threads()
    yield rec
    torch.set_num_threads(n)


def test_grouped_rows_hold_their_own_config_and_match_single_trials(fake_tune):
    members = [dict(BASE, **{"lambda": 0.3}, seed=0), dict(BASE, **{"lambda": 0.6}, seed=5, eta=0.2)]
    tr.dgl_trainable({"group": members})
    rows = list(fake_tune["rows"])
    assert [(r["member"], r["epoch"]) for r in rows] == [(0, 1), (1, 1), (0, 2), (1, 2)]
    for r in rows:
        m = members[r["member"]]
        assert r["seed"] == m["seed"] and r["eta"] == m.get("eta", 0.4) and r["lambda"] == m["lambda"]
        assert r["run"] == f"abc_00001_{r['member']:03d}" and r["group"] == "abc_00001" and r["group_size"] == 2
        assert not any(isinstance(v, str) and '"seed"' in v for v in r.values())   # no other member's config
    assert fake_tune["ckpts"] == [["member_0000.pt", "member_0001.pt"]] * 2
    # the same trial alone (a population of one) reports the same numbers
    fake_tune["rows"].clear()
    tr.dgl_trainable(dict(members[1]))
    alone = fake_tune["rows"]
    assert [r["test_error"] for r in alone] == [r["test_error"] for r in rows if r["member"] == 1]
    assert "group" not in alone[0] and "run" not in alone[0]


@pytest.mark.parametrize("grouped", [False, True])
def test_fatal_error_is_a_final_row_not_a_retry(fake_tune, tmp_path, grouped):
    bad = dict(BASE, dataset="cifar10", data_root=str(tmp_path / "nowhere"), **{"lambda": 0.3}, seed=1)
    cfg = {"group": [bad, dict(bad, seed=2)]} if grouped else bad
    tr.dgl_trainable(cfg)           # returns normally: Ray does not retry it
    rows = fake_tune["rows"]
    assert len(rows) == (2 if grouped else 1)
    for r in rows:
        assert r["status"] == "error" and "cifar10 not found" in r["error"] and r["error"].startswith("ConfigError")
        assert r["dataset"] == "cifar10" and r["family"] == "s1"
        # the sweep's metric is present (None): Tune's strict metric check would otherwise fail the whole run
        assert "test_error" in r and r["test_error"] is None
    assert sorted(r["seed"] for r in rows) == ([1, 2] if grouped else [1])


def test_missing_init_checkpoint_is_fatal(fake_tune, tmp_path):
    tr.dgl_trainable(dict(BASE, **{"lambda": 0.3}, seed=1, init_checkpoint=str(tmp_path / "none.pt")))
    (r,) = fake_tune["rows"]
    assert r["status"] == "error" and "none.pt" in r["error"]


def test_unreadable_checkpoint_on_restore_ends_the_run_as_error(fake_tune, monkeypatch, tmp_path):
    """A restored Tune trial whose checkpoint cannot be read: one error row that says so, with no epoch
    (the trial cannot know the one it had reached; epoch 0 sorted before the rows it reported before,
    and the run was read as still running), and the run's status is error."""
    import pandas as pd
    from dgl_ray.analysis.frames import run_status_of
    cfg = dict(BASE, **{"lambda": 0.3}, seed=1)
    tr.dgl_trainable(dict(cfg))                     # the rows before the stop, and a good checkpoint
    before = [dict(r, status="running") for r in fake_tune["rows"]]   # as if stopped after these
    d = tmp_path / "checkpoint_000001"
    d.mkdir()
    (d / wire.CKPT_FILE).write_bytes(b"truncated")
    monkeypatch.setattr(tune, "get_checkpoint", lambda: tune.Checkpoint.from_directory(str(d)))
    fake_tune["rows"].clear()
    tr.dgl_trainable(dict(cfg))
    (r,) = fake_tune["rows"]
    assert r["status"] == "error" and "cannot be read" in r["error"] and r["epoch"] is None
    df = pd.DataFrame([{**b, "run": "t1"} for b in before] + [{**r, "run": "t1"}])
    assert set(run_status_of(df)) == {"error"}


def test_a_group_reports_one_result_per_epoch_and_packs_its_shared_fields(fake_tune):
    """A grouped Tune trial hands Tune one result per evaluated epoch holding every member's row (each
    report is a blocking round trip through Tune's driver), and its Tune config holds the members'
    shared fields once; the rows are the same as with every field in every member (the older form)."""
    members = [dict(BASE, **{"lambda": lam}, seed=s) for s in (0, 1) for lam in (0.3, 0.6)]
    packed = wire.pack_group(members)
    assert packed["dataset"] == "digits" and packed["epochs"] == 2 and "seed" not in packed
    assert [sorted(m) for m in packed["group"]] == [["lambda", "seed"]] * 4
    assert wire.unpack_group(packed) == members and wire.unpack_group(members[0]) == [members[0]]
    tr.dgl_trainable(packed)
    results, rows = list(fake_tune["results"]), list(fake_tune["rows"])
    assert [r["epoch"] for r in results] == [1, 2]
    # the group's own metrics: its members' best error of the epoch (Ray's result API ranks Tune trials by it)
    assert all(r["test_error"] == min(x["test_error"] for x in r["rows"]) and r["n_members"] == 4 for r in results)
    assert [len(r["rows"]) for r in results] == [4, 4] and len(rows) == 8
    # what every row of the epoch shares (most of the config) travels once
    assert results[0]["shared"]["dataset"] == "digits" and "seed" not in results[0]["shared"]
    assert all("dataset" not in r and "seed" in r for r in results[0]["rows"])
    assert [(r["member"], r["seed"], r["lambda"]) for r in rows[:4]] == [(i, m["seed"], m["lambda"])
                                                                        for i, m in enumerate(members)]
    fake_tune["rows"].clear()
    tr.dgl_trainable({"group": members})
    assert [r["test_error"] for r in fake_tune["rows"]] == [r["test_error"] for r in rows]
    # a single trial still reports each row as its own result
    fake_tune["results"].clear()
    tr.dgl_trainable(dict(members[0]))
    assert [r["epoch"] for r in fake_tune["results"]] == [1, 2] and "rows" not in fake_tune["results"][0]


def test_pack_group_keeps_what_differs_in_value_or_type():
    a, b = dict(BASE, seed=1, width=1, lr=0.1), dict(BASE, seed=2, width=1.0, lr=0.1, eta=0.2)
    p = wire.pack_group([a, b])
    assert "width" not in p and "eta" not in p and p["lr"] == 0.1      # 1 and 1.0 are not hoisted as one
    assert wire.unpack_group(p) == [a, b]
    assert [type(m["width"]) for m in wire.unpack_group(p)] == [int, float]


def test_unreadable_checkpoint_falls_back_to_an_older_one_of_the_trial(fake_tune, monkeypatch, tmp_path, capsys):
    """With --keep-checkpoints >= 2 Tune keeps older checkpoint folders: when the one to restore cannot be
    read, the trial continues from the newest older one that reads, and ends as the uninterrupted run."""
    import shutil
    folder = tmp_path / "trial"
    saved = []
    real_report = tune.report

    def report(result, checkpoint=None):           # keep each checkpoint as Tune's storage would
        if checkpoint is not None:
            with checkpoint.as_directory() as d:
                saved.append(shutil.copytree(d, folder / f"checkpoint_{len(saved):06d}"))
        real_report(result)
    monkeypatch.setattr(tune, "report", report)
    cfg = dict(BASE, epochs=3, checkpoint_every=1, **{"lambda": 0.3}, seed=1)
    tr.dgl_trainable(dict(cfg))
    full = [(r["epoch"], r["test_error"]) for r in fake_tune["rows"]]
    assert len(saved) == 3
    (saved[1] / wire.CKPT_FILE).write_bytes(b"truncated")          # the epoch-2 checkpoint
    monkeypatch.setattr(tune, "get_checkpoint", lambda: tune.Checkpoint.from_directory(str(saved[1])))
    fake_tune["rows"].clear()
    tr.dgl_trainable(dict(cfg))
    assert [(r["epoch"], r["test_error"]) for r in fake_tune["rows"]] == full[1:]   # epochs 2 and 3 again
    err = capsys.readouterr().err
    assert "cannot be read" in err and "continuing from the older checkpoint" in err and "checkpoint_000000" in err


def test_the_results_path_reads_a_grouped_trials_epoch_results(fake_tune, tmp_path):
    """result.json lines as Tune writes them for a grouped trial (one per epoch, rows + shared fields)
    read back as one row per member and epoch, each with its full config (load_experiment)."""
    import json
    from dgl_ray.analysis import load_experiment
    members = [dict(BASE, **{"lambda": lam}, seed=s) for s in (0, 1) for lam in (0.3, 0.6)]
    tr.dgl_trainable(wire.pack_group(members))
    trial = tmp_path / "exp" / "dgl_trainable_abc12_00001_1_x_2026-01-01_00-00-00"
    trial.mkdir(parents=True)
    (trial / "params.json").write_text(json.dumps(wire.pack_group(members)))
    (trial / "result.json").write_text("".join(json.dumps({**r, "trial_id": "abc_00001", "config": {}}) + "\n"
                                               for r in fake_tune["results"]))
    df = load_experiment(tmp_path / "exp")
    assert len(df) == 8 and sorted(df["run"].unique()) == [f"abc_00001_{i:03d}" for i in range(4)]
    want = {(r["run"], r["epoch"]): r for r in fake_tune["rows"]}
    for _, row in df.iterrows():
        r = want[(row["run"], row["epoch"])]
        assert row["seed"] == r["seed"] and row["dataset"] == "digits" and row["batch_size"] == 128
        assert row["test_error"] == r["test_error"] and row["tune_trial"] == "abc_00001"
    assert set(df["run_status"]) == {"completed"}


def test_restored_members_share_one_copy_of_the_data(tmp_path):
    """A population restored from its checkpoint holds one (device) copy of the data set, not one per
    member (each Trial moves its own; on a GPU that was G copies of CIFAR before BatchedTrials dropped them)."""
    from dgl_ray.config import TrialConfig
    from dgl_ray.trainer import Trial
    cfgs = [TrialConfig.from_dict(wire.split_config(dict(BASE, **{"lambda": l}, seed=s))[0])
            for l, s in ((0.3, 0), (0.6, 1), (0.5, 2))]
    trials = [Trial(c) for c in cfgs]
    for i, t in enumerate(trials):
        t.save(str(tmp_path / wire.member_file(i)))
    restored, layout = tr._restore_members(tune.Checkpoint.from_directory(str(tmp_path)), cfgs,
                                           [wire.member_file(i) for i in range(3)], trials[0].data)
    assert layout is None           # no population.json: a slot per member
    assert len(restored) == 3 and all(t.data is restored[0].data for t in restored)
    assert [t.cfg.seed for t in restored] == [0, 1, 2]
