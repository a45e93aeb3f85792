"""Horizontal fusion (HFTA, MLSys'21) of G copies of any model of ``models.py`` into one network.

Activations of the G members travel side by side along the channel axis, member-major:
(B, G·C, H, W) for images, (B, G·F) for features. Then every layer of the paper's models has an
exact packed form that never mixes members:

- Conv2d(C_in, C_out)    -> one convolution with groups = G (member g's filters see member g's channels);
- BatchNorm2d(C)         -> batch_norm over G·C channels (statistics are per channel, hence per member),
                            running mean/var held as (G, C): each member keeps its own, eval uses them;
- Linear(F_in, F_out)    -> a batched matmul over the member axis (einsum with a (G, F_out, F_in) weight);
- Dropout(p)             -> a mask drawn per member from that member's own generator;
- ReLU, max/average pooling, Identity, flatten, residual additions: per channel already, unchanged
  (global average pooling keeps its arithmetic; only its gradient's memory layout is fixed, see below).

So the model classes of ``models.py`` (their ``forward``, torchvision's ``BasicBlock`` included) run
unchanged on the packed layout: ``pack_model`` copies the module tree and swaps only the leaves above.
A packed leaf owns no parameters: the population binds views of its (G, P) parameter rows and its
(G, ...) buffers before each call (``bind``), so a slice of members (one member, for V2's trusted
subset) runs through the same modules.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError

# leaves that act per channel (or per feature) on their own: valid on the packed layout as they are
_PER_CHANNEL = (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.Identity, nn.Flatten)


def _plain(module: nn.Module, names) -> None:
    """Turn registered parameters/buffers into plain attributes that ``bind`` sets per call."""
    for n in names:
        module._parameters.pop(n, None)
        module._buffers.pop(n, None)
        module.__dict__[n] = None


class PackedConv2d(nn.Module):
    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ConfigError(f"cannot pack {conv}: only zero padding given as numbers")
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups
        # one input channel per member (the first layer on 1-channel digits): see forward
        self.one_input_channel = conv.in_channels == 1 and conv.out_channels > 1
        _plain(self, ("weight", "bias"))

    def forward(self, x):
        w = self.weight                                  # (G, C_out, C_in / groups, kh, kw)
        G, out_per_member = w.shape[0], w.shape[1]
        bias = None if self.bias is None else self.bias.reshape(-1)
        if self.one_input_channel and G > 1 and x.device.type == "cpu":
            # oneDNN's kernel for groups of 1 input -> m outputs is 2-3x slower than its depthwise kernel
            # (measured here; 3x without autograd, in evaluation): repeat each member's channel m times,
            # channels-last, and convolve depthwise (groups = G·m). Each output is still its own filter's
            # taps over its member's one channel. (A population of one keeps its dense convolution; the
            # digits TinyCNN never runs as one on the host: batched.padded_size.)
            B, _, H, W = x.shape
            n_out = G * out_per_member
            x_repeated = (x.permute(0, 2, 3, 1).unsqueeze(-1).expand(B, H, W, G, out_per_member)
                          .reshape(B, H, W, n_out).permute(0, 3, 1, 2))
            return F.conv2d(x_repeated, w.reshape(n_out, *w.shape[2:]), bias, self.stride, self.padding,
                            self.dilation, n_out)
        return F.conv2d(x, w.reshape(G * out_per_member, *w.shape[2:]), bias, self.stride, self.padding,
                        self.dilation, G * self.groups)


class PackedBatchNorm2d(nn.Module):
    def __init__(self, bn: nn.BatchNorm2d):
        super().__init__()
        if bn.momentum is None or not bn.track_running_stats:
            raise ConfigError(f"cannot pack {bn}: needs running statistics with a fixed momentum")
        self.momentum, self.eps = bn.momentum, bn.eps
        _plain(self, ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"))

    def forward(self, x):
        w, b = self.weight, self.bias
        if self.training:
            self.num_batches_tracked.add_(1)      # BatchNorm's own counter (per member), kept for state_dicts
        # (G, C) buffers viewed as G·C channels: batch_norm updates them in place, member by member
        return F.batch_norm(x, self.running_mean.view(-1), self.running_var.view(-1),
                            None if w is None else w.reshape(-1), None if b is None else b.reshape(-1),
                            self.training, self.momentum, self.eps)


class PackedLinear(nn.Module):
    def __init__(self, lin: nn.Linear):
        super().__init__()
        _plain(self, ("weight", "bias"))

    def forward(self, x):
        w, b = self.weight, self.bias                     # (G, out, in), (G, out)
        G = w.shape[0]
        # member-major (G, B, ·) batched matmul: each member's sums (its bias gradient too) run over its
        # own contiguous block, the same kernel path for any G
        xg = x.reshape(x.shape[0], G, -1).transpose(0, 1)
        h = torch.bmm(xg, w.transpose(1, 2))
        if b is not None:   # as a matmul with ones: the bias gradient is then a per-member matmul too
            h = h + torch.bmm(xg.new_ones(G, xg.shape[1], 1), b.unsqueeze(1))
        return h.transpose(0, 1).reshape(x.shape[0], -1)


class PackedDropout(nn.Module):
    """nn.Dropout per member: mask = bernoulli(1-p)/(1-p) from member g's generator, as ATen's CPU
    dropout draws it from the global one (so a member with its generator seeded as the global RNG
    draws the same mask as ``nn.Dropout``)."""

    def __init__(self, drop: nn.Dropout):
        super().__init__()
        self.p = drop.p
        self.generators: list = []                         # bound per call, one per member

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        G = len(self.generators)
        h = x.reshape(x.shape[0], G, -1)
        masks = [torch.empty_like(h[:, g]).bernoulli_(1 - self.p, generator=gen).div_(1 - self.p)
                 for g, gen in enumerate(self.generators)]
        return (h * torch.stack(masks, 1)).reshape(x.shape)


class _GlobalAvgPool(torch.autograd.Function):
    """x.mean((2, 3), keepdim=True), torch's own arithmetic for a 1x1 adaptive average pool, with a
    backward that writes the gradient once, in the input's memory layout. torch's backward of the mean
    divides the expanded gradient into a channels-first tensor (a 1x1 pool's (B, C, 1, 1) gradient looks
    contiguous either way), which then had to be copied channels-last, and before that copy every layer
    below ran the slow mixed-layout kernels (ReLU's backward on the digits TinyCNN took 15x longer)."""

    @staticmethod
    def forward(ctx, x):
        ctx.shape, ctx.n = x.shape, x.shape[2] * x.shape[3]
        ctx.channels_last = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        return x.mean((2, 3), keepdim=True)

    @staticmethod
    def backward(ctx, g):
        # the same values as torch's mean backward, g.expand(shape) / n: dividing before broadcasting
        # divides the same numbers
        fmt = torch.channels_last if ctx.channels_last else torch.contiguous_format
        return torch.empty(ctx.shape, dtype=g.dtype, device=g.device, memory_format=fmt).copy_((g / ctx.n).expand(ctx.shape))


class PackedAdaptiveAvgPool2d(nn.Module):
    """nn.AdaptiveAvgPool2d, same arithmetic; the global (1x1) pool with its gradient in the input's
    layout (``_GlobalAvgPool``)."""

    def __init__(self, pool: nn.AdaptiveAvgPool2d):
        super().__init__()
        self.output_size = pool.output_size
        size = pool.output_size if isinstance(pool.output_size, tuple) else (pool.output_size,) * 2
        self.is_global = size == (1, 1)

    def forward(self, x):
        if self.is_global and x.dim() == 4:
            return _GlobalAvgPool.apply(x)
        return F.adaptive_avg_pool2d(x, self.output_size)


_PACKED = {nn.Conv2d: PackedConv2d, nn.AdaptiveAvgPool2d: PackedAdaptiveAvgPool2d, nn.BatchNorm2d: PackedBatchNorm2d, nn.Linear: PackedLinear,
           nn.Dropout: PackedDropout}


def _pool_before_relu(net: nn.Module) -> None:
    """ReLU then max pooling -> max pooling then ReLU, inside every Sequential of the packed copy.

    The same numbers, values and gradients, bit for bit: ReLU is monotone, so the largest of a window
    after ReLU is ReLU of the largest before it, and max pooling picks the same (first) position either
    way whenever the window's largest is positive; when it is not, ReLU's gradient is zero in both orders.
    The ReLU (its forward and its backward) then runs on the pooled tensor, 4x smaller for a 2x2 pool
    (the digits TinyCNN's first stage: 8% of a step, measured here)."""
    for seq in net.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        mods = seq._modules
        keys = list(mods)
        for first, second in zip(keys, keys[1:]):
            if type(mods[first]) is nn.ReLU and type(mods[second]) is nn.MaxPool2d:
                mods[first], mods[second] = mods[second], mods[first]


class PackedNet:
    """G members of one architecture as one network. ``params`` lists (module, attribute, shape) in
    the template's ``named_parameters()`` order (the layout of a member's parameter row);
    ``buffers`` lists (name, module, attribute) in ``named_buffers()`` order."""

    def __init__(self, template: nn.Module, name: str = "model"):
        net = copy.deepcopy(template)
        self.param_names = [n for n, _ in template.named_parameters()]
        self.param_shapes = [tuple(p.shape) for _, p in template.named_parameters()]
        self.buffer_names = [n for n, _ in template.named_buffers()]
        self.dropouts: list[PackedDropout] = []
        for mname, mod in list(net.named_modules()):
            if mname == "":
                continue
            cls = type(mod)
            if cls in _PACKED:
                new = _PACKED[cls](mod)
                parent, _, leaf = mname.rpartition(".")
                setattr(net.get_submodule(parent) if parent else net, leaf, new)
                if isinstance(new, PackedDropout):
                    self.dropouts.append(new)
            elif not isinstance(mod, _PER_CHANNEL) and not list(mod.children()):
                if list(mod.parameters(recurse=False)) or list(mod.buffers(recurse=False)):
                    raise ConfigError(f"model={name!r}: cannot pack layer {mname} ({cls.__name__})")
                raise ConfigError(f"model={name!r}: no packed form for layer {mname} ({cls.__name__})")
        _pool_before_relu(net)
        self.net = net
        split = lambda n: n.rpartition(".")
        self._param_slots = [(net.get_submodule(split(n)[0]) if split(n)[0] else net, split(n)[2]) for n in self.param_names]
        self._buffer_slots = [(net.get_submodule(split(n)[0]) if split(n)[0] else net, split(n)[2]) for n in self.buffer_names]
        self.sizes = [math.prod(s) for s in self.param_shapes]
        # per-member channel counts of the layers whose kernels vectorise over the G·C channels
        self.channel_counts = sorted({m.out_channels for m in template.modules() if isinstance(m, nn.Conv2d)}
                                     | {m.num_features for m in template.modules() if isinstance(m, nn.BatchNorm2d)})
        # channels-last: pooling, BatchNorm and grouped convolutions walk the G·C channels contiguously
        # (measured on CPU: max-pooling a (B, G·C, 8, 8) NCHW tensor cost more than the convolutions)
        self.channels_last = True

    def views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """(G, P) rows -> per-parameter (G, *shape) views, in named_parameters() order."""
        # one split (its backward is one concatenation) rather than a slice per parameter (each slice's
        # backward zero-fills a whole (G, P) gradient)
        G = flat.shape[0]
        return [t.view(G, *shp) for t, shp in zip(flat.split(self.sizes, dim=1), self.param_shapes)]

    def bind(self, flat: torch.Tensor, buffers: list[torch.Tensor], generators: list) -> None:
        """Point the packed leaves at these members' parameters (views of ``flat``), buffers and
        dropout generators; the next call runs exactly those members."""
        for (mod, attr), v in zip(self._param_slots, self.views(flat)):
            mod.__dict__[attr] = v
        for (mod, attr), b in zip(self._buffer_slots, buffers):
            mod.__dict__[attr] = b
        for d in self.dropouts:
            d.generators = generators

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, G, C, H, W) -> logits (B, G, classes)."""
        B, G = x.shape[:2]
        h = x.reshape(B, G * x.shape[2], *x.shape[3:])
        if self.channels_last:
            h = h.contiguous(memory_format=torch.channels_last)
        return self.net(h).view(B, G, -1)

    def train(self, mode: bool = True) -> None:
        if mode != self.net.training:       # nn.Module.train walks every module: only on a change
            self.net.train(mode)
