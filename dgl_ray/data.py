"""Data sources, held whole as tensors on the trial's device (airbench style: no DataLoader workers).

Images are kept raw (uint8, or the digits' 0..16 counts) and turned into normalised floats one
batch at a time, after augmentation, exactly as ToTensor -> RandomCrop(pad 4) -> Flip -> Normalize
would (padding is done on the raw image, so padded pixels are 0 before normalisation, as torchvision's).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .errors import ConfigError
from .registry import DATASETS, data_folder, missing_files

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = {"paper": (0.2023, 0.1994, 0.2010), "q-series": (0.2470, 0.2435, 0.2616)}
CIFAR100_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR100_STD = (0.2675, 0.2565, 0.2761)

DIGITS_TEST_SIZE = 397  # 1,797 images: 1,400 train / 397 test, one fixed split for every trial
DIGITS_SPLIT_SEED = 0


@dataclass
class DataSet:
    name: str
    x_train: torch.Tensor       # (N, C, H, W) raw values in [0, scale], uint8
    y_train: torch.Tensor       # (N,) int64 clean labels
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: tuple
    std: tuple
    scale: float                # raw / scale is in [0, 1]
    synthetic: bool = False

    @property
    def shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])

    def to(self, device) -> "DataSet":
        d = DataSet(**self.__dict__)
        for k in ("x_train", "y_train", "x_test", "y_test"):
            setattr(d, k, getattr(self, k).to(device))
        return d

    def normalise(self, raw: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=dtype, device=raw.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=dtype, device=raw.device).view(1, -1, 1, 1)
        return (raw.to(dtype) / self.scale - mean) / std


def augment_batch(raw: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """RandomCrop(size, padding=pad) + RandomHorizontalFlip on a whole batch at once, on its device.
    One gather replaces per-image PIL work: offsets and flips are drawn per image from ``generator``."""
    b, c, h, w = raw.shape
    dev = raw.device
    padded = torch.nn.functional.pad(raw, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=dev)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=dev)
    flip = torch.rand(b, generator=generator, device=dev) < 0.5
    rows = dy[:, None] + torch.arange(h, device=dev)[None, :]                      # (b, h)
    cols = torch.arange(w, device=dev)[None, :].expand(b, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols) + dx[:, None]             # (b, w)
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(c, device=dev)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def load_digits_data() -> DataSet:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.uint8)            # counts 0..16
    labels = digits.target.astype(np.int64)
    perm = np.random.RandomState(DIGITS_SPLIT_SEED).permutation(len(labels))
    test_idx, train_idx = perm[:DIGITS_TEST_SIZE], perm[DIGITS_TEST_SIZE:]
    x_train = torch.from_numpy(images[train_idx]).unsqueeze(1)
    x_test = torch.from_numpy(images[test_idx]).unsqueeze(1)
    scaled = x_train.double() / 16.0
    return DataSet("digits", x_train, torch.from_numpy(labels[train_idx]), x_test, torch.from_numpy(labels[test_idx]),
                   num_classes=DATASETS["digits"].num_classes, mean=(float(scaled.mean()),),
                   std=(float(scaled.std()),), scale=16.0)


def _torchvision_cifar(cls, root: str, download: bool):
    """torchvision's CIFAR reader, with the integrity check reduced to 'the batch files are there'
    (dgl_ray.registry's file list, so a partial or hand-made set in the same format reads too);
    downloading still checks the archive's MD5 inside torchvision."""
    name = "cifar10" if cls.__name__ == "CIFAR10" else "cifar100"

    class Local(cls):
        def _check_integrity(self) -> bool:
            return not missing_files(name, self.root)

        def _load_meta(self) -> None:
            self.classes = []  # class names are not used; their file's MD5 is not checked either

    missing = missing_files(name, root)
    if not download and missing:
        raise ConfigError(f"{name} not found: looked in {data_folder(name, root)} (missing {', '.join(missing)}); "
                          f"fetch it with --download, or point --data-root at the folder holding {cls.base_folder}/")
    train = Local(root, train=True, download=download)
    test = Local(root, train=False, download=False)
    return train, test


def load_cifar(name: str, root: str, download: bool, normalization: str = "paper") -> DataSet:
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR10 if name == "cifar10" else CIFAR100
    train, test = _torchvision_cifar(cls, root, download)
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # NHWC -> NCHW
    mean, std = (CIFAR10_MEAN, CIFAR10_STD[normalization]) if name == "cifar10" else (CIFAR100_MEAN, CIFAR100_STD)
    return DataSet(name, to_t(train.data), torch.tensor(train.targets, dtype=torch.int64),
                   to_t(test.data), torch.tensor(test.targets, dtype=torch.int64),
                   num_classes=DATASETS[name].num_classes, mean=mean, std=std, scale=255.0)


def make_synthetic_cifar(n_train: int = 50000, n_test: int = 10000, seed: int = 0,
                         num_classes: int = 10) -> DataSet:
    """CIFAR-shaped (3x32x32 uint8), deterministic, class-structured images for benchmarks and GPU
    runs without the real data: each class has a smooth random prototype; an image is its class
    prototype, shifted by a few pixels, plus smooth and pixel noise. Named 'synthetic-cifar' in
    every output, never passed off as CIFAR."""
    g = torch.Generator().manual_seed(10_000 + seed)
    protos = torch.nn.functional.interpolate(torch.rand(num_classes, 3, 4, 4, generator=g), size=(40, 40),
                                             mode="bicubic", align_corners=False)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, num_classes, (n,), generator=g)
        out = torch.empty(n, 3, 32, 32, dtype=torch.uint8)
        for s in range(0, n, 5000):                      # chunks keep the float temporaries small
            yy = y[s:s + 5000]
            m = len(yy)
            oy = torch.randint(0, 9, (m,), generator=g)
            ox = torch.randint(0, 9, (m,), generator=g)
            rows = (oy[:, None] + torch.arange(32))[:, None, :, None]
            cols = (ox[:, None] + torch.arange(32))[:, None, None, :]
            img = protos[yy][torch.arange(m)[:, None, None, None], torch.arange(3)[None, :, None, None], rows, cols]
            smooth = torch.nn.functional.interpolate(torch.rand(m, 3, 8, 8, generator=g), size=(32, 32), mode="bilinear")
            img = 0.55 * img + 0.3 * smooth + 0.15 * torch.rand(m, 3, 32, 32, generator=g)
            out[s:s + m] = (img.clamp(0, 1) * 255).round().to(torch.uint8)
        return out, y

    x_tr, y_tr = draw(n_train)
    x_te, y_te = draw(n_test)
    f = x_tr[: min(n_train, 10000)].double() / 255.0
    mean = tuple(float(v) for v in f.mean(dim=(0, 2, 3)))
    std = tuple(float(v) for v in f.std(dim=(0, 2, 3)))
    return DataSet("synthetic-cifar", x_tr, y_tr, x_te, y_te, num_classes=num_classes, mean=mean, std=std,
                   scale=255.0, synthetic=True)


def load_dataset(cfg) -> DataSet:
    """The trial's data set (on the CPU), from its config: the loader of its dgl_ray.registry entry."""
    if cfg.dataset not in DATASETS:
        raise ConfigError(f"dataset={cfg.dataset!r} is unknown; allowed: {', '.join(DATASETS)}")
    return DATASETS[cfg.dataset].load(cfg)
