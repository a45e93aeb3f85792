"""The device fast-path switches are trial settings: TrialConfig fields (validated), options of
`python -m dgl_ray.train` and of every sweep, recorded in result rows and checkpoints, kept on resume,
and part of what a packed group shares. (Their numbers: tests/test_gpu.py.)"""
import json

import pytest
import torch

from dgl_ray.batched import SHARED, BatchedTrials, FastPath, group_configs
from dgl_ray.config import FAST_PATH_FIELDS, TrialConfig
from dgl_ray.errors import ConfigError
from tests._sweep_helpers import no_ray, one_line_error, run_family  # noqa: F401  (no_ray: a fixture)

TINY = dict(dataset="synthetic-cifar", synthetic_size=[8, 4], batch_size=4, epochs=1, model="tinycnn",
            device="cpu", **{"lambda": 0.3})


def test_defaults_are_the_fast_path_defaults():
    cfg = TrialConfig.from_dict(TINY)
    assert FastPath.of(cfg) == FastPath() == FastPath(channels_last=True, bf16=False, tf32=False, compile=False)
    assert set(FAST_PATH_FIELDS) <= set(SHARED)


@pytest.mark.parametrize("change, needle", [
    (dict(bf16="yes"), "bf16='yes' must be true or false"),
    (dict(compile=1), "compile=1 must be true or false"),
    (dict(channels_last=None), "channels_last=None must be true or false"),
    (dict(tf32=True), "tf32=True has no effect on device='cpu'"),
    (dict(bf16=True, dtype="float64"), "bf16=True applies to float32 trials"),
    (dict(tf32=True, device="auto", dtype="float64"), "tf32=True applies to float32 trials"),
])
def test_bad_fast_path_values_are_one_line_errors(change, needle):
    with pytest.raises(ConfigError) as e:
        TrialConfig.from_dict({**TINY, **change})
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_bf16_and_compile_are_allowed_on_cpu():
    cfg = TrialConfig.from_dict({**TINY, "bf16": True, "compile": True})
    assert FastPath.of(cfg) == FastPath(bf16=True, compile=True)


def test_tf32_with_device_auto_on_a_cpu_is_a_noop_with_a_warning():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: auto is cuda")
    with pytest.warns(RuntimeWarning, match="tf32=True is a no-op on device 'cpu'"):
        BatchedTrials([{**TINY, "device": "auto", "tf32": True}])


def test_population_runs_the_configs_fast_path():
    b = BatchedTrials([{**TINY, "bf16": True, "channels_last": False, "seed": s} for s in range(2)])
    assert b.fast == FastPath(channels_last=False, bf16=True) and b.pop.fast == b.fast
    assert b.packed.channels_last is False


def test_group_shares_the_fast_path():
    cfgs = [dict(TINY, seed=0), dict(TINY, seed=1, bf16=True), dict(TINY, seed=2), dict(TINY, seed=3, channels_last=False)]
    assert sorted(group_configs(cfgs)) == [[0, 2], [1], [3]]
    with pytest.raises(ConfigError, match="must share bf16"):
        BatchedTrials(cfgs[:2])


def test_rows_and_checkpoints_record_the_fast_path(tmp_path):
    from dgl_ray.trainer import Trial
    from dgl_ray.rows import flat_config
    t = Trial({**TINY, "bf16": True})
    row = flat_config(t.cfg)
    assert {k: row[k] for k in FAST_PATH_FIELDS} == dict(channels_last=True, bf16=True, tf32=False, compile=False)
    t.save(tmp_path / "t.pt")
    assert Trial.resume(str(tmp_path / "t.pt")).cfg.bf16 is True       # resume keeps the trial's fast path


def test_checkpoint_written_before_the_fields_resumes_with_the_defaults(tmp_path):
    """Checkpoints from before the switches were fields hold none: they ran the defaults."""
    from dgl_ray import checkpoint as ckpt
    from dgl_ray.trainer import Trial
    state = Trial(TINY).state_dict()
    for k in FAST_PATH_FIELDS:
        del state["config"][k]
    ckpt.save(state, str(tmp_path / "old.pt"))
    assert FastPath.of(Trial.resume(str(tmp_path / "old.pt")).cfg) == FastPath()


def test_train_command_takes_the_switches(capsys):
    from dgl_ray.train import build_parser, config_from_args, main
    cfg = config_from_args(build_parser().parse_args(["--lambda", "0.3", "--bf16", "--compile", "--no-channels-last"]))
    assert FastPath.of(cfg) == FastPath(channels_last=False, bf16=True, compile=True)
    assert FastPath.of(config_from_args(build_parser().parse_args(["--lambda", "0.3"]))) == FastPath()
    assert main(["--lambda", "0.3", "--tf32", "--device", "cpu"]) == 2
    assert "tf32=True has no effect on device='cpu'" in one_line_error(capsys)


def test_train_resume_refuses_another_fast_path(tmp_path, capsys):
    from dgl_ray.train import main
    from dgl_ray.trainer import Trial
    path = str(tmp_path / "t.pt")
    Trial({**TINY, "epochs": 3, "bf16": True}).save(path)
    assert main(["--resume", path, "--no-channels-last", "--quiet"]) == 2
    err = one_line_error(capsys)
    assert "channels_last=False" in err and "channels_last=True" in err
    assert main(["--resume", path, "--bf16", "--compile", "--quiet"]) == 2
    assert "compile=True" in one_line_error(capsys)


def test_sweep_options_reach_every_trial_config(tmp_path, capsys, no_ray):
    assert run_family("coexistence", tmp_path, "--lambdas", "0.3,0.5", "--n", "2", "--epochs", "1", "--bf16",
                      "--no-channels-last", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "bf16                  1 value : True" in out and "channels_last         1 value : False" in out


def test_sweep_without_the_options_plans_as_before(no_ray):
    """Plans that name no switch keep their configs (and so their fingerprint and --resume)."""
    import importlib
    from dgl_ray.tune.options import parse, plan_options
    mod = importlib.import_module("dgl_ray.sweeps.coexistence")
    opts = parse(mod.FAMILY, ["--lambdas", "0.3", "--n", "1", "--epochs", "1", "--storage", "/tmp/unused"])
    configs = mod.plan(opts).searcher.plan_configs()
    assert not any(k in c for c in configs for k in FAST_PATH_FIELDS)
    options = plan_options(opts)
    assert all(options[k] is None for k in FAST_PATH_FIELDS)     # stored in the manifest: a resume compares them
    opts = parse(mod.FAMILY, ["--lambdas", "0.3", "--n", "1", "--epochs", "1", "--storage", "/tmp/unused", "--compile"])
    assert plan_options(opts)["compile"] is True
    assert all(c["compile"] is True for c in mod.plan(opts).searcher.plan_configs())


def test_sweep_refuses_tf32_on_cpu_before_ray(tmp_path, capsys, no_ray):
    assert run_family("coexistence", tmp_path, "--lambdas", "0.3", "--n", "1", "--tf32", "--device", "cpu") == 2
    assert "tf32=True has no effect on device='cpu'" in one_line_error(capsys)


def test_sweep_resume_with_another_switch_is_refused(tmp_path, capsys, no_ray):
    """The options are plan options: the manifest's check names a changed switch."""
    from dgl_ray import manifest
    from dgl_ray.tune import cli, options
    import importlib
    mod = importlib.import_module("dgl_ray.sweeps.coexistence")
    argv = ["--lambdas", "0.3", "--n", "1", "--epochs", "1", "--storage", str(tmp_path), "--name", "s"]
    opts = options.parse(mod.FAMILY, argv)
    spec = mod.plan(opts)
    manifest.write_manifest(opts.storage, opts.name, cli.sweep_manifest(opts, spec))
    assert run_family("coexistence", tmp_path, "--lambdas", "0.3", "--n", "1", "--epochs", "1", "--resume",
                      "--bf16", name="s") == 2
    assert "--bf16 True (stored: None)" in one_line_error(capsys)


def test_preset_can_set_a_switch(tmp_path, capsys, no_ray):
    preset = tmp_path / "p.toml"
    preset.write_text('family = "coexistence"\nlambdas = "0.3"\nn = 1\nepochs = 1\nbf16 = true\n')
    assert run_family("coexistence", tmp_path, "--config", str(preset), "--dry-run") == 0
    assert "bf16                  1 value : True" in capsys.readouterr().out
