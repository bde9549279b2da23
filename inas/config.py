"""Typed experiment configuration: YAML -> validated pydantic objects, with errors naming the file and the key.

Every section forbids unknown keys. Relative paths are relative to the current working directory.
Sections: `task`, `seed`, `space` (narrowing of the iNAS space), `data`, `model`; later issues add `train`,
`lut`, `search`. `python -m inas.run <verb> --help` and the README's config reference list every key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from inas.errors import BadInputError
from inas.space import SearchSpace, inas_space


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StageChoices(Section):
    widths: list[int] | None = Field(None, description="allowed output widths (subset of the iNAS choices)")
    depths: list[int] | None = Field(None, description="allowed depths (subset of the iNAS choices)")
    kernels: list[int] | None = Field(None, description="kernel sizes a layer's kernel set draws from")


class LevelChoices(Section):
    connections: list[int] | None = Field(None, description="candidate source levels (must keep the required ones)")
    kernels: list[int] | None = Field(None, description="kernel sizes the level's kernel set draws from")


class SpaceConfig(Section):
    """Narrowing of the iNAS space; everything left out keeps the full iNAS choices."""

    stages: dict[str, StageChoices] = Field(default_factory=dict, description="per stage name (stem, stage_1..7)")
    transport: dict[str, LevelChoices] = Field(default_factory=dict, description="per level name (level_0..4)")
    decoder: dict[str, LevelChoices] = Field(default_factory=dict, description="per level name (level_0..4)")

    def build(self) -> SearchSpace:
        """The narrowed SearchSpace (raises BadInputError naming the key if a choice is outside iNAS)."""

        def plain(d: dict[str, Section]) -> dict[str, dict[str, list[int]]]:
            return {k: v.model_dump(exclude_none=True) for k, v in d.items()}

        return inas_space().narrow(plain(self.stages), plain(self.transport), plain(self.decoder), source="space")


class DataConfig(Section):
    """Where the data lives and how it is fed."""

    root: Path = Field(Path("data/synth_sod"), description="data set root folder (lists are relative to it)")
    train_list: str = Field("train.lst", description="training list file (SOD: `<image> <mask>` per line)")
    val_list: str = Field("test.lst", description="validation list used during training and search")
    test_lists: list[str] = Field(default_factory=lambda: ["test.lst"], description="lists evaluated by `test`")
    image_size: int = Field(320, gt=0, description="square input side in pixels (multiple of 32)")
    multi_scale_sizes: list[int] = Field(
        default_factory=lambda: [288, 320, 352, 384],
        description="per-batch random input sides for training (multiples of 32); empty = off",
    )
    flip: bool = Field(True, description="random horizontal flip (p = 0.5) in training")
    batch_size: int = Field(10, gt=0, description="training batch size per worker")
    num_workers: int = Field(2, ge=0, description="DataLoader worker processes")
    crop_size: list[int] | None = Field(
        None, description="segmentation: training crop [H, W] (random resized crop, scale 0.5-2)"
    )
    num_classes: int = Field(19, gt=1, description="segmentation: number of classes (ignore index 255)")

    @field_validator("image_size")
    @classmethod
    def _multiple_of_32(cls, v: int) -> int:
        if v % 32:
            raise ValueError(f"must be a multiple of 32, got {v}")
        return v

    @field_validator("multi_scale_sizes")
    @classmethod
    def _sizes_multiple_of_32(cls, v: list[int]) -> list[int]:
        bad = [s for s in v if s <= 0 or s % 32]
        if bad:
            raise ValueError(f"every size must be a positive multiple of 32, got {bad}")
        return v


class ModelConfig(Section):
    output_levels: list[int] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4], description="decoder levels with an output head (deep supervision)"
    )

    @field_validator("output_levels")
    @classmethod
    def _levels(cls, v: list[int]) -> list[int]:
        if not v or 0 not in v or any(lv not in range(5) for lv in v):
            raise ValueError(f"must be a subset of 0..4 containing 0, got {v}")
        return sorted(set(v))


class ExperimentConfig(Section):
    """One experiment: the task, the space, the data and the model (later: train, lut, search)."""

    task: Literal["sod", "seg"] = Field("sod", description="sod: salient objects (1 class); seg: segmentation")
    seed: int = Field(0, description="global seed")
    space: SpaceConfig = Field(default_factory=SpaceConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)

    @property
    def num_classes(self) -> int:
        return 1 if self.task == "sod" else self.data.num_classes


def _format_validation_error(exc: ValidationError, source: str) -> str:
    problems = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "<root>"
        if err["type"] == "extra_forbidden":
            problems.append(f"{key}: unknown key")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{key}: {msg} (got {err.get('input')!r})")
    return f"{source}: " + "; ".join(problems)


def parse_config(doc: Any, source: str = "<config>") -> ExperimentConfig:
    """Validate a plain dict into an ExperimentConfig; BadInputError names `source` and every bad key."""
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise BadInputError(f"expected a mapping at the top level, got {type(doc).__name__}", path=source)
    try:
        config = ExperimentConfig.model_validate(doc)
    except ValidationError as exc:
        raise BadInputError(_format_validation_error(exc, source)) from None
    try:
        config.space.build()
    except BadInputError as exc:
        raise BadInputError(str(exc), path=source) from None
    return config


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a YAML experiment config."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError("config file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"config file cannot be read ({exc})", path=path) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise BadInputError(f"malformed YAML{where}: {problem}", path=path) from None
    return parse_config(doc, str(path))
