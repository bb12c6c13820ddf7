"""The nine fusion-quality metrics of the IR–visible fusion literature, as batched tensor functions.

Every metric follows ``shared/fixtures/README.md`` exactly (the definitions the EMMA and
CDDFuse papers' tables use) and reproduces its reference values; only the way of computing
is different: batched ``(B, H, W)`` tensors on any device, separable Gaussian filters, a
vectorised Qabf and an exact contingency-table MI built from integer codes.

Inputs are float tensors ``(B, 1, H, W)`` or ``(B, H, W)`` on the **0..255 scale** (nothing
divided by 255); the images of one batch share one size. ``ir`` and ``vi`` may hold a single
pair (batch 1) against ``B`` fused images -- several methods' results for one source pair --
and then what depends on the sources alone (their filtered statistics, edge maps, value codes)
is computed once. Each function returns a float64 tensor of shape ``(B,)``. Argument order is
always ``(ir, vi, fused)``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from fusion_perception.metrics.quality_common import _as_bhw, _inputs
from fusion_perception.metrics.quality_stats import (
    average_gradient, entropy, mutual_information, scd, spatial_frequency, std)
from fusion_perception.metrics.quality_structural import VIF_MIN_SIZE, qabf, ssim, vif

__all__ = [
    "METRIC_NAMES",
    "entropy",
    "std",
    "spatial_frequency",
    "average_gradient",
    "mutual_information",
    "scd",
    "vif",
    "qabf",
    "ssim",
    "compute_fusion_metrics",
]

METRIC_NAMES: tuple[str, ...] = ("EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM")


# ------------------------------------------------------------------------------ all at once
_FUSED_ONLY: dict[str, Callable[[Tensor], Tensor]] = {
    "EN": entropy,
    "SD": std,
    "SF": spatial_frequency,
    "AG": average_gradient,
}
_WITH_SOURCES: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "MI": mutual_information,
    "SCD": scd,
    "VIF": vif,
    "Qabf": qabf,
    "SSIM": ssim,
}


# Smallest image side each metric is defined for (AG needs a neighbour, SSIM its 7x7 window,
# VIF its four scales); smaller images get NaN for that metric: undefined, not an error.
MIN_SIZE: dict[str, int] = {"AG": 2, "SSIM": 7, "VIF": VIF_MIN_SIZE}


def compute_fusion_metrics(
    ir: Tensor, vi: Tensor, fused: Tensor, names: Sequence[str] = METRIC_NAMES
) -> dict[str, Tensor]:
    """The requested metrics of a batch of fused images against their IR and VI sources.

    ``ir``, ``vi`` and ``fused`` are ``(B,1,H,W)`` or ``(B,H,W)`` on the 0..255 scale; ``ir`` and
    ``vi`` may have batch 1 (one source pair against several fused images) and are moved to
    ``fused``'s device. Returns ``{name: float64 tensor (B,)}`` in the order of ``names``; NaN
    where the images are smaller than the metric needs (:data:`MIN_SIZE`).
    """
    unknown = [n for n in names if n not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(METRIC_NAMES)}")
    f = _as_bhw(fused, "fused")
    a, b, f = _inputs(ir.to(f.device), vi.to(f.device), f)
    out: dict[str, Tensor] = {}
    for name in names:
        if min(f.shape[-2:]) < MIN_SIZE.get(name, 1):
            out[name] = torch.full((f.shape[0],), float("nan"), dtype=torch.float64, device=f.device)
        else:
            out[name] = _FUSED_ONLY[name](f) if name in _FUSED_ONLY else _WITH_SOURCES[name](a, b, f)
    return out
