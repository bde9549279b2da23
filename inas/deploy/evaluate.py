"""Evaluating a deployed model (PyTorch or ONNX) on the test lists of a config's data section.

For each list: the evaluation data set (SOD: images resized to the input size, masks at full size; segmentation:
images at the input size, or at their own size for models that take any size, labels at full size), predictions
resized bilinearly to each ground truth (`inas.train.evaluate_predictions`), then

- SOD: `SOD_METRIC_NAMES` (maxF, meanF, adpF, mae, sm, maxE, meanE, adpE, wF) of the chosen protocol;
- segmentation: `miou` and `iou_<class id>`.

The result is a table, one row per data set: `dataset` (the list file's stem), `images`, then one column per
metric. With `maps_dir`, the predicted maps are written too (`<maps_dir>/<dataset>/<image stem>.png`: SOD 8-bit
grayscale at the original size, segmentation palette PNGs of class ids), the same conversion as `predict`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import pandas as pd
from PIL import Image
from torch import Tensor

from inas.config import DataConfig
from inas.data import SegEvalDataset, SODEvalDataset, build_eval_loader
from inas.deploy.maps import saliency_probabilities, saliency_uint8, segmentation_labels
from inas.deploy.palette import colorize
from inas.deploy.runtime import Predictor
from inas.errors import BadInputError
from inas.evaluation import evaluate_predictions, fit_to_stride
from inas.io import atomic_path, remove_stale_temp_files_in
from inas.metrics import SOD_METRIC_NAMES


def dataset_name(list_name: str) -> str:
    """'ECSSD.lst' -> 'ECSSD'; 'lists/test.txt' -> 'test'."""
    return Path(list_name).stem


def eval_input_hw(predictor: Predictor, data: DataConfig, task: str,
                  size: int | None = None) -> tuple[int, int] | None:
    """The network input size for evaluation: `size` x `size` if given, else a fixed-shape model's size, else (SOD)
    the config's `image_size` square or (segmentation) None = each image's own size (fitted to multiples of 32)."""
    if size is not None:
        return size, size
    if predictor.fixed_hw is not None:
        return predictor.fixed_hw
    if task == "sod":
        return data.image_size, data.image_size
    return None


def eval_dataset_for(data: DataConfig, task: str, list_name: str, input_hw: tuple[int, int] | None,
                     num_classes: int, progress: bool = True) -> SODEvalDataset | SegEvalDataset:
    if task == "sod":
        assert input_hw is not None
        if input_hw[0] != input_hw[1]:
            raise BadInputError(f"SOD evaluation resizes images to a square, but the model takes only "
                                f"{input_hw[0]} x {input_hw[1]} inputs; export it with a square --size or --dynamic")
        return SODEvalDataset(data.root, list_name, input_hw[0], progress=progress)
    return SegEvalDataset(data.root, list_name, input_hw, num_classes=num_classes, progress=progress)


class _RecordingLoader:
    """Iterates a loader and remembers the current batch (so a predict function can see names and sizes)."""

    def __init__(self, loader: Iterable[dict]) -> None:
        self.loader = loader
        self.batch: dict | None = None

    def __iter__(self) -> Iterator[dict]:
        for batch in self.loader:
            self.batch = batch
            yield batch

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]


def _predict_fn(predictor: Predictor, task: str, maps_dir: Path | None,
                recorder: _RecordingLoader) -> Callable[[Tensor], Tensor]:
    info = predictor.info
    fixed = predictor.fixed_hw is not None

    def predict(images: Tensor) -> Tensor:
        out = predictor(images if fixed else fit_to_stride(images))
        if task == "sod":
            out = saliency_probabilities(out, info.head_activation)
        if maps_dir is not None and recorder.batch is not None:
            batch = recorder.batch
            for i, name in enumerate(batch["name"]):
                label = batch["label"][i]
                size_hw = (int(label.shape[-2]), int(label.shape[-1]))
                if task == "sod":
                    image = Image.fromarray(saliency_uint8(out[i], size_hw, "sigmoid").numpy())
                else:
                    image = colorize(segmentation_labels(out[i], size_hw).numpy(), info.num_classes)
                with atomic_path(maps_dir / f"{name}.png", clean_stale=False) as tmp:  # cleaned once, below
                    image.save(tmp, format="PNG")
        return out

    return predict


def evaluate_on_list(predictor: Predictor, data: DataConfig, list_name: str, *, input_hw: tuple[int, int] | None,
                     protocol: str = "standard", batch_size: int = 1, maps_dir: Path | None = None,
                     progress: bool = True) -> dict[str, float]:
    """Metrics of `predictor` on one list (see the module docstring)."""
    info = predictor.info
    dataset = eval_dataset_for(data, info.task, list_name, input_hw, info.num_classes, progress)
    loader = _RecordingLoader(build_eval_loader(dataset, batch_size, num_workers=data.num_workers))
    if maps_dir is not None:
        maps_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files_in(maps_dir)
    predict = _predict_fn(predictor, info.task, maps_dir, loader)
    scores = evaluate_predictions(predict, loader, info.task, protocol=protocol, progress=progress,
                                  num_classes=info.num_classes if info.task == "seg" else None)
    return {"images": len(dataset), **scores}  # type: ignore[dict-item]


def evaluate_model(predictor: Predictor, data: DataConfig, *, list_names: Sequence[str] | None = None,
                   input_hw: tuple[int, int] | None = None, protocol: str = "standard", batch_size: int | None = None,
                   maps_dir: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """One row per list of `list_names` (default: `data.test_lists`): `dataset`, `images`, then the metrics."""
    task = predictor.info.task
    rows = []
    for list_name in list_names or data.test_lists:
        name = dataset_name(list_name)
        maps = None if maps_dir is None else Path(maps_dir) / name
        if batch_size is None:
            batch = data.batch_size if task == "sod" or input_hw is not None else 1
        else:
            batch = batch_size
        scores = evaluate_on_list(predictor, data, list_name, input_hw=input_hw, protocol=protocol,
                                  batch_size=batch, maps_dir=maps, progress=progress)
        rows.append({"dataset": name, **scores})
    frame = pd.DataFrame(rows)
    if task == "sod":
        frame = frame[["dataset", "images", *SOD_METRIC_NAMES]]
    return frame
