"""The weight-sharing supernet (docs/design.md §5-6): backbone -> transport -> top-down decoder -> heads.

    supernet = Supernet(space, num_classes=1, output_levels=(0, 1, 2, 3, 4), head_activation="auto")
    out = supernet(images, arch)   # images (N, 3, H, W), H and W multiples of 32; arch defaults to the max arch

Train mode returns {level: map (N, num_classes, H, W)} for every output level (deep supervision); eval mode returns
the level-0 map tensor (N, num_classes, H, W). Max widths, depths, kernels and connections come from `space`, so a
narrowed space builds a smaller supernet. Parameter names equal the original iNAS supernet's (docs/design.md §6.4).
Activations run in channels_last memory format (faster depthwise convs on CPU); outputs hold the same values.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inas.nn.dynamic import (
    DynamicBatchNorm2d,
    DynamicConv2d,
    DynamicDecoderFusion,
    DynamicDecoderUpsample,
    DynamicHead,
    DynamicMBConvLayer,
    DynamicTransportDownsample,
    DynamicTransportFusion,
    DynamicTransportUpsample,
)
from inas.nn.ops import check_output_levels, resolve_head_activation
from inas.space import LEVEL_STAGES, NUM_LEVELS, Arch, LevelArch, SearchSpace, StageArch, sample_max, validate_arch

_VALIDATED_CACHE_SIZE = 4096


def check_input(x: Tensor) -> None:
    """Images must be (N, 3, H, W) with H and W multiples of 32 (the deepest level has stride 32)."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(x.shape)}")
    if x.shape[2] % 32 or x.shape[3] % 32:
        raise ValueError(f"image height and width must be multiples of 32, got {tuple(x.shape[2:])}")


class _DynamicStem(nn.Module):
    def __init__(self, max_channels: int) -> None:
        super().__init__()
        self.stemconv = DynamicConv2d(3, max_channels, kernel_size=3, stride=2, padding=1)
        self.stemnorm = DynamicBatchNorm2d(max_channels)

    def forward(self, x: Tensor, out_channels: int) -> Tensor:
        return F.silu(self.stemnorm(self.stemconv(x, out_channels)))


class DynamicBackbone(nn.Module):
    """Stem + stage_1..stage_7, each stage a list of max-depth MBConv layers; returns the 5 pyramid levels."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        stem = space.stages[0]
        self.stem = _DynamicStem(stem.max_width)
        self.stage_names = tuple(s.name for s in space.stages[1:])
        prev = stem.max_width
        for stage in space.stages[1:]:
            layers = nn.ModuleList()
            for d in range(stage.max_depth):
                layers.append(DynamicMBConvLayer(prev if d == 0 else stage.max_width, stage.max_width,
                                                 stage.stride if d == 0 else 1, stage.expand_ratio, stage.kernels))
            self.add_module(stage.name, layers)
            prev = stage.max_width
        self._tapped = tuple(name in LEVEL_STAGES for name in self.stage_names)

    def forward(self, x: Tensor, stages: Sequence[StageArch]) -> list[Tensor]:
        """x (N, 3, H, W) -> [level_0 (N, C0, H/2, W/2), ..., level_4 (N, C4, H/32, W/32)]."""
        x = self.stem(x, stages[0].widths[0])
        levels = []
        for name, stage, tapped in zip(self.stage_names, stages[1:], self._tapped, strict=True):
            layers = self._modules[name]
            for d, (width, kernels) in enumerate(zip(stage.widths, stage.kernels, strict=True)):
                x = layers[d](x, width, kernels)
            if tapped:
                levels.append(x)
        return levels


class DynamicTransport(nn.Module):
    """Per level L: average of branch features from the backbone levels in its connection set, then fusion."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        channels = space.max_level_channels
        self.mainops = nn.ModuleDict()
        self.branches = nn.ModuleDict()
        for lv in space.transport:
            L = lv.level
            self.mainops[f"level_{L}"] = DynamicTransportFusion(channels[L], lv.kernels)
            branches = nn.ModuleDict()
            for j in lv.connections:
                if j > L:
                    branches[str(j)] = DynamicTransportUpsample(j - L, channels[j], channels[L])
                elif j < L:
                    branches[str(j)] = DynamicTransportDownsample(L - j, channels[j], channels[L])
            self.branches[f"level_{L}"] = branches

    def forward(self, feats: Sequence[Tensor], levels: Sequence[LevelArch]) -> list[Tensor]:
        out = []
        for L, lv in enumerate(levels):
            name = f"level_{L}"
            c = feats[L].shape[1]
            branches = self.branches[name]
            inputs = [feats[j] if j == L else branches[str(j)](feats[j], c) for j in lv.connections]
            out.append(self.mainops[name](inputs, lv.kernels))
        return out


class DynamicDecoder(nn.Module):
    """Top-down (level 4 -> 0): level L fuses its transport output with ALREADY-DECODED coarser levels; heads."""

    def __init__(self, space: SearchSpace, num_classes: int, output_levels: Sequence[int],
                 activation: str | None) -> None:
        super().__init__()
        channels = space.max_level_channels
        self.output_levels = tuple(output_levels)
        self.mainops = nn.ModuleDict()
        self.branches = nn.ModuleDict()
        for lv in space.decoder:
            L = lv.level
            self.mainops[f"level_{L}"] = DynamicDecoderFusion(channels[L], lv.kernels)
            self.branches[f"level_{L}"] = nn.ModuleDict(
                {str(j): DynamicDecoderUpsample(j - L, channels[j], channels[L]) for j in lv.connections if j > L}
            )
        self.decoder_dict = nn.ModuleDict(
            {f"level_{L}": DynamicHead(channels[L], num_classes, L, activation) for L in self.output_levels}
        )

    def forward(self, feats: Sequence[Tensor], levels: Sequence[LevelArch]) -> dict[int, Tensor] | Tensor:
        x = list(feats)
        for L in range(NUM_LEVELS - 1, -1, -1):
            name = f"level_{L}"
            lv = levels[L]
            c = x[L].shape[1]
            branches = self.branches[name]
            inputs = [x[j] if j == L else branches[str(j)](x[j], c) for j in lv.connections]
            x[L] = self.mainops[name](inputs, lv.kernels)
        if self.training:
            return {L: self.decoder_dict[f"level_{L}"](x[L]) for L in self.output_levels}
        return self.decoder_dict["level_0"](x[0])


class Supernet(nn.Module):
    """The iNAS supernet over `space` (see the module docstring for the call contract).

    num_classes: 1 for SOD, N for segmentation. output_levels: decoder levels with a head (must contain 0).
    head_activation: "auto" (sigmoid for 1 class, logits otherwise), "sigmoid", "softmax" or None (logits).
    """

    def __init__(self, space: SearchSpace, num_classes: int = 1, output_levels: Sequence[int] = (0, 1, 2, 3, 4),
                 head_activation: str | None = "auto") -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.space = space
        self.num_classes = int(num_classes)
        self.output_levels = check_output_levels(output_levels)
        self.head_activation = resolve_head_activation(head_activation, num_classes)
        self.max_arch = sample_max(space)
        self.backbone = DynamicBackbone(space)
        self.transport = DynamicTransport(space)
        self.decoder = DynamicDecoder(space, self.num_classes, self.output_levels, self.head_activation)
        self._validated: set[Arch] = {self.max_arch}

    def check_arch(self, arch: Arch) -> None:
        """Raise ArchError (a BadInputError) if `arch` is outside this supernet's space (cached per arch)."""
        if arch in self._validated:
            return
        validate_arch(arch, self.space)
        if len(self._validated) >= _VALIDATED_CACHE_SIZE:
            self._validated = {self.max_arch}
        self._validated.add(arch)

    def forward(self, x: Tensor, arch: Arch | None = None) -> dict[int, Tensor] | Tensor:
        """x (N, 3, H, W) -> train: {level: (N, num_classes, H, W)}; eval: level-0 map (N, num_classes, H, W)."""
        check_input(x)
        # channels_last: oneDNN's depthwise convs (4 per SMSU in training) run 2-3x faster than in NCHW on CPU.
        x = x.contiguous(memory_format=torch.channels_last)
        if arch is None:
            arch = self.max_arch
        else:
            self.check_arch(arch)
        feats = self.backbone(x, arch.backbone)
        feats = self.transport(feats, arch.transport)
        return self.decoder(feats, arch.decoder)

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, output_levels={self.output_levels}, "
                f"head_activation={self.head_activation!r}")
