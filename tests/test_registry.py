"""Data sets and models: one registry entry each (dgl_ray.registry), read by config, data, models and the
sweep's pre-flight checks."""
from types import MappingProxyType

import pytest

from dgl_ray import registry
from dgl_ray.config import DATASET_DEFAULTS, DATASETS, MODELS, TrialConfig
from dgl_ray.errors import ConfigError
from dgl_ray.models import TinyCNN
from dgl_ray.batched import run_trial
from dgl_ray.trainer import Trial


def test_config_names_and_defaults_come_from_the_registry():
    assert DATASETS == tuple(registry.DATASETS) and MODELS == tuple(registry.MODELS)
    assert DATASET_DEFAULTS["digits"]["model"] == "tinycnn" and DATASET_DEFAULTS["cifar10"]["epochs"] == 100
    assert registry.width_models() == ["tinycnn", "resnet18", "resnet34"]
    assert registry.models_for((1, 8, 8)) == ["tinycnn", "resnet18", "resnet34"]


def test_missing_files_names_what_the_reader_needs(tmp_path):
    assert registry.missing_files("cifar100", str(tmp_path)) == ["train", "test"]
    (tmp_path / "cifar-100-python").mkdir()
    (tmp_path / "cifar-100-python" / "train").write_bytes(b"")
    assert registry.missing_files("cifar100", str(tmp_path)) == ["test"]
    assert registry.missing_files("digits", str(tmp_path)) == []          # bundled with scikit-learn
    assert registry.data_folder("cifar10", str(tmp_path)) == str(tmp_path / "cifar-10-batches-py")


@pytest.fixture
def toy_entries(digits):
    """A data set and a model added by one entry each (removed again after the test)."""
    registry.register_dataset(registry.Dataset(
        "digits-toy", 10, (1, 8, 8),
        MappingProxyType(dict(model="tinycnn-wide", batch_size=64, lr=0.05, lr_milestones=[], epochs=1)),
        load=lambda cfg: digits, augment=False))
    registry.register_model(registry.Model("tinycnn-wide", lambda k, c, w: TinyCNN(k, c, 2 * w)))
    yield
    del registry.DATASETS["digits-toy"], registry.MODELS["tinycnn-wide"]


def test_a_registered_data_set_and_model_train_without_another_edit(toy_entries):
    cfg = TrialConfig.from_dict({"dataset": "digits-toy", "lambda": 0.3})
    assert (cfg.model, cfg.batch_size, cfg.lr, cfg.epochs, cfg.augment) == ("tinycnn-wide", 64, 0.05, 1, False)
    with pytest.raises(ConfigError, match="width=2.0 applies to tinycnn, resnet18 and resnet34; model='tinycnn-wide'"):
        TrialConfig.from_dict({"dataset": "digits-toy", "lambda": 0.3, "width": 2.0})
    trial = Trial(cfg)
    assert trial.model.fc.in_features == 32                     # the entry's builder: TinyCNN at width 2
    run_trial(trial)
    assert trial.epoch == 1
