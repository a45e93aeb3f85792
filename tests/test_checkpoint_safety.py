"""Issue 8, item 2: a checkpoint is written, verified, then replaces the old one (kept as .prev); a
corrupted checkpoint falls back to the previous good one."""
import pytest
import torch

from dgl_ray import checkpoint as ckpt
from dgl_ray.errors import ConfigError


def test_corrupted_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    p = tmp_path / "trial.pt"
    ckpt.save({"epoch": 1, "w": torch.ones(3)}, p)
    ckpt.save({"epoch": 2, "w": torch.ones(3) * 2}, p)
    assert ckpt.load(p)["epoch"] == 2 and ckpt.load(ckpt.previous_path(p))["epoch"] == 1
    p.write_bytes(p.read_bytes()[:100])                     # truncated (a full disk, a killed copy)
    state = ckpt.load(p)
    assert state["epoch"] == 1
    assert "continuing from the previous checkpoint" in capsys.readouterr().err


def test_corrupted_checkpoint_without_a_previous_one_is_a_clear_error(tmp_path):
    p = tmp_path / "trial.pt"
    ckpt.save({"epoch": 1}, p)
    p.write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="cannot be read"):
        ckpt.load(p)


def test_a_bad_write_never_replaces_the_good_checkpoint(tmp_path, monkeypatch):
    p = tmp_path / "trial.pt"
    ckpt.save({"epoch": 1}, p)
    good = p.read_bytes()
    real_save = torch.save

    def short_write(obj, f):                                # the write "succeeds" but the file is cut short
        real_save(obj, f)
        with open(f, "r+b") as fh:
            fh.truncate(50)
    monkeypatch.setattr(torch, "save", short_write)
    with pytest.raises(ConfigError, match="cannot be read"):
        ckpt.save({"epoch": 2}, p)
    assert p.read_bytes() == good                           # verified before the swap: the old one stays
    assert [x.name for x in tmp_path.iterdir()] == ["trial.pt"]   # no temporary file left behind
