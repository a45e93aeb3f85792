"""Two Ray nodes on one machine (ray.cluster_utils.Cluster): --address connects, trials run on both
nodes, and every trial's result arrives."""
import os

import pytest

from tests._sweep_helpers import finals, parquet, run_family


@pytest.fixture
def two_nodes():
    import ray
    from ray.cluster_utils import Cluster
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")    # the same auth mode on every node (RAY_NOTES)
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = c.add_node(num_cpus=1)
    c.wait_for_nodes()
    yield c, worker
    ray.shutdown()
    c.shutdown()


def test_two_nodes(tmp_path, two_nodes):
    cluster, _ = two_nodes
    rc = run_family("coexistence", tmp_path, "--address", cluster.address, "--lambdas", "0.3,0.6", "--n", "3",
                    "--epochs", "10", "--progress-interval", "30", "--group-size", "2")  # 3 grouped Tune trials
    # (10 epochs: a Tune trial lasts longer than a new worker's start, so the second node gets one; with 2 epochs
    # a trial could end first and Tune's actor reuse ran all three on the head's one worker)
    assert rc == 0
    df = parquet(tmp_path, "coexistence")
    f = finals(df)
    assert len(f) == 6 and (f["status"] == "completed").all()
    assert f["node_id"].nunique() == 2, f[["run", "node_id", "host", "worker_pid"]]
    assert f["worker_pid"].nunique() >= 2 and f["host"].notna().all()


@pytest.mark.slow
def test_node_removed_mid_sweep_loses_no_trial(tmp_path, two_nodes, capfd):
    import re
    import threading
    import time
    cluster, worker = two_nodes
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("rc", run_family(
        "coexistence", tmp_path, "--address", cluster.address, "--lambdas", "0.3,0.6", "--n", "4", "--epochs", "6",
        "--checkpoint-every", "1", "--max-failures", "3", "--progress-interval", "30", "--group-size", "1")))
    t.start()
    exp = tmp_path / "coexistence"
    deadline = time.time() + 180
    while time.time() < deadline and len(list(exp.glob("*/checkpoint_*"))) < 3:
        time.sleep(0.5)
    cluster.remove_node(worker)                      # trials there fail and rerun from their checkpoints
    t.join(600)
    assert out.get("rc") == 0
    df = parquet(tmp_path, "coexistence")
    f = finals(df)
    failed = list(exp.glob("*/error.txt"))
    assert failed, "no trial was running on the removed node"
    # the trials that failed were on the removed node (their rows may all come from the re-run on the
    # head: Ray re-reads result.json on restart, and the runner refills lost rows from checkpoints)
    assert all("node has died" in f.read_text() or "ActorDiedError" in f.read_text() for f in failed)
    # reported, not dumped (issue 17 item 7): one progress line per lost trial and one summary line,
    # no traceback of Ray's (the full text is in each trial's error.txt)
    out = capfd.readouterr()
    text = out.out + out.err
    lost = [l for l in text.splitlines() if re.fullmatch(r"\[.*\] Tune trial \w+ lost with its node; retrying "
                                                         r"from its last checkpoint; full error in .*error\.txt", l)]
    assert len(lost) == len(failed), text
    n = len(failed)
    summary = (f"{n} Tune trial lost with its node, resumed from epoch" if n == 1
               else f"{n} Tune trials lost with their nodes, resumed from epoch")
    assert [l for l in text.splitlines() if l.startswith(summary)], text
    assert "Traceback" not in text, text
    print(f"{len(failed)} trial(s) lost with the node and re-ran from their checkpoints")
    assert len(f) == 8 and (f["status"] == "completed").all() and not f.duplicated(["lambda", "seed"]).any()


def test_a_trial_no_node_can_hold_ends_the_sweep_naming_the_resource(tmp_path, two_nodes, capsys):
    """Issue 21 item 5: --gpus-per-trial on a cluster without GPUs (and more CPUs than its largest node) waited
    forever with Tune's 60 s warning; now a one-line error, exit 2, before any trial. --wait-for-nodes
    (an autoscaling cluster) keeps waiting, said once."""
    import ray
    from dgl_ray.errors import ConfigError
    from dgl_ray.tune.runner import check_cluster_resources
    cluster, _ = two_nodes
    rc = run_family("coexistence", tmp_path, "--address", cluster.address, "--lambdas", "0.3", "--n", "1",
                    "--epochs", "1", "--gpus-per-trial", "1", "--cpus-per-trial", "2")
    err = capsys.readouterr().err
    assert rc == 2, err
    line = [l for l in err.splitlines() if l.startswith("error: ")]
    assert len(line) == 1 and "--cpus-per-trial=2 but the largest node" in line[0], err
    assert "--gpus-per-trial=1 but the largest node of the Ray cluster" in line[0] and "0 GPU(s)" in line[0]
    assert "--wait-for-nodes" in line[0]
    assert not (tmp_path / "coexistence" / "results.parquet").exists()
    ray.init(address=cluster.address)
    check_cluster_resources(1, 1, cluster.address, wait_for_nodes=True)          # said, not refused
    assert "trials wait for nodes that have them (--wait-for-nodes)" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--gpus-per-trial=0.5 but"):
        check_cluster_resources(1, 0.5, cluster.address)


@pytest.mark.slow
def test_a_killed_raylet_is_one_line_and_lost_with_its_node_in_the_summary(tmp_path):
    """Issue 17 item 7 on a real `ray start` cluster: SIGKILL of the worker's raylet mid-sweep. Its Tune trial
    resumes on the head; the driver's output holds no state dump of Ray's (its raylet notice is one line,
    the whole text in dgl_driver.log) and the summary says the trial was lost with its node."""
    import signal
    import socket
    import subprocess
    import sys
    import time
    from tests._sweep_helpers import ROOT
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    import tempfile
    temp = tempfile.mkdtemp(prefix="rk", dir="/tmp")   # its own temp dir (short: Ray's socket paths ≤ 107 bytes)

    def raylets():
        out = subprocess.run(["pgrep", "-f", f"raylet.*{temp}"], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]
    subprocess.run([ray_bin, "start", "--head", f"--port={port}", "--num-cpus=1", f"--temp-dir={temp}",
                    "--include-dashboard=false"], env=env, check=True, capture_output=True)
    head = raylets()
    subprocess.run([ray_bin, "start", f"--address=127.0.0.1:{port}", "--num-cpus=1"], env=env, check=True,
                   capture_output=True)
    worker = [p for p in raylets() if p not in head]
    assert len(head) == 1 and len(worker) == 1
    cmd = [sys.executable, "-m", "dgl_ray.sweeps.coexistence", "--address", f"127.0.0.1:{port}", "--lambdas",
           "0.3,0.6", "--n", "4", "--epochs", "100", "--group-size", "2", "--storage", str(tmp_path / "s"),
           "--name", "killed", "--checkpoint-every", "1", "--progress-interval", "5"]
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        exp = tmp_path / "s" / "killed"
        deadline = time.time() + 120
        while time.time() < deadline and not list(exp.glob("*/checkpoint_000002")):
            time.sleep(0.2)
        os.kill(worker[0], signal.SIGKILL)
        out, _ = p.communicate(timeout=400)
    finally:
        if p.poll() is None:
            p.kill()
        pids = subprocess.run(["pgrep", "-f", temp], capture_output=True, text=True).stdout.split()
        for pid in map(int, pids):           # what this test started, by PID (never `ray stop`)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        import shutil
        shutil.rmtree(temp, ignore_errors=True)
    assert p.returncode == 0, out[-4000:]
    assert "[state-dump]" not in out and "Traceback" not in out, out[-4000:]
    notice = [l for l in out.splitlines() if "(raylet) Raylet is terminated" in l]
    assert notice and all("dgl_driver.log" in l for l in notice), out[-4000:]
    assert "[state-dump]" in (exp / "dgl_driver.log").read_text()
    assert any(l.startswith("1 Tune trial lost with its node, resumed from epoch") for l in out.splitlines()), out[-4000:]
    f = finals(parquet(tmp_path / "s", "killed"))
    assert len(f) == 8 and (f["status"] == "completed").all()
