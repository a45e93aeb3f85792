"""The row and wire format (dgl_ray.rows), the one module the Tune side and the analysis share."""
import pandas as pd
import pytest

from dgl_ray import rows
from dgl_ray.config import LABEL_FIELDS, RUNTIME_FIELDS
from dgl_ray.storage import Location


@pytest.mark.parametrize("folder, trial_id", [
    ("dgl_trainable_7a901710_1_lambda=0.4500,seed=0_2026-01-01_00-00-00", "7a901710"),    # a searcher's id
    ("train_dgl_abcde_00000_0_lambda=0.5_2026-01-01_00-00-00", "abcde_00000"),            # Tune's own ids
    ("/storage/sweep/dgl_trainable_7a901710_1_x/", "7a901710"),
    ("results.parquet", None),
    (".orphaned", None),
])
def test_one_trial_folder_pattern_for_runner_and_analysis(folder, trial_id):
    assert rows.trial_id_of(folder) == trial_id


def test_every_label_field_is_copied_as_a_label():
    config = {"lambda": 0.45, "seed": 3, **{k: f"v-{k}" for k in LABEL_FIELDS}, "checkpoint_every": 2}
    trial, labels, runtime = rows.split_config(config)
    assert trial == {"lambda": 0.45, "seed": 3}
    assert labels == {k: f"v-{k}" for k in LABEL_FIELDS}
    assert set(runtime) == {"checkpoint_every"} and set(runtime) <= set(RUNTIME_FIELDS)


def test_a_group_packs_shared_fields_once_and_unpacks_to_its_members():
    members = [{"lambda": 0.4, "seed": s, "epochs": 2, "family": "s1"} for s in range(3)]
    packed = rows.pack_group(members)
    assert {k: v for k, v in packed.items() if k != "group"} == {"lambda": 0.4, "epochs": 2, "family": "s1"}
    assert packed["group"] == [{"seed": s} for s in range(3)]
    assert rows.unpack_group(packed) == members
    assert rows.unpack_group(members[0]) == [members[0]]


def test_a_grouped_result_reads_back_as_member_rows_without_the_group_metrics():
    member = [{"run": rows.member_run("7a901710", i), "epoch": 1, "test_error": e, "status": "running",
               "lambda": 0.45} for i, e in enumerate((0.1, 0.9))]
    result = {**rows.grouped_result(member), "trial_id": "7a901710"}
    assert result["test_error"] == 0.1 and result["n_members"] == 2
    assert rows.result_rows(result) == member
    assert rows.member_rows(result) == [{"trial_id": "7a901710", **r} for r in member]
    flattened = {"rows": result["rows"], **{f"shared/{k}": v for k, v in result["shared"].items()}}
    assert rows.result_rows(flattened) == member                  # as Tune hands it to searchers


def test_results_parquet_reader(tmp_path):
    assert rows.read_results_parquet(Location.of(tmp_path / "results.parquet"), 0) is None
    pd.DataFrame(columns=["run", "epoch", "status", "run_status"]).to_parquet(tmp_path / "empty.parquet")
    assert len(rows.read_results_parquet(Location.of(tmp_path / "empty.parquet"), 0)) == 0   # an empty sweep
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="not a results table of dgl_ray: no 'run', 'epoch', 'test_error'"):
        rows.read_results_parquet(Location.of(tmp_path / "other.parquet"), 0)
