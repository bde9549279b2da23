"""Dynamic (weight-sharing) modules of the supernet (docs/design.md §6.1).

Every module allocates its weights at the largest size of the space and runs a sub-network by slicing views:
first channels (`weight[:out, :in]`), first layers (the stage runs its first d layers), centre kernel crops.
The active sizes are passed as forward arguments (no per-call module state), so one supernet can run different
architectures back to back. Module attribute names reproduce the original iNAS state_dict keys (docs/design.md §6.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
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


class DynamicConv2d(nn.Module):
    """Conv2d allocated at (max_out, max_in, k, k); runs `weight[:out_channels, :x.shape[1]]` (bias[:out])."""

    def __init__(
        self, max_in_channels: int, max_out_channels: int, kernel_size: int = 1, stride: int = 1, padding: int = 0,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.max_out_channels = max_out_channels
        self.stride = stride
        self.padding = padding
        self.conv = nn.Conv2d(max_in_channels, max_out_channels, kernel_size, stride, padding, bias=bias)

    def forward(self, x: Tensor, out_channels: int) -> Tensor:
        """x (N, Cin, H, W) with Cin <= max_in -> (N, out_channels, H', W')."""
        weight = self.conv.weight
        bias = self.conv.bias
        in_channels = x.shape[1]
        if out_channels != weight.shape[0] or in_channels != weight.shape[1]:
            weight = weight[:out_channels, :in_channels]
            if bias is not None:
                bias = bias[:out_channels]
        return F.conv2d(x, weight, bias, self.stride, self.padding)


class DynamicBatchNorm2d(nn.Module):
    """One nn.BatchNorm2d of the max width; a c-channel input uses (and updates in place) the first c entries.

    The state lives in the ordinary `self.bn` (BatchNorm2d), so standard BN handling (train/eval flags, momentum,
    momentum=None cumulative averaging, resetting running stats) works on it; its `training` flag decides between
    batch statistics and running statistics. After `convert_sync_batchnorm` (`sync` set), a training forward that
    records gradients in a process group of more than one rank normalises with the statistics of the whole global
    batch (sum, sum of squares and count all-reduced per channel, differentiably), still on the first c channels;
    no-grad forwards (BN recalibration, which rank 0 runs alone) keep local statistics. `sync` is not state: the
    state-dict keys stay the same.
    """

    def __init__(self, num_features: int, zero_init: bool = False) -> None:
        super().__init__()
        self.bn = batch_norm_2d(num_features, zero_init)
        self.sync = False
        self.process_group: Any = None

    def forward(self, x: Tensor) -> Tensor:
        bn = self.bn
        c = x.shape[1]
        momentum = 0.0 if bn.momentum is None else bn.momentum
        if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
            bn.num_batches_tracked.add_(1)
            if bn.momentum is None:
                momentum = 1.0 / float(bn.num_batches_tracked)
        use_batch_stats = bn.training or bn.running_mean is None
        running_mean = bn.running_mean
        running_var = bn.running_var
        weight = bn.weight
        bias = bn.bias
        if running_mean is not None and c != running_mean.shape[0]:
            running_mean = running_mean[:c]
            running_var = running_var[:c]
        if weight is not None and c != weight.shape[0]:
            weight = weight[:c]
            bias = bias[:c]
        if bn.training and not bn.track_running_stats:
            running_mean = running_var = None
        if use_batch_stats and self._syncing():
            return sync_batch_norm(x, running_mean, running_var, weight, bias, momentum, bn.eps, self.process_group)
        return F.batch_norm(x, running_mean, running_var, weight, bias, use_batch_stats, momentum, bn.eps)

    def _syncing(self) -> bool:
        if not (self.sync and torch.is_grad_enabled() and dist.is_available() and dist.is_initialized()):
            return False
        return dist.get_world_size(self.process_group) > 1


def sync_batch_norm(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None,
                    bias: Tensor | None, momentum: float, eps: float, group: Any = None) -> Tensor:
    """Batch norm of x (N, C, H, W) with the statistics of the global batch over every rank of `group`.

    Per channel the sum, the sum of squares and the count are all-reduced (autograd-aware, so the gradient flows
    through the other ranks' statistics as with nn.SyncBatchNorm); works on gloo (CPU) and NCCL. The running
    statistics (views are fine) are updated in place with the unbiased global variance.
    """
    import torch.distributed.nn.functional as dist_nn  # imports torch's RPC modules: only when syncing

    c = x.shape[1]
    xf = x.float()
    count = xf.new_full((1,), float(xf.numel() // c))
    stats = dist_nn.all_reduce(torch.cat([xf.sum((0, 2, 3)), (xf * xf).sum((0, 2, 3)), count]), group=group)
    total = stats[-1]
    mean = stats[:c] / total
    var = (stats[c:2 * c] / total - mean * mean).clamp_min(0.0)
    if running_mean is not None and running_var is not None:
        with torch.no_grad():
            running_mean.mul_(1.0 - momentum).add_(mean.detach(), alpha=momentum)
            unbiased = var.detach() * total / (total - 1).clamp_min(1.0)
            running_var.mul_(1.0 - momentum).add_(unbiased, alpha=momentum)
    y = (xf - mean[None, :, None, None]) * torch.rsqrt(var + eps)[None, :, None, None]
    if weight is not None:
        y = y * weight.float()[None, :, None, None]
    if bias is not None:
        y = y + bias.float()[None, :, None, None]
    return y.to(x.dtype)


def convert_sync_batchnorm(module: nn.Module, process_group: Any = None) -> int:
    """Make every DynamicBatchNorm2d in `module` synchronise its training statistics over `process_group`
    (default: the whole world); returns how many. Parameters, buffers and their keys are unchanged."""
    count = 0
    for child in module.modules():
        if isinstance(child, DynamicBatchNorm2d):
            child.sync = True
            child.process_group = process_group
            count += 1
    return count


class DynamicSMSU(nn.Module):
    """Searchable multi-scale depthwise unit: one (C_max, 1, K, K) weight, K = max(kernel_sizes).

    Per kernel k: parameter `ks_k` (k², k²) initialised to identity and BN `bn_dict.ks_k`. Train mode runs one
    branch per active kernel (each with its BN) and averages; eval mode folds the active kernels into one conv.
    """

    def __init__(self, max_channels: int, kernel_sizes: Sequence[int], stride: int = 1) -> None:
        super().__init__()
        self.kernel_sizes = tuple(sorted(kernel_sizes))
        self.stride = stride
        k_max = max(self.kernel_sizes)
        register_kernel_transforms(self, self.kernel_sizes)
        self.conv = nn.Conv2d(max_channels, max_channels, k_max, stride, same_padding(k_max), groups=max_channels,
                              bias=False)
        self.bn_dict = nn.ModuleDict({f"ks_{k}": DynamicBatchNorm2d(max_channels) for k in self.kernel_sizes})

    def forward(self, x: Tensor, kernel_sizes: Sequence[int]) -> Tensor:
        """x (N, C, H, W) -> (N, C, H/stride, W/stride) for the active kernel set (sorted, subset of the unit's)."""
        c = x.shape[1]
        weight = self.conv.weight
        if c != weight.shape[0]:
            weight = weight[:c]
        params = self._parameters
        transforms = [params[f"ks_{k}"] for k in kernel_sizes]
        if self.training:
            norms = [self.bn_dict[f"ks_{k}"] for k in kernel_sizes]
            return multi_branch_depthwise(x, weight, kernel_sizes, transforms, norms, self.stride)
        stats = []
        for k in kernel_sizes:
            bn = self.bn_dict[f"ks_{k}"].bn
            stats.append((bn.running_mean[:c], bn.running_var[:c], bn.weight[:c], bn.bias[:c], bn.eps))
        filt, bias = fold_depthwise(weight, kernel_sizes, transforms, stats)
        return F.conv2d(x, filt, bias, self.stride, same_padding(filt.shape[-1]), 1, c)


class _SEFc(nn.Module):
    def __init__(self, max_channels: int, max_mid: int) -> None:
        super().__init__()
        self.reduce = DynamicConv2d(max_channels, max_mid, bias=True)
        self.expand = DynamicConv2d(max_mid, max_channels, bias=True)


class DynamicSE(nn.Module):
    """Squeeze-excitation on C channels: mean -> 1x1 conv(bias) to C//4 -> ReLU -> 1x1 conv(bias) -> Hardsigmoid."""

    REDUCTION = 4

    def __init__(self, max_channels: int) -> None:
        super().__init__()
        self.fc = _SEFc(max_channels, max_channels // self.REDUCTION)

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        y = x.mean((2, 3), keepdim=True)
        y = F.relu(self.fc.reduce(y, c // self.REDUCTION))
        y = F.hardsigmoid(self.fc.expand(y, c))
        return x * y


class _ConvBN(nn.Module):
    """Container `conv` (DynamicConv2d) + `bn` (DynamicBatchNorm2d); keys `<name>.conv.conv.*`, `<name>.bn.bn.*`."""

    def __init__(self, max_in: int, max_out: int, zero_init: bool = False) -> None:
        super().__init__()
        self.conv = DynamicConv2d(max_in, max_out)
        self.bn = DynamicBatchNorm2d(max_out, zero_init=zero_init)

    def forward(self, x: Tensor, out_channels: int) -> Tensor:
        return self.bn(self.conv(x, out_channels))


class _DepthConv(nn.Module):
    def __init__(self, max_channels: int, kernel_sizes: Sequence[int], stride: int) -> None:
        super().__init__()
        self.convbn = DynamicSMSU(max_channels, kernel_sizes, stride)
        self.se = DynamicSE(max_channels)

    def forward(self, x: Tensor, kernel_sizes: Sequence[int]) -> Tensor:
        return self.se(F.silu(self.convbn(x, kernel_sizes)))


class DynamicMBConvLayer(nn.Module):
    """MBConv: 1x1 expand (conv, BN, SiLU) -> SMSU (stride) -> SiLU -> SE -> 1x1 project (conv, BN zero-init).

    The residual is always added: plain when shapes match, else AvgPool2d(2, 2) when the spatial size differs and
    the 1x1 `identity_conv` (no BN, no bias) when the channel count differs. Hidden width = ratio x input width.
    """

    def __init__(self, max_in_channels: int, max_out_channels: int, stride: int, expand_ratio: int,
                 kernel_sizes: Sequence[int]) -> None:
        super().__init__()
        self.stride = stride
        self.expand_ratio = expand_ratio
        max_hidden = int(max_in_channels * expand_ratio)
        self.inverted_bottleneck = _ConvBN(max_in_channels, max_hidden)
        self.depth_conv = _DepthConv(max_hidden, kernel_sizes, stride)
        self.point_linear = _ConvBN(max_hidden, max_out_channels, zero_init=True)
        self.identity_conv = DynamicConv2d(max_in_channels, max_out_channels)

    def forward(self, x: Tensor, out_channels: int, kernel_sizes: Sequence[int]) -> Tensor:
        hidden = int(self.expand_ratio * x.shape[1])
        y = F.silu(self.inverted_bottleneck(x, hidden))
        y = self.depth_conv(y, kernel_sizes)
        y = self.point_linear(y, out_channels)
        residual = x
        if residual.shape[2] != y.shape[2]:
            residual = F.avg_pool2d(residual, 2, 2)
        if residual.shape[1] != y.shape[1]:
            residual = self.identity_conv(residual, out_channels)
        return y + residual


class _BranchSeq(nn.Module):
    """Container of a branch's `conv` and `bn` (keys `<branch>.upsample.conv.conv.*` etc.)."""

    def __init__(self, max_in: int, max_out: int) -> None:
        super().__init__()
        self.conv = DynamicConv2d(max_in, max_out)
        self.bn = DynamicBatchNorm2d(max_out)


class DynamicTransportUpsample(nn.Module):
    """Coarser level j -> level L: 1x1 conv, BN, bilinear x2^(j-L) (align_corners=True), no activation."""

    def __init__(self, level_diff: int, max_in_channels: int, max_out_channels: int) -> None:
        super().__init__()
        self.factor = 2**level_diff
        self.upsample = _BranchSeq(max_in_channels, max_out_channels)

    def forward(self, x: Tensor, out_channels: int) -> Tensor:
        return upsample(self.upsample.bn(self.upsample.conv(x, out_channels)), self.factor)


class DynamicTransportDownsample(nn.Module):
    """Finer level j -> level L: MaxPool(2^(L-j)), 1x1 conv, BN, no activation."""

    def __init__(self, level_diff: int, max_in_channels: int, max_out_channels: int) -> None:
        super().__init__()
        self.factor = 2**level_diff
        self.downsample = _BranchSeq(max_in_channels, max_out_channels)

    def forward(self, x: Tensor, out_channels: int) -> Tensor:
        x = F.max_pool2d(x, self.factor, self.factor)
        return self.downsample.bn(self.downsample.conv(x, out_channels))


class DynamicDecoderUpsample(nn.Module):
    """Decoded coarser level j -> level L: 1x1 conv, BN, SiLU, bilinear x2^(j-L) (align_corners=True)."""

    def __init__(self, level_diff: int, max_in_channels: int, max_out_channels: int) -> None:
        super().__init__()
        self.factor = 2**level_diff
        self.upsample = _BranchSeq(max_in_channels, max_out_channels)

    def forward(self, x: Tensor, out_channels: int) -> Tensor:
        return upsample(F.silu(self.upsample.bn(self.upsample.conv(x, out_channels))), self.factor)


class _FusionSeq(nn.Module):
    def __init__(self, max_channels: int, kernel_sizes: Sequence[int], double: bool) -> None:
        super().__init__()
        self.depthwise1 = DynamicSMSU(max_channels, kernel_sizes)
        self.pointwise1 = DynamicConv2d(max_channels, max_channels)
        self.bn1 = DynamicBatchNorm2d(max_channels)
        if double:
            self.depthwise2 = DynamicSMSU(max_channels, kernel_sizes)
            self.pointwise2 = DynamicConv2d(max_channels, max_channels)
            self.bn2 = DynamicBatchNorm2d(max_channels)


class DynamicTransportFusion(nn.Module):
    """Residual block on the mean of the branch features:
    SMSU -> 1x1 -> BN -> SiLU -> SMSU -> 1x1 -> BN, + mean, SiLU (both SMSUs use the same kernel set)."""

    def __init__(self, max_channels: int, kernel_sizes: Sequence[int]) -> None:
        super().__init__()
        self.fusion = _FusionSeq(max_channels, kernel_sizes, double=True)

    def forward(self, features: Sequence[Tensor], kernel_sizes: Sequence[int]) -> Tensor:
        x = mean_of(features)
        c = x.shape[1]
        f = self.fusion
        y = F.silu(f.bn1(f.pointwise1(f.depthwise1(x, kernel_sizes), c)))
        y = f.bn2(f.pointwise2(f.depthwise2(y, kernel_sizes), c))
        return F.silu(y + x)


class DynamicDecoderFusion(nn.Module):
    """Mean of the branch features -> SMSU -> 1x1 conv -> BN -> SiLU (no residual)."""

    def __init__(self, max_channels: int, kernel_sizes: Sequence[int]) -> None:
        super().__init__()
        self.fusion = _FusionSeq(max_channels, kernel_sizes, double=False)

    def forward(self, features: Sequence[Tensor], kernel_sizes: Sequence[int]) -> Tensor:
        x = mean_of(features)
        f = self.fusion
        return F.silu(f.bn1(f.pointwise1(f.depthwise1(x, kernel_sizes), x.shape[1])))


class DynamicHead(nn.Module):
    """Output head of level L: 1x1 conv (no bias) to num_classes -> activation -> bilinear x2^(L+1)."""

    def __init__(self, max_in_channels: int, num_classes: int, level: int, activation: str | None) -> None:
        super().__init__()
        self.factor = 2 ** (level + 1)
        self.num_classes = num_classes
        self.activation = activation
        self.conv = DynamicConv2d(max_in_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return upsample(apply_activation(self.conv(x, self.num_classes), self.activation), self.factor)
