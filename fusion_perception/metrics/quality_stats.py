"""Fusion-quality metrics from pixel statistics: EN, SD, SF, AG (fused image alone), MI and SCD
(see :mod:`fusion_perception.metrics.fusion_quality`)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fusion_perception.metrics.quality_common import _as_bhw, _f64, _inputs, _work

# Dense integer codes are used for MI when a batch holds at most this many distinct codes.
_MAX_DENSE_CODES = 1 << 16


# ------------------------------------------------------------------------------ no-reference
# On 0..255 images float32 is exact up to the final sums (differences, squares and their sums
# of pairs are integers or half-integers well below 2**24), and torch's float32 reductions sum
# pairwise, so the results agree with float64 to ~1e-7 at several times the speed.
def entropy(fused: Tensor) -> Tensor:
    """EN: Shannon entropy (bits) of the 256-bin histogram of ``uint8(round(F))``."""
    f = _as_bhw(fused, "fused")
    # round() is half-to-even like numpy's; clamping replaces numpy's uint8 wrap-around.
    v = f.round().clamp_(0, 255).to(torch.int32).flatten(1)
    hist = torch.stack([torch.bincount(row, minlength=256) for row in v]).to(torch.float64)
    p = hist / v.shape[1]
    return -(p * torch.log2(torch.where(p > 0, p, torch.ones_like(p)))).sum(1)


def std(fused: Tensor) -> Tensor:
    """SD: population standard deviation of F (two passes: mean, then squared deviations)."""
    f = _work(_as_bhw(fused, "fused")).flatten(1)
    return (f - f.mean(1, keepdim=True)).square_().mean(1).sqrt_().to(torch.float64)


def spatial_frequency(fused: Tensor) -> Tensor:
    """SF: ``sqrt(mean(dx^2) + mean(dy^2))`` with forward differences."""
    f = _work(_as_bhw(fused, "fused"))
    dx = f[:, :, 1:] - f[:, :, :-1]
    dy = f[:, 1:, :] - f[:, :-1, :]
    return (_f64(dx.square_().mean((1, 2))) + _f64(dy.square_().mean((1, 2)))).sqrt()


def _gradient(f: Tensor, dim: int) -> Tensor:
    """numpy.gradient-style difference: central inside, one-sided on the two borders."""
    n = f.shape[dim]
    first = f.narrow(dim, 1, 1) - f.narrow(dim, 0, 1)
    last = f.narrow(dim, n - 1, 1) - f.narrow(dim, n - 2, 1)
    mid = (f.narrow(dim, 2, n - 2) - f.narrow(dim, 0, n - 2)) / 2
    return torch.cat((first, mid, last), dim=dim)


def average_gradient(fused: Tensor) -> Tensor:
    """AG: ``mean(sqrt((Gx^2 + Gy^2) / 2))``."""
    f = _work(_as_bhw(fused, "fused"))
    gx, gy = _gradient(f, 2), _gradient(f, 1)
    return _f64(torch.addcmul(gx.square_(), gy, gy).mul_(0.5).sqrt_().mean((1, 2)))


# ------------------------------------------------------------------------------ MI
def _codes(x: Tensor) -> tuple[Tensor, int]:
    """Integer codes ``(B, N)`` of the distinct pixel values of a batch, and the code count.

    Equal values get equal codes and different values different ones, so a contingency table
    over codes is the table over exact values. Integer-valued (or half-integer, e.g. a mean
    of two integer images) inputs over a small range take a direct offset — no sort; anything
    else goes through ``torch.unique``.
    """
    x = x.flatten(1)
    lo, hi = torch.aminmax(x)
    lo_f, hi_f = float(lo), float(hi)
    if math.isfinite(lo_f) and math.isfinite(hi_f):
        for scale in (1.0, 2.0):  # scaling by 2 is exact in binary floating point
            if (hi_f - lo_f) * scale < _MAX_DENSE_CODES:
                y = x * scale
                if torch.equal(y, y.round()):
                    return (y - lo_f * scale).to(torch.int64), int((hi_f - lo_f) * scale) + 1
    _, inverse = torch.unique(x, return_inverse=True)
    return inverse.view(x.shape), int(inverse.max()) + 1


def _mi_from_codes(cx: Tensor, nx: int, cy: Tensor, ny: int) -> Tensor:
    """Mutual information (nats) per batch item of two code maps ``(B, N)`` (``cy`` may have batch 1).

    One item at a time: integer arithmetic broadcast over a batch axis runs several times
    slower than on contiguous rows.
    """
    b, n = cx.shape
    out = []
    for k in range(b):
        x, y = cx[k], cy[k if cy.shape[0] > 1 else 0]
        pair = x * ny + y
        if nx * ny <= max(1 << 22, 4 * n):  # a dense contingency table
            joint = torch.bincount(pair, minlength=nx * ny)
            px, py = joint.view(nx, ny).sum(1), joint.view(nx, ny).sum(0)
            ids = joint.nonzero().squeeze(1)
            counts = joint[ids]
        else:  # too many distinct value pairs for a dense table: count only the pairs that occur
            ids, counts = torch.unique(pair, return_counts=True)
            px, py = torch.bincount(x, minlength=nx), torch.bincount(y, minlength=ny)
        c = counts.to(torch.float64)
        px, py = px.to(torch.float64), py.to(torch.float64)
        # sum p_ij * log(p_ij / (p_i p_j)) with p = count / N, as sklearn's mutual_info_score.
        terms = c / n * (torch.log(c) + math.log(n) - torch.log(px[ids // ny]) - torch.log(py[ids % ny]))
        out.append(terms.sum().clamp_(min=0.0))
    return torch.stack(out)


def mutual_information(ir: Tensor, vi: Tensor, fused: Tensor) -> Tensor:
    """MI: ``MI(F, IR) + MI(F, VI)`` in nats over the exact pixel values (no binning)."""
    a, b, f = _inputs(ir, vi, fused)
    cf, nf = _codes(f)
    ca, na = _codes(a)
    cb, nb = _codes(b)
    return _mi_from_codes(cf, nf, ca, na) + _mi_from_codes(cf, nf, cb, nb)


# ------------------------------------------------------------------------------ SCD
def scd(ir: Tensor, vi: Tensor, fused: Tensor) -> Tensor:
    """SCD: ``corr(IR, F - VI) + corr(VI, F - IR)`` (Pearson, all pixels).

    All the (co)variances involved come from the Gram matrix of the mean-centred images (the
    sources' block once per source pair), summed in float64.
    """
    a, b, f = _inputs(ir, vi, fused)
    src = _work(torch.stack((a, b), 1)).flatten(2)  # (Bs, 2, N)
    fx = _work(f).flatten(1).unsqueeze(1)  # (B, 1, N)
    src = _f64(src - src.mean(2, keepdim=True))
    fx = _f64(fx - fx.mean(2, keepdim=True))
    g_src = src @ src.transpose(1, 2)  # (Bs, 2, 2): sums of products of centred a, b
    g_f = fx @ src.transpose(1, 2)  # (B, 1, 2): of f with a and b
    aa, bb, ab = g_src[:, 0, 0], g_src[:, 1, 1], g_src[:, 0, 1]
    af, bf, ff = g_f[:, 0, 0], g_f[:, 0, 1], fx.square().sum((1, 2))
    var_fb, var_fa = ff - 2 * bf + bb, ff - 2 * af + aa  # of f - b and f - a, times N
    # F equal to a source: its difference is 0, left as rounding residue by the expansion above
    # (measured: 0.71 or inf instead of undefined); below 1e-9 of the images' own variance, undefined.
    tiny = 1e-9 * (aa + bb + ff)
    var_fb, var_fa = var_fb.where(var_fb > tiny, torch.nan), var_fa.where(var_fa > tiny, torch.nan)
    corr_a = (af - ab) / (aa * var_fb).sqrt()  # corr(a, f - b)
    corr_b = (bf - ab) / (bb * var_fa).sqrt()  # corr(b, f - a)
    return corr_a + corr_b
