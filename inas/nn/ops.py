"""Functional pieces shared by the supernet (dynamic) and stand-alone (static) networks.

The SMSU (searchable multi-scale unit, docs/design.md §6.1-6.2) math lives here once, so the supernet's eval path, the
stand-alone model's on-the-fly eval path and `reparameterize()` fold kernels in exactly the same way:

- kernel k of a unit uses the centre k x k crop of the unit's depthwise weight, multiplied by the unit's learnable
  (k², k²) transform `ks_k` (``F.linear`` on the flattened filter, initialised to identity);
- train path: one depthwise conv per kernel, each followed by its own BN, outputs averaged;
- folded path: each kernel's BN folded into its filter (w·γ/σ, bias β − μγ/σ), zero-padded centred to the largest
  kernel of the set, summed and divided by the number of kernels, then one depthwise conv with bias.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HEAD_ACTIVATIONS = ("sigmoid", "softmax", None)


def same_padding(kernel_size: int) -> int:
    """Padding that keeps 'same' output size for an odd kernel (stride 1, or stride 2 on even sizes)."""
    return (kernel_size - 1) // 2


def centre_crop(weight: Tensor, size: int) -> Tensor:
    """The centre `size` x `size` window of a (..., K, K) weight (a view; K - size must be even)."""
    full = weight.shape[-1]
    if full == size:
        return weight
    start = (full - size) // 2
    return weight[..., start : start + size, start : start + size]


def transform_kernel(weight: Tensor, transform: Tensor) -> Tensor:
    """Apply a (k², k²) kernel transform to a (C, 1, k, k) filter: ``F.linear`` on the flattened k² taps."""
    c, g, k, _ = weight.shape
    return F.linear(weight.reshape(c, g, k * k), transform).reshape(c, g, k, k)


def kernel_filter(weight: Tensor, kernel_size: int, transform: Tensor) -> Tensor:
    """Filter of kernel `kernel_size` of an SMSU: centre crop of `weight` (C, 1, K, K), then its transform."""
    return transform_kernel(centre_crop(weight, kernel_size), transform)


def batch_norm_2d(num_features: int, zero_init: bool = False) -> nn.BatchNorm2d:
    """A BatchNorm2d; `zero_init` starts its weight (gamma) at zero (the last BN of a residual branch)."""
    bn = nn.BatchNorm2d(num_features)
    if zero_init:
        nn.init.zeros_(bn.weight)
    return bn


def register_kernel_transforms(module: nn.Module, kernel_sizes: Sequence[int]) -> None:
    """Give an SMSU its per-kernel transform parameters `ks_k` (k², k²), initialised to the identity."""
    for k in kernel_sizes:
        module.register_parameter(f"ks_{k}", nn.Parameter(torch.eye(k * k)))


def multi_branch_depthwise(
    x: Tensor,
    weight: Tensor,
    kernel_sizes: Sequence[int],
    transforms: Sequence[Tensor],
    norms: Sequence[Callable[[Tensor], Tensor]],
    stride: int,
) -> Tensor:
    """SMSU train path. x (N, C, H, W), weight (C, 1, K, K) -> mean over kernels of norm_k(dwconv_k(x))."""
    channels = x.shape[1]
    out = None
    for k, transform, norm in zip(kernel_sizes, transforms, norms, strict=True):
        filt = kernel_filter(weight, k, transform)
        y = norm(F.conv2d(x, filt, None, stride, same_padding(k), 1, channels))
        out = y if out is None else out + y
    assert out is not None
    return out / len(kernel_sizes)


def fold_depthwise(
    weight: Tensor,
    kernel_sizes: Sequence[int],
    transforms: Sequence[Tensor],
    bn_stats: Sequence[tuple[Tensor, Tensor, Tensor, Tensor, float]],
) -> tuple[Tensor, Tensor]:
    """SMSU folded path: one (C, 1, kmax, kmax) filter and (C,) bias equal to the averaged kernel+BN branches.

    weight (C, 1, K, K) with K >= max(kernel_sizes); bn_stats per kernel: (running_mean, running_var, gamma, beta,
    eps), each vector of length C.
    """
    kmax = max(kernel_sizes)
    total_w: Tensor | None = None
    total_b: Tensor | None = None
    for k, transform, (mean, var, gamma, beta, eps) in zip(kernel_sizes, transforms, bn_stats, strict=True):
        scale = gamma / torch.sqrt(var + eps)
        filt = kernel_filter(weight, k, transform) * scale.reshape(-1, 1, 1, 1)
        bias = beta - mean * scale
        pad = (kmax - k) // 2
        if pad:
            filt = F.pad(filt, (pad, pad, pad, pad))
        total_w = filt if total_w is None else total_w + filt
        total_b = bias if total_b is None else total_b + bias
    assert total_w is not None and total_b is not None
    n = len(kernel_sizes)
    return total_w / n, total_b / n


def upsample(x: Tensor, factor: int) -> Tensor:
    """Bilinear upsampling by an integer factor with align_corners=True (nn.UpsamplingBilinear2d semantics)."""
    if factor == 1:
        return x
    return F.interpolate(x, scale_factor=float(factor), mode="bilinear", align_corners=True)


def mean_of(features: Sequence[Tensor] | Tensor) -> Tensor:
    """Average of branch features: a list of (N, C, H, W) tensors, or one stacked (N, n, C, H, W) tensor."""
    if isinstance(features, Tensor):
        if features.dim() == 5:
            return features.mean(dim=1)
        return features
    out = features[0]
    for f in features[1:]:
        out = out + f
    return out / len(features) if len(features) > 1 else out


def resolve_head_activation(head_activation: str | None, num_classes: int) -> str | None:
    """'auto' -> 'sigmoid' for one class (SOD), None (logits) otherwise; 'none' -> None; validates the value."""
    if head_activation == "auto":
        return "sigmoid" if num_classes == 1 else None
    if head_activation == "none":
        return None
    if head_activation not in HEAD_ACTIVATIONS:
        raise ValueError(f"head_activation must be 'auto', 'sigmoid', 'softmax' or None, got {head_activation!r}")
    return head_activation


def apply_activation(x: Tensor, activation: str | None) -> Tensor:
    if activation == "sigmoid":
        return torch.sigmoid(x)
    if activation == "softmax":
        return torch.softmax(x, dim=1)
    return x


def check_output_levels(output_levels: Sequence[int]) -> tuple[int, ...]:
    """Sorted unique output levels; must be a subset of 0..4 containing 0 (eval returns the level-0 map)."""
    levels = tuple(sorted({int(lv) for lv in output_levels}))
    if not levels or 0 not in levels or any(lv < 0 or lv > 4 for lv in levels):
        raise ValueError(f"output_levels must be a subset of 0..4 containing 0, got {list(output_levels)}")
    return levels


def batchnorm_modules(module: nn.Module) -> list[nn.BatchNorm2d]:
    """Every nn.BatchNorm2d inside `module` (the dynamic BN keeps its state in ordinary BatchNorm2d modules)."""
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
