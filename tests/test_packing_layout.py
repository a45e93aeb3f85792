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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels_last", [True, False])
def test_global_average_pool_is_torchs_and_hands_back_its_inputs_layout(dtype, channels_last):
    """torch's CPU backward of a 1x1 adaptive average pool returns a channels-first gradient; the packed
    pool returns it in its input's layout, written once. Values and gradients: every bit of torch's."""
    from dgl_ray.packing import PackedAdaptiveAvgPool2d
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(4, 6, 3, 3, dtype=dtype).contiguous(memory_format=fmt).requires_grad_()
    pool = PackedAdaptiveAvgPool2d(torch.nn.AdaptiveAvgPool2d(1))
    y_plain, y_packed = torch.nn.functional.adaptive_avg_pool2d(x, 1), pool(x)
    g = torch.randn_like(y_plain)
    plain = torch.autograd.grad(y_plain, x, g)[0]
    packed = torch.autograd.grad(y_packed, x, g)[0]
    assert torch.equal(y_plain, y_packed)
    assert torch.equal(plain, packed)
    assert packed.is_contiguous(memory_format=fmt)
    if channels_last:
        assert not packed.is_contiguous()


@pytest.mark.parametrize("G", [2, 5])
def test_one_input_channel_convolution_as_depthwise_equals_the_grouped_one(G):
    """The first layer on 1-channel images runs depthwise over each member's channel repeated (oneDNN's
    faster kernel): the grouped convolution's outputs and weight/bias gradients, float64."""
    import torch.nn.functional as F
    from dgl_ray.packing import PackedConv2d
    torch.manual_seed(0)
    packed = PackedConv2d(torch.nn.Conv2d(1, 8, 3, padding=1))
    assert packed.one_input_channel
    x = torch.randn(7, G, 8, 8, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    w = torch.randn(G, 8, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(G, 8, dtype=torch.float64, requires_grad=True)
    packed.weight, packed.bias = w, b
    y = packed(x)
    grouped = F.conv2d(x, w.reshape(G * 8, 1, 3, 3), b.reshape(-1), 1, 1, 1, G)
    g = torch.randn_like(y)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, grouped, rtol=1e-12, atol=1e-12)
    for a, e in zip(torch.autograd.grad(y, (w, b), g), torch.autograd.grad(grouped, (w, b), g)):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)
