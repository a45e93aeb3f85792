"""The calibrated branch classifier (dgl_ray.early): load, decide, the --decide-early check, and the
held-out calibration (misclassification of decided runs <= δ on seeds that chose nothing)."""
import json

import numpy as np
import pytest

from dgl_ray import early
from dgl_ray.errors import ConfigError


@pytest.fixture(scope="module")
def stored():
    return json.loads(early.MODELS_FILE.read_text())


def test_unknown_dataset_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match=r"no calibrated branch classifier for dataset 'cifar100' \(have: "
                                          r"digits, cifar10, synthetic-cifar\)"):
        early.BranchClassifier.load("cifar100")


@pytest.mark.parametrize("delta", [0.001, 0.5, 0.7, -0.1, True, "0.05"])
def test_check_delta_refuses_values_outside_the_calibrated_range(delta):
    with pytest.raises(ConfigError) as e:
        early.check_delta(delta, "digits")
    msg = str(e.value)
    assert "\n" not in msg and repr(delta) in msg and "'digits'" in msg and "0.5)" in msg


def test_check_delta_accepts_the_calibrated_range():
    clf = early.BranchClassifier.load("digits")
    for delta in (clf.min_delta, 0.03, 0.1, 0.49):
        early.check_delta(delta, "digits")


def test_synthetic_cifar_shares_the_cifar10_model():
    assert early.BranchClassifier.load("synthetic-cifar").dataset == "cifar10"


def test_decide_names_clear_branches_at_allowed_points_only():
    clf = early.BranchClassifier.load("digits")
    delta = 0.05
    bins = clf.allowed_bins(delta)
    assert bins, "digits at δ=0.05 must allow decisions somewhere"
    low = [0.9, 0.5, 0.3] + [0.05] * 27      # a run converged on the low-error branch
    high = [0.9] * 30                         # stuck near the trap
    epoch = int(max(bins) * 3 + 1)            # an evaluation in the latest allowed tenth of 30 epochs
    e = list(range(1, epoch + 1))
    assert clf.decide(e, low[:epoch], 30, [], delta)[0] == "not_H"
    branch, p = clf.decide(e, high[:epoch], 30, [], delta)
    assert branch == "H" and p >= 1 - delta
    # never at the last epoch (its final error is the answer), never in a bin the calibration refused
    assert clf.decide(list(range(1, 31)), high, 30, [], delta) is None
    refused = [b for b in range(early.BINS) if b not in bins]
    if refused:
        ep = refused[0] * 3 + 1
        assert clf.decide(list(range(1, ep + 1)), high[:ep], 30, [], delta) is None


def test_p_high_rises_with_the_error_so_far():
    clf = early.BranchClassifier.load("cifar10")
    e = [10, 20, 30, 40, 50, 60]
    ps = [clf.p_high(e, [x] * 6, 100, [50, 75]) for x in (0.1, 0.3, 0.5, 0.9)]
    assert ps == sorted(ps) and ps[0] < 0.5 < ps[-1]


def test_stored_held_out_decisions_are_wrong_at_most_delta(stored):
    """Recompute, from the stored outer-fold decisions, each passed δ's misclassification on held-out
    seeds: it is <= δ, and it is what the table says."""
    for name, fam in stored["families"].items():
        truth = np.array(fam["held_out_runs"]["H"])
        for d, cal in fam["calibration"].items():
            branch = np.array(fam["held_out_decisions"][d]["branch"])
            decided = branch >= 0
            wrong = int((decided & (branch != truth)).sum())
            assert cal["held_out"]["decided"] == int(decided.sum())
            assert cal["held_out"]["wrong"] == wrong
            if cal["passed"]:
                assert decided.any() and wrong <= float(d) * decided.sum(), (name, d)
    assert early.BranchClassifier.load("digits").min_delta <= 0.05


def test_decisions_save_trial_epochs(stored):
    """Decided runs stop before their last epoch: the stored saving agrees with the stored stops."""
    fam = stored["families"]["digits"]
    total = np.array(fam["held_out_runs"]["total"])
    for d, cal in fam["calibration"].items():
        stop = np.array(fam["held_out_decisions"][d]["epoch"])
        assert (stop[stop >= 0] < total[stop >= 0]).all()
        saved = 1 - np.where(stop >= 0, stop, total).sum() / total.sum()
        assert saved == pytest.approx(cal["held_out"]["epochs_saved"])
    assert fam["calibration"]["0.05"]["held_out"]["epochs_saved"] > 0.3


def test_refit_from_the_repository_reproduces_the_cifar_calibration(stored):
    """The CIFAR fit reads only the repository's S2 archive: refitting gives the stored model and table."""
    fit = early.fit_family(early.cifar_runs())
    want = stored["families"]["cifar10"]
    assert fit["model"]["coef"] == pytest.approx(want["model"]["coef"], rel=1e-6, abs=1e-9)
    bins = {d: c["bins"] for d, c in fit["calibration"].items()}
    assert bins == {d: c["bins"] for d, c in want["calibration"].items()}
    for d, c in fit["calibration"].items():
        if c["passed"]:
            assert c["held_out"]["wrong"] <= float(d) * c["held_out"]["decided"]


@pytest.mark.skipif(not early.DIGITS_POOLS.is_dir(), reason="tests/data/digits-pools not in this checkout")
def test_refit_on_the_digits_pools_keeps_misclassification_under_delta():
    fit = early.fit_family(early.digits_runs())
    for d, c in fit["calibration"].items():
        if c["passed"]:
            assert c["held_out"]["wrong"] <= float(d) * c["held_out"]["decided"]
    assert fit["calibration"]["0.05"]["passed"]


def test_report_prints_the_stored_table(capsys):
    assert early.main(["report"]) == 0
    out = capsys.readouterr().out
    assert "epochs saved" in out and "digits" in out and "cifar10" in out


def test_longer_windows_read_the_level_a_noisy_run_drifts_to():
    """mean_w20/35/50 are the mean errors over the last fifth, third and half of the run; slope_w35 the
    least-squares slope over the last 35% in relative time; above_w35 the fraction there >= H_MIN."""
    rng = np.random.default_rng(0)
    epochs = list(range(1, 21))                           # 20 of 30 epochs
    errors = list(0.6 - 0.01 * np.arange(20) + rng.normal(0, 0.05, 20))
    f = dict(zip(early.FEATURES, early.features(epochs, errors, 30)))
    assert len(early.features(epochs, errors, 30)) == len(early.FEATURES)
    e, err = np.array(epochs, float), np.array(errors)
    for name, w in (("mean_w20", 0.2), ("mean_w35", 0.35), ("mean_w50", 0.5)):
        assert f[name] == pytest.approx(err[e >= 20 - w * 30].mean())
    mid = e >= 20 - 0.35 * 30
    assert f["slope_w35"] == pytest.approx(np.polyfit(e[mid] / 30, err[mid], 1)[0])
    assert f["above_w35"] == pytest.approx((err[mid] >= early.H_MIN).mean())
    assert f["slope_w35_x_left"] == pytest.approx(f["slope_w35"] * (1 - 20 / 30))
    # two evaluations in the window (CIFAR's every 10 epochs): no slope is fitted
    g = dict(zip(early.FEATURES, early.features([50, 60], [0.5, 0.3], 100)))
    assert g["slope_w35"] == 0.0 and g["mean_w20"] == pytest.approx(0.4)
