"""Typed experiment configuration: YAML -> validated pydantic objects, with errors naming the file and the key.

Every section forbids unknown keys. Relative paths are relative to the current working directory: `load_config`
makes them absolute, so every process of a run (Ray workers included) reads the same files.
Sections: `task`, `seed`, `space` (narrowing of the iNAS space), `data`, `model`; later issues add `train`,
`lut`, `search`. `python -m inas.run <verb> --help` and the README's config reference list every key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from inas.errors import BadInputError, clip, excerpt
from inas.space import SearchSpace, inas_space
from inas.validation_problems import key_path, problem_text

MAX_IMAGE_SIDE = 4096  # pixels: bounds every image, crop and timing size
MAX_BATCH = 1024
MAX_WORKERS = 256
MAX_CLASSES = 255  # labels are 8-bit trainIds with 255 = ignore
MAX_COUNT = 10**9  # iterations, budgets, batches of BN recalibration and the like
MAX_BATCH_INPUT_MIB = 8192  # float32 input batch (batch x 3 x side x side) the data settings may ask for
MAX_CONFIG_BYTES = 1 << 20
MAX_PATH_BYTES, MAX_NAME_BYTES = 4096, 255  # PATH_MAX and NAME_MAX of Linux file systems
MAX_YAML_DEPTH = 32
MAX_YAML_NODES = 100_000  # values after expanding YAML aliases
_MAX_PROBLEMS = 5


def _encodable(value: Any) -> Any:
    """A path or file name the file system can take: no lone surrogates, no NUL, not too long."""
    try:
        raw = os.fsencode(value)
    except UnicodeError:
        raise ValueError("holds characters no file name can hold (e.g. a lone surrogate)") from None
    if b"\0" in raw:
        raise ValueError("holds a NUL character")
    if len(raw) > MAX_PATH_BYTES or any(len(part) > MAX_NAME_BYTES for part in raw.split(b"/")):
        raise ValueError(f"is longer than a path can be ({MAX_PATH_BYTES} bytes, {MAX_NAME_BYTES} per name)")
    return value


def _type_name(annotation: Any) -> str:
    """`int`, `float | None`, `list[int]`: an annotation as the reader wrote it."""
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_for_a_number(cls, v: Any, info: ValidationInfo) -> Any:
        """`budget: true` is not 1: pydantic's lax mode takes a boolean for an int or a float."""
        if isinstance(v, bool) and info.field_name is not None:
            annotation = cls.model_fields[info.field_name].annotation
            if annotation is not bool and bool not in get_args(annotation) and annotation is not Any:
                raise ValueError(f"expected {_type_name(annotation)}, not a boolean")
        return v

    @field_validator("*")
    @classmethod
    def _encodable_text(cls, v: Any) -> Any:
        """Every path, file name or label must be something a file system can take."""
        for item in v if isinstance(v, list) else [v]:
            if isinstance(item, str | Path):
                _encodable(item)
        return v


class StageChoices(Section):
    widths: list[int] | None = Field(
        None, max_length=64, description="allowed output widths (subset of the iNAS choices)"
    )
    depths: list[int] | None = Field(None, max_length=64, description="allowed depths (subset of the iNAS choices)")
    kernels: list[int] | None = Field(None, max_length=64, description="kernel sizes a layer's kernel set draws from")


class LevelChoices(Section):
    connections: list[int] | None = Field(None, max_length=64,
                                          description="candidate source levels (must keep the required ones)")
    kernels: list[int] | None = Field(None, max_length=64, description="kernel sizes the level's kernel set draws from")


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
    image_size: int = Field(320, gt=0, le=MAX_IMAGE_SIDE, description="square input side in pixels (multiple of 32)")
    multi_scale_sizes: list[int] = Field(
        default_factory=lambda: [288, 320, 352, 384], max_length=64,
        description="per-batch random input sides for training (multiples of 32); empty = off",
    )
    flip: bool = Field(True, description="random horizontal flip (p = 0.5) in training")
    batch_size: int = Field(10, gt=0, le=MAX_BATCH, description="training batch size per worker")
    num_workers: int = Field(2, ge=0, le=MAX_WORKERS, description="DataLoader worker processes")
    crop_size: list[int] | None = Field(
        None, description="segmentation: training crop [H, W] (random resized crop, scale 0.5-2)"
    )
    num_classes: int = Field(19, gt=1, le=MAX_CLASSES, description="segmentation: number of classes (ignore index 255)")

    @field_validator("image_size")
    @classmethod
    def _multiple_of_32(cls, v: int) -> int:
        if v % 32:
            raise ValueError(f"must be a multiple of 32, got {v}")
        return v

    @field_validator("multi_scale_sizes")
    @classmethod
    def _sizes_multiple_of_32(cls, v: list[int]) -> list[int]:
        bad = [s for s in v if s <= 0 or s % 32 or s > MAX_IMAGE_SIDE]
        if bad:
            raise ValueError(f"every size must be a positive multiple of 32 up to {MAX_IMAGE_SIDE}, got {excerpt(bad)}")
        return v

    @field_validator("crop_size")
    @classmethod
    def _crop(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (len(v) != 2 or any(s <= 0 or s > MAX_IMAGE_SIDE for s in v)):
            raise ValueError(f"must be [H, W], each in 1..{MAX_IMAGE_SIDE}, got {excerpt(v)}")
        return v

    @model_validator(mode="after")
    def _input_batch_fits(self) -> DataConfig:
        side = max([self.image_size, *self.multi_scale_sizes, *(self.crop_size or [])])
        mib = self.batch_size * 3 * side * side * 4 / 2**20
        if mib > MAX_BATCH_INPUT_MIB:
            raise ValueError(f"batch_size {self.batch_size} at {side} px is a {mib:.0f} MiB input batch; the limit "
                             f"is {MAX_BATCH_INPUT_MIB} MiB")
        return self


class ModelConfig(Section):
    """Network options beyond the architecture."""

    output_levels: list[int] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4], max_length=16,
        description="decoder levels with an output head (deep supervision)"
    )

    @field_validator("output_levels")
    @classmethod
    def _levels(cls, v: list[int]) -> list[int]:
        if not v or 0 not in v or any(lv not in range(5) for lv in v):
            raise ValueError(f"must be a subset of 0..4 containing 0, got {v}")
        return sorted(set(v))


class LutDeviceConfig(Section):
    """One target device of the latency tables: measured by Ray actors pinned to the nodes offering `resource`."""

    name: str = Field(
        ..., pattern=r"^[A-Za-z0-9_.-]+$", description="device name; its table is `<out_dir>/<name>.parquet`"
    )
    resource: str | None = Field(
        None,
        description="Ray resource that pins the device's actors to a node: a custom resource given with `ray start "
        "--resources '{\"device:xeon\": 1}'`, or `GPU`; default `device:<name>`",
    )
    backend: Literal[
        "onnxruntime", "onnxruntime-int8", "onnxruntime-cuda", "openvino", "openvino-int8", "torch", "torch-cuda"
    ] = Field(
        "onnxruntime", description="runtime that times the blocks: onnxruntime FP32, onnxruntime-int8 (static QDQ "
        "INT8), openvino / openvino-int8 (OpenVINO CPU FP32 / NNCF INT8; need `pip install -e \".[openvino]\"`), "
        "torch eager; the *-cuda ones need a GPU on the node"
    )
    threads: int = Field(1, gt=0, le=MAX_WORKERS, description="intra-op threads of the runtime")
    batch: int = Field(1, gt=0, le=MAX_BATCH, description="images per timed forward pass")
    actors: int = Field(
        1, gt=0, le=MAX_WORKERS, description="measuring actors of this device (blocks are shared among them)"
    )

    @property
    def ray_resource(self) -> str:
        return self.resource or f"device:{self.name}"


class LutConfig(Section):
    """Latency lookup tables (`lut`, `lut validate`): devices, input size, timing repeats, output folder."""

    devices: list[LutDeviceConfig] = Field(
        default_factory=lambda: [LutDeviceConfig(name="cpu")], description="target devices, all measured in one run"
    )
    input_size: list[int] | None = Field(
        None, description="[H, W] input the blocks are timed at, the search's latency and convert/export input size "
        "(multiples of 32); default data.image_size square (seg: data.crop_size)"
    )
    warmup_runs: int = Field(10, ge=0, le=MAX_COUNT, description="untimed runs before timing a block or a network")
    runs: int = Field(
        50, gt=0, le=MAX_COUNT, description="timed runs per block or network; the table keeps their median"
    )
    out_dir: Path = Field(Path("runs/lut"), description="folder of the tables `<device>.parquet` (`-o` overrides)")
    flush_every: int = Field(
        25, gt=0, le=MAX_COUNT, description="rewrite a device's table after this many new blocks (resumable)"
    )
    node_lock: bool = Field(
        True, description="devices on the same node take turns (one measurement at a time per node) so they do "
        "not disturb each other's timings"
    )
    drop_preempted_runs: bool = Field(
        True, description="single-thread CPU devices: drop timed runs during which another process took the core "
        "(wall time > thread CPU time + 5 %) and time more instead; no effect on a dedicated device"
    )
    reference_every: int = Field(
        50, ge=0, description="time a fixed reference block after this many blocks (and before every validation "
        "network) and keep it in the table's `reference_ms`, so drift of the machine is visible; 0: never"
    )
    reference_network_every_s: float = Field(
        60.0, ge=0, description="time a fixed whole network (a typical one of the space) before the first block and "
        "again once this many seconds have passed, during a build and a validation (`reference_network_ms`); "
        "validation scales its predictions by that network's drift since the build; 0: never"
    )
    max_spread: float = Field(
        0.1, gt=0, description="re-time a block whose timed runs spread more than this (IQR / median) ..."
    )
    retimes: int = Field(2, ge=0, description="... at most this many more times, keeping the steadiest timing")
    calibration_images: int = Field(
        8, gt=0, description="INT8 devices: calibrate image-shaped inputs on this many images of data.train_list "
        "(random image-like data if the list does not exist)"
    )

    @field_validator("input_size")
    @classmethod
    def _input_size(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (len(v) != 2 or any(s <= 0 or s % 32 or s > MAX_IMAGE_SIDE for s in v)):
            raise ValueError(f"must be [H, W], positive multiples of 32 up to {MAX_IMAGE_SIDE}, got {excerpt(v)}")
        return v

    @field_validator("devices")
    @classmethod
    def _unique_names(cls, v: list[LutDeviceConfig]) -> list[LutDeviceConfig]:
        names = [d.name for d in v]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"must list at least one device, with unique names, got {excerpt(names)}")
        return v


class SearcherConfig(Section):
    """One searcher of a `search` run: its kind, evaluation budget, parallel trials and own parameters."""

    kind: Literal["evolution", "nevergrad", "optuna", "predictor", "random"] = Field(
        ..., description="searcher algorithm"
    )
    label: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]+$", description="name in the results' `searcher` column; default the kind"
    )
    budget: int = Field(100, gt=0, le=MAX_COUNT, description="architectures this searcher evaluates in all")
    concurrent_trials: int = Field(
        1, gt=0, le=MAX_WORKERS, description="batches of this searcher evaluated at the same time; the run has one "
        "worker slot (a Tune trial that lives for the whole run) per concurrent batch of all searchers"
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="the searcher's keyword parameters (e.g. population_size, optimizer)"
    )

    @property
    def name(self) -> str:
        return self.label or self.kind


class SearchConfig(Section):
    """Architecture search (`search`): searchers run in parallel under Ray Tune, sharing the cluster."""

    searchers: list[SearcherConfig] = Field(
        default_factory=lambda: [SearcherConfig(kind="evolution")], description="searchers run side by side"
    )
    archs_per_trial: int = Field(
        4, gt=0, le=MAX_COUNT, description="architectures per batch, the unit a worker slot evaluates and reports "
        "(amortises overhead)"
    )
    bn_recalibration_batches: int = Field(
        100, gt=0, le=MAX_COUNT, description="training batches (fixed seeded subset) for precise-BN per architecture"
    )
    val_batch_size: int = Field(1, gt=0, le=MAX_BATCH, description="validation batch size of the accuracy evaluator")
    cpus_per_trial: float = Field(1.0, gt=0, description="Ray CPUs reserved by one worker slot (Tune trial)")
    gpus_per_trial: float = Field(0.0, ge=0, description="Ray GPUs reserved by one worker slot (Tune trial)")
    supernet: Path | None = Field(None, description="trained supernet checkpoint (`--supernet` overrides)")
    lut_dir: Path | None = Field(None, description="folder of the latency tables; default lut.out_dir")
    devices: list[str] | None = Field(
        None, min_length=1,
        description="devices whose latency is recorded (first = the one searchers use); default lut.devices"
    )
    latency_budgets_ms: list[float] = Field(
        default_factory=list, description="latency budgets of the summary's best-arch table; empty = 4 quantiles"
    )
    out_dir: Path = Field(Path("runs/search"), description="output folder (`-o` overrides)")
    max_trial_retries: int = Field(
        2, ge=0, le=10, description="times an architecture whose evaluation failed (its slot's worker died, or it "
        "raised) is evaluated again before it is recorded as failed; a rerun retries the failed ones again"
    )

    @field_validator("searchers")
    @classmethod
    def _unique_searchers(cls, v: list[SearcherConfig]) -> list[SearcherConfig]:
        names = [s.name for s in v]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"must list at least one searcher, with unique labels, got {excerpt(names)}")
        return v

    @field_validator("latency_budgets_ms")
    @classmethod
    def _positive_budgets(cls, v: list[float]) -> list[float]:
        if any(b <= 0 for b in v):
            raise ValueError(f"every budget must be > 0 ms, got {excerpt(v)}")
        return sorted(v)


class TrainClusterConfig(Section):
    """`train --cluster`: the same training loop on every worker of a Ray cluster (Ray Train TorchTrainer, DDP)."""

    workers: int = Field(2, gt=0, le=MAX_WORKERS, description="training workers (DDP ranks); `--workers` overrides")
    use_gpu: bool | None = Field(None, description="one GPU per worker (NCCL); null = when the cluster has GPUs")
    cpus_per_worker: float = Field(1.0, gt=0, description="Ray CPUs reserved by one worker")
    max_failures: int = Field(
        3, ge=-1, le=MAX_COUNT,
        description="worker-group restarts (from the last checkpoint) before giving up; -1 = unlimited"
    )
    sync_bn: bool = Field(
        False, description="synchronise batch-norm statistics over the DDP ranks (per-GPU batches too small for "
        "BN); the dynamic BN keeps its channel slicing and checkpoint keys"
    )


class TrainConfig(Section):
    """Supernet training (`train`): sandwich rule, in-place distillation, Adam, warm-up + polynomial decay."""

    iterations: int = Field(
        26400, gt=0, le=MAX_COUNT, description="optimiser steps in all (one step = all sandwich sub-networks)"
    )
    lr: float = Field(2e-4, gt=0, description="backbone learning rate (Adam)")
    head_lr_multiplier: float = Field(
        10.0, gt=0, description="learning-rate factor of every non-backbone parameter (transport, decoder, heads)"
    )
    betas: tuple[float, float] = Field((0.9, 0.99), description="Adam betas, each in [0, 1)")
    weight_decay: float = Field(0.0, ge=0, description="Adam weight decay")
    warmup_iterations: int = Field(
        1000, ge=0, le=MAX_COUNT, description="linear learning-rate warm-up from lr / warmup to lr"
    )
    lr_power: float = Field(0.9, gt=0, description="polynomial decay power after warm-up (to 0 at the last step)")
    random_subnets: int = Field(
        2, ge=0, le=64, description="uniformly sampled sub-networks per step besides max and min"
    )
    distillation: bool = Field(
        True, description="in-place distillation: sub-networks other than max learn the max network's final map; "
        "false = every sub-network learns from the labels"
    )
    distill_weight: float | None = Field(
        None, ge=0, description="weight of the distillation loss; null = task default (sod 1.0 MSE, seg 0.2 KL)"
    )
    side_output_weight: float = Field(0.4, ge=0, description="weight of each side output (levels > 0) in the losses")
    init_checkpoint: Path | None = Field(
        None, description="weights to start from: our supernet file or an original iNAS checkpoint (pretrained)"
    )
    init_format: Literal["auto", "inas", "original", "backbone"] = Field(
        "auto", description="init_checkpoint: inas = our supernet file, original = an original iNAS supernet, "
        "auto = ours when the file says so, else original; backbone = only its `backbone.*` tensors (e.g. an "
        "ImageNet-pretrained backbone), cut to this space, the rest keeps its initialisation"
    )
    checkpoint_every: int = Field(
        1000, gt=0, le=MAX_COUNT, description="iterations between checkpoints (and one at the end)"
    )
    log_every: int = Field(
        20, gt=0, le=MAX_COUNT, description="iterations between rows of metrics.csv / TensorBoard points"
    )
    validate_every: int = Field(
        5000, ge=0, le=MAX_COUNT,
        description="iterations between validations of max, min and a fixed random sub-network "
        "(after BN recalibration); 0 = only at the end"
    )
    validate_at_start: bool = Field(False, description="validate before the first iteration of a fresh run")
    validate_at_end: bool = Field(True, description="validate once more after the last iteration")
    val_images: int | None = Field(
        None, gt=0, le=MAX_COUNT, description="validate on the first N images of data.val_list only"
    )
    bn_recalibration_batches: int = Field(
        100, gt=0, le=MAX_COUNT,
        description="training batches (fixed seeded subset, no augmentation) for precise-BN per validation"
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="local run: auto = cuda when available")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="training arithmetic: autocast to bf16 (CPU or GPU) or fp16 (CUDA only, with loss "
        "scaling); weights and optimiser state stay fp32"
    )
    threads: int | None = Field(
        None, gt=0, le=MAX_WORKERS, description="torch intra-op threads of a local run; null = torch default"
    )
    out_dir: Path = Field(Path("runs/train"), description="run folder: checkpoints, logs, supernet.pt (`-o` overrides)")
    cluster: TrainClusterConfig = Field(default_factory=TrainClusterConfig)

    @field_validator("betas")
    @classmethod
    def _betas(cls, v: tuple[float, float]) -> tuple[float, float]:
        if any(not 0.0 <= b < 1.0 for b in v):
            raise ValueError(f"each beta must be in [0, 1), got {excerpt(list(v))}")
        return v


class ExperimentConfig(Section):
    """One experiment: the task, the space, the data, the model, training, latency tables and search."""

    task: Literal["sod", "seg"] = Field("sod", description="sod: salient objects (1 class); seg: segmentation")
    seed: int = Field(0, ge=0, le=2**32 - 1, strict=True, description="global seed, an integer in [0, 2**32 - 1]")
    space: SpaceConfig = Field(default_factory=SpaceConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    lut: LutConfig = Field(default_factory=LutConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    @property
    def num_classes(self) -> int:
        return 1 if self.task == "sod" else self.data.num_classes

    @property
    def deploy_input_hw(self) -> tuple[int, int]:
        """The one input size (H, W) of the latency tables, of `convert` (BN recalibration, model file) and so of
        `export` and `test`: `lut.input_size` when set, else the square `data.image_size` (SOD) or the training
        crop `data.crop_size` (segmentation). Segmentation validation (and so the search) runs on images at their
        own size: set `lut.input_size` to it, as `experiments/seg_demo.yaml` does, so all steps agree."""
        if self.lut.input_size is not None:
            return int(self.lut.input_size[0]), int(self.lut.input_size[1])
        if self.task == "seg" and self.data.crop_size is not None:
            return int(self.data.crop_size[0]), int(self.data.crop_size[1])
        return self.data.image_size, self.data.image_size


def _format_validation_error(exc: ValidationError, doc: Any, source: str) -> str:
    """One line: the first few problems, each with its key path and a bounded excerpt of the value given."""
    errors = exc.errors()
    problems = [f"{key_path(doc, err['loc']) or '<root>'}: {problem_text(err)}" for err in errors[:_MAX_PROBLEMS]]
    more = len(errors) - _MAX_PROBLEMS
    return f"{source}: " + "; ".join(problems) + (f"; and {more} more problems" if more > 0 else "")


def _check_size(doc: Any, source: str) -> None:
    """Bound the nesting depth and the number of values (counted with YAML aliases expanded) before validation."""
    stack, seen = [(doc, 1)], 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if depth > MAX_YAML_DEPTH:
            raise BadInputError(f"nested deeper than {MAX_YAML_DEPTH} levels", path=source)
        if seen > MAX_YAML_NODES:
            raise BadInputError(f"holds more than {MAX_YAML_NODES} values (YAML aliases expanded)", path=source)
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for pair in node.items() for v in pair)
        elif isinstance(node, list | tuple | set):
            stack.extend((v, depth + 1) for v in node)


def parse_config(doc: Any, source: str = "<config>") -> ExperimentConfig:
    """Validate a plain dict into an ExperimentConfig; BadInputError names `source` and every bad key."""
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise BadInputError(f"expected a mapping at the top level, got {type(doc).__name__}", path=source)
    _check_size(doc, source)
    try:
        config = ExperimentConfig.model_validate(doc)
    except ValidationError as exc:
        raise BadInputError(_format_validation_error(exc, doc, source)) from None
    try:
        config.space.build()
    except BadInputError as exc:
        raise BadInputError(str(exc), path=source) from None
    return config


def absolute_paths(section: BaseModel, base_dir: Path) -> None:
    """Make every relative path of `section` and its sub-sections absolute against `base_dir` (in place)."""
    for name in type(section).model_fields:
        value = getattr(section, name)
        if isinstance(value, Path) and not value.is_absolute():
            setattr(section, name, base_dir / value)
        elif isinstance(value, BaseModel):
            absolute_paths(value, base_dir)


def _read_text(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise BadInputError(f"config file is larger than {MAX_CONFIG_BYTES >> 20} MiB", path=path)
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError("config file not found", path=path) from None
    except (OSError, UnicodeError, ValueError) as exc:
        raise BadInputError(f"config file cannot be read ({clip(str(exc))})", path=path) from None


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a YAML experiment config (at most 1 MiB, nesting and alias expansion bounded). Every relative
    path in it is made absolute against the current directory here, once, so that Ray workers (which run in other
    directories) read the same files."""
    path = Path(path)
    config = parse_config(read_yaml(path), str(path))
    absolute_paths(config, Path.cwd())
    return config


def read_yaml(path: str | Path) -> Any:
    """The YAML document of a config file, unvalidated but bounded: at most 1 MiB of UTF-8 text, nesting and values
    (aliases expanded) bounded as `parse_config` bounds them; BadInputError naming the file otherwise."""
    path = Path(path)
    text = _read_text(path)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise BadInputError(f"malformed YAML{where}: {clip(problem)}", path=path) from None
    except RecursionError:
        raise BadInputError(f"malformed YAML: nested deeper than {MAX_YAML_DEPTH} levels", path=path) from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise BadInputError(f"malformed YAML: {clip(str(exc))}", path=path) from None
    _check_size(doc, str(path))
    return doc
