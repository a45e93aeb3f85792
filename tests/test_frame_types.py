"""The tidy frame's types are the Parquet's: strings as strings, the small label sets as categoricals, list
fields as Python lists (not JSON text); every table works on them."""
import pandas as pd
import pytest

from tests._tiny_sweep import tiny_packed_sweep
from dgl_ray.analysis import load_experiment
from dgl_ray.analysis import tables as T
from dgl_ray.analysis.frames import CATEGORICAL_COLUMNS, for_parquet


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    return load_experiment(tiny_packed_sweep(tmp_path_factory.getbasetemp() / "shared_sweeps"))


def _check_types(df):
    for c in CATEGORICAL_COLUMNS:
        assert isinstance(df[c].dtype, pd.CategoricalDtype), (c, df[c].dtype)
    for c in ("run", "experiment", "noise"):
        assert pd.api.types.is_string_dtype(df[c]) and df[c].dtype != object, (c, df[c].dtype)
    assert df["lr_milestones"].map(lambda v: v == []).all()
    assert df["synthetic_size"].map(lambda v: v == [50000, 10000]).all()
    assert df["lambda_schedule"].map(lambda v: isinstance(v, list) and v[0]["kind"] == "constant").all()
    assert df["tags"].map(lambda v: v == {}).all()
    numbers = [c for c in df.columns if df[c].dtype == object
               and df[c].dropna().map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)).any()]
    assert numbers == []                       # no column of numbers is object


def test_a_sweep_folder_reads_with_the_parquet_types(frame):
    _check_types(frame)
    assert set(frame["family"].cat.categories) >= {"coexistence"} and set(frame["run_status"]) == {"completed"}


def test_the_parquet_file_reads_the_same_and_holds_json_text(frame, tmp_path_factory):
    folder = tiny_packed_sweep(tmp_path_factory.getbasetemp() / "shared_sweeps")
    raw = pd.read_parquet(folder / "results.parquet")
    assert raw["lr_milestones"].eq("[]").all()          # Parquet has no type for [] or {}: JSON text there
    _check_types(load_experiment(folder / "results.parquet"))
    p = tmp_path_factory.mktemp("rt") / "results.parquet"
    out = for_parquet(frame)
    out.attrs = {}                                        # (the provenance read is a list of records)
    out.to_parquet(p, index=False)                        # the frame writes back and reads the same
    again = load_experiment(p)
    _check_types(again)
    assert again["lambda_schedule"].tolist() == frame.sort_values(["run", "epoch"])["lambda_schedule"].tolist()


def test_every_table_works_on_categoricals(frame):
    bt = T.branch_table(frame)
    assert bt["n"].sum() == 4 and bt["n_missing"].sum() == 0 and len(bt) == 2
    assert T.gap_table(frame)["n_missing"].sum() == 0
    assert T.final_error_table(frame)["n"].sum() == 4
    assert T.convergence_table(frame)["n"].sum() == 4
    assert T.bimodality(frame)["n"].sum() == 4
    assert T.critical_point(frame, n_boot=5)["n_runs"].sum() == 4
    assert T.escape_table(frame)["n"].sum() == 4
    df = frame.copy()
    df.loc[df["run"].eq(df["run"].iloc[0]), "status"] = "diverged"    # a known label can be set
    assert T.branch_table(df)["n_diverged"].sum() == 1
