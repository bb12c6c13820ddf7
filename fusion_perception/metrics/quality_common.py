"""Input handling shared by the fusion-quality metrics: ``(B, H, W)`` views, shape checks, work dtypes."""

from __future__ import annotations


import torch
from torch import Tensor

# ------------------------------------------------------------------------------ helpers
def _as_bhw(x: Tensor, name: str = "image") -> Tensor:
    """``(B,1,H,W)`` or ``(B,H,W)`` -> ``(B,H,W)`` floating tensor."""
    if x.ndim == 4:
        if x.shape[1] != 1:
            raise ValueError(f"{name}: expected one channel, got shape {tuple(x.shape)}")
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"{name}: expected (B,1,H,W) or (B,H,W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.float()
    return x


def _check_same(*xs: Tensor) -> None:
    shape = xs[0].shape
    for x in xs[1:]:
        if x.shape != shape:
            raise ValueError(f"images differ in shape: {tuple(shape)} vs {tuple(x.shape)}")


def _inputs(ir: Tensor, vi: Tensor, fused: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(B,H,W)`` IR, VI and fused; the sources may have batch 1 against ``B`` fused images."""
    a, b, f = _as_bhw(ir, "ir"), _as_bhw(vi, "vi"), _as_bhw(fused, "fused")
    _check_same(a, b)
    if a.shape[1:] != f.shape[1:] or a.shape[0] not in (1, f.shape[0]):
        raise ValueError(f"images differ in shape: {tuple(a.shape)} vs {tuple(f.shape)}")
    return a, b, f


def _f64(x: Tensor) -> Tensor:
    return x.to(torch.float64)


def _work(x: Tensor) -> Tensor:
    """float32, or float64 where the input is float64 (integer and half inputs become float32)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.to(torch.float32)
