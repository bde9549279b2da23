"""Supernet training (sandwich sampling + in-place distillation), locally or under Ray Train. The evaluation of
sub-networks (precise-BN recalibration + task metrics) lives in `inas.evaluation`, below train, search and deploy;
it is re-exported here for callers of the training API.

    from inas.train import evaluate_arch, recalibrate_bn, bn_state, load_bn_state, evaluate_predictions
    from inas.train.loop import train_supernet          # the local loop (no Ray import)
    from inas.train.cluster import train_on_ray         # the same loop under Ray Train's TorchTrainer
"""

from inas.evaluation import (
    batch_images,
    bn_state,
    evaluate_arch,
    evaluate_predictions,
    fit_to_stride,
    load_bn_state,
    recalibrate_bn,
    supernet_predictor,
)

__all__ = [
    "batch_images", "bn_state", "evaluate_arch", "evaluate_predictions", "fit_to_stride", "load_bn_state",
    "recalibrate_bn", "supernet_predictor",
]
