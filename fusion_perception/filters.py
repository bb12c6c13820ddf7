"""Image filters as batched torch functions, kornia-style, written once for the whole toolkit:
box and window sums and means, average and Gaussian filters, the 3x3 Laplacian, He et al.'s
guided filter, Sobel gradients (EMMA's loss, Qabf), Burt & Adelson pyramids and the periodized
orthogonal DWT.

Every function takes ``(B, C, H, W)`` tensors on any device and returns tensors on that device.
The classical fusion rules (:mod:`fusion_perception.fusion.classical`), the fusion-quality and
retention metrics and EMMA's loss are built from them.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from fusion_perception.errors import ConfigError


# ----------------------------------------------------------------------------- filtering helpers


def _acc_dtype(x: torch.Tensor) -> torch.dtype:
    # Running sums over a 1000-pixel row lose ~1e-4 in float32; the guided filter's variance
    # with eps = 1e-6 needs better, so accumulate in float64 wherever the device has it.
    return torch.float32 if x.device.type == "mps" else torch.float64


# Images filtered at once in the float64 guided filter: bounds its memory on large images
# (a 5000x4000 image alone needs 160 MB per float64 plane) while small ones still go in batches.
_CHUNK_PIXELS = 1 << 22


def _chunked(fn, *xs: torch.Tensor) -> torch.Tensor:
    """``fn(*xs)`` over slices of the batch holding about :data:`_CHUNK_PIXELS` pixels each."""
    n, per_image = xs[0].shape[0], xs[0][:1].numel()
    step = max(1, _CHUNK_PIXELS // max(per_image, 1))
    if step >= n:
        return fn(*xs)
    return torch.cat([fn(*(x[i:i + step] for x in xs)) for i in range(0, n, step)])


def _row_tiles(fn, halo: int, *xs: torch.Tensor) -> torch.Tensor:
    """``fn(*xs)`` computed strip by strip of rows, for an ``fn`` whose output rows depend only on
    input rows at most ``halo`` away: each strip is computed with ``halo`` more rows on either
    side (where the image has them) and cut back, so the result is the whole-image one, in the
    memory of a strip of about :data:`_CHUNK_PIXELS` pixels."""
    h, w = xs[0].shape[-2:]
    rows = max(1, _CHUNK_PIXELS // max(1, xs[0][..., :1, :].numel()))
    if rows >= h:
        return fn(*xs)
    strips = []
    for top in range(0, h, rows):
        bottom = min(h, top + rows)
        a, b = max(0, top - halo), min(h, bottom + halo)
        strips.append(fn(*(x[..., a:b, :] for x in xs))[..., top - a: bottom - a, :])
    return torch.cat(strips, dim=-2)


def _window_sum_valid(x: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Sums over every length-``k`` window along ``dim`` ("valid": the output is k-1 shorter)."""
    n = x.shape[dim] + 1
    c = F.pad(x, (1, 0) if dim in (-1, x.ndim - 1) else (0, 0, 1, 0)).cumsum_(dim)  # a leading 0: sums start empty
    return c.narrow(dim, k, n - k) - c.narrow(dim, 0, n - k)


def box_sum(x: torch.Tensor, r: int, mode: str = "zeros") -> torch.Tensor:
    """Sum over the ``(2r+1)^2`` window around each pixel, O(1) per pixel (cumulative sums).

    ``mode``: ``"zeros"`` (pixels outside the image count as 0) or ``"replicate"``.
    Accumulates in float64 (float32 on MPS) and returns that dtype.
    """
    k = 2 * r + 1
    x = x.to(_acc_dtype(x))
    if mode == "zeros":
        x = F.pad(x, (r, r, r, r))
    elif mode == "replicate":
        x = _pad_replicate(x, r)
    else:
        raise ValueError(f"mode must be 'zeros' or 'replicate', not {mode!r}")
    return _window_sum_valid(_window_sum_valid(x, k, -1), k, -2)


def _pad_replicate(x: torch.Tensor, p: int) -> torch.Tensor:
    """Replicate padding by index (F.pad's replicate mode is not implemented for float64 on every device)."""
    h, w = x.shape[-2:]
    rows = torch.arange(-p, h + p, device=x.device).clamp_(0, h - 1)
    cols = torch.arange(-p, w + p, device=x.device).clamp_(0, w - 1)
    return x.index_select(-2, rows).index_select(-1, cols)


def box_mean(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over the part of the ``(2r+1)^2`` window inside the image (He et al.'s box filter)."""
    h, w = x.shape[-2:]
    dtype = _acc_dtype(x)
    return (box_sum(x, r) / _window_counts(h, w, r, dtype, x.device)).to(x.dtype)


def _window_counts(h: int, w: int, r: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """How many pixels of each (2r+1)^2 window lie inside an h x w image."""

    def count(n: int) -> torch.Tensor:
        i = torch.arange(n, device=device)
        return ((i + r).clamp(max=n - 1) - (i - r).clamp(min=0) + 1).to(dtype)

    return torch.outer(count(h), count(w))


def window_sum_valid(x: torch.Tensor, k: int) -> torch.Tensor:
    """Sum over every ``k x k`` window inside the image (``valid``) of each channel: SSIM's small windows.

    Sliding-window views summed along the window: no copies of the input, and sums of
    integers stay exact in float32 while they stay below 2**24.
    """
    return x.unfold(-1, k, 1).sum(-1).unfold(-2, k, 1).sum(-1)


def sums_in_boxes(integral: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Sums over ``boxes`` (N, 4) integer ``[x1, y1, x2, y2)`` of images whose integral is (..., H+1, W+1)."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return integral[..., y2, x2] - integral[..., y1, x2] - integral[..., y2, x1] + integral[..., y1, x1]


def average_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    """``size x size`` average filter with replicated borders (MATLAB ``imfilter(.., 'replicate')``)."""
    if size % 2 != 1:
        raise ValueError(f"average filter size must be odd, not {size}")
    r = size // 2
    return (box_sum(x, r, mode="replicate") / float(size * size)).to(x.dtype)


def _conv_same(x: torch.Tensor, kernel: torch.Tensor, mode: str = "replicate") -> torch.Tensor:
    """Depth-wise 2-D correlation with a small kernel, same size out; borders ``mode``
    (``"replicate"``, or ``"constant"``: zeros outside the image)."""
    kh, kw = kernel.shape
    c = x.shape[1]
    xp = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode=mode)
    weight = kernel.to(x).expand(c, 1, kh, kw)
    return F.conv2d(xp, weight, groups=c)


def gaussian_kernel1d(radius: int, sigma: float, device: torch.device | None = None) -> torch.Tensor:
    t = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    g = torch.exp(-(t * t) / (2.0 * sigma * sigma))
    return g / g.sum()


def gaussian_blur(x: torch.Tensor, radius: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian filter of size ``2*radius+1`` (``fspecial('gaussian')``), replicated borders."""
    g = gaussian_kernel1d(radius, sigma, x.device)
    return _conv_same(_conv_same(x, g[None, :]), g[:, None])


_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def laplacian(x: torch.Tensor) -> torch.Tensor:
    """3x3 Laplacian (``fspecial('laplacian', 0)``), replicated borders."""
    return _conv_same(x, _LAPLACIAN.to(x.device))


def guided_filter(guide: torch.Tensor, src: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    """He et al.'s guided filter (gray guide, per channel), batched: filters ``src`` edge-aware
    along ``guide`` (both ``(B, C, H, W)``).

    Large images go through in slices of the batch, one statistic at a time, with the
    intermediates updated in place: float64 planes of a 5000x4000 image are 160 MB each.
    """
    return _chunked(lambda g, s: _guided_filter(g, s, r, eps), guide, src)


def _guided_filter(guide: torch.Tensor, src: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    dtype = src.dtype
    i = guide.to(_acc_dtype(guide))
    p = src.to(i.dtype)
    mean_i, mean_p = box_mean(i, r), box_mean(p, r)
    a = box_mean(i * p, r).sub_(mean_i * mean_p)  # cov(i, p) ...
    a.div_(box_mean(i * i, r).sub_(mean_i.square()).add_(eps))  # ... / (var(i) + eps)
    b = mean_p.sub_(a * mean_i)
    del mean_i
    return box_mean(a, r).mul_(i).add_(box_mean(b, r)).to(dtype)


# ----------------------------------------------------------------------------- gradients


# The public code's gradient is kornia's ``SpatialGradient()`` with its defaults (kornia 0.2.0,
# pinned in the public requirements): the Sobel kernels normalised by their L1 norm (8), replicate
# padding. The raw kernel would make the gradient term 8x heavier (~75% of the loss, not ~27%).
_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
_SOBEL_Y = _SOBEL_X.t().contiguous()


def sobel_gradient(x: torch.Tensor) -> torch.Tensor:
    """Normalised Sobel gradient of ``(B, C, H, W)``: ``(B, 2C, H, W)``, the x then the y component.

    Equals ``kornia.filters.SpatialGradient()(x)`` (mode sobel, order 1, normalized) up to the
    layout of its output ``(B, C, 2, H, W)``. Replicate padding, so a constant image has zero
    gradient everywhere (borders included).
    """
    if x.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    c = x.shape[1]
    kernel = torch.stack((_SOBEL_X, _SOBEL_Y)).to(device=x.device, dtype=x.dtype)  # (2, 3, 3)
    kernel = kernel.unsqueeze(1).repeat(c, 1, 1, 1)  # (2C, 1, 3, 3): per channel x, y
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return F.conv2d(padded, kernel, groups=c)


def sobel_strength_angle(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sobel edge strength and orientation of every channel of ``(B, C, H, W)`` (Qabf's).

    The reference's ``convolve2d(x, Sobel, mode='same')`` (a true convolution, zero padding)
    with the Sobel kernels split into their separable parts: a [1, 2, 1] smoothing across
    and a central difference along. On integer images every step is exact, so the result is
    the convolution's to the bit. Returns ``(B, C, H, W)`` tensors.
    """
    h, w = x.shape[-2:]
    p = F.pad(x, (1, 1, 1, 1))
    across_rows = (p[..., 0:h, :] + p[..., 2:h + 2, :]).add_(p[..., 1:h + 1, :], alpha=2.0)  # (H, W+2)
    sx = across_rows[..., 0:w] - across_rows[..., 2:w + 2]
    across_cols = (p[..., 0:w] + p[..., 2:w + 2]).add_(p[..., 1:w + 1], alpha=2.0)  # (H+2, W)
    sy = across_cols[..., 2:h + 2, :] - across_cols[..., 0:h, :]
    strength = torch.addcmul(sx * sx, sy, sy).sqrt_()
    # atan(sy / sx), and pi/2 where sx == 0 as in the reference, as atan2 of the sign-folded
    # pair (atan2 is 2x faster than atan here, and this avoids a slow torch.where).
    sign = sx.sign()
    flat = sign.abs().neg_().add_(1.0)  # 1 where sx == 0
    angle = torch.atan2(sy * sign, sx.abs()).add_(flat, alpha=math.pi / 2)
    return strength, angle


# ----------------------------------------------------------------------------- pyramids

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0  # Burt & Adelson's 5-tap kernel


def _blur5(x: torch.Tensor, mode: str = "replicate") -> torch.Tensor:
    k = _BINOMIAL.to(x.device)
    return _conv_same(_conv_same(x, k[None, :], mode), k[:, None], mode)


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    return _blur5(x)[..., ::2, ::2]


def pyr_up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Upsample to ``size``: zero insertion, then the binomial blur divided by the share of the
    kernel that falls on inserted samples.

    In the interior that share is 1/4 (Burt & Adelson's gain of 4). At the borders part of the
    kernel falls outside the image; dividing by the share that lands inside makes every output
    pixel a weighted mean of its coarse neighbours, so a constant image stays that constant up to
    the edges (a replicate-padded blur of the zero-inserted image has a gain of 2.25 at the top
    and left and 0.25-0.5 at the bottom and right).
    """
    h, w = size
    up = x.new_zeros((*x.shape[:2], h, w))
    up[..., ::2, ::2] = x[..., : (h + 1) // 2, : (w + 1) // 2]
    share = x.new_zeros((1, 1, h, w))
    share[..., ::2, ::2] = 1.0
    return _blur5(up, "constant") / _blur5(share, "constant")


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``levels`` band-pass layers followed by the low-pass residual (``levels + 1`` tensors)."""
    pyr = []
    cur = x
    for _ in range(levels):
        down = pyr_down(cur)
        pyr.append(cur - pyr_up(down, cur.shape[-2:]))
        cur = down
    pyr.append(cur)
    return pyr


def reconstruct_laplacian(pyr: Sequence[torch.Tensor]) -> torch.Tensor:
    cur = pyr[-1]
    for band in reversed(pyr[:-1]):
        cur = band + pyr_up(cur, band.shape[-2:])
    return cur



# ----------------------------------------------------------------------------- wavelets


def wavelet_filters(wavelet: str, device: torch.device | None = None, dtype=torch.float32) -> torch.Tensor:
    """The 2-D analysis filter bank ``(4, 1, L, L)`` (LL, LH, HL, HH) of an orthogonal wavelet.

    Coefficients come from PyWavelets; the transform itself runs in torch.
    """
    import pywt

    try:
        w = pywt.Wavelet(wavelet)
    except ValueError as e:
        raise ConfigError(f"unknown wavelet {wavelet!r} ({e}); e.g. haar, db2, sym4, coif1") from None
    if not w.orthogonal:
        raise ConfigError(f"wavelet {wavelet!r} is not orthogonal; use haar, dbN, symN or coifN")
    # torch convolutions correlate: flip so that out[k] = sum_j dec[j] * x[2k + L/2 - j] (pywt's periodization)
    lo = torch.tensor(w.dec_lo[::-1], dtype=torch.float64)
    hi = torch.tensor(w.dec_hi[::-1], dtype=torch.float64)
    bank = torch.stack([torch.outer(a, b) for a in (lo, hi) for b in (lo, hi)])  # rows x cols
    return bank[:, None].to(device=device, dtype=dtype)


def _periodic_index(n: int, before: int, after: int, device: torch.device) -> torch.Tensor:
    return torch.arange(-before, n + after, device=device) % n


def dwt2(x: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """One level of the periodized 2-D DWT: ``(B, C, H, W)`` (H, W even) -> ``(B, C, 4, H/2, W/2)``."""
    b, c, h, w = x.shape
    length = bank.shape[-1]
    p = length // 2 - 1
    xp = x.index_select(-2, _periodic_index(h, p, p, x.device)).index_select(-1, _periodic_index(w, p, p, x.device))
    out = F.conv2d(xp.reshape(b * c, 1, h + 2 * p, w + 2 * p), bank, stride=2)
    return out.reshape(b, c, 4, h // 2, w // 2)


def idwt2(coeffs: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dwt2`: for an orthogonal wavelet the inverse is the adjoint
    (transposed convolution, then the periodic padding folded back)."""
    b, c, _, h2, w2 = coeffs.shape
    h, w = 2 * h2, 2 * w2
    length = bank.shape[-1]
    p = length // 2 - 1
    full = F.conv_transpose2d(coeffs.reshape(b * c, 4, h2, w2), bank, stride=2)  # (.., h+2p, w+2p)
    rows = _periodic_index(h, p, p, coeffs.device)
    cols = _periodic_index(w, p, p, coeffs.device)
    folded = full.new_zeros((b * c, 1, h, w + 2 * p)).index_add_(-2, rows, full)
    folded = full.new_zeros((b * c, 1, h, w)).index_add_(-1, cols, folded)
    return folded.reshape(b, c, h, w)


def minmax_per_image(y: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each image of ``(B, C, H, W)`` to [0, 1] (a flat image gives 0)."""
    mn = y.amin(dim=(1, 2, 3), keepdim=True)
    mx = y.amax(dim=(1, 2, 3), keepdim=True)
    return (y - mn) / (mx - mn).clamp_min(1e-12)
