"""The nine fusion-quality metrics of the IR–visible fusion literature, as batched tensor functions.

Every metric follows ``shared/fixtures/README.md`` exactly (the definitions the EMMA and
CDDFuse papers' tables use) and reproduces its reference values; only the way of computing
is different: batched ``(B, H, W)`` tensors on any device, separable Gaussian filters, a
vectorised Qabf and an exact contingency-table MI built from integer codes.

Inputs are float tensors ``(B, 1, H, W)`` or ``(B, H, W)`` on the **0..255 scale** (nothing
divided by 255); the images of one batch share one size. Each function returns a float64
tensor of shape ``(B,)``. Argument order is always ``(ir, vi, fused)``.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

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

# Dense integer codes are used for MI when a batch holds at most this many distinct codes.
_MAX_DENSE_CODES = 1 << 16


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


def _f64(x: Tensor) -> Tensor:
    return x.to(torch.float64)


# ------------------------------------------------------------------------------ no-reference
def entropy(fused: Tensor) -> Tensor:
    """EN: Shannon entropy (bits) of the 256-bin histogram of ``uint8(round(F))``."""
    f = _as_bhw(fused, "fused")
    b = f.shape[0]
    # round() is half-to-even like numpy's; clamping replaces numpy's uint8 wrap-around.
    v = f.round().clamp_(0, 255).to(torch.int64).flatten(1)
    v = v + 256 * torch.arange(b, device=f.device).unsqueeze(1)
    hist = torch.bincount(v.flatten(), minlength=256 * b).view(b, 256).to(torch.float64)
    p = hist / v.shape[1]
    return -(p * torch.log2(torch.where(p > 0, p, torch.ones_like(p)))).sum(1)


def std(fused: Tensor) -> Tensor:
    """SD: population standard deviation of F."""
    return _f64(_as_bhw(fused, "fused")).flatten(1).std(dim=1, correction=0)


def spatial_frequency(fused: Tensor) -> Tensor:
    """SF: ``sqrt(mean(dx^2) + mean(dy^2))`` with forward differences."""
    f = _f64(_as_bhw(fused, "fused"))
    dx = f[:, :, 1:] - f[:, :, :-1]
    dy = f[:, 1:, :] - f[:, :-1, :]
    return (dx.square().mean((1, 2)) + dy.square().mean((1, 2))).sqrt()


def _gradient(f: Tensor, dim: int) -> Tensor:
    """numpy.gradient-style difference: central inside, one-sided on the two borders."""
    n = f.shape[dim]
    first = f.narrow(dim, 1, 1) - f.narrow(dim, 0, 1)
    last = f.narrow(dim, n - 1, 1) - f.narrow(dim, n - 2, 1)
    mid = (f.narrow(dim, 2, n - 2) - f.narrow(dim, 0, n - 2)) / 2
    return torch.cat((first, mid, last), dim=dim)


def average_gradient(fused: Tensor) -> Tensor:
    """AG: ``mean(sqrt((Gx^2 + Gy^2) / 2))``."""
    f = _f64(_as_bhw(fused, "fused"))
    gx, gy = _gradient(f, 2), _gradient(f, 1)
    return ((gx.square() + gy.square()) / 2).sqrt().mean((1, 2))


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
    """Mutual information (nats) per batch item of two code maps ``(B, N)``."""
    b, n = cx.shape
    batch = torch.arange(b, device=cx.device).unsqueeze(1)
    size = b * nx * ny
    pair = (batch * nx + cx) * ny + cy
    if size <= max(1 << 22, 4 * b * n):  # dense contingency tables
        joint = torch.bincount(pair.flatten(), minlength=size).view(b, nx, ny)
        px, py = joint.sum(2).flatten(), joint.sum(1).flatten()
        ids = joint.flatten().nonzero().squeeze(1)
        counts = joint.flatten()[ids]
    else:  # too many distinct value pairs for a dense table: count only the pairs that occur
        ids, counts = torch.unique(pair.flatten(), return_counts=True)
        px = torch.bincount((batch * nx + cx).flatten(), minlength=b * nx)
        py = torch.bincount((batch * ny + cy).flatten(), minlength=b * ny)
    bi, rest = ids // (nx * ny), ids % (nx * ny)
    i, j = rest // ny, rest % ny
    c = counts.to(torch.float64)
    px, py = px.to(torch.float64), py.to(torch.float64)
    # sum p_ij * log(p_ij / (p_i p_j)) with p = count / N, as sklearn's mutual_info_score.
    terms = c / n * (torch.log(c) + math.log(n) - torch.log(px[bi * nx + i]) - torch.log(py[bi * ny + j]))
    mi = torch.zeros(b, dtype=torch.float64, device=cx.device).index_add_(0, bi, terms)
    return mi.clamp_(min=0.0)


def mutual_information(ir: Tensor, vi: Tensor, fused: Tensor) -> Tensor:
    """MI: ``MI(F, IR) + MI(F, VI)`` in nats over the exact pixel values (no binning)."""
    a, b, f = _as_bhw(ir, "ir"), _as_bhw(vi, "vi"), _as_bhw(fused, "fused")
    _check_same(a, b, f)
    cf, nf = _codes(f)
    ca, na = _codes(a)
    cb, nb = _codes(b)
    return _mi_from_codes(cf, nf, ca, na) + _mi_from_codes(cf, nf, cb, nb)


# ------------------------------------------------------------------------------ SCD
def scd(ir: Tensor, vi: Tensor, fused: Tensor) -> Tensor:
    """SCD: ``corr(IR, F - VI) + corr(VI, F - IR)`` (Pearson, all pixels).

    All the (co)variances involved come from one 3x3 Gram matrix of the mean-centred images.
    """
    a, b, f = (_f64(_as_bhw(t, n)) for t, n in ((ir, "ir"), (vi, "vi"), (fused, "fused")))
    _check_same(a, b, f)
    x = torch.stack((a, b, f), 1).flatten(2)
    x = x - x.mean(2, keepdim=True)
    g = x @ x.transpose(1, 2)  # (B, 3, 3): sums of products of centred a, b, f
    aa, bb, ff, ab, af, bf = g[:, 0, 0], g[:, 1, 1], g[:, 2, 2], g[:, 0, 1], g[:, 0, 2], g[:, 1, 2]
    corr_a = (af - ab) / (aa * (ff - 2 * bf + bb)).sqrt()  # corr(a, f - b)
    corr_b = (bf - ab) / (bb * (ff - 2 * af + aa)).sqrt()  # corr(b, f - a)
    return corr_a + corr_b


# ------------------------------------------------------------------------------ VIF
def _vif_window(scale: int) -> Tensor:
    """1-D factor of the MATLAB-style Gaussian window of one VIF scale (float64, CPU).

    The 2-D window ``exp(-(x^2+y^2)/(2 s^2))`` normalised is the outer product of this factor
    with itself. MATLAB zeroes taps below ``eps * max``; with ``s = size/5`` the smallest
    (corner) tap is ``exp(-6.25 (n-1)^2/n^2) > 1.9e-3``, so nothing is zeroed and the window
    stays exactly separable.
    """
    n = 2 ** (4 - scale + 1) + 1
    sigma = n / 5.0
    x = torch.arange(n, dtype=torch.float64) - (n - 1) / 2.0
    g = torch.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


_VIF_WINDOWS: dict[int, Tensor] = {s: _vif_window(s) for s in range(1, 5)}


def _vif_min_size() -> int:
    """Smallest image side whose four scales all keep at least one ``valid`` pixel."""
    side = 1
    while True:
        n, ok = side, True
        for s in range(1, 5):
            k = _VIF_WINDOWS[s].numel()
            if s > 1:
                n = (n - k) // 2 + 1 if n >= k else 0
            if n < k:
                ok = False
                break
        if ok:
            return side
        side += 1


VIF_MIN_SIZE = _vif_min_size()


def _blur_valid(x: Tensor, g: Tensor, stride: int = 1) -> Tensor:
    """Separable ``valid`` correlation of every channel of ``(B, C, H, W)`` with ``g ⊗ g``.

    ``stride=2`` yields the ``[::2, ::2]`` samples of the valid output without computing the
    others. The window is symmetric, so correlation equals the reference's convolution.
    """
    c, n = x.shape[1], g.numel()
    g = g.to(device=x.device, dtype=x.dtype)
    # oneDNN's depthwise convolution is ~8x faster on channels-last data than on NCHW.
    x = x.contiguous(memory_format=torch.channels_last)
    kh = g.view(1, 1, 1, n).expand(c, 1, 1, n).contiguous()
    kv = g.view(1, 1, n, 1).expand(c, 1, n, 1).contiguous()
    x = F.conv2d(x, kh, stride=(1, stride), groups=c)
    return F.conv2d(x, kv, stride=(stride, 1), groups=c)


def _viff_terms(s1: Tensor, s2: Tensor, s12: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image sums of one VIF scale's numerator and denominator terms ``(B, K)``.

    The reference's clamps, in fewer tensor passes: where it sets the gain ``g`` to 0 (source
    variance below eps, distorted variance below eps, negative gain) the numerator term is
    0 whatever the noise variance ``sv`` is, so only ``g`` needs masking; a source variance
    below eps is zeroed, which also zeroes its denominator term. Natural logs are summed and
    converted to log10 once.
    """
    eps, sigma_nsq = 1e-10, 2.0
    s1 = s1.masked_fill(s1 < eps, 0.0)
    s2 = s2.clamp(min=0.0)
    g = s12.clamp(min=0.0) / (s1 + eps)
    g.masked_fill_(s2 < eps, 0.0)
    sv = torch.addcmul(s2, g, s12, value=-1.0).clamp_(min=eps).add_(sigma_nsq)
    num = torch.log1p(g.square_().mul_(s1).div_(sv)).sum((2, 3), dtype=torch.float64)
    den = torch.log1p(s1 * (1.0 / sigma_nsq)).sum((2, 3), dtype=torch.float64)
    return num, den


def vif(ir: Tensor, vi: Tensor, fused: Tensor, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """VIF: ``VIFF(IR, F) + VIFF(VI, F)``, pixel-domain multi-scale VIF (4 scales).

    Local (co)variances are ``E[xy] - E[x]E[y]`` of Gaussian-weighted means. Each image is
    first shifted by its own mean, which leaves them unchanged but keeps the cancellation
    small enough for float32 filtering (agrees with the float64 reference to ~1e-4 relative
    or better; pass ``dtype=torch.float64`` for the reference's precision, much slower on CPU).
    """
    a, b, f = _as_bhw(ir, "ir"), _as_bhw(vi, "vi"), _as_bhw(fused, "fused")
    _check_same(a, b, f)
    if min(f.shape[-2:]) < VIF_MIN_SIZE:
        raise ValueError(f"VIF needs images of at least {VIF_MIN_SIZE}x{VIF_MIN_SIZE} (four scales), "
                         f"got {tuple(f.shape[-2:])}")
    x = torch.stack((a, b, f), dim=1).to(dtype)
    x = x - x.mean((2, 3), keepdim=True)
    num = den = torch.zeros((), dtype=torch.float64, device=x.device)
    for scale in range(1, 5):
        g = _VIF_WINDOWS[scale]
        if scale > 1:
            x = _blur_valid(x, g, stride=2)
        # channels: a, b, f, a^2, b^2, f^2, a*f, b*f (F's statistics are shared by both pairs)
        maps = torch.cat((x, x * x, x[:, :2] * x[:, 2:]), 1)
        # back to NCHW: the per-pixel formulas below run much faster on contiguous channels
        mu = _blur_valid(maps, g).contiguous()
        m_src, m_f = mu[:, 0:2], mu[:, 2:3]
        s_src = torch.addcmul(mu[:, 3:5], m_src, m_src, value=-1.0)
        s_f = torch.addcmul(mu[:, 5:6], m_f, m_f, value=-1.0)
        s_cross = torch.addcmul(mu[:, 6:8], m_src, m_f, value=-1.0)
        n_, d_ = _viff_terms(s_src, s_f, s_cross)
        num, den = num + n_, den + d_
    ratio = num / den  # (B, 2); the log base cancels in the ratio
    ratio = torch.where(torch.isnan(ratio), torch.ones_like(ratio), ratio)
    return ratio.sum(1)


# ------------------------------------------------------------------------------ Qabf
_SOBEL = torch.tensor(
    [
        [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],  # x response (convolve2d)
        [[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]],  # y response (convolve2d)
    ]
)


def _sobel(x: Tensor) -> tuple[Tensor, Tensor]:
    """Edge strength and orientation of every channel of ``(B, C, H, W)``.

    ``convolve2d(..., mode='same')`` with zero padding: a true convolution, so the kernels
    are flipped for ``conv2d`` (a correlation). Returns ``(B, C, H, W)`` tensors.
    """
    c = x.shape[1]
    k = torch.flip(_SOBEL, dims=(1, 2)).to(device=x.device, dtype=x.dtype).repeat(c, 1, 1).unsqueeze(1)
    s = F.conv2d(x.contiguous(memory_format=torch.channels_last), k, padding=1, groups=c)
    s = s.contiguous().view(s.shape[0], c, 2, *s.shape[2:])
    sx, sy = s[:, :, 0], s[:, :, 1]
    strength = torch.sqrt(sx * sx + sy * sy)
    # sy / 0 is +-inf or nan there; those pixels get pi/2 as in the reference.
    angle = torch.where(sx == 0, math.pi / 2, torch.atan(sy / sx))
    return strength, angle


def qabf(ir: Tensor, vi: Tensor, fused: Tensor) -> Tensor:
    """Qabf: Xydeas–Petrović edge-preservation index, weighted by the source edge strengths.

    Follows the reference exactly, including its handling of equal strengths: where
    ``g_src == g_F`` the strength ratio is taken as ``g_F`` itself (the published evaluation
    code's convention, which the reference values depend on at the 1e-4 level).
    Computed in float32, as the reference's ``convolve2d`` on float32 images is.
    """
    a, b, f = _as_bhw(ir, "ir"), _as_bhw(vi, "vi"), _as_bhw(fused, "fused")
    _check_same(a, b, f)
    tg, kg, dg, ta, ka, da = 0.9994, -15.0, 0.5, 0.9879, -22.0, 0.8
    strength, angle = _sobel(torch.stack((a, b, f), 1).to(torch.float32))
    g_src, g_f = strength[:, :2], strength[:, 2:]
    # min/max strength ratio; where the strengths are equal the reference takes g_F itself.
    ratio = torch.where(g_src == g_f, g_f, torch.minimum(g_src, g_f) / torch.maximum(g_src, g_f))
    # Q = Tg / (1 + e^(kg (r - Dg))) * Ta / (1 + e^(ka (A - Da))), A = 1 - |da| / (pi/2)
    eg = ratio.mul_(kg).add_(-kg * dg).exp_().add_(1.0)
    ea = (angle[:, :2] - angle[:, 2:]).abs_().mul_(-ka / (math.pi / 2)).add_(ka * (1.0 - da)).exp_().add_(1.0)
    weights = g_src / eg.mul_(ea)
    nume = weights.sum((1, 2, 3), dtype=torch.float64) * (tg * ta)
    deno = g_src.sum((1, 2, 3), dtype=torch.float64)
    return nume / deno


# ------------------------------------------------------------------------------ SSIM
def _box_sum_valid(x: Tensor, k: int) -> Tensor:
    """Sum over every ``k x k`` window inside the image (``valid``) of each channel, via cumsums."""
    c = F.pad(x.cumsum(-1), (1, 0))
    x = c[..., k:] - c[..., :-k]
    c = F.pad(x.cumsum(-2), (0, 0, 1, 0))
    return c[..., k:, :] - c[..., :-k, :]


def _exact_in_float32(x: Tensor, k: int) -> bool:
    """Whether ``k*k``-window sums of the products of ``x``'s values are exact in float32.

    True for integer-valued images whose window sums of squares stay below 2**24 (8-bit
    images always): every partial sum is then an integer float32 represents exactly.
    """
    peak = float(x.abs().max())
    return k * k * peak * peak < 2**24 and bool(torch.equal(x, x.round()))


def _ssim_from_sums(sums: Tensor, k: int, integer: bool) -> Tensor:
    """Mean SSIM of F against IR and against VI from the window sums ``(B, 8, H', W')``.

    Channels: sums of f, a, b, f^2, a^2, b^2, f*a, f*b. With means ``S/n`` and sample
    covariances ``(n Sxy - Sx Sy) / (n (n-1))`` (``n = k*k``), SSIM's ratio is rescaled to
    sums only, so the one cancelling step, ``n Sxy - Sx Sy``, is done on exact integers
    (int32) in the integer case; everything after it is sums of positives, fine in float32.
    """
    n = k * k
    c1, c2 = (0.01 * 2.0) ** 2, (0.03 * 2.0) ** 2  # data_range = 2
    k1, k2 = c1 * n * n, c2 * n * (n - 1)
    dt = torch.float32 if integer else torch.float64
    if integer:
        sums = sums.to(torch.int32)
    s_x, s_sq, s_fx = sums[:, 0:3], sums[:, 3:6], sums[:, 6:8]
    var = n * s_sq - s_x * s_x  # (B, 3): n * Sxx - Sx^2 for f, a, b
    cov = n * s_fx - s_x[:, :1] * s_x[:, 1:]  # (B, 2): n * Sfx - Sf Sx for a, b
    s_f, s_src = s_x[:, :1].to(dt), s_x[:, 1:].to(dt)
    num = (2.0 * s_f * s_src + k1) * (2.0 * cov.to(dt) + k2)
    den = (s_f * s_f + s_src * s_src + k1) * ((var[:, :1] + var[:, 1:]).to(dt) + k2)
    ssim_map = num / den
    return ssim_map.sum((2, 3), dtype=torch.float64).sum(1) / (ssim_map.shape[2] * ssim_map.shape[3])


def ssim(ir: Tensor, vi: Tensor, fused: Tensor, *, win_size: int = 7) -> Tensor:
    """SSIM: ``SSIM(F, IR) + SSIM(F, VI)``, 7x7 uniform window, sample covariance, data_range 2.

    As scikit-image computes it: the mean SSIM map over the pixels whose window lies inside
    the image (its reflected borders are cropped away), so a ``valid`` box filter is exact.
    With data_range 2 on 0..255 values the constants are tiny and flat regions amplify any
    rounding, so the window sums are exact: float32 box filters where the values are integers
    (every partial sum is an exactly represented integer), float64 cumulative sums otherwise.
    """
    a, b, f = _as_bhw(ir, "ir"), _as_bhw(vi, "vi"), _as_bhw(fused, "fused")
    _check_same(a, b, f)
    k = win_size
    if min(f.shape[-2:]) < k:
        raise ValueError(f"SSIM needs images of at least {k}x{k}, got {tuple(f.shape[-2:])}")
    x = torch.stack((f, a, b), 1)
    integer = _exact_in_float32(x, k)
    if integer:
        x = x.to(torch.float32)
        maps = torch.cat((x, x * x, x[:, :1] * x[:, 1:]), 1)
        ones = torch.ones(8, 1, 1, k, dtype=torch.float32, device=x.device)
        sums = F.conv2d(maps.contiguous(memory_format=torch.channels_last), ones, groups=8)
        sums = F.conv2d(sums, ones.view(8, 1, k, 1), groups=8).contiguous()
    else:
        x = x.to(torch.float64)
        sums = _box_sum_valid(torch.cat((x, x * x, x[:, :1] * x[:, 1:]), 1), k)
    return _ssim_from_sums(sums, k, integer)


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
    ``vi`` are moved to ``fused``'s device. Returns ``{name: float64 tensor (B,)}`` in the
    order of ``names``; NaN where the images are smaller than the metric needs (:data:`MIN_SIZE`).
    """
    unknown = [n for n in names if n not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(METRIC_NAMES)}")
    f = _as_bhw(fused, "fused")
    a = _as_bhw(ir, "ir").to(f.device)
    b = _as_bhw(vi, "vi").to(f.device)
    _check_same(a, b, f)
    # The float64 metrics share one conversion; the filtering ones take their own precision.
    a64, b64, f64 = _f64(a), _f64(b), _f64(f)
    out: dict[str, Tensor] = {}
    for name in names:
        if min(f.shape[-2:]) < MIN_SIZE.get(name, 1):
            out[name] = torch.full((f.shape[0],), float("nan"), dtype=torch.float64, device=f.device)
        elif name in _FUSED_ONLY:
            out[name] = _FUSED_ONLY[name](f64)
        elif name in ("MI", "SCD"):
            out[name] = _WITH_SOURCES[name](a64, b64, f64)
        else:
            out[name] = _WITH_SOURCES[name](a, b, f)
    return out
