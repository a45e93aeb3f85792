"""Bad input: a one-line error naming the value and what is allowed, before any training."""
import json
import subprocess
import sys

import pytest

from dgl_ray.config import TrialConfig
from dgl_ray.errors import ConfigError
from tests.conftest import ROOT


@pytest.mark.parametrize("kw,needles", [
    (dict(**{"lambda": 1.5}), ["lambda=1.5", "[0, 1]"]),
    (dict(**{"lambda": -0.1}), ["lambda=-0.1", "[0, 1]"]),
    (dict(**{"lambda": 0.3}, eta=1.0), ["eta=1.0", "[0, 1)"]),
    (dict(**{"lambda": 0.3}, eta=-0.2), ["eta=-0.2", "[0, 1)"]),
    (dict(**{"lambda": 0.3}, K=0), ["K=0", ">= 1"]),
    (dict(**{"lambda": 0.3}, dataset="mnist"), ["dataset='mnist'", "digits, cifar10"]),
    (dict(**{"lambda": 0.3}, model="resnet50"), ["model='resnet50'", "tinycnn, resnet18"]),
    (dict(**{"lambda": 0.3}, noise="pairflip"), ["noise='pairflip'", "symmetric"]),
    (dict(**{"lambda": 0.3}, dataset="cifar100", noise="asymmetric"), ["noise='asymmetric'", "symmetric"]),
    (dict(lambda_schedule=[{"kind": "ladder", "points": [0.2, 0.64], "step": 0.05}]), ["never land on its stop"]),
    (dict(lambda_schedule=[{"kind": "ladder", "points": [0.2, 0.64], "step": 0}]), ["never reaches stop"]),
    (dict(), ["no λ given"]),
    (dict(**{"lambda": 0.3}, batch_size=0), ["batch_size=0"]),
    (dict(**{"lambda": 0.3}, lr=-1.0), ["lr=-1.0"]),
    (dict(**{"lambda": 0.3}, device="tpu"), ["device='tpu'"]),
    (dict(**{"lambda": 0.3}, trusted_fraction=0.0), ["trusted_fraction=0.0"]),
    (dict(**{"lambda": 0.3}, model="vgg11", width=2.0), ["width=2.0"]),
])
def test_config_errors_name_the_value(kw, needles):
    with pytest.raises(ConfigError) as e:
        TrialConfig.from_dict(kw)
    msg = str(e.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, (n, msg)


def test_unknown_config_key():
    with pytest.raises(ConfigError, match=r"unknown trial config keys \['lamda'\]"):
        TrialConfig.from_dict({"lamda": 0.3})


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "dgl_ray.train", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("args,needle", [
    (["--lambda", "1.5"], "lambda=1.5 is outside [0, 1]"),
    (["--lambda", "0.3", "--eta", "1"], "eta=1.0 is outside [0, 1)"),
    (["--lambda", "0.3", "-K", "0"], "K=0 must be an integer >= 1"),
    (["--lambda", "0.3", "--model", "vgg11"], "model='vgg11' cannot take dataset='digits'"),
    (["--ladder", "0.56,0.42", "--ladder-step", "0.05"], "never land on its stop"),
    (["--lambda", "0.3", "--dataset", "cifar10", "--data-root", "/nonexistent"], "cifar10 not found: looked in /nonexistent"),
    (["--lambda", "0.3", "--jump", "0.5"], "--jump"),
])
def test_cli_bad_input_is_one_line_exit_2(args, needle):
    r = _cli(*args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr
    assert "epoch" not in r.stdout   # nothing trained


def test_cli_prints_progress_then_json_last():
    r = _cli("--dataset", "digits", "--model", "tinycnn", "--lambda", "0.3", "--eta", "0.4", "--seed", "0",
             "--epochs", "2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("epoch    1/2") and len(lines) == 3
    out = json.loads(lines[-1])
    assert {"final_error", "lambda", "eta", "seed", "epochs", "status"} <= set(out)
    assert out["lambda"] == 0.3 and out["eta"] == 0.4 and out["epochs"] == 2 and out["status"] == "completed"


def test_cli_save_and_resume(tmp_path):
    ck = str(tmp_path / "t.pt")
    r = _cli("--lambda", "0.3", "--epochs", "3", "--save", ck, "--quiet")
    assert r.returncode == 0
    whole = json.loads(r.stdout.strip().splitlines()[-1])
    r2 = _cli("--resume", ck)     # already complete: resuming runs nothing more and reports the same result
    assert json.loads(r2.stdout.strip().splitlines()[-1])["final_error"] == whole["final_error"]
    r3 = _cli("--resume", str(tmp_path / "missing.pt"))
    assert r3.returncode == 2 and "does not exist" in r3.stderr
