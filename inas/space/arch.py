"""`Arch`: one sub-network of the space, an immutable validated value with a stable id and a JSON form.

JSON schema (version 1):
    {"format": "inas-arch", "version": 1,
     "backbone": {"stem": {"widths": [40], "kernels": [[3]]},
                  "stage_1": {"widths": [24, 24], "kernels": [[3], [3]]}, ...},   # depth = len(widths)
     "transport": {"level_0": {"connections": [0, 1], "kernels": [3, 5]}, ...},
     "decoder": {"level_0": {"connections": [0, 1], "kernels": [3]}, ...}}
Connections and kernel sets are sets, stored sorted (the canonical form). The original iNAS saved format
(a JSON string holding a Python dict repr, with `np.int64(40)`-style scalars when written under NumPy >= 2) is
read by `inas.space.literal.parse_literal`, an `ast` walk that accepts only literals: nothing is evaluated.
Texts over 1 MiB and nesting deeper than 32 levels are refused with one line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from inas.errors import BadInputError, clip, excerpt
from inas.space.literal import MAX_CHARS, LiteralError, parse_literal
from inas.space.space import LEVEL_NAMES, LEVEL_STAGES, STAGE_NAMES, SearchSpace

ARCH_FORMAT = "inas-arch"
ARCH_VERSION = 1


class ArchError(BadInputError):
    """An architecture is malformed or outside the search space."""


@dataclass(frozen=True)
class StageArch:
    """One backbone stage: per-layer output width and kernel set (depth = number of layers)."""

    widths: tuple[int, ...]
    kernels: tuple[tuple[int, ...], ...]

    @property
    def depth(self) -> int:
        return len(self.widths)

    @property
    def out_channels(self) -> int:
        return self.widths[-1]


@dataclass(frozen=True)
class LevelArch:
    """One transport or decoder level: the source levels it fuses and its kernel set."""

    connections: tuple[int, ...]
    kernels: tuple[int, ...]


_MAX_CODED_VALUE = 52  # set members 0..52 have a bit in a mask that float64 holds exactly; other sets: mask -1
_CANONICAL_SETS: dict[tuple, tuple[tuple[int, ...], int]] = {}  # raw tuple -> (canonical set, bit mask)
_CANONICAL_SETS_MAX = 4096  # a space has a few hundred distinct sets; the bound only guards against odd input


def _canonical_set(values) -> tuple[tuple[int, ...], int]:
    """(sorted deduplicated plain-int tuple, bit mask of its members) of a kernel or connection set. The distinct
    raw tuples seen are remembered, so canonicalising a set is usually one dictionary lookup."""
    try:
        hit = _CANONICAL_SETS.get(values)
        hashable = True
    except TypeError:  # a list or an array
        hit, hashable = None, False
    if hit is None:
        canonical = tuple(sorted({int(v) for v in values}))
        in_range = all(0 <= v <= _MAX_CODED_VALUE for v in canonical)
        hit = canonical, (sum(1 << v for v in canonical) if in_range else -1)
        if hashable and len(_CANONICAL_SETS) < _CANONICAL_SETS_MAX:
            _CANONICAL_SETS[values] = hit
    return hit


def _int_set(values) -> tuple[int, ...]:
    return _canonical_set(values)[0]


@dataclass(frozen=True)
class Arch:
    """A sub-network: backbone stages in `STAGE_NAMES` order, transport and decoder levels 0..4.

    `code` (built with the canonical form, not a field): the whole arch as a flat tuple of ints, for vectorised
    consumers such as `LatencyPredictor.predict_many`:
        (n_stages, n_transport_levels, n_decoder_levels, depth of each stage...,
         (connection mask, kernel mask) of each transport then decoder level...,
         (width, kernel mask) of each layer, stage by stage...)
    A mask has bit v set for each member v of the set; a set with a member outside 0..52 has the mask -1.
    """

    backbone: tuple[StageArch, ...]
    transport: tuple[LevelArch, ...]
    decoder: tuple[LevelArch, ...]

    def __post_init__(self) -> None:
        # Canonical form: sets sorted and deduplicated, everything plain ints in tuples. The same pass builds `code`.
        backbone, depths, layer_code = [], [], []
        for stage in self.backbone:
            widths = tuple(map(int, stage.widths))
            kernels = []
            for width, kernel_set in zip(widths, stage.kernels, strict=False):  # validate_arch reports a mismatch
                canonical, mask = _canonical_set(kernel_set)
                kernels.append(canonical)
                layer_code += (width, mask)
            kernels += map(_int_set, stage.kernels[len(widths):])
            backbone.append(StageArch(widths, tuple(kernels)))
            depths.append(len(widths))
        level_code, parts = [], []
        for part in (self.transport, self.decoder):
            levels = []
            for level in part:
                connections, connection_mask = _canonical_set(level.connections)
                kernels, kernel_mask = _canonical_set(level.kernels)
                levels.append(LevelArch(connections, tuple(kernels)))
                level_code += (connection_mask, kernel_mask)
            parts.append(tuple(levels))
        object.__setattr__(self, "backbone", tuple(backbone))
        object.__setattr__(self, "transport", parts[0])
        object.__setattr__(self, "decoder", parts[1])
        object.__setattr__(self, "code", (len(backbone), len(parts[0]), len(parts[1]), *depths, *level_code,
                                          *layer_code))

    # ----- accessors -------------------------------------------------------------------------------------------
    def stage(self, name: str) -> StageArch:
        return self.backbone[STAGE_NAMES.index(name)]

    @property
    def level_channels(self) -> tuple[int, ...]:
        """Channels of pyramid levels 0..4 (last width of stage_1, stage_2, stage_3, stage_5, stage_7)."""
        return tuple(self.stage(name).out_channels for name in LEVEL_STAGES)

    # ----- JSON ------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": ARCH_FORMAT,
            "version": ARCH_VERSION,
            "backbone": {
                name: {"widths": list(s.widths), "kernels": [list(k) for k in s.kernels]}
                for name, s in zip(STAGE_NAMES, self.backbone, strict=True)
            },
            "transport": {
                name: {"connections": list(lv.connections), "kernels": list(lv.kernels)}
                for name, lv in zip(LEVEL_NAMES, self.transport, strict=True)
            },
            "decoder": {
                name: {"connections": list(lv.connections), "kernels": list(lv.kernels)}
                for name, lv in zip(LEVEL_NAMES, self.decoder, strict=True)
            },
        }

    def to_json(self, indent: int | None = None) -> str:
        """Canonical compact JSON (sorted keys, no spaces); with `indent`, a readable layout, one line per entry."""
        doc = self.to_dict()
        if indent is None:
            return json.dumps(doc, sort_keys=True, separators=(",", ":"))
        pad = " " * indent
        lines = ["{", f'{pad}"format": "{ARCH_FORMAT}",', f'{pad}"version": {ARCH_VERSION},']
        for p, part in enumerate(("backbone", "transport", "decoder")):
            lines.append(f'{pad}"{part}": {{')
            entries = list(doc[part].items())
            for i, (name, entry) in enumerate(entries):
                comma = "," if i < len(entries) - 1 else ""
                lines.append(f'{pad * 2}"{name}": {json.dumps(entry)}{comma}')
            lines.append(f"{pad}}}" + ("," if p < 2 else ""))
        lines.append("}")
        return "\n".join(lines) + "\n"

    @cached_property
    def arch_id(self) -> str:
        """Stable short id: the first 12 hex digits of the SHA-1 of the canonical JSON."""
        return hashlib.sha1(self.to_json().encode("utf-8")).hexdigest()[:12]

    def to_original(self, space: SearchSpace) -> dict[str, Any]:
        """The original iNAS cfg dict (backbone_cfg / transport_cfg / decoder_cfg)."""
        backbone = {}
        for stage_space, s in zip(space.stages, self.backbone, strict=True):
            backbone[stage_space.name] = {
                "depth": s.depth,
                "ratio": stage_space.expand_ratio,
                "stride": stage_space.stride,
                "kernel": [list(k) for k in s.kernels],
                "filter": list(s.widths),
            }
        return {
            "backbone_cfg": backbone,
            "transport_cfg": {n: {"connection": list(lv.connections), "kernel": list(lv.kernels)}
                              for n, lv in zip(LEVEL_NAMES, self.transport, strict=True)},
            "decoder_cfg": {n: {"connection": list(lv.connections), "kernel": list(lv.kernels)}
                            for n, lv in zip(LEVEL_NAMES, self.decoder, strict=True)},
        }


# ----- parsing -----------------------------------------------------------------------------------------------------
def _int_list(value: Any, key: str, source: str | None) -> list[int]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ArchError(f"expected a list of integers, got {excerpt(value)}", path=source, key=key)
    return list(value)


def _mapping(value: Any, key: str, source: str | None, expected_keys: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ArchError(f"expected an object with keys {list(expected_keys)}, got {type(value).__name__}",
                        path=source, key=key)
    missing = [k for k in expected_keys if k not in value]
    extra = [k for k in value if k not in expected_keys]
    if missing or extra:
        detail = "; ".join(p for p in (f"missing {missing}" if missing else "",
                                        f"unknown {excerpt(extra)}" if extra else "") if p)
        raise ArchError(f"{detail}; expected keys {list(expected_keys)}", path=source, key=key)
    return value


def arch_from_dict(doc: Any, space: SearchSpace, source: str | None = None) -> Arch:
    """Parse and validate our JSON document (see module docstring). Raises ArchError naming the field."""
    doc = _mapping(doc, "<root>", source, ("format", "version", "backbone", "transport", "decoder"))
    if doc["format"] != ARCH_FORMAT:
        raise ArchError(f"expected {ARCH_FORMAT!r}, got {excerpt(doc['format'])}", path=source, key="format")
    if doc["version"] != ARCH_VERSION:
        raise ArchError(f"unsupported version {excerpt(doc['version'])}; expected {ARCH_VERSION}", path=source,
                        key="version")
    backbone_doc = _mapping(doc["backbone"], "backbone", source, STAGE_NAMES)
    stages = []
    for name in STAGE_NAMES:
        entry = _mapping(backbone_doc[name], f"backbone.{name}", source, ("widths", "kernels"))
        widths = _int_list(entry["widths"], f"backbone.{name}.widths", source)
        kernels_raw = entry["kernels"]
        if not isinstance(kernels_raw, list | tuple):
            raise ArchError(f"expected a list of kernel sets, got {excerpt(kernels_raw)}", path=source,
                            key=f"backbone.{name}.kernels")
        kernels = [_int_list(k, f"backbone.{name}.kernels[{i}]", source) for i, k in enumerate(kernels_raw)]
        stages.append(StageArch(tuple(widths), tuple(tuple(k) for k in kernels)))
    parts = {}
    for part in ("transport", "decoder"):
        part_doc = _mapping(doc[part], part, source, LEVEL_NAMES)
        levels = []
        for name in LEVEL_NAMES:
            entry = _mapping(part_doc[name], f"{part}.{name}", source, ("connections", "kernels"))
            levels.append(LevelArch(tuple(_int_list(entry["connections"], f"{part}.{name}.connections", source)),
                                    tuple(_int_list(entry["kernels"], f"{part}.{name}.kernels", source))))
        parts[part] = tuple(levels)
    arch = Arch(tuple(stages), parts["transport"], parts["decoder"])
    validate_arch(arch, space, source)
    return arch


def arch_from_original(cfg: Any, space: SearchSpace, source: str | None = None) -> Arch:
    """Parse the original iNAS cfg dict (docs/design.md §5.5). Ratio and stride must match the space."""
    cfg = _mapping(cfg, "<root>", source, ("backbone_cfg", "transport_cfg", "decoder_cfg"))
    backbone_cfg = _mapping(cfg["backbone_cfg"], "backbone_cfg", source, STAGE_NAMES)
    stages = []
    for stage_space in space.stages:
        name = stage_space.name
        entry = _mapping(backbone_cfg[name], f"backbone_cfg.{name}", source,
                         ("depth", "ratio", "stride", "kernel", "filter"))
        for field, expected in (("ratio", stage_space.expand_ratio), ("stride", stage_space.stride)):
            if entry[field] != expected:
                raise ArchError(f"is {excerpt(entry[field])}; this space fixes it to {expected}", path=source,
                                key=f"backbone_cfg.{name}.{field}")
        widths = _int_list(entry["filter"], f"backbone_cfg.{name}.filter", source)
        if not isinstance(entry["kernel"], list | tuple):
            raise ArchError(f"expected a list of kernel sets, got {excerpt(entry['kernel'])}", path=source,
                            key=f"backbone_cfg.{name}.kernel")
        kernels = [_int_list(k, f"backbone_cfg.{name}.kernel[{i}]", source) for i, k in enumerate(entry["kernel"])]
        if entry["depth"] != len(widths):
            raise ArchError(f"is {excerpt(entry['depth'])} but 'filter' has {len(widths)} entries", path=source,
                            key=f"backbone_cfg.{name}.depth")
        if name == "stem":  # the network ignores the stem's kernel entry
            kernels = [[3]]
        stages.append(StageArch(tuple(widths), tuple(tuple(k) for k in kernels)))
    parts = {}
    for part in ("transport", "decoder"):
        part_cfg = _mapping(cfg[f"{part}_cfg"], f"{part}_cfg", source, LEVEL_NAMES)
        levels = []
        for name in LEVEL_NAMES:
            entry = _mapping(part_cfg[name], f"{part}_cfg.{name}", source, ("connection", "kernel"))
            levels.append(LevelArch(tuple(_int_list(entry["connection"], f"{part}_cfg.{name}.connection", source)),
                                    tuple(_int_list(entry["kernel"], f"{part}_cfg.{name}.kernel", source))))
        parts[part] = tuple(levels)
    arch = Arch(tuple(stages), parts["transport"], parts["decoder"])
    validate_arch(arch, space, source)
    return arch


def validate_arch(arch: Arch, space: SearchSpace, source: str | None = None) -> None:
    """Raise ArchError naming the field, the value and the allowed values if `arch` is outside `space`."""
    if len(arch.backbone) != len(space.stages):
        raise ArchError(f"expected {len(space.stages)} stages, got {len(arch.backbone)}", path=source, key="backbone")
    for stage_space, s in zip(space.stages, arch.backbone, strict=True):
        key = f"backbone.{stage_space.name}"
        if s.depth not in stage_space.depths:
            raise ArchError(f"depth {s.depth} (number of widths) is not allowed; allowed depths are "
                            f"{list(stage_space.depths)}", path=source, key=f"{key}.widths")
        if len(s.kernels) != s.depth:
            raise ArchError(f"has {len(s.kernels)} kernel sets for {s.depth} layers; expected one per layer",
                            path=source, key=f"{key}.kernels")
        for i, w in enumerate(s.widths):
            if w not in stage_space.widths:
                raise ArchError(f"width {w} is not allowed; allowed widths are {list(stage_space.widths)}",
                                path=source, key=f"{key}.widths[{i}]")
        for i, ks in enumerate(s.kernels):
            if ks not in stage_space.kernel_sets:
                raise ArchError(f"kernel set {list(ks)} is not allowed; allowed: a non-empty subset of "
                                f"{list(stage_space.kernels)}", path=source, key=f"{key}.kernels[{i}]")
    for part, levels_space, levels in (("transport", space.transport, arch.transport),
                                       ("decoder", space.decoder, arch.decoder)):
        if len(levels) != len(levels_space):
            raise ArchError(f"expected {len(levels_space)} levels, got {len(levels)}", path=source, key=part)
        for lv_space, lv in zip(levels_space, levels, strict=True):
            key = f"{part}.{lv_space.name}"
            if lv.connections not in lv_space.connection_sets:
                raise ArchError(f"connection set {list(lv.connections)} is not allowed; allowed: a subset of "
                                f"{list(lv_space.connections)} containing {list(lv_space.required)}",
                                path=source, key=f"{key}.connections")
            if lv.kernels not in lv_space.kernel_sets:
                raise ArchError(f"kernel set {list(lv.kernels)} is not allowed; allowed: a non-empty subset of "
                                f"{list(lv_space.kernels)}", path=source, key=f"{key}.kernels")


def arch_from_json(text: str, space: SearchSpace, source: str | None = None) -> Arch:
    """Parse an Arch from JSON text in our format or the original iNAS saved format."""
    if len(text) > MAX_CHARS:
        raise ArchError(f"longer than {MAX_CHARS} characters; an arch file is a few KB", path=source)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArchError(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", path=source) from None
    except RecursionError:
        raise ArchError("not valid JSON (nested too deeply)", path=source) from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise ArchError(f"not valid JSON ({clip(str(exc), 120)})", path=source) from None
    if isinstance(doc, str):  # original iNAS: json.dump(str(cfg)) -> a JSON string holding a Python dict repr
        try:
            doc = parse_literal(doc)
        except LiteralError as exc:
            raise ArchError(f"holds a string that is not a Python dict literal ({exc})", path=source) from None
    if isinstance(doc, Mapping) and "backbone_cfg" in doc:
        return arch_from_original(doc, space, source)
    return arch_from_dict(doc, space, source)


def load_arch(path: str | Path, space: SearchSpace) -> Arch:
    """Read an Arch JSON file (ours or the original's saved format)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CHARS:
            raise ArchError(f"larger than {MAX_CHARS >> 20} MiB; an arch file is a few KB", path=path)
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArchError("file not found", path=path) from None
    except (OSError, UnicodeError, ValueError) as exc:
        raise ArchError(f"cannot be read ({clip(str(exc), 200)})", path=path) from None
    return arch_from_json(text, space, str(path))
