"""Fusion-quality metrics (EN, SD, SF, AG, MI, SCD, VIF, Qabf, SSIM) and their evaluation tables."""

from fusion_perception.metrics.fusion_quality import (
    METRIC_NAMES,
    average_gradient,
    compute_fusion_metrics,
    entropy,
    mutual_information,
    qabf,
    scd,
    spatial_frequency,
    ssim,
    std,
    vif,
)

__all__ = [
    "METRIC_NAMES",
    "average_gradient",
    "compute_fusion_metrics",
    "entropy",
    "mutual_information",
    "qabf",
    "scd",
    "spatial_frequency",
    "ssim",
    "std",
    "vif",
]
