"""Fusion-quality metrics from local structure: VIF (Gaussian windows), Qabf (Sobel edges) and SSIM
(box windows); see :mod:`fusion_perception.metrics.fusion_quality`."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from fusion_perception.filters import sobel_strength_angle, window_sum_valid
from fusion_perception.metrics.quality_common import _f64, _inputs


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
    Written as one multiply-add of a shifted view per tap, along rows then along columns:
    with few channels per image this beats oneDNN's depthwise convolution, which vectorises
    over channels.
    """
    taps = g.tolist()
    n = len(taps)
    for dim in (3, 2):
        out = (x.shape[dim] - n) // stride + 1
        span = stride * (out - 1) + 1

        def shifted(i: int) -> Tensor:
            index = [slice(None)] * x.ndim
            index[dim] = slice(i, i + span, stride)
            return x[tuple(index)]

        y = shifted(0) * taps[0]
        for i in range(1, n):
            y.add_(shifted(i), alpha=taps[i])
        x = y
    return x


def vif(ir: Tensor, vi: Tensor, fused: Tensor, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """VIF: ``VIFF(IR, F) + VIFF(VI, F)``, pixel-domain multi-scale VIF (4 scales).

    Local (co)variances are ``E[xy] - E[x]E[y]`` of Gaussian-weighted means. Each image is
    first shifted by its own mean, which leaves them unchanged but keeps the cancellation
    small enough for float32 filtering (agrees with the float64 reference to ~1e-4 relative
    or better; pass ``dtype=torch.float64`` for the reference's precision, much slower on CPU).
    The sources' own statistics (and the denominator, which depends on them alone) are
    computed once per source pair, however many fused images are scored against it.
    """
    a, b, f = _inputs(ir, vi, fused)
    if min(f.shape[-2:]) < VIF_MIN_SIZE:
        raise ValueError(f"VIF needs images of at least {VIF_MIN_SIZE}x{VIF_MIN_SIZE} (four scales), "
                         f"got {tuple(f.shape[-2:])}")
    eps, sigma_nsq = 1e-10, 2.0
    src = torch.stack((a, b), dim=1).to(dtype)  # (Bs, 2, H, W): IR, VI
    src = src - src.mean((2, 3), keepdim=True)
    fx = f[:, None].to(dtype)  # (B, 1, H, W)
    fx = fx - fx.mean((2, 3), keepdim=True)
    num = den = torch.zeros((), dtype=torch.float64, device=f.device)
    for scale in range(1, 5):
        g = _VIF_WINDOWS[scale]
        if scale > 1:
            src, fx = _blur_valid(src, g, stride=2), _blur_valid(fx, g, stride=2)
        # back to NCHW: the per-pixel formulas below run much faster on contiguous channels
        mu_s = _blur_valid(torch.cat((src, src * src), 1), g).contiguous()  # E[a], E[b], E[a^2], E[b^2]
        mu_f = _blur_valid(torch.cat((fx, fx * fx, src * fx), 1), g).contiguous()  # E[f], E[f^2], E[af], E[bf]
        m_src, m_f = mu_s[:, 0:2], mu_f[:, 0:1]
        s1 = torch.addcmul(mu_s[:, 2:4], m_src, m_src, value=-1.0)  # source variances
        s2 = torch.addcmul(mu_f[:, 1:2], m_f, m_f, value=-1.0)  # fused variance
        s12 = torch.addcmul(mu_f[:, 2:4], m_src, m_f, value=-1.0)  # covariances
        # The reference's clamps, in fewer passes: where it sets the gain to 0 (source variance
        # below eps, fused variance below eps, negative gain) the numerator term is 0 whatever
        # the noise variance is, so only the gain needs masking; a source variance below eps is
        # zeroed, which also zeroes its denominator term. Masks are built with threshold/sign
        # (boolean masks and torch.where run an order of magnitude slower on the CPU), logs
        # are natural (the base cancels in the ratio) and log(1 + x) (log1p is 9x slower).
        s1 = F.threshold(s1, eps, 0.0)
        fused_detail = F.threshold(s2, eps, 0.0).sign_()  # 1 where the fused variance is >= eps, else 0
        gain = s12.clamp(min=0.0).div_(s1 + eps).mul_(fused_detail)
        sv = torch.addcmul(s2.clamp(min=0.0), gain, s12, value=-1.0).clamp_(min=eps).add_(sigma_nsq)
        num = num + gain.square_().mul_(s1).div_(sv).add_(1.0).log_().sum((2, 3)).double()
        den = den + (s1 * (1.0 / sigma_nsq)).add_(1.0).log_().sum((2, 3)).double()
    ratio = num / den  # (B, 2)
    ratio = torch.where(torch.isnan(ratio), torch.ones_like(ratio), ratio)
    return ratio.sum(1)


# ------------------------------------------------------------------------------ Qabf
def qabf(ir: Tensor, vi: Tensor, fused: Tensor) -> Tensor:
    """Qabf: Xydeas–Petrović edge-preservation index, weighted by the source edge strengths.

    Follows the reference exactly, including its handling of equal strengths: where
    ``g_src == g_F`` the strength ratio is taken as ``g_F`` itself (the published evaluation
    code's convention, which the reference values depend on at the 1e-4 level).
    Computed in float32, as the reference's ``convolve2d`` on float32 images is.
    """
    a, b, f = _inputs(ir, vi, fused)
    tg, kg, dg, ta, ka, da = 0.9994, -15.0, 0.5, 0.9879, -22.0, 0.8
    g_src, angle_src = sobel_strength_angle(torch.stack((a, b), 1).to(torch.float32))  # once per source pair
    g_f, angle_f = sobel_strength_angle(f[:, None].to(torch.float32))
    # min/max strength ratio; where the strengths are equal the reference takes g_F itself
    # (0/0 gives NaN, replaced; lerp with a 0/1 weight picks exactly one side).
    ratio = torch.minimum(g_src, g_f).div_(torch.maximum(g_src, g_f)).nan_to_num_(nan=0.0)
    ratio = torch.lerp(ratio, g_f.expand_as(ratio), (g_src == g_f).to(ratio.dtype))
    # Q = Tg / (1 + e^(kg (r - Dg))) * Ta / (1 + e^(ka (A - Da))), A = 1 - |da| / (pi/2),
    # as sigmoids: 1 / (1 + e^z) = sigmoid(-z).
    q_g = ratio.mul_(-kg).add_(kg * dg).sigmoid_()
    q_a = (angle_src - angle_f).abs_().mul_(ka / (math.pi / 2)).add_(-ka * (1.0 - da)).sigmoid_()
    nume = (q_g.mul_(q_a).mul_(g_src)).sum((1, 2, 3)).double() * (tg * ta)
    deno = g_src.sum((1, 2, 3)).double()
    return nume / deno


# ------------------------------------------------------------------------------ SSIM
def _exact_in_float32(x: Tensor, k: int) -> bool:
    """Whether ``k*k``-window sums of the products of ``x``'s values are exact in float32.

    True for integer-valued images whose window sums of squares stay below 2**24 (8-bit
    images always): every partial sum is then an integer float32 represents exactly.
    """
    peak = float(x.abs().max())
    return k * k * peak * peak < 2**24 and bool(torch.equal(x, x.round()))


def _ssim_from_sums(src: Tensor, fus: Tensor, k: int, integer: bool) -> Tensor:
    """Mean SSIM of F against IR and against VI from window sums.

    ``src`` ``(Bs, 4, H', W')``: sums of a, b, a^2, b^2 (once per source pair); ``fus``
    ``(B, 4, H', W')``: sums of f, f^2, f*a, f*b. With means ``S/n`` and sample covariances
    ``(n Sxy - Sx Sy) / (n (n-1))`` (``n = k*k``), SSIM's ratio is rescaled to sums only, so
    the one cancelling step, ``n Sxy - Sx Sy``, is done on exact integers (int32) in the
    integer case; everything after it is sums of positives, fine in float32.
    """
    n = k * k
    c1, c2 = (0.01 * 2.0) ** 2, (0.03 * 2.0) ** 2  # data_range = 2
    k1, k2 = c1 * n * n, c2 * n * (n - 1)
    dt = torch.float32 if integer else torch.float64
    if integer:
        src, fus = src.to(torch.int32), fus.to(torch.int32)
    s_src, s_fu = src[:, 0:2], fus[:, 0:1]
    var_src = n * src[:, 2:4] - s_src * s_src  # n * Sxx - Sx^2 for a, b
    var_f = n * fus[:, 1:2] - s_fu * s_fu
    cov = n * fus[:, 2:4] - s_fu * s_src  # n * Sfx - Sf Sx for a, b
    s_f, s_x = s_fu.to(dt), s_src.to(dt)
    num = (2.0 * s_f * s_x + k1) * (2.0 * cov.to(dt) + k2)
    den = (s_f * s_f + s_x * s_x + k1) * ((var_f + var_src).to(dt) + k2)
    ssim_map = num / den
    return _f64(ssim_map.sum((2, 3))).sum(1) / (ssim_map.shape[2] * ssim_map.shape[3])


def ssim(ir: Tensor, vi: Tensor, fused: Tensor, *, win_size: int = 7) -> Tensor:
    """SSIM: ``SSIM(F, IR) + SSIM(F, VI)``, 7x7 uniform window, sample covariance, data_range 2.

    As scikit-image computes it: the mean SSIM map over the pixels whose window lies inside
    the image (its reflected borders are cropped away), so a ``valid`` box filter is exact.
    With data_range 2 on 0..255 values the constants are tiny and flat regions amplify any
    rounding, so the window sums are exact: float32 where the values are integers (every
    partial sum is an exactly represented integer), float64 otherwise.
    """
    a, b, f = _inputs(ir, vi, fused)
    k = win_size
    if min(f.shape[-2:]) < k:
        raise ValueError(f"SSIM needs images of at least {k}x{k}, got {tuple(f.shape[-2:])}")
    src, fx = torch.stack((a, b), 1), f[:, None]
    integer = _exact_in_float32(src, k) and _exact_in_float32(fx, k)
    dt = torch.float32 if integer else torch.float64
    src, fx = src.to(dt), fx.to(dt)
    sums_src = window_sum_valid(torch.cat((src, src * src), 1), k)
    sums_f = window_sum_valid(torch.cat((fx, fx * fx, fx * src), 1), k)
    return _ssim_from_sums(sums_src, sums_f, k, integer)
