"""Presets plan the paper's protocols number for number (no Ray: the plan only).

The Tβ2 numbers below are copied from the seed notebook nb_Tb2_eta08 (shared/seeds/000_...txt):
ORDERED_LAMBDA 0.35, ORDERED_EPOCHS 50, MultiStepLR [30, 40], ORDERED_THRESHOLD 0.30 (kept if <);
COLLAPSE_LAMBDA 0.65, COLLAPSE_EPOCHS 100, MultiStepLR [50, 80], COLLAPSE_THRESHOLD 0.50 (kept if >=),
collapse seeds seed + 100; sweeps np.arange(0.30, 0.70 + 0.02, 0.04) up and down, 3 epochs per λ,
SGD lr = 0.1 * 0.01, no scheduler; N_SEEDS 3; NOISE_RATE 0.8; batch 256; K 16.
"""
import glob
import os

import numpy as np
import pytest

from dgl_ray.schedules import expand_lambda_schedule
from dgl_ray.sweeps import hysteresis
from dgl_ray.tune.options import parse
from dgl_ray.tune.preflight import validate_configs
from dgl_ray.tune.searchers import ChainedSearcher, FINISHED

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESETS = sorted(glob.glob(os.path.join(ROOT, "sweeps", "*.toml")))


def _plan(preset, *extra, tmp="/tmp/dgl_presets"):
    import importlib
    import tomllib
    with open(preset, "rb") as f:
        family = tomllib.load(f)["family"]
    mod = importlib.import_module(f"dgl_ray.sweeps.{family}")
    o = parse(mod.FAMILY, ["--config", preset, "--storage", tmp, *extra])
    return mod.plan(o)


def _lams(cfg):
    return [p.lam for p in expand_lambda_schedule(cfg["lambda_schedule"])]


def test_tb2_plans_the_seed_notebook():
    s = _plan(os.path.join(ROOT, "sweeps", "Tb2.toml")).searcher
    preps = s.preparations
    grid_up = list(np.round(np.arange(0.30, 0.70 + 0.04 / 2, 0.04), 2))
    grid_down = list(np.round(np.arange(0.70, 0.30 - 0.04 / 2, -0.04), 2))
    want = {"ordered": dict(**{"lambda": 0.35}, epochs=50, ms=[30, 40], accept=("<", 0.30), seeds=[0, 1, 2], grid=grid_up),
            "collapse": dict(**{"lambda": 0.65}, epochs=100, ms=[50, 80], accept=(">=", 0.50), seeds=[100, 101, 102],
                             grid=grid_down)}
    assert len(preps) == 6
    for b, w in want.items():
        mine = [p for p in preps if p.config["branch"] == b]
        assert [p.config["seed"] for p in mine] == w["seeds"]
        for p in mine:
            c = p.config
            assert _lams(c) == [w["lambda"]] * w["epochs"]
            assert c["lr_milestones"] == w["ms"] and c["lr"] == 0.1 and c["eta"] == 0.8
            assert c["batch_size"] == 256 and c["K"] == 16 and c["model"] == "resnet18"
            assert tuple(p.accept) == w["accept"]
            (kid,) = p.children
            assert kid["seed"] == c["seed"]                        # the checkpoint's own noisy labels
            assert kid["lr"] == pytest.approx(0.1 * 0.01) and kid["lr_milestones"] == []
            assert _lams(kid) == [v for v in w["grid"] for _ in range(3)]   # 11 λ x 3 epochs
            assert kid["origin"] == b and kid["eta"] == 0.8
    validate_configs(s.plan_configs())


def test_tb2_v3_best_3_of_10():
    s = _plan(os.path.join(ROOT, "sweeps", "Tb2_v3.toml")).searcher
    preps = s.preparations
    orde = [p for p in preps if p.config["branch"] == "ordered"]
    coll = [p for p in preps if p.config["branch"] == "collapse"]
    assert [p.config["seed"] for p in orde] == list(range(10))
    assert [p.config["seed"] for p in coll] == [100, 101, 102]
    assert all(p.accept is None for p in preps)
    assert {p.group for p in orde} == {"ordered|eta=0.8|width=1"} and all(p.group is None for p in coll)
    assert s.selections == {"ordered|eta=0.8|width=1": (3, "min")}
    assert _lams(orde[0].config) == [0.5] * 50 and _lams(coll[0].config) == [0.7] * 100
    kid = orde[0].children[0]
    assert _lams(kid) == [round(0.40 + 0.05 * i, 2) for i in range(9) for _ in range(5)]


def test_chained_best_k_of_n(tmp_path):
    """Best k of n: children only of the k lowest-error runs that pass the rule, once the group is done."""
    stages = [({"seed": s}, ("<", 0.9), [{"seed": s, "lambda": 0.5}], "g") for s in range(4)]
    c = ChainedSearcher(stages, str(tmp_path), select={"g": (2, "min")})
    for i in range(4):
        c.suggest(f"t{i}")
    c.on_trial_complete("t0", {"test_error": 0.30})
    c.on_trial_complete("t1", {"test_error": 0.95})           # fails the rule
    c.on_trial_complete("t2", {"test_error": 0.10})
    assert c.suggest("k") is None                             # t3 still running: nothing chosen yet
    c.on_trial_complete("t3", {"test_error": 0.20})
    kids = [c.suggest("k0"), c.suggest("k1")]
    assert sorted(k["parent"] for k in kids) == ["p0002", "p0003"]
    for k in ("k0", "k1"):
        c.on_trial_complete(k, {"test_error": 0.2})
    assert c.suggest("k2") is FINISHED
    assert c.summary() == {"preps": 4, "accepted": 2, "rejected": 2}
    assert c.rejections() == {"acceptance": 1, "not best 2": 1}


@pytest.mark.parametrize("preset", PRESETS, ids=[os.path.basename(p) for p in PRESETS])
def test_every_preset_plans_valid_trials(preset):
    spec = _plan(preset)
    assert spec.searcher.size >= 1
    validate_configs(spec.searcher.plan_configs())


def test_branch_flags_reach_the_plan():
    o = parse(hysteresis.FAMILY, ["--mode", "sweep", "--dataset", "cifar10", "--n", "2", "--storage", "/tmp/dgl_presets",
                           "--ordered-lambda", "0.3", "--ordered-epochs", "40", "--ordered-milestones", "20,30",
                           "--collapse-epochs", "60", "--collapse-milestones", "", "--collapse-seed-offset", "7",
                           "--collapse-accept", "none"])
    preps = hysteresis.plan(o).searcher.preparations
    o_ = [p for p in preps if p.config["branch"] == "ordered"]
    c_ = [p for p in preps if p.config["branch"] == "collapse"]
    assert _lams(o_[0].config) == [0.3] * 40 and o_[0].config["lr_milestones"] == [20, 30]
    assert tuple(o_[0].accept) == ("<", 0.20)
    assert _lams(c_[0].config) == [0.6] * 60 and c_[0].config["lr_milestones"] == []
    assert [p.config["seed"] for p in c_] == [7, 8] and c_[0].accept is None
    assert [k["seed"] for p in c_ for k in p.children] == [7, 8]


@pytest.mark.parametrize("flag,value", [("--ordered-accept", "low"), ("--collapse-milestones", "0,5"),
                                        ("--ordered-best", "-1"), ("--collapse-n", "0")])
def test_bad_branch_flags_are_one_line_errors(flag, value, capsys):
    rc = hysteresis.FAMILY.main(["--mode", "sweep", "--storage", "/tmp/dgl_presets", "--dry-run", flag, value])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and flag in err


def test_digits_defaults_table_and_paper_values():
    from dgl_ray.sweeps import coexistence, lifetime
    from dgl_ray.tune.options import parse_values
    lams = lambda spec: sorted({m["lambda"] for c in spec.searcher.plan_configs() for m in c.get("group", [c])})
    o = parse(coexistence.FAMILY, ["--n", "1", "--storage", "/tmp/dgl_presets", "--group-size", "1"])
    assert lams(coexistence.plan(o)) == parse_values(coexistence.FAMILY.digits_defaults["lambdas"][0], "x")
    o = parse(coexistence.FAMILY, ["--n", "1", "--storage", "/tmp/dgl_presets", "--dataset", "cifar10"])
    assert lams(coexistence.plan(o)) == parse_values("0.42:0.56:0.02", "x")
    o = parse(coexistence.FAMILY, ["--n", "1", "--storage", "/tmp/dgl_presets", "--lambdas", "0.5"])   # the user wins
    assert lams(coexistence.plan(o)) == [0.5]
    o = parse(lifetime.FAMILY, ["--n", "1", "--storage", "/tmp/dgl_presets"])
    kids = lifetime.plan(o).searcher.preparations[0].children
    assert [k["lr"] for k in kids] == [0.1] * 3 and all(k["lr_milestones"] == [] for k in kids)
    o = parse(lifetime.FAMILY, ["--n", "1", "--storage", "/tmp/dgl_presets", "--dataset", "cifar10"])
    kids = lifetime.plan(o).searcher.preparations[0].children
    assert [(k["lr"], k["lr_milestones"]) for k in kids] == [(0.01, [25])]


def test_digits_loop_decays_lr_as_the_paper_at_half_and_three_quarters():
    o = parse(hysteresis.FAMILY, ["--n", "1", "--storage", "/tmp/dgl_presets"])
    (c,) = hysteresis.plan(o).searcher.plan_configs()
    n = len(_lams(c))
    assert c["lr_milestones"] == [n // 2, 3 * n // 4]
    assert c["lambda_schedule"][0]["refine"] == [0.36, 0.52, 0.01]
    o = parse(hysteresis.FAMILY, ["--n", "1", "--storage", "/tmp/dgl_presets", "--lr-milestones", ""])
    (c,) = hysteresis.plan(o).searcher.plan_configs()
    assert c["lr_milestones"] == []


def _coexistence_opts(*argv):
    from dgl_ray.sweeps import coexistence
    return parse(coexistence.FAMILY, list(argv))


def test_cifar_preset_on_digits_drops_the_cifar_fields_and_names_each(capsys):
    """The documented "S1 protocol on digits": S1's λ grid, seeds and η with the digits default's batch
    and constant LR, not CIFAR's batch 256 and milestones [50, 75] for 30 epochs."""
    s1 = os.path.join(ROOT, "sweeps", "S1.toml")
    o = _coexistence_opts("--config", s1, "--dataset", "digits", "--model", "tinycnn", "--epochs", "30",
                          "--storage", "/tmp/dgl_presets")
    notes = capsys.readouterr().err.splitlines()
    assert (o.dataset, o.model, o.epochs, o.n, o.lambdas) == ("digits", "tinycnn", 30, 50, "0.42:0.56:0.02")
    assert o.batch_size is None and o.lr_milestones is None      # the digits default (32, constant) applies
    assert [n for n in notes if "batch_size = 256" in n] and [n for n in notes if "lr_milestones = '50,75'" in n]
    assert not [n for n in notes if " lr = " in n]                # 0.1 either way: nothing to say
    import torch
    if torch.cuda.device_count() == 0:
        assert o.gpus_per_trial == 0 and [n for n in notes if "gpus_per_trial = 0.25" in n]
    configs = coexistence_plan_configs(o)
    assert {(c["batch_size"], tuple(c["lr_milestones"]), c["epochs"]) for c in configs} == {(32, (), 30)}


def coexistence_plan_configs(o):
    """The plan's trial configs, validated; fields a config leaves out take the data set's default."""
    from dgl_ray.config import DATASET_DEFAULTS
    from dgl_ray.sweeps import coexistence
    configs = coexistence.plan(o).searcher.plan_configs()
    validate_configs(configs)
    defaults = DATASET_DEFAULTS[o.dataset]
    return [{k: c.get(k, defaults[k]) for k in ("batch_size", "lr_milestones", "epochs")} for c in configs]


def test_cifar_preset_on_digits_keeps_what_the_command_line_sets(capsys):
    s1 = os.path.join(ROOT, "sweeps", "S1.toml")
    o = _coexistence_opts("--config", s1, "--dataset", "digits", "--batch-size", "64", "--lr-milestones", "20",
                          "--storage", "/tmp/dgl_presets")
    notes = capsys.readouterr().err
    assert (o.batch_size, o.lr_milestones, o.model, o.epochs) == (64, [20], None, None)
    assert "batch_size" not in notes and "model = 'resnet18'" in notes and "epochs = 100" in notes


def test_cifar_preset_alone_keeps_its_protocol(capsys):
    o = _coexistence_opts("--config", os.path.join(ROOT, "sweeps", "S1.toml"), "--storage", "/tmp/dgl_presets")
    assert (o.batch_size, o.lr_milestones, o.epochs, o.gpus_per_trial) == (256, [50, 75], 100, 0.25)
    assert "note:" not in capsys.readouterr().err

