"""Trial behaviour: exact resume, schedules inside a trial, start from a checkpoint, divergence,
trusted subsets, W1's c_sv, and the digits phenomenon."""
import math

import numpy as np
import pytest
import torch

from dgl_ray.batched import run_trial
from dgl_ray.errors import ConfigError
from dgl_ray.trainer import Trial

TIMING = ("wall_time", "epoch_time")


def _strip(history):
    nan_free = lambda v: "nan" if isinstance(v, float) and math.isnan(v) else v
    return [{k: nan_free(v) for k, v in m.items() if k not in TIMING} for m in history]


def _same_params(a, b):
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("cfg", [
    dict(dataset="digits", **{"lambda": 0.4}, seed=1, epochs=4, K=16),
    # augmentation generator + dropout (global torch RNG) + an LR milestone + a ladder
    dict(dataset="synthetic-cifar", synthetic_size=[192, 64], model="vgg11-p2", batch_size=64, seed=2,
         lambda_schedule=[{"kind": "ladder", "points": [0.3, 0.36], "step": 0.02}], lr_milestones=[3]),
])
def test_stop_and_resume_gives_the_same_numbers(tmp_path, cfg):
    whole = Trial(cfg)
    run_trial(whole)
    first = Trial(cfg)
    run_trial(first, max_epochs=2)
    path = tmp_path / "t.pt"
    first.save(path)
    del first
    torch.manual_seed(999)          # disturb every global RNG between stop and resume
    np.random.seed(999)
    second = Trial.resume(path)
    assert second.epoch == 2
    run_trial(second)
    assert _strip(second.history) == _strip(whole.history)
    assert _same_params(second, whole)
    assert second.stepper.step == whole.stepper.step


def test_resume_is_not_trivially_equal(tmp_path):
    """The comparison above can fail: a resumed trial with a different data order differs."""
    cfg = dict(dataset="digits", **{"lambda": 0.4}, seed=1, epochs=3)
    whole = Trial(cfg)
    run_trial(whole)
    t = Trial(cfg)
    run_trial(t, max_epochs=1)
    t.gen.manual_seed(12345)
    run_trial(t)
    assert not _same_params(t, whole)


def test_ladder_inside_a_trial_records_lambda_direction_and_lr(digits):
    t = Trial(dict(dataset="digits", seed=0, lambda_schedule=[
        {"kind": "constant", "value": 0.3, "epochs": 2, "name": "init"},
        {"kind": "ladder", "points": [0.40, 0.44, 0.40], "step": 0.02, "hold": 1}], lr_milestones=[3]), data=digits)
    s = run_trial(t)
    assert [m["lambda"] for m in t.history] == [0.3, 0.3, 0.40, 0.42, 0.44, 0.42, 0.40]
    assert [m["phase"] for m in t.history][:3] == ["init", "init", "ladder"]
    assert [m["direction"] for m in t.history][2:] == ["up", "up", "up", "down", "down"]
    assert [m["lr"] for m in t.history] == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01])
    assert s["epochs"] == 7 and s["lambda"] == 0.40


def test_eval_every_reports_less_often_but_always_the_end(digits):
    t = Trial(dict(dataset="digits", **{"lambda": 0.3}, epochs=5, eval_every=2), data=digits)
    run_trial(t)
    assert [m["epoch"] for m in t.history] == [2, 4, 5]


def test_start_from_checkpoint_fresh_optimizer_and_reset_counter(tmp_path, digits):
    prep = Trial(dict(dataset="digits", **{"lambda": 0.3}, seed=0, epochs=2), data=digits)
    run_trial(prep)
    prep.save(tmp_path / "ordered.pt")
    t = Trial(dict(dataset="digits", **{"lambda": 0.6}, seed=0, epochs=1, lr=0.001, init_checkpoint=str(tmp_path / "ordered.pt"),
                   origin="ordered"), data=digits)
    assert _same_params(t, prep)
    assert t.stepper.step == 0 and t.stepper.cached_gv is None
    assert t.opt.state_dict()["state"] == {} and t.opt.param_groups[0]["lr"] == 0.001
    s = run_trial(t)
    assert s["origin"] == "ordered" and s["init_error"] == prep.history[-1]["test_error"]
    assert t.stepper.step == math.ceil(1400 / 32)


def test_start_from_a_notebook_checkpoint(tmp_path, digits):
    prep = Trial(dict(dataset="digits", **{"lambda": 0.3}, epochs=1), data=digits)
    torch.save({"seed": 0, "final_error": 0.1, "model_state_dict": prep.model.state_dict(),
                "optimizer_state_dict": prep.opt.state_dict()}, tmp_path / "nb.pth")
    t = Trial(dict(dataset="digits", **{"lambda": 0.5}, epochs=1, init_checkpoint=str(tmp_path / "nb.pth")), data=digits)
    assert _same_params(t, prep)


def test_checkpoint_of_another_model_is_refused_before_training(tmp_path, digits):
    prep = Trial(dict(dataset="digits", **{"lambda": 0.3}, epochs=1, width=2.0), data=digits)
    prep.save(tmp_path / "w2.pt")
    with pytest.raises(ConfigError) as e:
        Trial(dict(dataset="digits", **{"lambda": 0.3}, epochs=1, init_checkpoint=str(tmp_path / "w2.pt")), data=digits)
    assert "'width': 2.0" in str(e.value) and "'width': 1.0" in str(e.value)
    torch.save({"model_state_dict": prep.model.state_dict()}, tmp_path / "w2_nb.pth")
    with pytest.raises(ConfigError, match="does not fit model='tinycnn'"):
        Trial(dict(dataset="digits", **{"lambda": 0.3}, epochs=1, init_checkpoint=str(tmp_path / "w2_nb.pth")), data=digits)
    with pytest.raises(ConfigError, match="does not exist"):
        Trial(dict(dataset="digits", **{"lambda": 0.3}, epochs=1, init_checkpoint=str(tmp_path / "nope.pt")), data=digits)


def test_divergence_stops_the_trial_with_a_status(digits):
    t = Trial(dict(dataset="digits", **{"lambda": 0.3}, epochs=5, lr=1e38), data=digits)
    s = run_trial(t)
    assert s["status"] == "diverged" and s["final_error"] is None and "non-finite" in s["reason"]
    assert t.history[-1]["status"] == "diverged" and math.isnan(t.history[-1]["test_error"])
    assert s["epochs"] < 5


def test_trusted_subset_and_fresh_csv(digits):
    t = Trial(dict(dataset="digits", **{"lambda": 0.4}, epochs=2, trusted_fraction=0.05, fresh_csv=True, K=4), data=digits)
    s = run_trial(t)
    assert s["status"] == "completed"
    m = t.history[-1]
    assert -1 <= m["c_sv"] <= 1 and -1 <= m["avg_cos"] <= 1 and m["gv_norm"] > 0
    # c_sv is measured without moving BatchNorm statistics: the trial is the same with and without it
    a = Trial(dict(dataset="digits", **{"lambda": 0.4}, epochs=2, K=4), data=digits)
    b = Trial(dict(dataset="digits", **{"lambda": 0.4}, epochs=2, K=4, fresh_csv=True), data=digits)
    run_trial(a), run_trial(b)
    assert _same_params(a, b)
    assert not math.isnan(b.history[-1]["c_sv"]) and math.isnan(a.history[-1]["c_sv"])


def test_digits_shows_the_phase_transition(digits):
    """PROTOCOLS.md's digits default, 3 seeds: at λ=0.3 no run is on the H branch (< 0.40) and the median
    ends under 0.15; at λ=0.7 every run is collapsed (> 0.5). One seed alone is not the claim: at the
    constant LR 0.1 of the digits default the last epochs swing by ±0.07, and float32 training is
    chaotic (seed 0 ends at 0.073 with 1 thread, 0.209 with 2; its last-5-epoch mean 0.108 / 0.151)."""
    low = [run_trial(Trial(dict(dataset="digits", **{"lambda": 0.3}, eta=0.4, seed=s, epochs=30), data=digits))["final_error"]
           for s in (0, 1, 2)]
    high = [run_trial(Trial(dict(dataset="digits", **{"lambda": 0.7}, eta=0.4, seed=s, epochs=30), data=digits))["final_error"]
            for s in (0, 1, 2)]
    assert max(low) < 0.40 and sorted(low)[1] < 0.15, low
    assert min(high) > 0.5, high
