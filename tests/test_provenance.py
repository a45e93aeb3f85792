"""Provenance: which code, packages and machine produced the rows, kept in the Parquet metadata."""
import platform
import subprocess

import pandas as pd

from dgl_ray import __version__, provenance
from dgl_ray.analysis import load_experiment


def test_collect_names_code_packages_and_machine():
    rec = provenance.collect()
    assert rec["dgl_ray"] == __version__
    assert rec["python"] == platform.python_version()
    import ray, torch
    assert rec["torch"].split("+")[0] == torch.__version__.split("+")[0] and rec["ray"] == ray.__version__
    assert rec["host"] and rec["device"]
    head = subprocess.run(["git", "-C", str(provenance.ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:                      # a git checkout (not an installed wheel)
        assert rec["git_commit"] == head.stdout.strip() and isinstance(rec["git_dirty"], bool)


def test_parquet_metadata_round_trip_through_load_experiment(tmp_path):
    sweep = tmp_path / "s1"
    sweep.mkdir()
    df = pd.DataFrame({"run": ["a", "a"], "epoch": [1, 2], "lambda": [0.3, 0.3], "seed": [0, 0],
                       "test_error": [0.5, 0.4]})
    rec = provenance.collect()
    provenance.attach(df, rec).to_parquet(sweep / "results.parquet", index=False)
    for path in (sweep, sweep / "results.parquet", tmp_path):
        got = load_experiment(path).attrs["provenance"]
        assert len(got) == 1 and {k: v for k, v in got[0].items() if k != "file"} == rec
    lines = provenance.describe(got)
    assert rec["git_commit"] is None or rec["git_commit"][:12] in lines[0]
    assert f"torch {rec['torch']}" in lines[0] and rec["host"] in lines[0]


def test_old_parquet_without_provenance_reads(tmp_path):
    pd.DataFrame({"run": ["a"], "epoch": [1], "lambda": [0.3], "seed": [0], "test_error": [0.5]}) \
        .to_parquet(tmp_path / "results.parquet", index=False)
    assert load_experiment(tmp_path).attrs["provenance"] == []
