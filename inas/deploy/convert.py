"""Supernet -> stand-alone model for one architecture, with the original's consistency check (docs/design.md §6.3).

    supernet = load_supernet_any(ckpt, config)                    # our file, or an original iNAS checkpoint
    arch = load_arch_for(arch_path, supernet, ckpt)                # must lie in the supernet's space
    recalibrate_bn(supernet, bn_loader, bn_batches, forward=lambda x: supernet(x, arch))
    model = extract_subnet(supernet, arch)                          # sliced, SMSUs folded, eval mode
    report = check_consistency(supernet, model, arch, val_loader, task)

The consistency check scores the validation list three ways and compares the outputs on the first batch:
1. the supernet in train mode with every BN in eval mode: each SMSU runs one depthwise conv per kernel of its set,
   each with its own BN (running statistics), averaged (the multi-branch path);
2. the supernet in eval mode: each SMSU folds its branches and BNs into one depthwise conv on the fly;
3. the stand-alone model with the weights sliced out and folded once.
All three compute the same function, so the metrics agree to float rounding (|difference| ~1e-6).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from inas.config import ExperimentConfig
from inas.errors import BadInputError
from inas.evaluation import batch_images, evaluate_predictions, fit_to_stride, supernet_predictor
from inas.nn import StandaloneModel, Supernet, load_original_checkpoint, load_supernet
from inas.nn.checkpoint import SUPERNET_FORMAT, read_checkpoint
from inas.paths import require_file
from inas.space import Arch, ArchError, load_arch

CONSISTENCY_METRICS: dict[str, tuple[str, ...]] = {"sod": ("maxF", "mae", "sm"), "seg": ("miou",)}
DEFAULT_CHECK_TOLERANCE = 1e-3


@dataclass(frozen=True)
class ConsistencyReport:
    """Metrics of the three paths on the validation list and the largest output differences on one batch."""

    multibranch: dict[str, float]
    supernet_eval: dict[str, float]
    standalone: dict[str, float]
    max_abs_diff_multibranch: float  # supernet multi-branch path vs stand-alone, one batch
    max_abs_diff_supernet_eval: float  # supernet eval path vs stand-alone, one batch
    batch_shape: tuple[int, ...]

    @property
    def max_metric_diff(self) -> float:
        diffs = [abs(self.multibranch[k] - self.standalone[k]) for k in self.standalone]
        diffs += [abs(self.supernet_eval[k] - self.standalone[k]) for k in self.standalone]
        return max(diffs)

    @property
    def max_output_diff(self) -> float:
        return max(self.max_abs_diff_multibranch, self.max_abs_diff_supernet_eval)

    def agrees(self, tolerance: float = DEFAULT_CHECK_TOLERANCE) -> bool:
        return self.max_metric_diff <= tolerance and self.max_output_diff <= tolerance

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["batch_shape"] = list(self.batch_shape)
        return out


# ----- loading -----------------------------------------------------------------------------------------------------
def load_supernet_any(path: str | Path, config: ExperimentConfig) -> Supernet:
    """Our supernet file (its own space, classes and heads), or an original iNAS checkpoint loaded into a supernet
    over the config's space (`config.num_classes` classes, `config.model.output_levels` heads)."""
    path = require_file(path, "supernet checkpoint")
    obj = read_checkpoint(path)
    if obj.get("format") == SUPERNET_FORMAT:
        supernet = load_supernet(obj, where=path)  # the dict already read: the file is loaded once
    elif obj.get("format") is not None:
        raise BadInputError(f"expected a supernet checkpoint (format {SUPERNET_FORMAT!r} or an original iNAS "
                            f"checkpoint), got format {obj.get('format')!r}", path=path)
    else:
        supernet = Supernet(config.space.build(), config.num_classes, tuple(config.model.output_levels))
        load_original_checkpoint(obj, supernet, where=path)
    expected = config.num_classes
    if supernet.num_classes != expected:
        raise BadInputError(f"the supernet has {supernet.num_classes} output classes but the config's task "
                            f"{config.task!r} needs {expected}", path=path)
    return supernet.eval()


def load_arch_for(arch_path: str | Path, supernet: Supernet, supernet_path: str | Path) -> Arch:
    """The Arch in `arch_path`, validated against the supernet's space (BadInputError naming the field)."""
    try:
        return load_arch(arch_path, supernet.space)
    except ArchError as exc:
        if exc.key is None:  # the file itself is wrong (missing, unreadable, not JSON): no space to blame
            raise
        raise BadInputError(f"{exc} (the architecture must lie in the space of the supernet {supernet_path})") \
            from None


# ----- predictors --------------------------------------------------------------------------------------------------
def _set_multibranch_mode(supernet: Supernet) -> None:
    """Train mode (multi-branch SMSUs, all heads) with every BN in eval mode (running statistics, no updates)."""
    supernet.train()
    for module in supernet.modules():
        if isinstance(module, _BatchNorm):
            module.eval()


def standalone_predictor(model: StandaloneModel, task: str) -> Callable[[Tensor], Tensor]:
    """`images -> (N, K, H, W)` of an eval-mode stand-alone model, SOD as probabilities (like `supernet_predictor`)."""
    device = next(model.parameters()).device

    def predict(images: Tensor) -> Tensor:
        out = model(fit_to_stride(images.to(device)))
        if task == "sod" and model.head_activation != "sigmoid":
            out = torch.sigmoid(out)
        return out

    return predict


@torch.no_grad()
def check_consistency(supernet: Supernet, model: StandaloneModel, arch: Arch, val_loader: Iterable[dict], task: str,
                      protocol: str = "standard", progress: bool = False) -> ConsistencyReport:
    """Score the three paths of the module docstring on `val_loader`; the supernet is left in eval mode."""
    names = CONSISTENCY_METRICS[task]
    metrics = names if task == "sod" else None
    num_classes = supernet.num_classes if task == "seg" else None
    model.eval()
    first = next(iter(val_loader))
    images = batch_images(first)
    outputs = {}
    scores = {}
    try:
        for name in ("multibranch", "supernet_eval"):
            if name == "multibranch":
                _set_multibranch_mode(supernet)
            else:
                supernet.eval()
            predict = supernet_predictor(supernet, arch, task)
            outputs[name] = predict(images).float().cpu()
            scores[name] = evaluate_predictions(predict, val_loader, task, protocol=protocol, metrics=metrics,
                                                progress=progress, num_classes=num_classes)
    finally:
        supernet.eval()
    predict = standalone_predictor(model, task)
    reference = predict(images).float().cpu()
    scores["standalone"] = evaluate_predictions(predict, val_loader, task, protocol=protocol, metrics=metrics,
                                                progress=progress, num_classes=num_classes)
    keep = {name: {k: float(v) for k, v in s.items() if k in names} for name, s in scores.items()}
    return ConsistencyReport(
        multibranch=keep["multibranch"],
        supernet_eval=keep["supernet_eval"],
        standalone=keep["standalone"],
        max_abs_diff_multibranch=float((outputs["multibranch"] - reference).abs().max()),
        max_abs_diff_supernet_eval=float((outputs["supernet_eval"] - reference).abs().max()),
        batch_shape=tuple(images.shape),
    )


def evaluate_standalone(model: StandaloneModel, val_loader: Iterable[dict], task: str, protocol: str = "standard",
                        progress: bool = False) -> dict[str, float]:
    """The consistency metrics of a stand-alone model alone (e.g. after fine-tuning)."""
    names = CONSISTENCY_METRICS[task]
    scores = evaluate_predictions(standalone_predictor(model.eval(), task), val_loader, task, protocol=protocol,
                                  metrics=names if task == "sod" else None, progress=progress,
                                  num_classes=model.num_classes if task == "seg" else None)
    return {k: float(v) for k, v in scores.items() if k in names}
