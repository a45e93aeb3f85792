"""What a trial can name as its ``dataset`` and its ``model``: one entry each, the one place to add one.

A data set's entry holds its facts (classes, image shape, the trial defaults it brings, whether its training
images are augmented by default, the files a reader needs under ``--data-root``) and its loader; a model's
entry its builder, whether ``width`` scales it and the smallest image it takes. :mod:`dgl_ray.config`
validates names and fills defaults from here; the sweep's pre-flight checks read :func:`missing_files`.

This module stays light (no torch at import): config imports it, and config is imported by commands that
never train (the analysis, ``dgl-ray`` help). Every loader and builder therefore reaches the torch code of
:mod:`dgl_ray.data` and :mod:`dgl_ray.models` through :func:`_data` / :func:`_models` on first use.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping


def _data():
    return importlib.import_module("dgl_ray.data")      # torch: imported when a trial first loads data


def _models():
    return importlib.import_module("dgl_ray.models")    # torch: imported when a model is first built


# ------------------------------------------------------------------------------------------ data sets

@dataclass(frozen=True)
class Dataset:
    name: str
    num_classes: int
    shape: tuple[int, int, int]             # one image: (channels, height, width)
    defaults: Mapping[str, Any]             # TrialConfig fields left None take these
    load: Callable[[Any], Any]              # resolved TrialConfig -> dgl_ray.data.DataSet, on the CPU
    augment: bool = True                    # TrialConfig.augment when left None (crop + flip)
    folder: str | None = None               # the reader's folder under --data-root ...
    files: tuple[str, ...] = ()             # ... and the files it needs there (none: nothing to fetch)


DATASETS: dict[str, Dataset] = {}


def register_dataset(entry: Dataset) -> Dataset:
    DATASETS[entry.name] = entry
    return entry


def data_folder(dataset: str, root: str) -> str | None:
    """Where the reader of ``dataset`` looks under ``root`` (None: it reads no files)."""
    folder = DATASETS[dataset].folder
    return None if folder is None else os.path.join(os.path.abspath(root), folder)


def missing_files(dataset: str, root: str) -> list[str]:
    """The files the reader of ``dataset`` needs under ``root`` that are not there ([] when none is missing,
    or when the data set reads no files)."""
    folder = data_folder(dataset, root)
    return [] if folder is None else [f for f in DATASETS[dataset].files if not os.path.isfile(os.path.join(folder, f))]


# the paper's CIFAR protocol (PROTOCOLS.md): 100 epochs, LR 0.1, MultiStep [50, 75] x0.1, batch 256
_CIFAR_DEFAULTS = MappingProxyType(dict(model="resnet18", batch_size=256, lr=0.1, lr_milestones=[50, 75], epochs=100))

register_dataset(Dataset(
    "digits", 10, (1, 8, 8),
    # PROTOCOLS.md, last section: digits, batch 32, LR 0.1 constant, 30 epochs
    MappingProxyType(dict(model="tinycnn", batch_size=32, lr=0.1, lr_milestones=[], epochs=30)),
    load=lambda cfg: _data().load_digits_data(), augment=False))
register_dataset(Dataset(
    "cifar10", 10, (3, 32, 32), _CIFAR_DEFAULTS,
    load=lambda cfg: _data().load_cifar("cifar10", cfg.data_root, cfg.download, cfg.normalization),
    folder="cifar-10-batches-py", files=tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)))
register_dataset(Dataset(
    "cifar100", 100, (3, 32, 32), _CIFAR_DEFAULTS,
    load=lambda cfg: _data().load_cifar("cifar100", cfg.data_root, cfg.download, cfg.normalization),
    folder="cifar-100-python", files=("train", "test")))
register_dataset(Dataset(
    "synthetic-cifar", 10, (3, 32, 32), _CIFAR_DEFAULTS,
    load=lambda cfg: _data().make_synthetic_cifar(*cfg.synthetic_size)))


# ------------------------------------------------------------------------------------------ models

@dataclass(frozen=True)
class Model:
    name: str
    build: Callable[[int, int, float], Any]     # (classes, input channels, width) -> torch.nn.Module
    any_width: bool = False                     # False: width must be 1 (a fixed architecture)
    min_side: int = 1                           # the smallest image side (height, width) it takes


MODELS: dict[str, Model] = {}


def register_model(entry: Model) -> Model:
    MODELS[entry.name] = entry
    return entry


def width_models() -> list[str]:
    """The models whose ``width`` scales their channels."""
    return [m.name for m in MODELS.values() if m.any_width]


def fixed_width_error(model: str, width: float) -> str:
    """The message for a ``width`` other than 1 given to a model whose width is fixed."""
    *most, last = width_models()
    return f"width={width} applies to {', '.join(most)} and {last}; model={model!r} has a fixed width"


def models_for(shape: tuple) -> list[str]:
    """The models that take images of ``shape`` (channels, height, width)."""
    return [m.name for m in MODELS.values() if min(shape[1:]) >= m.min_side]


register_model(Model("tinycnn", lambda k, c, w: _models().TinyCNN(k, c, w), any_width=True))
register_model(Model("resnet18", lambda k, c, w: _models().cifar_resnet([2, 2, 2, 2], k, c, w), any_width=True))
register_model(Model("resnet34", lambda k, c, w: _models().cifar_resnet([3, 4, 6, 3], k, c, w), any_width=True))
# five 2x2 pools (VGG) or a head sized for four pools (SimpleCNN): 32x32 images
register_model(Model("vgg11", lambda k, c, w: _models().VGG11(k, c, "p"), min_side=32))
register_model(Model("vgg11-p2", lambda k, c, w: _models().VGG11(k, c, "p2"), min_side=32))
register_model(Model("simplecnn", lambda k, c, w: _models().SimpleCNN(k, c, "p"), min_side=32))
register_model(Model("simplecnn-p2", lambda k, c, w: _models().SimpleCNN(k, c, "p2"), min_side=32))
