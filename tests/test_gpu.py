"""The device paths: run on CUDA by `python -m benchmarks.gpu_check` (DGL_TEST_DEVICE=cuda), and on the
CPU here (DGL_TEST_DEVICE unset: the same code with device cpu, so the script itself is proven).

Tolerances stated: the population on the device equals the notebook's step on the CPU to 1e-9
(float64); fast-path flags that change the arithmetic (TF32, bf16) must keep a ResNet-18 trial's
per-epoch training loss within 0.05 (absolute) of the float32 trial without them over 2 epochs."""
import os

import pytest
import torch

from dgl_ray.batched import BatchedTrials, FastPath

DEVICE = os.environ.get("DGL_TEST_DEVICE", "cpu")
if DEVICE.startswith("cuda") and not torch.cuda.is_available():
    pytest.skip("DGL_TEST_DEVICE=cuda but no CUDA GPU", allow_module_level=True)

SMALL = dict(dataset="synthetic-cifar", synthetic_size=[48, 16], batch_size=16, epochs=2, K=2, device=DEVICE,
             model="resnet18", width=0.125, lr_milestones=[1])


pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


def test_population_on_the_device_equals_the_reference_on_the_cpu():
    from tests.test_step import _run_both_on
    _run_both_on(DEVICE, "resnet18", 0.125, (3, 8, 8), 8, 4)
    _run_both_on(DEVICE, "tinycnn", 1.0, (1, 8, 8), 16, 5)


def test_data_stays_uint8_on_the_device_and_augments_there():
    b = BatchedTrials([dict(SMALL, **{"lambda": 0.3}, seed=0, epochs=1)])
    assert b.data.x_train.dtype == torch.uint8 and b.data.x_train.device.type == torch.device(DEVICE).type
    b.run()
    assert b.trials[0].status == "completed"


@pytest.mark.skipif(not DEVICE.startswith("cuda"), reason="host syncs exist only with a GPU")
def test_no_host_sync_inside_an_epoch():
    b = BatchedTrials([dict(SMALL, **{"lambda": 0.3}, seed=s, epochs=3) for s in range(2)])
    b.run(max_epochs=1)                                   # warm-up: cache filled, kernels chosen
    torch.cuda.set_sync_debug_mode("error")
    try:
        b.train_epoch()
    finally:
        torch.cuda.set_sync_debug_mode(0)


def _losses(fast, dtype="float32"):
    b = BatchedTrials([dict(SMALL, **{"lambda": 0.3}, seed=s, dtype=dtype) for s in range(2)], fast=fast)
    b.run()
    return [r["train_loss"] for t in b.trials for r in t.history]


@pytest.mark.parametrize("flag", ["tf32", "bf16", "channels_last_off"])
def test_fast_path_flag_stays_within_tolerance(flag):
    if flag == "tf32" and not DEVICE.startswith("cuda"):
        pytest.skip("TF32 exists on NVIDIA GPUs only")
    # layout only: the same numbers in float64; lower precision: close in float32
    dtype, tol = ("float64", 1e-9) if flag == "channels_last_off" else ("float32", 0.05)
    base = _losses(FastPath(), dtype)
    fast = FastPath(channels_last=False) if flag == "channels_last_off" else FastPath(**{flag: True})
    got = _losses(fast, dtype)
    assert max(abs(a - b) for a, b in zip(base, got)) <= tol, (flag, base, got)


@pytest.mark.skipif(not DEVICE.startswith("cuda"), reason="compiling on this CPU takes minutes")
def test_compile_stays_within_tolerance():
    base = _losses(FastPath())
    got = _losses(FastPath(compile=True))
    assert max(abs(a - b) for a, b in zip(base, got)) <= 1e-3, (base, got)
