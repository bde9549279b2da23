"""The `convert` recipe as one library call: supernet + architecture -> stand-alone model file.

    result = convert_arch("arch.json", "supernet.pt", "model.pt", config, ConvertOptions(finetune_iterations=100))
    result.written, result.consistency, result.finetune, result.size

Steps: load the supernet (ours or an original iNAS checkpoint) and the architecture; recalibrate BN on
`bn_batches` training batches for that architecture (precise BN); slice the weights and fold the SMSUs
(`extract_subnet`); optionally check the three paths agree on the validation list (`check_consistency`; when they
do not, nothing is written); optionally fine-tune (the better of the models before and after on the validation list
is kept, unless `keep_finetuned`); count params / MACs; save one self-describing file with the conversion record.
Nothing is printed: the caller reports from the `ConvertResult`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from inas.config import ExperimentConfig
from inas.data import bn_loader_from_config, eval_loader_from_config, multi_scale_from_config, train_loader_from_config
from inas.deploy.convert import (
    DEFAULT_CHECK_TOLERANCE,
    ConsistencyReport,
    check_consistency,
    evaluate_standalone,
    load_arch_for,
    load_supernet_any,
)
from inas.deploy.finetune import FinetuneChoice, FinetuneResult, finetune
from inas.deploy.model_file import save_model_file
from inas.evaluation import recalibrate_bn
from inas.nn import StandaloneModel, Supernet, extract_subnet, profile
from inas.space import Arch

DEFAULT_BN_BATCHES = 200  # the original's finetune_bn_iters for convert (docs/design.md §6.3)


@dataclass(frozen=True)
class ConvertOptions:
    """How to convert: BN batches (batch size `data.batch_size`), fine-tuning iterations (0 = none), the fine-tuning
    backbone learning rate (None = `train.lr`), the metric protocol and the consistency check."""

    bn_batches: int = DEFAULT_BN_BATCHES
    finetune_iterations: int = 0
    keep_finetuned: bool = False
    lr: float | None = None
    protocol: str = "standard"
    check: bool = True
    check_tolerance: float = DEFAULT_CHECK_TOLERANCE
    progress: bool = False

    def __post_init__(self) -> None:
        if self.bn_batches < 1:
            raise ValueError(f"bn_batches must be >= 1, got {self.bn_batches}")
        if self.finetune_iterations < 0:
            raise ValueError(f"finetune_iterations must be >= 0, got {self.finetune_iterations}")


@dataclass(frozen=True)
class FinetuneOutcome:
    """The fine-tuning run and the choice between the models before and after it (validation-list metrics)."""

    result: FinetuneResult
    choice: FinetuneChoice


@dataclass(frozen=True)
class ModelSize:
    """Parameters and multiply-accumulates of the saved model at the deploy input size and at 224 x 224."""

    params: int
    macs: int
    params_224: int
    macs_224: int


@dataclass(frozen=True)
class ConvertResult:
    """What `convert_arch` did. `written` is False only when the consistency check failed (then `size` is None)."""

    arch: Arch
    device: torch.device
    input_hw: tuple[int, int]
    out_path: Path
    bn_seconds: float
    consistency: ConsistencyReport | None
    check_seconds: float | None
    finetune: FinetuneOutcome | None
    size: ModelSize | None
    record: dict[str, Any]  # the conversion record saved in the model file

    @property
    def written(self) -> bool:
        return self.size is not None


def _conversion_record(arch_path: str | Path, supernet_path: str | Path, config: ExperimentConfig,
                       options: ConvertOptions, config_path: str | Path | None) -> dict[str, Any]:
    """What the model file records about its making (the consistency check and fine-tuning add their entries)."""
    return {"supernet": str(supernet_path), "arch_file": str(arch_path),
            "config": None if config_path is None else str(config_path), "bn_batches": options.bn_batches,
            "bn_batch_size": config.data.batch_size, "train_list": config.data.train_list,
            "protocol": options.protocol, "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _finetune_record(outcome: FinetuneOutcome, options: ConvertOptions, config: ExperimentConfig) -> dict[str, Any]:
    result = outcome.result
    return {"iterations": result.iterations, "lr": options.lr or config.train.lr,
            "warmup_iterations": result.warmup_iterations, "first_loss": result.first_loss,
            "last_loss": result.last_loss, "seconds": round(result.seconds, 1), **outcome.choice.to_dict()}


def convert_arch(arch_path: str | Path, supernet_path: str | Path, out_path: str | Path, config: ExperimentConfig,
                 options: ConvertOptions = ConvertOptions(), *, config_path: str | Path | None = None,
                 device: torch.device | None = None) -> ConvertResult:
    """Convert the architecture in `arch_path` of the supernet in `supernet_path` into a stand-alone model file at
    `out_path` (see the module docstring). `config_path` is only recorded; `device` defaults to cpu."""
    device = device or torch.device("cpu")
    data, task = config.data, config.task
    supernet = load_supernet_any(supernet_path, config).to(device)
    arch = load_arch_for(arch_path, supernet, supernet_path)
    start = time.perf_counter()
    bn_loader = bn_loader_from_config(data, task, options.bn_batches, seed=config.seed)
    recalibrate_bn(supernet, bn_loader, options.bn_batches, forward=lambda images: supernet(images, arch))
    bn_seconds = time.perf_counter() - start
    model = extract_subnet(supernet, arch)
    record = _conversion_record(arch_path, supernet_path, config, options, config_path)
    done = ConvertResult(arch=arch, device=device, input_hw=config.deploy_input_hw, out_path=Path(out_path),
                         bn_seconds=bn_seconds, consistency=None, check_seconds=None,
                         finetune=None, size=None, record=record)
    if not (options.check or options.finetune_iterations):
        return replace(done, size=_save(model.cpu(), out_path, config, record))

    val_loader = eval_loader_from_config(data, task, batch_size=data.batch_size if task == "sod" else 1)
    if options.check:
        start = time.perf_counter()
        report = check_consistency(supernet, model, arch, val_loader, task, options.protocol,
                                   progress=options.progress)
        done = replace(done, consistency=report, check_seconds=time.perf_counter() - start)
        record.update(val_list=data.val_list, consistency=report.to_dict())
        if not report.agrees(options.check_tolerance):
            return done
    if options.finetune_iterations:
        model, outcome = _finetune_and_choose(supernet, arch, model, done.consistency, bn_loader, val_loader,
                                              config, options)
        record["finetune"] = _finetune_record(outcome, options, config)
        done = replace(done, finetune=outcome)
    return replace(done, size=_save(model.cpu(), out_path, config, record))


def _finetune_and_choose(supernet: Supernet, arch: Arch, model: StandaloneModel, report: ConsistencyReport | None,
                         bn_loader: Iterable[Any], val_loader: Iterable[dict], config: ExperimentConfig,
                         options: ConvertOptions) -> tuple[StandaloneModel, FinetuneOutcome]:
    """Fine-tune the unfolded sub-network, recalibrate BN, fold; return the kept model and the outcome."""
    data, task, progress = config.data, config.task, options.progress
    before = report.standalone if report is not None else None
    if before is None:
        before = evaluate_standalone(model, val_loader, task, options.protocol, progress=progress)
    raw = extract_subnet(supernet, arch, fold=False)
    train_loader = train_loader_from_config(data, task, seed=config.seed)
    result = finetune(raw, train_loader, options.finetune_iterations, task, config.train, lr=options.lr,
                      multi_scale=multi_scale_from_config(data, task, seed=config.seed), progress=progress)
    recalibrate_bn(raw, bn_loader, options.bn_batches)
    tuned = raw.reparameterize().eval()
    after = evaluate_standalone(tuned, val_loader, task, options.protocol, progress=progress)
    choice = FinetuneChoice.decide(task, before, after, force=options.keep_finetuned)
    return (tuned if choice.keep_finetuned else model), FinetuneOutcome(result, choice)


def _save(model: StandaloneModel, out_path: str | Path, config: ExperimentConfig, record: dict[str, Any]) -> ModelSize:
    """Count params / MACs, add them to `record`, write the model file."""
    input_hw = config.deploy_input_hw
    params, macs = profile(model, input_hw)
    params_224, macs_224 = profile(model, (224, 224))
    record.update({"params": params, "macs": macs, "macs_224": macs_224})
    save_model_file(model, out_path, task=config.task, input_hw=input_hw, conversion=record)
    return ModelSize(params, macs, params_224, macs_224)
