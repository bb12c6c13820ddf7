"""Straightforward numpy/scipy implementation of the nine fusion-quality metrics.

This is the kind of code the fusion papers' repositories ship (one image at a time,
``scipy.signal.convolve2d``, ``sklearn.metrics.mutual_info_score``, ``skimage`` SSIM), written
directly from the definitions in ``shared/fixtures/README.md``. It is the baseline of
``benchmarks/benchmark_metrics.py`` and a cross-check in the tests; the project's fast batched
version lives in ``fusion_perception.metrics.fusion_quality``.

All functions take 2-D numpy arrays on the 0..255 scale (``F`` fused, ``A`` = IR, ``B`` = VI).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import convolve2d
from skimage.metrics import structural_similarity
from sklearn.metrics import mutual_info_score

METRIC_NAMES: tuple[str, ...] = ("EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM")


def en(img: np.ndarray) -> float:
    a = np.uint8(np.round(img)).ravel()
    h = np.bincount(a, minlength=256) / a.size
    return float(-np.sum(h * np.log2(h + (h == 0))))


def sd(img: np.ndarray) -> float:
    return float(np.std(img))


def sf(img: np.ndarray) -> float:
    return float(np.sqrt(np.mean((img[:, 1:] - img[:, :-1]) ** 2) + np.mean((img[1:, :] - img[:-1, :]) ** 2)))


def ag(img: np.ndarray) -> float:
    gx, gy = np.zeros_like(img), np.zeros_like(img)
    gx[:, 0] = img[:, 1] - img[:, 0]
    gx[:, -1] = img[:, -1] - img[:, -2]
    gx[:, 1:-1] = (img[:, 2:] - img[:, :-2]) / 2
    gy[0, :] = img[1, :] - img[0, :]
    gy[-1, :] = img[-1, :] - img[-2, :]
    gy[1:-1, :] = (img[2:, :] - img[:-2, :]) / 2
    return float(np.mean(np.sqrt((gx**2 + gy**2) / 2)))


def mi(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return float(mutual_info_score(f.ravel(), a.ravel()) + mutual_info_score(f.ravel(), b.ravel()))


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    xc, yc = x - np.mean(x), y - np.mean(y)
    return float(np.sum(xc * yc) / np.sqrt(np.sum(xc**2) * np.sum(yc**2)))


def scd(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return _corr(a, f - b) + _corr(b, f - a)


def _matlab_gauss(size: int, sigma: float) -> np.ndarray:
    m = (size - 1.0) / 2.0
    y, x = np.ogrid[-m : m + 1, -m : m + 1]
    h = np.exp(-(x * x + y * y) / (2.0 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    return h / h.sum()


def viff(ref: np.ndarray, dist: np.ndarray) -> float:
    """Pixel-domain multi-scale VIF of ``dist`` against ``ref``."""
    sigma_nsq, eps = 2.0, 1e-10
    num = den = 0.0
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        win = np.rot90(_matlab_gauss(n, n / 5.0), 2)
        if scale > 1:
            ref = convolve2d(ref, win, mode="valid")[::2, ::2]
            dist = convolve2d(dist, win, mode="valid")[::2, ::2]
        mu1 = convolve2d(ref, win, mode="valid")
        mu2 = convolve2d(dist, win, mode="valid")
        s1 = convolve2d(ref * ref, win, mode="valid") - mu1 * mu1
        s2 = convolve2d(dist * dist, win, mode="valid") - mu2 * mu2
        s12 = convolve2d(ref * dist, win, mode="valid") - mu1 * mu2
        s1[s1 < 0] = 0
        s2[s2 < 0] = 0
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        g[s1 < eps] = 0
        sv[s1 < eps] = s2[s1 < eps]
        s1[s1 < eps] = 0
        g[s2 < eps] = 0
        sv[s2 < eps] = 0
        sv[g < 0] = s2[g < 0]
        g[g < 0] = 0
        sv[sv <= eps] = eps
        num += np.sum(np.log10(1.0 + g**2 * s1 / (sv + sigma_nsq)))
        den += np.sum(np.log10(1.0 + s1 / sigma_nsq))
    ratio = num / den
    return 1.0 if np.isnan(ratio) else float(ratio)


def vif(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return viff(a, f) + viff(b, f)


_SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32)
_SOBEL_Y = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], dtype=np.float32)


def _sobel(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sx = convolve2d(img, _SOBEL_X, mode="same")
    sy = convolve2d(img, _SOBEL_Y, mode="same")
    g = np.sqrt(sx * sx + sy * sy)
    a = np.full_like(img, math.pi / 2)
    nz = sx != 0
    a[nz] = np.arctan(sy[nz] / sx[nz])
    return g, a


def _q_edge(a_src: np.ndarray, g_src: np.ndarray, a_f: np.ndarray, g_f: np.ndarray) -> np.ndarray:
    tg, kg, dg, ta, ka, da = 0.9994, -15.0, 0.5, 0.9879, -22.0, 0.8
    gaf = np.zeros_like(a_src)
    gt, lt, eq = g_src > g_f, g_src < g_f, g_src == g_f
    gaf[gt] = g_f[gt] / g_src[gt]
    gaf[eq] = g_f[eq]
    gaf[lt] = g_src[lt] / g_f[lt]
    aaf = 1 - np.abs(a_src - a_f) / (math.pi / 2)
    return tg / (1 + np.exp(kg * (gaf - dg))) * ta / (1 + np.exp(ka * (aaf - da)))


def qabf(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ga, aa = _sobel(a)
    gb, ab = _sobel(b)
    gf, af = _sobel(f)
    qaf, qbf = _q_edge(aa, ga, af, gf), _q_edge(ab, gb, af, gf)
    return float(np.sum(qaf * ga + qbf * gb) / np.sum(ga + gb))


def ssim(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    kw = dict(win_size=7, data_range=2.0, gaussian_weights=False, use_sample_covariance=True)
    return float(structural_similarity(f, a, **kw) + structural_similarity(f, b, **kw))


def reference_metrics(ir: np.ndarray, vi: np.ndarray, fused: np.ndarray,
                      names: tuple[str, ...] = METRIC_NAMES) -> dict[str, float]:
    """All requested metrics of one fused image against its IR and VI sources."""
    f, a, b = fused, ir, vi
    table = {
        "EN": lambda: en(f), "SD": lambda: sd(f), "SF": lambda: sf(f), "AG": lambda: ag(f),
        "MI": lambda: mi(f, a, b), "SCD": lambda: scd(f, a, b), "VIF": lambda: vif(f, a, b),
        "Qabf": lambda: qabf(f, a, b), "SSIM": lambda: ssim(f, a, b),
    }
    return {n: table[n]() for n in names}
