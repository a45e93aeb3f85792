import pickle

import numpy as np
import pytest
import torch

from dgl_ray.batched import run_trial
from dgl_ray.config import TrialConfig
from dgl_ray.data import augment_batch, load_dataset, make_synthetic_cifar
from dgl_ray.errors import ConfigError
from dgl_ray.models import build_model, check_model_input
from dgl_ray.trainer import Trial


def write_fake_cifar(root, n_per_batch=20, classes=10, seed=0):
    """A tiny data set in the on-disk CIFAR python batch format (pickled dicts of uint8 rows)."""
    rng = np.random.RandomState(seed)
    if classes == 10:
        folder = root / "cifar-10-batches-py"
        files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        key, meta = "labels", ("batches.meta", {"label_names": [str(i) for i in range(10)]})
    else:
        folder = root / "cifar-100-python"
        files = ["train", "test"]
        key, meta = "fine_labels", ("meta", {"fine_label_names": [str(i) for i in range(100)]})
    folder.mkdir(parents=True)
    written = {}
    for f in files:
        data = rng.randint(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = rng.randint(0, classes, size=n_per_batch).tolist()
        with open(folder / f, "wb") as fh:
            pickle.dump({"data": data, key: labels}, fh)
        written[f] = (data, labels)
    with open(folder / meta[0], "wb") as fh:
        pickle.dump(meta[1], fh)
    return written


def test_cifar10_reads_the_on_disk_batch_format(tmp_path):
    written = write_fake_cifar(tmp_path)
    d = load_dataset(TrialConfig(dataset="cifar10", data_root=str(tmp_path), lam=0.3, epochs=1).resolved())
    assert d.x_train.shape == (100, 3, 32, 32) and d.x_test.shape == (20, 3, 32, 32)
    assert d.x_train.dtype == torch.uint8 and d.num_classes == 10 and not d.synthetic
    # row layout: 1024 red, 1024 green, 1024 blue values, row-major 32x32
    first = written["data_batch_1"][0][0]
    assert torch.equal(d.x_train[0], torch.from_numpy(first.reshape(3, 32, 32)))
    assert d.y_train[:20].tolist() == written["data_batch_1"][1]
    assert d.mean == (0.4914, 0.4822, 0.4465) and d.std == (0.2023, 0.1994, 0.2010)
    q = load_dataset(TrialConfig(dataset="cifar10", data_root=str(tmp_path), lam=0.3, epochs=1,
                                 normalization="q-series").resolved())
    assert q.std == (0.2470, 0.2435, 0.2616)


def test_cifar100_and_a_trial_on_it(tmp_path):
    write_fake_cifar(tmp_path, classes=100)
    cfg = dict(dataset="cifar100", data_root=str(tmp_path), model="tinycnn", **{"lambda": 0.3}, epochs=1, batch_size=16)
    t = Trial(cfg)
    assert t.data.num_classes == 100 and t.data.std == (0.2675, 0.2565, 0.2761)
    assert run_trial(t)["status"] == "completed"


def test_missing_cifar_says_where_it_looked_and_how_to_fetch(tmp_path):
    with pytest.raises(ConfigError) as e:
        Trial(dict(dataset="cifar10", data_root=str(tmp_path), **{"lambda": 0.3}, epochs=1))
    msg = str(e.value)
    assert str(tmp_path / "cifar-10-batches-py") in msg and "--download" in msg


def test_synthetic_cifar_is_deterministic_and_named():
    a = make_synthetic_cifar(200, 50, seed=0)
    b = make_synthetic_cifar(200, 50, seed=0)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert a.shape == (3, 32, 32) and a.synthetic and a.name == "synthetic-cifar"
    # class structure: per-class mean images differ more between classes than the noise
    m = torch.stack([a.x_train[a.y_train == c].float().mean(0) for c in range(10)])
    assert (m[0] - m[1]).abs().mean() > 5


def test_augmentation_is_crop_and_flip_of_the_padded_image():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    out = augment_batch(x, g)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(2):
        found = any(torch.equal(out[i], cand) for dy in range(9) for dx in range(9)
                    for cand in (padded[i, :, dy:dy + 32, dx:dx + 32], padded[i, :, dy:dy + 32, dx:dx + 32].flip(-1)))
        assert found


@pytest.mark.parametrize("name,width", [("resnet18", 0.5), ("resnet18", 2.0), ("resnet34", 1.0), ("vgg11", 1.0),
                                        ("vgg11-p2", 1.0), ("simplecnn", 1.0), ("simplecnn-p2", 1.0), ("tinycnn", 1.0)])
def test_models_take_cifar_shaped_input(name, width):
    m = build_model(name, 10, 3, width)
    check_model_input(m, name, (3, 32, 32), 10, "cifar10")


def test_resnet_width_scales_channels_and_matches_the_notebook_at_width_1():
    m = build_model("resnet18", 10, 3, 0.5)
    assert [m.layer1[0].conv1.out_channels, m.layer2[0].conv1.out_channels, m.layer3[0].conv1.out_channels,
            m.layer4[0].conv1.out_channels] == [32, 64, 128, 256]
    from torchvision.models import resnet18
    torch.manual_seed(7)
    nb = resnet18(weights=None, num_classes=10)   # the notebook's get_resnet18()
    nb.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nb.maxpool = torch.nn.Identity()
    torch.manual_seed(7)
    ours = build_model("resnet18", 10, 3, 1.0)
    a, b = nb.state_dict(), ours.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_digits_models():
    for name in ("tinycnn", "resnet18"):
        check_model_input(build_model(name, 10, 1, 1.0), name, (1, 8, 8), 10, "digits")


def test_shape_mismatch_is_a_config_error(digits):
    with pytest.raises(ConfigError) as e:
        Trial(dict(dataset="digits", model="vgg11", **{"lambda": 0.3}, epochs=1), data=digits)
    assert "model='vgg11'" in str(e.value) and "(1, 8, 8)" in str(e.value)
    with pytest.raises(ConfigError, match="simplecnn"):
        Trial(dict(dataset="digits", model="simplecnn", **{"lambda": 0.3}, epochs=1), data=digits)
