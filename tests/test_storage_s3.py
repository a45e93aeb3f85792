"""Sweeps on S3, end to end, against a real S3-compatible server (moto_server) started on 127.0.0.1."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dgl_ray.analysis import load_experiment
from dgl_ray.analysis.__main__ import main as analysis_main
from dgl_ray.rows import ResultsFallbackWarning
from dgl_ray.analysis.synthetic import write_fake_sweep

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on 127.0.0.1 with bucket ``bkt``; yields its ``host:port``."""
    moto = str(Path(sys.executable).parent / "moto_server")     # this environment's moto, not one on PATH
    if not os.path.exists(moto):
        pytest.skip("moto_server not installed (pip install -e '.[test]')")
    port = _free_port()
    proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=dict(os.environ, **KEYS))
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        old = {k: os.environ.get(k) for k in KEYS}
        os.environ.update(KEYS)
        import pyarrow.fs as pafs
        pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http",
                          allow_bucket_creation=True).create_dir("bkt")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for k, v in locals().get("old", {}).items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _q(endpoint: str) -> str:
    return f"?endpoint_override={endpoint}&scheme=http"


def _upload(local: Path, uri: str) -> None:
    import pyarrow.fs as pafs
    fs, path = pafs.FileSystem.from_uri(uri)
    pafs.copy_files(str(local), path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs,
                    use_threads=False)


def test_fake_sweep_on_s3_reads_as_the_local_folder(s3, tmp_path, capsys, monkeypatch):
    local = write_fake_sweep(tmp_path / "local", name="coex", lambdas=(0.3, 0.5), seeds=range(3), epochs=3,
                             drop_from_parquet=2)           # a partial Parquet: the rest from trial folders
    uri = f"s3://bkt/fake/coex{_q(s3)}"
    _upload(local, uri)
    # a truncated results.parquet on S3 (a killed write of an older version): the trial folders, warned
    (tmp_path / "trunc").mkdir()
    shutil.copytree(local, tmp_path / "trunc" / "coex")
    (tmp_path / "trunc" / "coex" / "results.parquet").write_bytes(b"PAR1" + b"\0" * 106)
    _upload(tmp_path / "trunc" / "coex", f"s3://bkt/trunc/coex{_q(s3)}")
    with pytest.warns(ResultsFallbackWarning, match="read the 6 trial folders instead"):
        assert len(load_experiment(f"s3://bkt/trunc/coex{_q(s3)}")) == 6 * 3

    want, got = load_experiment(local), load_experiment(uri)
    cols = ["run", "epoch", "lambda", "seed", "test_error", "run_status"]
    pd.testing.assert_frame_equal(got[cols], want[cols])
    assert got.attrs["trials"] == want.attrs["trials"]
    assert len(load_experiment(f"s3://bkt/fake{_q(s3)}")) == len(want)          # a storage folder
    assert len(load_experiment(f"s3://bkt/fake/coex/results.parquet{_q(s3)}")) == 4 * 3

    other = write_fake_sweep(tmp_path / "other", name="coex_b", lambdas=(0.3, 0.5), seeds=range(2), epochs=3)
    monkeypatch.chdir(tmp_path)
    assert analysis_main(["report", uri, "--compare", str(other), "--no-figures", "--quiet", "--no-html", "--n-boot", "20"]) == 0
    md = (tmp_path / "report-coex" / "report.md").read_text()
    assert "Comparison: coex beside coex_b" in md

    from dgl_ray.analysis.live import watch
    seen = []
    assert watch(lambda argv: seen.append(argv) or 0, ["report", uri], 0.01, uri, max_refreshes=1) == 0
    assert seen == [["report", uri]]



def _sweep_cmd(storage: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dgl_ray.sweeps.coexistence", "--lambdas", "0.3,0.5", "--n", "2",
            "--epochs", "2", "--storage", storage, "--name", "s3sweep", "--num-cpus", "2",
            "--progress-interval", "30", *extra]


def _env(**kw) -> dict:
    return dict(os.environ, **KEYS, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **kw)


@pytest.mark.slow      # ≈ 70 s on 2 cores (Ray start, a sweep writing to S3)
def test_sweep_to_s3_with_endpoint_override_prints_usable_uris(s3, tmp_path):
    storage = f"s3://bkt/sw{_q(s3)}"
    p = subprocess.run(_sweep_cmd(storage), cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    results = re.search(r"^results: (\S+)$", p.stdout, re.M).group(1)
    assert results == f"s3://bkt/sw/s3sweep/results.parquet{_q(s3)}"          # the query at the end
    assert re.search(rf"^tune folder: s3://bkt/sw/s3sweep{re.escape(_q(s3))}$", p.stdout, re.M)
    df = load_experiment(results)
    assert df["run"].nunique() == 4 and set(df["run_status"]) == {"completed"}
    assert len(load_experiment(f"s3://bkt/sw/s3sweep{_q(s3)}")) == len(df)


@pytest.mark.slow
def test_sweep_to_s3_sigint_resume_report_compare(s3, tmp_path, capsys, monkeypatch):
    env = _env(AWS_ENDPOINT_URL=f"http://{s3}")        # the endpoint from the environment, a plain URI
    storage = "s3://bkt/slow"
    cmd = _sweep_cmd(storage, "--epochs", "40", "--group-size", "1", "--max-concurrent", "1",
                     "--checkpoint-every", "1")
    import pyarrow.fs as pafs
    fs = pafs.S3FileSystem(endpoint_override=s3, scheme="http")

    def started():      # a trial checkpointed: the sweep is under way
        infos = fs.get_file_info(pafs.FileSelector("bkt/slow/s3sweep", recursive=True, allow_not_found=True))
        return any("/checkpoint_" in i.path for i in infos)
    p = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and p.poll() is None and not started():
            time.sleep(0.5)
        assert p.poll() is None, "the sweep ended before it could be interrupted"
        os.kill(p.pid, signal.SIGINT)
        out, _ = p.communicate(timeout=180)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 130, out[-3000:]
    assert "--resume" in out
    p = subprocess.run([*cmd, "--resume"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "results: s3://bkt/slow/s3sweep/results.parquet" in p.stdout
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{s3}")
    df = load_experiment(f"{storage}/s3sweep")
    assert df["run"].nunique() == 4 and set(df["run_status"]) == {"completed"}
    assert df.groupby("run")["epoch"].max().eq(40).all()
    other = write_fake_sweep(tmp_path / "local", name="coex", lambdas=(0.3, 0.5), seeds=range(2), epochs=3)
    monkeypatch.chdir(tmp_path)
    assert analysis_main(["report", f"{storage}/s3sweep", "--compare", str(other), "--no-figures",
                          "--quiet", "--no-html"]) == 0
    assert "Comparison: s3sweep beside coex" in (tmp_path / "report-s3sweep" / "report.md").read_text()


@pytest.mark.slow      # ≈ 90 s on 2 cores: two sweeps and a resume on S3
def test_sweep_on_s3_grows_in_place_with_extend(s3, tmp_path, monkeypatch):
    """--extend on S3: the new trials run in <name>/extend-1/ on the bucket, the finished ones do not rerun,
    the manifest records the extension, results.parquet holds the union, --resume has nothing to rerun."""
    storage = f"s3://bkt/grow{_q(s3)}"
    p = subprocess.run(_sweep_cmd(storage), cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    before = load_experiment(f"s3://bkt/grow/s3sweep{_q(s3)}")
    grow = [*_sweep_cmd(storage)[:-2], "--n", "3", "--progress-interval", "30", "--extend"]
    p = subprocess.run(grow, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "extension extend-1: 2 new trial(s)" in p.stdout
    import json
    import pyarrow.fs as pafs
    fs = pafs.S3FileSystem(endpoint_override=s3, scheme="http")
    with fs.open_input_stream("bkt/grow/s3sweep/dgl_sweep.json") as f:
        manifest = json.loads(f.read())
    assert [(e["folder"], e["added"]) for e in manifest["extensions"]] == [("extend-1", 2)]
    assert fs.get_file_info("bkt/grow/s3sweep/extend-1").type == pafs.FileType.Directory
    df = load_experiment(f"s3://bkt/grow/s3sweep{_q(s3)}")
    assert df["run"].nunique() == 6 and set(df["run_status"]) == {"completed"}
    cols = ["run", "epoch", "test_error", "wall_time"]
    old = df[df["run"].isin(set(before["run"]))].sort_values(["run", "epoch"]).reset_index(drop=True)
    assert old[cols].equals(before.sort_values(["run", "epoch"]).reset_index(drop=True)[cols])
    p = subprocess.run([*grow[:-1], "--resume"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    again = load_experiment(f"s3://bkt/grow/s3sweep{_q(s3)}")
    assert again.sort_values(["run", "epoch"]).reset_index(drop=True)[cols].equals(
        df.sort_values(["run", "epoch"]).reset_index(drop=True)[cols])
