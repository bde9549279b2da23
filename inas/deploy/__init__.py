"""Deployment: stand-alone model files, conversion from the supernet, ONNX export, runtimes, testing, prediction.

    model, info = load_model_file("m.pt")                     # one self-describing file per architecture
    export_onnx(model, info, "m.onnx", dynamic=True)          # checked against PyTorch; metadata in the file
    predictor = load_predictor("m.onnx")                      # same interface for .pt and .onnx
    frame = evaluate_model(predictor, config.data)            # one row per test list
    report = predict_folder(predictor, "images/", "maps/")    # PNG per image, bad files reported

    result = convert_arch("arch.json", "supernet.pt", "m.pt", config, ConvertOptions())   # the `convert` recipe

`convert_arch`, `ConvertOptions` and `ConvertResult` (`inas.deploy.conversion`, which uses `inas.deploy.convert`
and `inas.deploy.finetune`) are imported on first use, so loading a model does not load the training recipe.
"""

from typing import Any

from inas.deploy.evaluate import evaluate_model
from inas.deploy.maps import saliency_uint8, segmentation_labels
from inas.deploy.model_file import ModelInfo, detect_model_kind, load_model_file, model_info_of, save_model_file
from inas.deploy.onnx_export import ExportMismatchError, export_onnx, read_onnx_info, to_onnx_bytes
from inas.deploy.palette import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, colorize
from inas.deploy.predict import PredictReport, predict_folder
from inas.deploy.runtime import (
    LatencyComparison,
    OnnxPredictor,
    Predictor,
    Timing,
    TorchPredictor,
    compare_latency,
    load_predictor,
    ort_session,
    time_calls,
)

_LAZY = {"convert_arch", "ConvertOptions", "ConvertResult"}  # from inas.deploy.conversion


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from inas.deploy import conversion

        return getattr(conversion, name)
    raise AttributeError(f"module 'inas.deploy' has no attribute {name!r}")


__all__ = [
    "CITYSCAPES_CLASSES", "CITYSCAPES_PALETTE", "ConvertOptions", "ConvertResult", "convert_arch",
    "ExportMismatchError", "LatencyComparison", "ModelInfo",
    "OnnxPredictor", "PredictReport", "Predictor", "Timing", "TorchPredictor", "colorize", "compare_latency",
    "detect_model_kind", "evaluate_model", "export_onnx", "load_model_file", "load_predictor", "model_info_of",
    "ort_session", "predict_folder", "read_onnx_info", "saliency_uint8", "save_model_file", "segmentation_labels",
    "time_calls", "to_onnx_bytes",
]
