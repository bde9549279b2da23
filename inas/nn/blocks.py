"""Stand-alone (static) blocks: fixed sizes, no slicing. The stand-alone model is built from them, and the latency
table code instantiates and times them one by one (docs/design.md §10). State_dict keys equal the original iNAS
stand-alone modules' keys (and so the supernet's).

Constructors (all sizes are channel counts; kernel_sizes is a kernel SET, e.g. (3, 5); for timing a deployed
block pass a single kernel (k,) or call `reparameterize()` - a folded unit costs the same as a single k_max conv):

    Stem(out_channels)
        (N, 3, H, W) -> (N, out_channels, H/2, W/2): 3x3 conv stride 2 (no bias) -> BN -> SiLU.
    MBConvLayer(in_channels, out_channels, stride, expand_ratio, kernel_sizes)
        (N, in, H, W) -> (N, out, H/stride, W/stride): 1x1 expand -> SMSU -> SiLU -> SE -> 1x1 project, + shortcut.
    TransportUpsample(level_diff, in_channels, out_channels)
        (N, in, h, w) -> (N, out, h*2^d, w*2^d): 1x1 conv -> BN -> bilinear upsample (align_corners=True).
    TransportDownsample(level_diff, in_channels, out_channels)
        (N, in, h, w) -> (N, out, h/2^d, w/2^d): MaxPool(2^d) -> 1x1 conv -> BN.
    TransportFusion(channels, kernel_sizes)
        list of n (N, C, h, w) tensors, or one (N, n, C, h, w) tensor -> (N, C, h, w): mean, then residual
        SMSU -> 1x1 -> BN -> SiLU -> SMSU -> 1x1 -> BN, + mean, SiLU.
    DecoderUpsample(level_diff, in_channels, out_channels)
        (N, in, h, w) -> (N, out, h*2^d, w*2^d): 1x1 conv -> BN -> SiLU -> bilinear upsample.
    DecoderFusion(channels, kernel_sizes)
        list of n (N, C, h, w) tensors or (N, n, C, h, w) -> (N, C, h, w): mean -> SMSU -> 1x1 -> BN -> SiLU.
    Head(in_channels, num_classes, level, activation)
        (N, in, h, w) -> (N, num_classes, h*2^(level+1), w*2^(level+1)): 1x1 conv (no bias) -> activation
        ("sigmoid", "softmax" or None) -> bilinear upsample.
    SMSU(channels, kernel_sizes, stride=1)
        (N, C, H, W) -> (N, C, H/stride, W/stride); `reparameterize()` folds it into one depthwise conv with bias.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inas.nn.ops import (
    apply_activation,
    batch_norm_2d,
    fold_depthwise,
    mean_of,
    multi_branch_depthwise,
    register_kernel_transforms,
    same_padding,
    upsample,
)


class WrappedConv2d(nn.Module):
    """nn.Conv2d held as `.conv` (the original's Conv2d wrapper; keys `<name>.conv.weight`)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1, padding: int = 0,
                 bias: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class WrappedBatchNorm2d(nn.Module):
    """nn.BatchNorm2d held as `.bn` (keys `<name>.bn.weight`, ...)."""

    def __init__(self, num_features: int, zero_init: bool = False) -> None:
        super().__init__()
        self.bn = batch_norm_2d(num_features, zero_init)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(x)


class SMSU(nn.Module):
    """Static SMSU: depthwise weight (C, 1, K, K), K = max(kernel_sizes), per-kernel `ks_k` and `bn_dict.ks_k`.

    Before folding: train mode runs one branch per kernel (own BN) and averages; eval mode folds on the fly.
    `reparameterize()` replaces the branches with one depthwise conv with bias (bn_dict and ks_k removed).
    """

    def __init__(self, channels: int, kernel_sizes: Sequence[int], stride: int = 1) -> None:
        super().__init__()
        self.kernel_sizes = tuple(sorted(kernel_sizes))
        self.stride = stride
        self.folded = False
        k_max = max(self.kernel_sizes)
        register_kernel_transforms(self, self.kernel_sizes)
        self.conv = nn.Conv2d(channels, channels, k_max, stride, same_padding(k_max), groups=channels, bias=False)
        self.bn_dict = nn.ModuleDict({f"ks_{k}": WrappedBatchNorm2d(channels) for k in self.kernel_sizes})

    def _transforms(self) -> list[Tensor]:
        return [self._parameters[f"ks_{k}"] for k in self.kernel_sizes]

    def folded_weights(self) -> tuple[Tensor, Tensor]:
        """The single (C, 1, K, K) filter and (C,) bias equal to the averaged branches with running BN stats."""
        stats = []
        for k in self.kernel_sizes:
            bn = self.bn_dict[f"ks_{k}"].bn
            stats.append((bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps))
        return fold_depthwise(self.conv.weight, self.kernel_sizes, self._transforms(), stats)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold the kernel branches and their BNs into `conv` (which gains a bias); idempotent."""
        if self.folded:
            return
        weight, bias = self.folded_weights()
        self.conv.weight.copy_(weight)
        self.conv.bias = nn.Parameter(bias.detach().clone())
        del self.bn_dict
        for k in self.kernel_sizes:
            delattr(self, f"ks_{k}")
        self.folded = True

    def forward(self, x: Tensor) -> Tensor:
        if self.folded:
            return self.conv(x)
        if self.training:
            norms = [self.bn_dict[f"ks_{k}"] for k in self.kernel_sizes]
            return multi_branch_depthwise(x, self.conv.weight, self.kernel_sizes, self._transforms(), norms,
                                          self.stride)
        weight, bias = self.folded_weights()
        return F.conv2d(x, weight, bias, self.stride, same_padding(weight.shape[-1]), 1, x.shape[1])


class Stem(nn.Module):
    """3x3 conv stride 2 (no bias) -> BN -> SiLU. Keys `stemconv.conv.weight`, `stemnorm.bn.*`."""

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.stemconv = WrappedConv2d(3, out_channels, kernel_size=3, stride=2, padding=1)
        self.stemnorm = WrappedBatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(self.stemnorm(self.stemconv(x)))


class _ConvBN(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, zero_init: bool = False) -> None:
        super().__init__()
        self.conv = WrappedConv2d(in_channels, out_channels)
        self.bn = WrappedBatchNorm2d(out_channels, zero_init=zero_init)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x))


class _SEFc(nn.Module):
    def __init__(self, channels: int, mid: int) -> None:
        super().__init__()
        self.reduce = WrappedConv2d(channels, mid, bias=True)
        self.expand = WrappedConv2d(mid, channels, bias=True)


class SE(nn.Module):
    """Squeeze-excitation: mean -> 1x1 conv(bias) to C//4 -> ReLU -> 1x1 conv(bias) -> Hardsigmoid -> scale."""

    REDUCTION = 4

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = _SEFc(channels, channels // self.REDUCTION)

    def forward(self, x: Tensor) -> Tensor:
        y = x.mean((2, 3), keepdim=True)
        y = F.hardsigmoid(self.fc.expand(F.relu(self.fc.reduce(y))))
        return x * y


class _DepthConv(nn.Module):
    def __init__(self, channels: int, kernel_sizes: Sequence[int], stride: int) -> None:
        super().__init__()
        self.convbn = SMSU(channels, kernel_sizes, stride)
        self.se = SE(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.se(F.silu(self.convbn(x)))


class MBConvLayer(nn.Module):
    """MBConv with SMSU and SE; shortcut: AvgPool2d(2,2) if stride 2, 1x1 `identity_conv` if in != out.

    `identity_conv` exists only when in_channels != out_channels (the original creates it always but never uses it).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int,
                 kernel_sizes: Sequence[int]) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.stride = stride
        hidden = int(in_channels * expand_ratio)
        self.inverted_bottleneck = _ConvBN(in_channels, hidden)
        self.depth_conv = _DepthConv(hidden, kernel_sizes, stride)
        self.point_linear = _ConvBN(hidden, out_channels, zero_init=True)
        if in_channels != out_channels:
            self.identity_conv = WrappedConv2d(in_channels, out_channels)
        else:
            self.identity_conv = None

    def forward(self, x: Tensor) -> Tensor:
        y = self.point_linear(self.depth_conv(F.silu(self.inverted_bottleneck(x))))
        residual = x
        if self.stride == 2:
            residual = F.avg_pool2d(residual, 2, 2)
        if self.identity_conv is not None:
            residual = self.identity_conv(residual)
        return y + residual


class _BranchSeq(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = WrappedConv2d(in_channels, out_channels)
        self.bn = WrappedBatchNorm2d(out_channels)


class TransportUpsample(nn.Module):
    """1x1 conv -> BN -> bilinear x2^level_diff (no activation). Keys `upsample.conv.conv.*`, `upsample.bn.bn.*`."""

    def __init__(self, level_diff: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.factor = 2**level_diff
        self.upsample = _BranchSeq(in_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return upsample(self.upsample.bn(self.upsample.conv(x)), self.factor)


class TransportDownsample(nn.Module):
    """MaxPool(2^level_diff) -> 1x1 conv -> BN. Keys `downsample.conv.conv.*`, `downsample.bn.bn.*`."""

    def __init__(self, level_diff: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.factor = 2**level_diff
        self.downsample = _BranchSeq(in_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(x, self.factor, self.factor)
        return self.downsample.bn(self.downsample.conv(x))


class DecoderUpsample(nn.Module):
    """1x1 conv -> BN -> SiLU -> bilinear x2^level_diff. Keys `upsample.conv.conv.*`, `upsample.bn.bn.*`."""

    def __init__(self, level_diff: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.factor = 2**level_diff
        self.upsample = _BranchSeq(in_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return upsample(F.silu(self.upsample.bn(self.upsample.conv(x))), self.factor)


class _FusionSeq(nn.Module):
    def __init__(self, channels: int, kernel_sizes: Sequence[int], double: bool) -> None:
        super().__init__()
        self.depthwise1 = SMSU(channels, kernel_sizes)
        self.pointwise1 = WrappedConv2d(channels, channels)
        self.bn1 = WrappedBatchNorm2d(channels)
        if double:
            self.depthwise2 = SMSU(channels, kernel_sizes)
            self.pointwise2 = WrappedConv2d(channels, channels)
            self.bn2 = WrappedBatchNorm2d(channels)


class TransportFusion(nn.Module):
    """Mean of n inputs, then SMSU -> 1x1 -> BN -> SiLU -> SMSU -> 1x1 -> BN, + mean, SiLU."""

    def __init__(self, channels: int, kernel_sizes: Sequence[int]) -> None:
        super().__init__()
        self.fusion = _FusionSeq(channels, kernel_sizes, double=True)

    def forward(self, features: Sequence[Tensor] | Tensor) -> Tensor:
        x = mean_of(features)
        f = self.fusion
        y = F.silu(f.bn1(f.pointwise1(f.depthwise1(x))))
        y = f.bn2(f.pointwise2(f.depthwise2(y)))
        return F.silu(y + x)


class DecoderFusion(nn.Module):
    """Mean of n inputs -> SMSU -> 1x1 -> BN -> SiLU."""

    def __init__(self, channels: int, kernel_sizes: Sequence[int]) -> None:
        super().__init__()
        self.fusion = _FusionSeq(channels, kernel_sizes, double=False)

    def forward(self, features: Sequence[Tensor] | Tensor) -> Tensor:
        f = self.fusion
        return F.silu(f.bn1(f.pointwise1(f.depthwise1(mean_of(features)))))


class Head(nn.Module):
    """1x1 conv (no bias) to num_classes -> activation -> bilinear x2^(level+1). Key `conv.conv.weight`."""

    def __init__(self, in_channels: int, num_classes: int, level: int, activation: str | None) -> None:
        super().__init__()
        self.factor = 2 ** (level + 1)
        self.activation = activation
        self.conv = WrappedConv2d(in_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return upsample(apply_activation(self.conv(x), self.activation), self.factor)


def reparameterize_all(module: nn.Module) -> nn.Module:
    """Fold every SMSU inside `module` (in place); returns `module`."""
    for m in list(module.modules()):
        if isinstance(m, SMSU):
            m.reparameterize()
    return module
