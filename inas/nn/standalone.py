"""The stand-alone model of one architecture (docs/design.md §6.3), and weight extraction from the supernet.

    model = StandaloneModel.from_arch(space, arch, num_classes=1, output_levels=(0, 1, 2, 3, 4))
    model = extract_subnet(supernet, arch)          # sliced supernet weights, SMSUs folded, eval mode

Static sizes; forward semantics equal the supernet's for that arch (train: {level: map}, eval: level-0 map);
state_dict keys equal the supernet's (and the original iNAS stand-alone's). Before `reparameterize()` each SMSU has a
conv of size max(kernel set), its ks_k matrices and bn_dict; afterwards one depthwise conv with bias. A folded model
exports to ONNX (eval mode returns one tensor). Activations run in channels_last memory format, as in the supernet.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from inas.nn.blocks import (
    DecoderFusion,
    DecoderUpsample,
    Head,
    MBConvLayer,
    Stem,
    TransportDownsample,
    TransportFusion,
    TransportUpsample,
    reparameterize_all,
)
from inas.nn.ops import check_output_levels, resolve_head_activation
from inas.nn.supernet import Supernet, check_input
from inas.space import LEVEL_STAGES, NUM_LEVELS, Arch, SearchSpace, validate_arch


class Backbone(nn.Module):
    """Static backbone of an arch: stem + stage_1..stage_7 (ModuleLists of the arch's depth)."""

    def __init__(self, space: SearchSpace, arch: Arch) -> None:
        super().__init__()
        self.stem = Stem(arch.backbone[0].widths[0])
        self.stage_names = tuple(s.name for s in space.stages[1:])
        prev = arch.backbone[0].widths[0]
        for stage_space, stage in zip(space.stages[1:], arch.backbone[1:], strict=True):
            layers = nn.ModuleList()
            for d, (width, kernels) in enumerate(zip(stage.widths, stage.kernels, strict=True)):
                layers.append(MBConvLayer(prev, width, stage_space.stride if d == 0 else 1, stage_space.expand_ratio,
                                          kernels))
                prev = width
            self.add_module(stage_space.name, layers)
        self._tapped = tuple(name in LEVEL_STAGES for name in self.stage_names)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        levels = []
        for name, tapped in zip(self.stage_names, self._tapped, strict=True):
            for layer in self._modules[name]:
                x = layer(x)
            if tapped:
                levels.append(x)
        return levels


class Transport(nn.Module):
    def __init__(self, arch: Arch) -> None:
        super().__init__()
        channels = arch.level_channels
        self.connections = tuple(lv.connections for lv in arch.transport)
        self.mainops = nn.ModuleDict()
        self.branches = nn.ModuleDict()
        for L, lv in enumerate(arch.transport):
            self.mainops[f"level_{L}"] = TransportFusion(channels[L], lv.kernels)
            branches = nn.ModuleDict()
            for j in lv.connections:
                if j > L:
                    branches[str(j)] = TransportUpsample(j - L, channels[j], channels[L])
                elif j < L:
                    branches[str(j)] = TransportDownsample(L - j, channels[j], channels[L])
            self.branches[f"level_{L}"] = branches

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        out = []
        for L, connections in enumerate(self.connections):
            name = f"level_{L}"
            branches = self.branches[name]
            inputs = [feats[j] if j == L else branches[str(j)](feats[j]) for j in connections]
            out.append(self.mainops[name](inputs))
        return out


class Decoder(nn.Module):
    def __init__(self, arch: Arch, num_classes: int, output_levels: Sequence[int], activation: str | None) -> None:
        super().__init__()
        channels = arch.level_channels
        self.connections = tuple(lv.connections for lv in arch.decoder)
        self.output_levels = tuple(output_levels)
        self.mainops = nn.ModuleDict()
        self.branches = nn.ModuleDict()
        for L, lv in enumerate(arch.decoder):
            self.mainops[f"level_{L}"] = DecoderFusion(channels[L], lv.kernels)
            self.branches[f"level_{L}"] = nn.ModuleDict(
                {str(j): DecoderUpsample(j - L, channels[j], channels[L]) for j in lv.connections if j > L}
            )
        self.decoder_dict = nn.ModuleDict(
            {f"level_{L}": Head(channels[L], num_classes, L, activation) for L in self.output_levels}
        )

    def forward(self, feats: Sequence[Tensor]) -> dict[int, Tensor] | Tensor:
        x = list(feats)
        for L in range(NUM_LEVELS - 1, -1, -1):
            name = f"level_{L}"
            branches = self.branches[name]
            inputs = [x[j] if j == L else branches[str(j)](x[j]) for j in self.connections[L]]
            x[L] = self.mainops[name](inputs)
        if self.training:
            return {L: self.decoder_dict[f"level_{L}"](x[L]) for L in self.output_levels}
        return self.decoder_dict["level_0"](x[0])


class StandaloneModel(nn.Module):
    """One architecture with static sizes. x (N, 3, H, W), H, W multiples of 32 -> train: {level: (N, K, H, W)};
    eval: level-0 map (N, K, H, W)."""

    def __init__(self, space: SearchSpace, arch: Arch, num_classes: int = 1,
                 output_levels: Sequence[int] = (0, 1, 2, 3, 4), head_activation: str | None = "auto") -> None:
        super().__init__()
        validate_arch(arch, space)
        self.space = space
        self.arch = arch
        self.num_classes = int(num_classes)
        self.output_levels = check_output_levels(output_levels)
        self.head_activation = resolve_head_activation(head_activation, num_classes)
        self.backbone = Backbone(space, arch)
        self.transport = Transport(arch)
        self.decoder = Decoder(arch, self.num_classes, self.output_levels, self.head_activation)
        self.folded = False

    @classmethod
    def from_arch(cls, space: SearchSpace, arch: Arch, num_classes: int = 1,
                  output_levels: Sequence[int] = (0, 1, 2, 3, 4),
                  head_activation: str | None = "auto") -> StandaloneModel:
        """A freshly initialised (unfolded) stand-alone model of `arch`."""
        return cls(space, arch, num_classes, output_levels, head_activation)

    def reparameterize(self) -> StandaloneModel:
        """Fold every SMSU's kernel branches and BNs into one depthwise conv with bias (in place; idempotent)."""
        reparameterize_all(self)
        self.folded = True
        return self

    def forward(self, x: Tensor) -> dict[int, Tensor] | Tensor:
        if not torch.jit.is_tracing() and not torch.compiler.is_compiling():
            check_input(x)
        # channels_last as in the supernet: faster depthwise convs on CPU, and the same kernels (so the same
        # float rounding) as the supernet's eval path.
        x = x.contiguous(memory_format=torch.channels_last)
        return self.decoder(self.transport(self.backbone(x)))

    def extra_repr(self) -> str:
        return (f"arch_id={self.arch.arch_id}, num_classes={self.num_classes}, output_levels={self.output_levels}, "
                f"head_activation={self.head_activation!r}, folded={self.folded}")


def slice_like(source: Tensor, shape: Sequence[int]) -> Tensor:
    """Cut a supernet tensor to a sub-network shape (docs/design.md §6.3): 0-D as is; dims 0 and 1 keep the first
    entries (1-D prefix, 2-D [:a, :b]); the spatial dims of 4-D conv weights keep the centre crop."""
    shape = tuple(shape)
    if tuple(source.shape) == shape:
        return source
    if source.dim() != len(shape) or any(s > t for s, t in zip(shape, source.shape, strict=True)):
        raise ValueError(f"cannot slice a tensor of shape {tuple(source.shape)} to {shape}")
    if source.dim() == 4:
        kh, kw = source.shape[2], source.shape[3]
        h0, w0 = (kh - shape[2]) // 2, (kw - shape[3]) // 2
        return source[: shape[0], : shape[1], h0 : h0 + shape[2], w0 : w0 + shape[3]]
    return source[tuple(slice(0, n) for n in shape)]


@torch.no_grad()
def extract_subnet(supernet: Supernet, arch: Arch, *, output_levels: Sequence[int] | None = None,
                   fold: bool = True) -> StandaloneModel:
    """The stand-alone model of `arch` with the supernet's weights sliced in (first channels, first layers,
    centre kernels), then folded (fold=True). Returned in eval mode. output_levels defaults to the supernet's and
    must be a subset of them."""
    levels = supernet.output_levels if output_levels is None else check_output_levels(output_levels)
    missing_heads = [lv for lv in levels if lv not in supernet.output_levels]
    if missing_heads:
        raise ValueError(f"the supernet has no head for levels {missing_heads}; it has {list(supernet.output_levels)}")
    model = StandaloneModel(supernet.space, arch, supernet.num_classes, levels, supernet.head_activation)
    source = supernet.state_dict()
    target = model.state_dict()
    model.load_state_dict({k: slice_like(source[k], v.shape) for k, v in target.items()}, strict=True)
    model.to(next(supernet.parameters()).device)
    if fold:
        model.reparameterize()
    return model.eval()
