"""Ray Tune's own result API on a packed sweep: a Tune trial is a population of (λ, seed) trials, and its
results carry group-level metrics (the members' best error, the median, counts) so that
``ExperimentAnalysis`` and ``ResultGrid.get_best_result`` work; the per-(λ, seed) rows stay in
``load_experiment``'s frame."""
import pytest

from tests._tiny_sweep import tiny_packed_sweep
from dgl_ray.rows import GROUP_METRICS, group_metrics


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return tiny_packed_sweep(tmp_path_factory.getbasetemp() / "shared_sweeps")


def _member_finals(sweep):
    from dgl_ray.analysis import load_experiment
    df = load_experiment(sweep)
    return df.sort_values("epoch").groupby("run").tail(1)


def test_experiment_analysis_sees_groups_with_their_best_member(sweep):
    from ray import tune
    ea = tune.ExperimentAnalysis(str(sweep), default_metric="test_error", default_mode="min")
    assert len(ea.trials) == 2                      # Tune trials are the groups of 2 (λ, seed) trials
    finals = _member_finals(sweep)
    best = ea.best_result
    assert best["test_error"] == pytest.approx(finals["test_error"].min())
    assert best["n_members"] == 2 and best["n_final"] == 2 and best["n_error"] == 0
    frame = ea.dataframe()
    assert frame["test_error"].notna().all() and (frame["n_members"] == 2).all()
    for trial in ea.trials:                         # each group's best and median of its members' finals
        mine = finals[finals["group"] == trial.trial_id]["test_error"]
        assert trial.last_result["test_error"] == pytest.approx(mine.min())
        assert trial.last_result["test_error_median"] == pytest.approx(mine.median())


def test_tuner_restore_get_best_result(sweep):
    from ray import tune
    from dgl_ray.tune.trainable import any_trainable
    grid = tune.Tuner.restore(str(sweep), any_trainable).get_results()
    assert len(grid) == 2 and not grid.errors
    best = grid.get_best_result("test_error", "min")
    assert best.metrics["test_error"] == pytest.approx(_member_finals(sweep)["test_error"].min())
    assert best.metrics["n_final"] == best.metrics["n_members"] == 2


def test_group_metrics_of_an_epoch():
    rows = [dict(test_error=0.3, status="running", group_size=4), dict(test_error=0.1, status="completed"),
            dict(test_error=float("nan"), status="diverged")]
    m = group_metrics(rows, statuses=["running", "completed", "diverged", "completed"])
    assert set(m) == set(GROUP_METRICS)
    assert m == dict(test_error=0.1, test_error_median=pytest.approx(0.2), n_members=4, n_final=3,
                     n_diverged=1, n_decided=0, n_error=0)
    decided = group_metrics(rows[:2], statuses=["running", "completed", "decided", "decided"])
    assert decided["n_decided"] == 2 and decided["n_final"] == 1       # a decided member is not a final one
    err = group_metrics([dict(test_error=None, status="error", group_size=2)])
    assert err["test_error"] is None and err["n_error"] == 1 and err["n_members"] == 2
