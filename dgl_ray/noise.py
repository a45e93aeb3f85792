"""Label noise, reproducing the paper's noisy labels draw for draw.

``np.random.RandomState(seed)`` makes the same draws as the notebooks' ``np.random.seed(seed)``
followed by global ``np.random`` calls, without touching the global RNG.
"""
from __future__ import annotations

import numpy as np

from .errors import ConfigError

# V1 (the R–W series): these pairs, exactly a fraction η of each source class flipped.
ASYMMETRIC_PAIRS = ((9, 1), (2, 0), (4, 7), (3, 5))
# exp_G (older): one more pair, 5 -> 3, and a coin flip per sample.
ASYMMETRIC_LEGACY_PAIRS = ((9, 1), (2, 0), (4, 7), (3, 5), (5, 3))

LEGACY_SEED_OFFSET = 1000   # A–Q notebooks seeded the noise with seed + 1000
TRUSTED_SEED_OFFSET = 999   # V2: trusted indices chosen with seed + 999


def noise_seed(seed: int, convention: str = "paper") -> int:
    if convention == "paper":
        return seed
    if convention == "legacy":
        return seed + LEGACY_SEED_OFFSET
    raise ConfigError(f"noise_convention={convention!r} is unknown; allowed: paper, legacy")


def symmetric_noise(labels: np.ndarray, eta: float, seed: int, num_classes: int = 10) -> np.ndarray:
    """The notebooks' inject_label_noise: exactly int(η·N) indices without replacement, then for
    each, in order, a uniform choice among the other classes. Same draws, same order."""
    rng = np.random.RandomState(seed)
    labels = np.asarray(labels)
    noisy = labels.copy()
    idx = rng.choice(len(labels), int(eta * len(labels)), replace=False)
    classes = list(range(num_classes))
    for i in idx:
        # a list argument, as the notebook passes it, so that choice() consumes the same draws
        noisy[i] = rng.choice([c for c in classes if c != labels[i]])
    return noisy


def asymmetric_noise(labels: np.ndarray, eta: float, seed: int) -> np.ndarray:
    """V1: for each pair src -> dst, exactly int(η·n_src) samples of class src, chosen without
    replacement, get label dst. Source classes are read from the clean labels."""
    rng = np.random.RandomState(seed)
    labels = np.asarray(labels)
    noisy = labels.copy()
    for src, dst in ASYMMETRIC_PAIRS:
        members = np.flatnonzero(labels == src)
        flip = rng.choice(members, int(eta * len(members)), replace=False)
        noisy[flip] = dst
    return noisy


def asymmetric_noise_legacy(labels: np.ndarray, eta: float, seed: int) -> np.ndarray:
    """exp_G: per-sample coin flips with probability η for each source class, five pairs."""
    rng = np.random.RandomState(seed)
    labels = np.asarray(labels)
    noisy = labels.copy()
    for src, dst in ASYMMETRIC_LEGACY_PAIRS:
        members = np.flatnonzero(labels == src)
        flip = members[rng.rand(len(members)) < eta]
        noisy[flip] = dst
    return noisy


def make_noisy_labels(labels: np.ndarray, kind: str, eta: float, seed: int, num_classes: int,
                      convention: str = "paper") -> np.ndarray:
    s = noise_seed(seed, convention)
    if kind == "symmetric":
        return symmetric_noise(labels, eta, s, num_classes)
    if num_classes != 10:
        raise ConfigError(f"noise={kind!r} uses CIFAR-10 class pairs; it needs 10 classes, the data has {num_classes}")
    if kind == "asymmetric":
        return asymmetric_noise(labels, eta, s)
    if kind == "asymmetric-legacy":
        return asymmetric_noise_legacy(labels, eta, s)
    raise ConfigError(f"noise={kind!r} is unknown; allowed: symmetric, asymmetric, asymmetric-legacy")


def trusted_mask(n: int, fraction: float, seed: int) -> np.ndarray:
    """V2: a boolean mask of int(fraction·N) trusted training indices, chosen with seed + 999."""
    rng = np.random.RandomState(seed + TRUSTED_SEED_OFFSET)
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, int(fraction * n), replace=False)] = True
    return mask
