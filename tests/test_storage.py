"""dgl_ray.storage without a server: printed URIs, one-line network errors, the atomic results.parquet
write, and the trial-folder fallback of a truncated or empty results.parquet."""
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from dgl_ray.analysis import load_experiment
from dgl_ray.analysis.__main__ import main as analysis_main
from dgl_ray.rows import ResultsFallbackWarning
from dgl_ray.analysis.synthetic import write_fake_sweep
from dgl_ray.storage import Location, join

ROOT = Path(__file__).resolve().parents[1]
QUERY = "?endpoint_override=127.0.0.1:9000&scheme=http"


def test_join_keeps_the_query_at_the_end():
    assert join(f"s3://b/x{QUERY}", "sweep", "results.parquet") == f"s3://b/x/sweep/results.parquet{QUERY}"
    assert join("s3://b/x/", "sweep") == "s3://b/x/sweep"
    assert join("results", "sweep", "results.parquet") == os.path.join("results", "sweep", "results.parquet")
    loc = Location.of(f"s3://b/x{QUERY}") / "sweep" / "results.parquet"
    assert str(loc) == f"s3://b/x/sweep/results.parquet{QUERY}" and loc.path == "b/x/sweep/results.parquet"
    assert str(loc.parent) == f"s3://b/x/sweep{QUERY}" and loc.name == "results.parquet"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_endpoint_is_one_line_naming_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    port = _closed_port()
    uri = f"s3://bkt/x?endpoint_override=127.0.0.1:{port}&scheme=http"
    monkeypatch.chdir(tmp_path)
    assert analysis_main(["report", uri, "--no-figures", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {uri}: ") and "\n" not in err and "connection refused" in err, err
    assert "pyarrow does not understand" not in err and "s3:/bkt" not in err
    assert f"could not reach the S3 endpoint 127.0.0.1:{port}: connection refused" in err


def test_a_bad_uri_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert analysis_main(["report", "nosuchscheme://x/y", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: nosuchscheme://x/y: not a path or a URI pyarrow understands") and "\n" not in err


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_unreadable_results_parquet_falls_back_to_the_trial_folders(tmp_path, capsys, monkeypatch, damage):
    folder = write_fake_sweep(tmp_path / "storage", name="coex", lambdas=(0.3, 0.5), seeds=range(2), epochs=3)
    want = load_experiment(folder)
    pq = folder / "results.parquet"
    pq.write_bytes(pq.read_bytes()[:110] if damage == "truncated" else b"")
    for target in (folder, pq):           # the sweep folder or the file itself
        with pytest.warns(ResultsFallbackWarning, match=r"results.parquet unreadable \(.+\); read the 4 trial "
                                                        r"folders instead; `--resume` rewrites it"):
            got = load_experiment(target)
        assert len(got) == len(want) == 12
        assert sorted(got["run"].unique()) == sorted(want["run"].unique())
    monkeypatch.chdir(tmp_path)
    assert analysis_main(["report", str(folder), "--no-figures", "--quiet", "--no-html"]) == 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("warning: ") and "read the 4 trial folders instead" in err[0]


# The runner's final write under a file-size limit: the process is killed by SIGXFSZ in the middle of
# writing results.parquet (as SIGKILL would), or, with SIGXFSZ ignored, the write fails like a full disk.
_WRITE = textwrap.dedent("""
    import resource, signal, sys
    import torch, pyarrow.parquet  # noqa: F401  (imported before the limit)
    from dgl_ray.tune.results import collect
    # Python ignores SIGXFSZ (the write then fails with EFBIG, as on a full disk); "killed" restores the
    # default action, which kills the process in the middle of the write
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL if sys.argv[3] == "killed" else signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[4]), int(sys.argv[4])))
    try:
        collect(sys.argv[1], sys.argv[2], None)
    except OSError as e:
        print("write failed:", e)
        sys.exit(3)
""")


@pytest.mark.parametrize("how", ["killed", pytest.param("full", marks=pytest.mark.slow)])
def test_a_failed_final_write_leaves_the_old_results_parquet(tmp_path, how):
    storage = tmp_path / "storage"
    folder = write_fake_sweep(storage, name="coex", lambdas=(0.3, 0.4, 0.5), seeds=range(30), epochs=20)
    old = folder / "results.parquet"
    pd.DataFrame({"run": ["old"], "epoch": [1], "test_error": [0.5], "lambda": [0.3]}).to_parquet(old)
    before = old.read_bytes()
    limit = 40_000      # the rebuilt Parquet of 1800 rows is larger: the write stops in the middle
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-c", _WRITE, str(storage), "coex", how, str(limit)], env=env,
                       capture_output=True, text=True, timeout=300)
    if how == "killed":
        assert p.returncode == -signal.SIGXFSZ, p.stdout + p.stderr
    else:
        assert p.returncode == 3 and "write failed" in p.stdout, p.stdout + p.stderr
        assert not [f for f in os.listdir(folder) if ".tmp" in f]      # the temporary file is removed
    assert old.read_bytes() == before                                   # the finished file is intact
    assert load_experiment(old)["run"].tolist() == ["old"]
    if how == "killed":
        return
    # without a limit the same call replaces it with the 1800 rows of the trial folders
    p = subprocess.run([sys.executable, "-c", _WRITE, str(storage), "coex", "full", str(1 << 40)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert len(pd.read_parquet(old)) == 1800


@pytest.mark.slow      # ≈ 20 s: the S3 client retries before it gives up
def test_sweep_to_an_unreachable_endpoint_is_one_line_before_ray(capsys, monkeypatch):
    from dgl_ray.sweeps import coexistence
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    port = _closed_port()
    storage = f"s3://bkt/x?endpoint_override=127.0.0.1:{port}&scheme=http"
    assert coexistence.FAMILY.main(["--lambdas", "0.3", "--n", "1", "--storage", storage, "--name", "s"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --storage '{storage}': ") and "\n" not in err, err
    assert f"could not reach the S3 endpoint 127.0.0.1:{port}: connection refused" in err


def test_location_mkdir_makes_parents_and_is_idempotent(tmp_path):
    folder = Location.of(tmp_path / "a" / "checkpoint_000001")
    assert not folder.exists()
    folder.mkdir()
    folder.mkdir()                      # already there: no error (a lost checkpoint re-made twice)
    assert folder.is_dir()
