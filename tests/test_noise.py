import numpy as np
import pytest

from dgl_ray.noise import (asymmetric_noise, asymmetric_noise_legacy, make_noisy_labels, symmetric_noise,
                           trusted_mask)


def notebook_inject_label_noise(labels, noise_rate, seed):
    """Copied from the seed notebook (global NumPy RNG)."""
    np.random.seed(seed)
    noisy = labels.copy()
    n_noisy = int(noise_rate * len(labels))
    idx = np.random.choice(len(labels), n_noisy, replace=False)
    for i in idx:
        noisy[i] = np.random.choice([l for l in range(10) if l != labels[i]])
    return noisy


@pytest.fixture(scope="module")
def labels():
    return np.random.RandomState(123).randint(0, 10, size=5000)


@pytest.mark.parametrize("eta,seed", [(0.4, 0), (0.4, 7), (0.8, 3), (0.2, 1049)])
def test_symmetric_noise_reproduces_the_notebook_exactly(labels, eta, seed):
    ours = symmetric_noise(labels, eta, seed)
    theirs = notebook_inject_label_noise(labels, eta, seed)
    assert np.array_equal(ours, theirs)
    assert (ours != labels).sum() == int(eta * len(labels))   # every picked label really changes


def test_legacy_convention_is_seed_plus_1000(labels):
    assert np.array_equal(make_noisy_labels(labels, "symmetric", 0.4, 5, 10, "legacy"),
                          notebook_inject_label_noise(labels, 0.4, 1005))
    assert not np.array_equal(make_noisy_labels(labels, "symmetric", 0.4, 5, 10, "paper"),
                              make_noisy_labels(labels, "symmetric", 0.4, 5, 10, "legacy"))


def test_symmetric_noise_leaves_global_rng_alone(labels):
    np.random.seed(42)
    a = np.random.rand()
    np.random.seed(42)
    symmetric_noise(labels, 0.4, 0)
    assert np.random.rand() == a


def test_asymmetric_noise_flips_exactly_eta_of_each_source_class(labels):
    noisy = asymmetric_noise(labels, 0.4, 0)
    for src, dst in [(9, 1), (2, 0), (4, 7), (3, 5)]:
        members = labels == src
        assert (noisy[members] == dst).sum() == int(0.4 * members.sum())
        assert set(np.unique(noisy[members])) <= {src, dst}
    untouched = ~np.isin(labels, [9, 2, 4, 3])
    assert np.array_equal(noisy[untouched], labels[untouched])
    assert np.array_equal(noisy, asymmetric_noise(labels, 0.4, 0))


def test_asymmetric_legacy_coin_flips_with_pair_5_to_3(labels):
    noisy = asymmetric_noise_legacy(labels, 0.4, 0)
    five = labels == 5
    frac = (noisy[five] == 3).mean()
    assert 0.3 < frac < 0.5                       # a coin per sample, not an exact count
    assert np.array_equal(noisy, asymmetric_noise_legacy(labels, 0.4, 0))
    assert not np.array_equal(noisy, asymmetric_noise_legacy(labels, 0.4, 1))


def test_trusted_mask_uses_seed_plus_999():
    m = trusted_mask(10000, 0.05, 3)
    assert m.sum() == 500
    expected = np.zeros(10000, bool)
    expected[np.random.RandomState(1002).choice(10000, 500, replace=False)] = True
    assert np.array_equal(m, expected)
