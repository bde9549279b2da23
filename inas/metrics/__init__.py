"""Metrics: SOD (F-measure, MAE, S-measure, E-measure, weighted F) and segmentation (mIoU), vectorised in torch."""

from inas.metrics.seg import SegMetrics
from inas.metrics.sod import LEGACY_METRIC_NAMES, PROTOCOLS, SEARCH_METRICS, SOD_METRIC_NAMES, SODMetrics

__all__ = ["LEGACY_METRIC_NAMES", "PROTOCOLS", "SEARCH_METRICS", "SOD_METRIC_NAMES", "SODMetrics", "SegMetrics"]
