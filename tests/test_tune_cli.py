"""Bad sweep input is a one-line error before Ray starts; presets load and dry-run; range syntax."""
import os
import stat

import pytest

from tests._sweep_helpers import no_ray, one_line_error, run_family  # noqa: F401  (no_ray: a fixture)


_err = one_line_error


@pytest.fixture(autouse=True)
def _no_ray(no_ray):
    yield


@pytest.mark.parametrize("args, needle", [
    (["--lambdas", ""], "empty range"),
    (["--lambdas", "0.42:0.56:0.05"], "0.42:0.56:0.05"),
    (["--n", "0"], "n >= 1"),
    (["--seeds", "0:-1:1"], "--seeds"),
    (["--etas", "1.5"], "eta"),
    (["--frobnicate", "3"], "unrecognized arguments: --frobnicate"),
    (["--order", "seed,colour"], "--order"),
    (["--address", "127.0.0.1:1"], "no Ray cluster answers"),
    (["--adaptive", "0"], "budget"),
    (["--model", "vgg99"], "vgg99"),
])
def test_bad_input_is_one_line(tmp_path, capsys, args, needle):
    assert run_family("coexistence", tmp_path, *args) == 2
    assert needle in _err(capsys)


def test_storage_not_writable(tmp_path, capsys):
    f = tmp_path / "a-file"
    f.write_text("x")
    assert run_family("coexistence", f / "sub") == 2          # a path below a file
    assert "not writable" in _err(capsys)
    if os.geteuid() != 0:                                     # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
        assert run_family("coexistence", ro) == 2
        assert "not writable" in _err(capsys)


def test_existing_sweep_needs_resume(tmp_path, capsys):
    (tmp_path / "coexistence").mkdir()
    (tmp_path / "coexistence" / "experiment_state.json").write_text("{}")
    assert run_family("coexistence", tmp_path) == 2
    assert "--resume" in _err(capsys)


def test_family_options_are_checked(tmp_path, capsys):
    assert run_family("hysteresis", tmp_path, "--mode", "spiral") == 2
    assert "--mode" in _err(capsys)
    assert run_family("schedules", tmp_path, "--kinds", "zigzag") == 2
    assert "zigzag" in _err(capsys)
    assert run_family("spinodal", tmp_path, "--holds", "0") == 2
    assert "hold" in _err(capsys)


def test_dry_run_s1_plan(tmp_path, capsys):
    assert run_family("coexistence", tmp_path, "--lambdas", "0.42:0.56:0.02", "--n", "50", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "400 trials" in out and "8 values: 0.42, 0.44, 0.46, ..., 0.54, 0.56" in out
    assert not (tmp_path / "coexistence").exists()


def test_grid_order():
    from dgl_ray.sweeps._common import grid
    by_seed = grid({}, {"seed": [0, 1], "lambda": [0.4, 0.5]}, None, "seed,lam")
    assert [(c["seed"], c["lambda"]) for c in by_seed] == [(0, 0.4), (0, 0.5), (1, 0.4), (1, 0.5)]
    by_lam = grid({}, {"seed": [0, 1], "lambda": [0.4, 0.5]}, "lambda", "seed,lam")
    assert [(c["seed"], c["lambda"]) for c in by_lam] == [(0, 0.4), (1, 0.4), (0, 0.5), (1, 0.5)]


PRESETS = sorted((os.path.join(os.path.dirname(__file__), "..", "sweeps")).__class__(p) for p in
                 __import__("glob").glob(os.path.join(os.path.dirname(__file__), "..", "sweeps", "*.toml")))


def test_all_paper_presets_present():
    names = {os.path.basename(p)[:-5] for p in PRESETS}
    need = {"S1", "S2", "M2", "N1", "Q1", "R1a", "R1b", "R2", "R3", "T1a", "T13", "Talpha", "Tbeta", "Tdelta",
            "V1", "V2", "V3", "V4", "W2"}
    assert need <= names, need - names


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: os.path.basename(p))
def test_preset_dry_runs(tmp_path, capsys, preset):
    from dgl_ray.sweeps.__main__ import main
    assert main(["--config", preset, "--storage", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "trial size:" in out and "'cifar" in out


def test_flags_override_preset(tmp_path, capsys):
    from dgl_ray.sweeps.__main__ import main
    s1 = [p for p in PRESETS if p.endswith("S1.toml")][0]
    assert main(["--config", s1, "--storage", str(tmp_path), "--dry-run", "--n", "2", "--dataset", "digits",
                 "--model", "tinycnn"]) == 0
    out = capsys.readouterr().out
    assert "16 trials" in out and "'digits'" in out


def test_preset_unknown_key(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('family = "coexistence"\ncolour = "red"\n')
    assert run_family("coexistence", tmp_path, "--config", str(bad)) == 2
    assert "unknown option 'colour'" in _err(capsys)


def test_model_that_cannot_take_the_data_is_refused_before_ray(tmp_path, capsys):
    from dgl_ray.sweeps import coexistence
    rc = coexistence.FAMILY.main(["--storage", str(tmp_path), "--model", "vgg11", "--lambdas", "0.3", "--n", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "model='vgg11' cannot take dataset='digits'" in err[0]
    assert not (tmp_path / "coexistence").exists()
