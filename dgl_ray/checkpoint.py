"""Trial checkpoints: everything needed to continue a trial bit for bit, in one torch file.

Contents: the config, model, optimizer, epoch, step counter, cached g_v, every RNG (python,
numpy, torch CPU/CUDA, the trial's data-order/augmentation generator), the history so far, wall
time. ``load_init_weights`` reads the model part of a checkpoint to start a new trial from it
(ordered/collapse preparation runs), also from the paper notebooks' {'model_state_dict': ...} files.
"""
from __future__ import annotations

import os
import sys
import tempfile

import torch

from .errors import ConfigError

FORMAT = "dgl_ray.trial/1"


def previous_path(path: str) -> str:
    """Where the previous good checkpoint of ``path`` is kept (the fallback of :func:`load`)."""
    return os.fspath(path) + ".prev"


def save(state: dict, path: str) -> None:
    """Write to a temporary file, read it back, then atomically replace ``path``; the checkpoint it
    replaces is kept as ``<path>.prev``. A crash or a full disk mid-save leaves a good checkpoint."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".ckpt-", suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"format": FORMAT, **state}, tmp)
        _read(tmp)                                   # verify: a short write raises here, not at resume
        if os.path.isfile(path):
            prev_tmp = tmp + ".prev"
            os.link(path, prev_tmp)                  # the old file stays at `path` until the swap below
            os.replace(prev_tmp, previous_path(path))
        os.replace(tmp, path)
    finally:
        for t in (tmp, tmp + ".prev"):
            if os.path.exists(t):
                os.remove(t)


def _read(path: str, map_location="cpu") -> dict:
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise ConfigError(f"checkpoint {path!r} cannot be read ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ConfigError(f"checkpoint {path!r} is not a dgl_ray trial checkpoint (format {FORMAT}); "
                          f"to start from a model's weights use init_checkpoint instead")
    return state


def load(path: str, map_location="cpu") -> dict:
    """Read a trial checkpoint; when it is corrupted (truncated, overwritten) and the previous good one
    (``<path>.prev``) reads, that one is returned with a warning on stderr (the trial continues from an
    earlier epoch and reports those epochs again)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"checkpoint {path!r} does not exist")
    try:
        return _read(path, map_location)
    except ConfigError as bad:
        prev = previous_path(path)
        if not os.path.isfile(prev):
            raise
        try:
            state = _read(prev, map_location)
        except ConfigError:
            raise bad from None
        print(f"warning: {bad}; continuing from the previous checkpoint {prev!r} (epoch {state.get('epoch')})",
              file=sys.stderr, flush=True)
        return state


def load_init_weights(path: str, model: torch.nn.Module, model_meta: dict) -> dict:
    """Load the weights of ``path`` into ``model``; the file may be a dgl_ray checkpoint, a notebook
    checkpoint ({'model_state_dict': ...}) or a bare state_dict. Returns the file's metadata.
    A checkpoint of another model is a ConfigError naming both."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"init_checkpoint={path!r} does not exist")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"init_checkpoint={path!r} cannot be read ({type(e).__name__}: {e})") from None
    meta: dict = {}
    if isinstance(blob, dict) and blob.get("format") == FORMAT:
        meta = dict(blob.get("model_meta", {}))
        mine = {k: model_meta[k] for k in ("model", "width", "num_classes", "input_shape")}
        theirs = {k: meta.get(k) for k in mine}
        if theirs != mine:
            raise ConfigError(f"init_checkpoint={path!r} holds {theirs}; this trial builds {mine}; "
                              f"start from a checkpoint of the same model, width and data shape")
        weights = blob["model"]
        meta["final_error"] = (blob.get("history") or [{}])[-1].get("test_error")
    elif isinstance(blob, dict) and "model_state_dict" in blob:
        weights = blob["model_state_dict"]
        meta = {k: v for k, v in blob.items() if k not in ("model_state_dict", "optimizer_state_dict")}
    elif isinstance(blob, dict) and all(isinstance(v, torch.Tensor) for v in blob.values()):
        weights = blob
    else:
        raise ConfigError(f"init_checkpoint={path!r} holds no model weights (expected a dgl_ray checkpoint, "
                          f"a dict with 'model_state_dict', or a state_dict)")
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        first = " ".join(str(e).split())[:300]
        raise ConfigError(f"init_checkpoint={path!r} does not fit model={model_meta['model']!r} "
                          f"(width {model_meta['width']}): {first}") from None
    return meta
