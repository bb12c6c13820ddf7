"""The classical fusion rules as batched torch functions: mean, max, Laplacian pyramid, wavelet
(DWT) and guided-filter fusion (GFF), built on :mod:`fusion_perception.filters`.

Every function takes ``(B, 1, H, W)`` (any channel count works) tensors in [0, 1] on any
device and returns the same shape; nothing leaves the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fusion_perception.filters import (
    _chunked, _row_tiles, average_filter, dwt2, gaussian_blur, guided_filter, idwt2, laplacian, laplacian_pyramid,
    reconstruct_laplacian, wavelet_filters)

# ----------------------------------------------------------------------------- simple rules


def fuse_mean(ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
    return (ir + vi) * 0.5


def fuse_max(ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
    return torch.maximum(ir, vi)


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Choose, per coefficient, the one with the larger magnitude (ties go to ``a``)."""
    return torch.where(a.abs() >= b.abs(), a, b)


# ----------------------------------------------------------------------------- Laplacian pyramid


def fuse_laplacian(ir: torch.Tensor, vi: torch.Tensor, levels: int = 4) -> torch.Tensor:
    """Laplacian-pyramid fusion: base level averaged, detail levels by max-absolute."""
    pa, pb = laplacian_pyramid(ir, levels), laplacian_pyramid(vi, levels)
    fused = [_max_abs(a, b) for a, b in zip(pa[:-1], pb[:-1])]
    fused.append((pa[-1] + pb[-1]) * 0.5)
    return reconstruct_laplacian(fused)


# ----------------------------------------------------------------------------- wavelets


def fuse_dwt(ir: torch.Tensor, vi: torch.Tensor, wavelet: str = "db2", levels: int = 3) -> torch.Tensor:
    """Multi-level wavelet fusion: low band averaged, every high band by max-absolute.

    Periodized transform (PyWavelets' ``mode="periodization"``); sizes not divisible by
    ``2**levels`` are padded by replication and cropped back.
    """
    bank = wavelet_filters(wavelet, ir.device, ir.dtype)
    h, w = ir.shape[-2:]
    m = 2**levels
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
        ir = F.pad(ir, (0, pw, 0, ph), mode="replicate")
        vi = F.pad(vi, (0, pw, 0, ph), mode="replicate")
    highs = []
    a, b = ir, vi
    for _ in range(levels):
        ca, cb = dwt2(a, bank), dwt2(b, bank)
        highs.append(_max_abs(ca[:, :, 1:], cb[:, :, 1:]))
        a, b = ca[:, :, 0], cb[:, :, 0]
    low = (a + b) * 0.5
    for high in reversed(highs):
        low = idwt2(torch.cat((low[:, :, None], high), dim=2), bank)
    return low[..., :h, :w]


# ----------------------------------------------------------------------------- guided filter fusion


@dataclass(frozen=True)
class GFFParams:
    """GFF's parameters (Li, Kang & Hu 2013; the defaults are the paper's)."""

    r1: int = 45  # guided filter of the base-layer weights: radius ...
    eps1: float = 0.3  # ... and regularisation
    r2: int = 7  # of the detail-layer weights
    eps2: float = 1e-6
    avg_size: int = 31  # the average filter of the two-scale decomposition
    gauss_radius: int = 5  # the Gaussian smoothing of the saliency
    gauss_sigma: float = 5.0

    @property
    def halo(self) -> int:
        """How far away the inputs an output pixel depends on lie: two box filters of the guided
        filter on the weight maps, which come from a Laplacian (1) and a Gaussian (gauss_radius)."""
        return max(2 * self.r1, 2 * self.r2) + self.gauss_radius + 1 + self.avg_size // 2


def fuse_gff(ir: torch.Tensor, vi: torch.Tensor, params: GFFParams | None = None, **kwargs) -> torch.Tensor:
    """Guided filtering based fusion (Li, Kang & Hu, IEEE TIP 2013).

    Two-scale decomposition with an average filter; saliency = Gaussian-smoothed |Laplacian|;
    binary weight maps (the more salient source wins, ties to IR) refined by guided
    filtering with each source as its own guide: (r1, eps1) for the base layers, (r2, eps2)
    for the detail layers; weights normalised to sum to one per pixel.
    ``params``: a :class:`GFFParams`, or its fields as keyword arguments (``r1=45, ...``).
    """
    p = GFFParams(**kwargs) if params is None else GFFParams(**{**vars(params), **kwargs})

    def one(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return _fuse_gff(a, v, p)

    return _chunked(lambda a, v: _row_tiles(one, p.halo, a, v), ir, vi)


def _fuse_gff(ir: torch.Tensor, vi: torch.Tensor, p: GFFParams) -> torch.Tensor:
    b = ir.shape[0]
    x = torch.cat((ir, vi), 0)  # both sources in one batch: half the kernel launches
    base = average_filter(x, p.avg_size)
    detail = x - base
    sal = gaussian_blur(laplacian(x).abs(), p.gauss_radius, p.gauss_sigma)
    p_ir = (sal[:b] >= sal[b:]).to(x.dtype)
    maps = torch.cat((p_ir, 1.0 - p_ir), 0)
    wb = guided_filter(x, maps, p.r1, p.eps1)
    wd = guided_filter(x, maps, p.r2, p.eps2)

    def blend(w: torch.Tensor, layers: torch.Tensor) -> torch.Tensor:
        total = w[:b] + w[b:]
        # the refined maps of the two sources sum to ~1; guard the rare near-zero sum
        total = torch.where(total.abs() < 1e-6, torch.full_like(total, 1e-6), total)
        return (w[:b] * layers[:b] + w[b:] * layers[b:]) / total

    return blend(wb, base) + blend(wd, detail)
