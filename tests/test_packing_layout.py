"""The packed network's layout changes (dgl_ray/packing.py) keep the numbers bit for bit in float32."""
import pytest
import torch

from dgl_ray.models import build_model
from dgl_ray.packing import PackedNet

pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


def _forward_backward(packed, flat, buffers, x, y):
    rows = flat.clone().requires_grad_()
    packed.bind(rows, [b.clone() for b in buffers], [])
    packed.train(True)
    logits = packed(x)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    return logits.detach(), torch.autograd.grad(loss, rows)[0]


@pytest.mark.parametrize("name,shape", [("tinycnn", (1, 8, 8)), ("simplecnn", (3, 32, 32))])
def test_pool_before_relu_is_bit_identical(name, shape):
    """ReLU -> max pool is run as max pool -> ReLU: same logits and gradients, every bit, also with
    exact zeros and ties in the windows (an input of few distinct values)."""
    G, B = 3, 8
    torch.manual_seed(0)
    template = build_model(name, 10, shape[0])
    swapped = PackedNet(template, name)
    plain = PackedNet(template, name)
    seq = plain.net.features
    order = list(seq._modules)
    for a, b in zip(order, order[1:]):      # undo the swap: MaxPool2d followed by ReLU -> ReLU, MaxPool2d
        if type(seq._modules[a]) is torch.nn.MaxPool2d and type(seq._modules[b]) is torch.nn.ReLU:
            seq._modules[a], seq._modules[b] = seq._modules[b], seq._modules[a]
    kinds = lambda p: [type(m).__name__ for m in p.net.features]
    assert kinds(swapped) != kinds(plain)
    assert "MaxPool2d" in kinds(swapped) and kinds(swapped).index("MaxPool2d") < kinds(swapped).index("ReLU")
    flat = torch.cat([torch.cat([p.detach().reshape(-1) for p in build_model(name, 10, shape[0]).parameters()])[None]
                      for _ in range(G)])
    buffers = [torch.stack([b] * G) for b in template.buffers()]
    x = torch.randint(-2, 3, (B, G, *shape)).float()          # many equal values: ties and zeros
    y = torch.randint(0, 10, (B, G))
    l1, g1 = _forward_backward(swapped, flat, buffers, x, y)
    l2, g2 = _forward_backward(plain, flat, buffers, x, y)
    assert torch.equal(l1, l2)
    assert torch.equal(g1, g2)


def test_global_average_pool_hands_back_a_channels_last_gradient():
    """torch's CPU backward of a 1x1 adaptive average pool returns a channels-first gradient; the packed
    pool returns it in its input's layout (values unchanged), so the layers below stay channels-last."""
    from dgl_ray.packing import PackedAdaptiveAvgPool2d
    x = torch.randn(4, 6, 3, 3).contiguous(memory_format=torch.channels_last).requires_grad_()
    plain = torch.autograd.grad(torch.nn.functional.adaptive_avg_pool2d(x, 1).sum(), x)[0]
    packed = torch.autograd.grad(PackedAdaptiveAvgPool2d(torch.nn.AdaptiveAvgPool2d(1))(x).sum(), x)[0]
    assert torch.equal(plain, packed)
    assert packed.is_contiguous(memory_format=torch.channels_last) and not packed.is_contiguous()
