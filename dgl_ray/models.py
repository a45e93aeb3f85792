"""Models of the paper, each built for any (channels, height, width) and class count.

ResNet-18/34 follow the notebooks literally: torchvision's ResNet (all its init) and then
conv1 := 3x3 stride 1 pad 1 no bias, maxpool := Identity, so a seed gives the paper's weights.
Widths for Q1 scale the four stages to int(64w), int(128w), int(256w), int(512w).
"""
from __future__ import annotations

import functools

import torch
from torch import nn

from .errors import ConfigError
from .registry import DATASETS, MODELS, fixed_width_error, models_for


@functools.cache
def _cifar_resnet_class():
    """CifarResNet, defined on first use: importing torchvision pulls in torch._dynamo (≈ 1 s), which a
    digits sweep, or a dry run of a plan without ResNets, does not need."""
    from torchvision.models.resnet import BasicBlock, ResNet

    class CifarResNet(ResNet):
        """torchvision's ResNet with stage widths int(64w)...int(512w) and the CIFAR stem. The body of
        torchvision's __init__ is repeated with the widths as parameters (torchvision has them as
        literals); module order, names and init are the same, so w=1 gives torchvision's state_dict."""

        def __init__(self, layers, num_classes: int, in_channels: int = 3, width: float = 1.0):
            nn.Module.__init__(self)
            widths = [int(64 * width), int(128 * width), int(256 * width), int(512 * width)]
            self._norm_layer = nn.BatchNorm2d
            self.inplanes = widths[0]
            self.dilation = 1
            self.groups = 1
            self.base_width = 64
            self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(self.inplanes)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.layer1 = self._make_layer(BasicBlock, widths[0], layers[0])
            self.layer2 = self._make_layer(BasicBlock, widths[1], layers[1], stride=2)
            self.layer3 = self._make_layer(BasicBlock, widths[2], layers[2], stride=2)
            self.layer4 = self._make_layer(BasicBlock, widths[3], layers[3], stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(widths[3] * BasicBlock.expansion, num_classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)
            # The notebooks' get_resnet18(): replace the stem after construction (same RNG draws).
            self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()

    CifarResNet.__module__, CifarResNet.__qualname__ = __name__, "CifarResNet"   # picklable by name
    return CifarResNet


def cifar_resnet(layers: list[int], num_classes: int, in_channels: int, width: float) -> nn.Module:
    """A ResNet of ``layers`` BasicBlocks per stage ([2, 2, 2, 2]: ResNet-18) with the CIFAR stem."""
    return _cifar_resnet_class()(layers, num_classes, in_channels, width)


def __getattr__(name: str):
    if name == "CifarResNet":       # dgl_ray.models.CifarResNet, built when first asked for
        return _cifar_resnet_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _vgg11_features(in_channels: int, batch_norm: bool) -> nn.Sequential:
    cfg = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]  # torchvision cfg "A"
    layers: list[nn.Module] = []
    c = in_channels
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1)] + ([nn.BatchNorm2d(v)] if batch_norm else []) + [nn.ReLU(inplace=True)]
            c = v
    return nn.Sequential(*layers)


class VGG11(nn.Module):
    """exp_P: VGG11-BN features, Linear(512, k) head. exp_P2 ('p2'): VGG11 features without BN,
    head 512-ReLU-Dropout-k. Needs 32x32 input (five 2x2 pools down to 1x1)."""

    def __init__(self, num_classes: int, in_channels: int = 3, variant: str = "p"):
        super().__init__()
        self.features = _vgg11_features(in_channels, batch_norm=(variant == "p"))
        if variant == "p":
            self.classifier = nn.Linear(512, num_classes)
        else:
            self.classifier = nn.Sequential(nn.Linear(512, 512), nn.ReLU(inplace=True), nn.Dropout(),
                                            nn.Linear(512, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class SimpleCNN(nn.Module):
    """exp_P: four conv(3x3)+ReLU+pool stages 32-64-128-256, fc 1024 -> k (32x32 input).
    exp_P2 ('p2'): 64-64-pool-128-128-pool, fc 8192 -> 256 -> k."""

    def __init__(self, num_classes: int, in_channels: int = 3, variant: str = "p"):
        super().__init__()
        conv = lambda a, b: [nn.Conv2d(a, b, 3, padding=1), nn.ReLU(inplace=True)]
        pool = [nn.MaxPool2d(2)]
        if variant == "p":
            self.features = nn.Sequential(*conv(in_channels, 32), *pool, *conv(32, 64), *pool,
                                          *conv(64, 128), *pool, *conv(128, 256), *pool)
            self.classifier = nn.Linear(1024, num_classes)
        else:
            self.features = nn.Sequential(*conv(in_channels, 64), *conv(64, 64), *pool,
                                          *conv(64, 128), *conv(128, 128), *pool)
            self.classifier = nn.Sequential(nn.Linear(8192, 256), nn.ReLU(inplace=True), nn.Linear(256, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class TinyCNN(nn.Module):
    """The digits default: conv+BatchNorm+ReLU+pool, conv+BatchNorm+ReLU, global average pool,
    linear head; int(8w) and int(16w) channels. w=1 (8/16) is overhead-bound and shows the
    transition between λ 0.40 and 0.50 on digits; w=4 gives 32/64 channels."""

    def __init__(self, num_classes: int, in_channels: int = 1, width: float = 1.0):
        super().__init__()
        c1, c2 = max(1, int(8 * width)), max(1, int(16 * width))
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(c2, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


def build_model(name: str, num_classes: int, in_channels: int, width: float = 1.0) -> nn.Module:
    """The registered model ``name`` (dgl_ray.registry.MODELS) for this data."""
    entry = MODELS.get(name)
    if entry is None:
        raise ConfigError(f"model={name!r} is unknown; allowed: {', '.join(MODELS)}")
    if width != 1.0 and not entry.any_width:
        raise ConfigError(fixed_width_error(name, width))
    return entry.build(num_classes, in_channels, width)


def check_model_input(model: nn.Module, name: str, shape: tuple, num_classes: int, dataset: str) -> None:
    """Fail before training if the model cannot take this data: one forward of zeros in eval mode
    (BatchNorm statistics untouched)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            p = next(model.parameters())
            out = model(torch.zeros(2, *shape, dtype=p.dtype, device=p.device))
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        fit = models_for(shape)
        raise ConfigError(f"model={name!r} cannot take dataset={dataset!r} images of shape {tuple(shape)} "
                          f"({first}); models for {shape[1]}x{shape[2]} images: {', '.join(fit)}"
                          + "".join(f"; {m.name} needs {m.min_side}x{m.min_side}" for m in MODELS.values()
                                    if m.name not in fit)) from None
    finally:
        model.train(was_training)
    if tuple(out.shape) != (2, num_classes):
        raise ConfigError(f"model={name!r} gives outputs of shape {tuple(out.shape)[1:]} for dataset={dataset!r}; "
                          f"expected {num_classes} classes")


def check_model_fits(model: str, width: float, dataset: str) -> None:
    """check_model_input without the data: for planning many trials before any of them starts."""
    data = DATASETS[dataset]
    check_model_input(build_model(model, data.num_classes, data.shape[0], width), model, data.shape,
                      data.num_classes, dataset)
