"""The device paths and the fast-path switches: run on CUDA by `python -m benchmarks.gpu_check`
(DGL_TEST_DEVICE=cuda), and on the CPU here (DGL_TEST_DEVICE unset: the same code with device cpu,
so the script itself is proven; TF32 and the host-sync test need CUDA and are skipped).

Tolerances (docs/PACKING.md, "Device fast path"; the measures are tests/_fastpath.py's):
- the population on the device equals the notebook's step on the CPU to 1e-9 (float64);
- ONE update from the same weights on the same batch, against the float64 reference, relative:
  anything on by default (the float32 default path included) within STEP_TOL = 5e-2. Measured on
  this CPU (width-1/8 ResNet-18, batch 16): 2.3e-2 with channels-last (CPU channels-last batch norm
  sums less accurately: 1e-5 vs 1e-7 relative in its forward alone), 1.2e-5 NCHW, 3.2e-1 with bf16.
  A switch that is on by default and misses it fails the test that measures it;
- layout and compilation switches (channels-last off, torch.compile) change no arithmetic: a whole
  2-epoch trial with the switch equals the float64 reference to EXACT_TOL = 1e-9 (per-epoch loss,
  weights and BatchNorm statistics, relative);
- precision switches (bf16, TF32), off by default, must still compute the same rule: the update's
  cosine with the reference's >= 0.8 and, over a 2-epoch float32 trial, each epoch's training loss
  within 0.1 of the float32 trial without the switch and of the float64 reference (float32
  trajectories are chaotic: one step's rounding grows ~40x a step here, so only loosely).
"""
import os

import pytest
import torch

from dgl_ray.batched import BatchedTrials, FastPath
from dgl_ray.config import TrialConfig
from tests import _fastpath as fp

DEVICE = os.environ.get("DGL_TEST_DEVICE", "cpu")
CUDA = DEVICE.startswith("cuda")
if CUDA and not torch.cuda.is_available():
    pytest.skip("DGL_TEST_DEVICE=cuda but no CUDA GPU", allow_module_level=True)

# 40 images in batches of 16: two full batches and a partial one (a second shape for compile)
SMALL = dict(dataset="synthetic-cifar", synthetic_size=[40, 16], batch_size=16, epochs=2, K=2, device=DEVICE,
             model="resnet18", width=0.125, lr_milestones=[1], **{"lambda": 0.3})
CFGS = [dict(SMALL, seed=s) for s in (0, 1)]

STEP_TOL = 5e-2              # one update vs float64: the bound for anything on by default
EXACT_TOL = 1e-9             # float64 trajectories of switches that change no arithmetic
PRECISION_LOSS_TOL = 0.1     # per-epoch training loss of a precision switch over 2 float32 epochs
MIN_COS = 0.8                # a precision switch's update still points where the reference's does

pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py
cuda_only = pytest.mark.skipif(not CUDA, reason="needs CUDA (DGL_TEST_DEVICE=cuda: python -m benchmarks.gpu_check)")

# each switch's non-default value; compile takes a minute on a CPU (slow here; gpu_check runs it)
SWITCHES = {"channels_last": False, "bf16": True, "tf32": True, "compile": True}
EXACT = ("channels_last", "compile")
PRECISION = ("bf16", "tf32")


def _param(name):
    marks = [cuda_only] if name == "tf32" else [pytest.mark.slow] if name == "compile" else []
    return pytest.param(name, marks=marks, id=name)


@pytest.fixture(scope="module")
def data():
    return fp.load_data(CFGS[0])


@pytest.fixture(scope="module")
def reference(data):
    """The float64 reference trajectories of CFGS (several tests compare against them)."""
    return fp.reference_trajectory(CFGS, data)


@pytest.fixture(scope="module")
def float32_default(data):
    return fp.trajectory(CFGS, data)


def report(line: str) -> None:
    """Every measured deviation, for gpu_check's output (pytest -s)."""
    print(f"\nFASTPATH {DEVICE} {line}", flush=True)


def test_population_on_the_device_equals_the_reference_on_the_cpu():
    from tests.test_step import _run_both_on
    _run_both_on(DEVICE, "resnet18", 0.125, (3, 8, 8), 8, 4)
    _run_both_on(DEVICE, "tinycnn", 1.0, (1, 8, 8), 16, 5)


def test_data_stays_uint8_on_the_device_and_augments_there(monkeypatch, data):
    """The data set is moved once, as uint8, and shared by every member (one copy, not G); each
    batch is augmented on the device from uint8 and only then made float."""
    import dgl_ray.batched as batched
    seen = []
    real = batched.augment_batch

    def spy(raw, gen):
        out = real(raw, gen)
        seen.append((raw.dtype, raw.device.type, out.dtype, out.device.type, gen.device.type))
        return out
    monkeypatch.setattr(batched, "augment_batch", spy)
    b = BatchedTrials([dict(c, epochs=1) for c in CFGS], data=data)
    kind = torch.device(DEVICE).type
    assert b.data.x_train.dtype == torch.uint8 and b.data.x_train.device.type == kind
    assert len({t.data.x_train.data_ptr() for t in b.trials}) == 1          # one resident copy
    b.run()
    assert b.trials[0].status == "completed"
    assert seen and set(seen) == {(torch.uint8, kind, torch.uint8, kind, kind)}
    assert b.data.x_train.dtype == torch.uint8 and b.data.x_train.device.type == kind


def test_members_share_one_device_copy_of_the_data(monkeypatch, data, tmp_path):
    """Moving a data set to a GPU copies it; a population holds one copy, not one per member (also
    when it continues restored trials). Here DataSet.to copies as it does to a GPU."""
    from dgl_ray.data import DataSet
    from dgl_ray.trainer import Trial
    real_to = DataSet.to
    monkeypatch.setattr(DataSet, "to", lambda self, device: DataSet(**{
        **real_to(self, device).__dict__, **{k: getattr(self, k).clone() for k in ("x_train", "y_train", "x_test", "y_test")}}))
    cfgs = [dict(c, epochs=1) for c in CFGS] + [dict(CFGS[0], epochs=1, seed=2)]
    alone = [Trial(c, data=data) for c in cfgs]
    assert len({t.data.x_train.data_ptr() for t in alone}) == 3                        # each Trial: a copy
    b = BatchedTrials(cfgs, data=data)
    assert len({t.data.x_train.data_ptr() for t in b.trials} | {b.data.x_train.data_ptr()}) == 1
    restored = BatchedTrials(trials=[Trial(c, data=data) for c in cfgs])
    assert len({t.data.x_train.data_ptr() for t in restored.trials} | {restored.data.x_train.data_ptr()}) == 1


def _count_syncs(fn) -> int:
    """Host syncs torch reports (sync debug mode "warn") while ``fn`` runs."""
    import warnings
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum("synchroniz" in str(x.message) for x in w)


def _sync_warnings(batch_size: int) -> int:
    """Host syncs during one epoch (after a warm-up epoch: cache filled, cudnn algorithms chosen)."""
    b = BatchedTrials([dict(c, epochs=3, synthetic_size=[48, 16], batch_size=batch_size) for c in CFGS])
    b.run(max_epochs=1)
    return _count_syncs(b.train_epoch)


@cuda_only
def test_no_host_sync_per_step():
    """An epoch of 6 steps syncs the host as often as one of 3 steps: whatever syncs there are
    (building the epoch's λ/LR tensors) are per epoch, none per step."""
    assert _count_syncs(lambda: torch.ones(2, device=DEVICE).sum().item()) >= 1   # the counter sees syncs
    few, many = _sync_warnings(16), _sync_warnings(8)
    report(f"host syncs per epoch: {few} with 3 steps, {many} with 6 steps")
    assert many == few, (few, many)


def test_float32_default_step_matches_reference(data):
    r = fp.one_step(CFGS, data)
    report(f"float32 default (channels-last): one update vs float64 reference rel {r['rel']:.2e}, "
           f"cos {r['cos']:.6f}, loss {r['loss']:.1e} (tolerance {STEP_TOL:g})")
    assert r["rel"] <= STEP_TOL, r["rel"]


@pytest.mark.parametrize("switch", [_param(s) for s in SWITCHES])
def test_switch_one_step(switch, data):
    """One update with the switch, from the same weights on the same batch, against the float64
    reference and against the float32 default path; decides whether the switch may be on by default."""
    value = SWITCHES[switch]
    r = fp.one_step(CFGS, data, **{switch: value})
    base = fp.one_step(CFGS, data)
    vs_f32 = ((r["update"] - base["update"]).norm(dim=1) / base["update"].norm(dim=1)).max().item()
    report(f"{switch}={value}: one update vs float64 reference rel {r['rel']:.2e}, cos {r['cos']:.6f}, "
           f"loss {r['loss']:.1e}; vs the float32 default rel {vs_f32:.2e}")
    assert r["cos"] >= MIN_COS, r
    if switch in EXACT:            # no arithmetic change: as close as the default path must be
        assert r["rel"] <= STEP_TOL, r["rel"]
    # the defaults follow the measurement: a switch may be on by default only within STEP_TOL
    # (channels-last, on by default, is the float32 default path: test_float32_default_step_...)
    default = FastPath.of(TrialConfig.from_dict({k: v for k, v in CFGS[0].items() if k not in SWITCHES}))
    if value is True and getattr(default, switch):
        assert r["rel"] <= STEP_TOL, f"{switch} is on by default but its update is {r['rel']:.2e} off"


@pytest.mark.parametrize("switch", [_param(s) for s in EXACT])
def test_exact_switch_trajectory_equals_reference_in_float64(switch, data, reference):
    """Two epochs (a λ schedule, an LR milestone, cache refreshes, a partial batch, evaluation) with
    the switch, in float64, against the notebook's step fed the same batches."""
    cfgs = [dict(c, dtype="float64") for c in CFGS]
    got = fp.trajectory(cfgs, data, **{switch: SWITCHES[switch]})
    dev = fp.deviation(got, reference, fp.init_rows(CFGS, data))
    report(f"{switch}={SWITCHES[switch]} float64, 2 epochs vs reference: loss {dev['loss']:.1e}, "
           f"weights {dev['w']:.1e}, BatchNorm {dev['bn']:.1e} (tolerance {EXACT_TOL:g})")
    assert max(dev.values()) <= EXACT_TOL, dev


@pytest.mark.parametrize("switch", [_param(s) for s in PRECISION])
def test_precision_switch_trajectory_stays_close(switch, data, reference, float32_default):
    got = fp.trajectory(CFGS, data, **{switch: True})
    base, ref = float32_default, reference
    init = fp.init_rows(CFGS, data)
    d_base, d_ref, f32_ref = fp.deviation(got, base, init), fp.deviation(got, ref, init), fp.deviation(base, ref, init)
    report(f"{switch}=True float32, 2 epochs: loss vs float32 trial {d_base['loss']:.1e}, vs float64 reference "
           f"{d_ref['loss']:.1e} (the float32 trial itself: {f32_ref['loss']:.1e}); weights vs float32 "
           f"{d_base['w']:.1e} (float32 vs reference {f32_ref['w']:.1e}); tolerance on loss {PRECISION_LOSS_TOL:g}")
    changed = not torch.equal(got["loss"], base["loss"])
    report(f"{switch}=True changed the float32 numbers: {changed}")
    if switch == "bf16":   # autocast always changes them; TF32 may not (cuDNN may pick a non-TF32 kernel)
        assert changed, "bf16=True changed nothing: is autocast wired?"
    assert d_base["loss"] <= PRECISION_LOSS_TOL and d_ref["loss"] <= PRECISION_LOSS_TOL, (d_base, d_ref)


def test_float32_default_trajectory_near_reference(data, reference, float32_default):
    """The float32 default path over 2 epochs: chaotic (see the module docstring), so loosely: each
    epoch's loss within PRECISION_LOSS_TOL of the float64 reference."""
    dev = fp.deviation(float32_default, reference, fp.init_rows(CFGS, data))
    report(f"float32 default, 2 epochs vs float64 reference: loss {dev['loss']:.1e}, weights {dev['w']:.1e}")
    assert dev["loss"] <= PRECISION_LOSS_TOL, dev
