"""The street behind the objects: sky, buildings, trees, sidewalk, road, lane paint, shadows.

A :class:`Background` holds the four layers every object is painted into (albedo, temperature,
emission, illumination) and the road geometry that placement needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fusion_perception.synthetic.drawing import (
    blank_mask, ellipse_mask, gaussian_noise, jitter_colour, polygon_mask,
)

# ----------------------------------------------------------------------------- background
def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int = 6) -> np.ndarray:
    small = gaussian_noise(rng, cells, max(2, round(cells * w / h)))
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def fine_texture(rng: np.random.Generator, h: int, w: int, sigma: float = 0.7) -> np.ndarray:
    """Unit-variance fine-grained texture (blurred white noise)."""
    n = cv2.GaussianBlur(gaussian_noise(rng, h, w), (0, 0), sigma)
    return n / (float(n.std()) + 1e-6)


@dataclass
class Background:
    A: np.ndarray  # HxWx3 albedo (visible, day-lit)
    T: np.ndarray  # HxW temperature [0, 1]
    E: np.ndarray  # HxWx3 visible emission (self-luminous)
    L: np.ndarray  # HxW visible illumination
    horizon: int
    kerb: int  # far sidewalk ends, road begins
    vanish_x: float


def sample_background(rng: np.random.Generator, H: int, W: int, night: bool) -> Background:
    """A street at day or night: sky, buildings, trees, sidewalk, road, lanes (and shadows by day)."""
    yh = round(H * rng.uniform(0.3, 0.44))
    ys = yh + round(H * rng.uniform(0.04, 0.07))
    bg = Background(
        A=np.zeros((H, W, 3), np.float32), T=np.zeros((H, W), np.float32), E=np.zeros((H, W, 3), np.float32),
        L=np.full((H, W), 1.0 if not night else rng.uniform(0.04, 0.08), np.float32),
        horizon=yh, kerb=ys, vanish_x=0.0,
    )
    _paint_sky(rng, bg, night)
    _paint_buildings(rng, bg, night)
    _paint_trees(rng, bg, night)
    _paint_road(rng, bg, night)
    bg.vanish_x = _paint_lanes(rng, bg)
    if not night:
        _cast_building_shadows(rng, bg)
        _cast_tree_shadows(rng, bg)
    return bg


def _rows(bg: Background) -> np.ndarray:
    """Row index of every image row, as an (H, 1) float32 column."""
    return np.arange(bg.T.shape[0], dtype=np.float32)[:, None]


def _paint_sky(rng: np.random.Generator, bg: Background, night: bool) -> None:
    """Sky: blue by day (reflected light), emitted navy at night; always the coldest thing in IR."""
    yh, W = bg.horizon, bg.T.shape[1]
    gy = np.clip(_rows(bg)[:yh] / max(1, yh), 0, 1)
    if night:
        bg.E[:yh] = (np.array([0.02, 0.03, 0.07]) + gy * np.array([0.06, 0.05, 0.06]))[:, None, :]
        bg.T[:yh] = (0.04 + 0.08 * gy)
    else:
        top, low = np.array(jitter_colour(rng, (0.35, 0.55, 0.85), 0.1)), np.array([0.78, 0.84, 0.9])
        bg.A[:yh] = (top + gy * (low - top))[:, None, :]
        bg.A[:yh] += 0.06 * np.clip(smooth_noise(rng, yh, W, 4), 0, None)[..., None]  # clouds
        bg.T[:yh] = (0.1 + 0.1 * gy)


def _paint_buildings(rng: np.random.Generator, bg: Background, night: bool) -> None:
    """Buildings along the horizon, with window grids (some lit at night, a little warmer in IR)."""
    A, T, E, yh = bg.A, bg.T, bg.E, bg.horizon
    H, W = T.shape
    f = H / 256.0
    x = -rng.uniform(0, 0.1) * W
    while x < W:
        bw = rng.uniform(0.08, 0.24) * W
        top = max(0, round(yh - rng.uniform(0.08, 0.9) * yh))
        x0, x1 = max(0, round(x)), min(W, round(x + bw))
        x += bw * rng.uniform(0.7, 1.1)
        if x1 - x0 < 2 or top >= yh:
            continue
        colour = np.array(jitter_colour(rng, ((0.55, 0.52, 0.48), (0.62, 0.6, 0.6), (0.45, 0.36, 0.3),
                                              (0.7, 0.68, 0.6))[rng.integers(4)], 0.12))
        sx, sy = rng.uniform(6, 10) * f, rng.uniform(7, 11) * f
        gy_, gx_ = np.mgrid[top:yh, x0:x1]
        cy, cx = ((gy_ - top) // sy).astype(int), ((gx_ - x0) // sx).astype(int)
        win = (((gx_ - x0) % sx) > 0.45 * sx) & (((gy_ - top) % sy) > 0.45 * sy) & (gy_ < yh - 2)
        lit = rng.random((int(cy.max()) + 1, int(cx.max()) + 1)) < 0.25
        win_lit = win & lit[cy, cx]
        A[top:yh, x0:x1] = colour
        A[top:yh, x0:x1][win] = (0.2, 0.24, 0.3)
        tb = rng.uniform(0.36, 0.5) if not night else rng.uniform(0.28, 0.38)
        T[top:yh, x0:x1] = tb
        T[top:yh, x0:x1][win] = tb - 0.04
        if night:
            E[top:yh, x0:x1][win_lit] = np.array(jitter_colour(rng, (0.8, 0.65, 0.35), 0.15)) * rng.uniform(0.4, 0.8)
            T[top:yh, x0:x1][win_lit] = tb + 0.04


def _paint_trees(rng: np.random.Generator, bg: Background, night: bool) -> None:
    """Trees and bushes in front of the buildings: green, cooler than the buildings in IR."""
    H, W = bg.T.shape
    yh, ys, yy = bg.horizon, bg.kerb, _rows(bg)
    for _ in range(int(rng.integers(1, 5))):
        cx, cy = rng.uniform(0, W), yh - rng.uniform(0, 0.12) * H
        ax, ay = rng.uniform(0.04, 0.12) * W, rng.uniform(0.04, 0.1) * H
        m = ellipse_mask(H, W, cx, cy, ax, ay) & (yy < ys)
        bg.A[m] = np.array(jitter_colour(rng, (0.2, 0.4, 0.15), 0.15))
        bg.T[m] = rng.uniform(0.22, 0.3) if not night else rng.uniform(0.2, 0.28)


def _paint_road(rng: np.random.Generator, bg: Background, night: bool) -> None:
    """Far sidewalk and road; asphalt is hot by day (bright IR), mild at night."""
    A, T, yh, ys = bg.A, bg.T, bg.horizon, bg.kerb
    H, W = T.shape
    A[yh:ys] = np.array(jitter_colour(rng, (0.6, 0.58, 0.55), 0.08))
    T[yh:ys] = rng.uniform(0.45, 0.55) if not night else rng.uniform(0.28, 0.34)
    asphalt = rng.uniform(0.28, 0.42)
    A[ys:] = asphalt
    gr = (_rows(bg)[ys:] - ys) / max(1, H - ys)
    T[ys:] = (rng.uniform(0.52, 0.64) + 0.06 * gr) if not night else (rng.uniform(0.3, 0.4) + 0.03 * gr)
    tex = 0.04 * fine_texture(rng, H - ys, W) + 0.05 * smooth_noise(rng, H - ys, W, 5)
    A[ys:] *= (1.0 + tex)[..., None]
    T[ys:] += 0.25 * tex


def _paint_lanes(rng: np.random.Generator, bg: Background) -> float:
    """Dashed lane markings converging on a vanishing point: painted, so visible only in VI.

    Returns the vanishing point's x."""
    H, W = bg.T.shape
    ys, f = bg.kerb, H / 256.0
    vx = W * rng.uniform(0.35, 0.65)
    lanes = blank_mask(H, W)
    bx = vx + rng.uniform(-0.15, 0.15) * W  # where the centre line meets the bottom row
    for i in range(7):
        a, b = (i + 0.2) / 7, (i + 0.65) / 7
        p0 = (round(vx + (bx - vx) * a), round(ys + (H - ys) * a))
        p1 = (round(vx + (bx - vx) * b), round(ys + (H - ys) * b))
        cv2.line(lanes, p0, p1, 1, max(1, round(1 + 3 * f * b)))
    lm = lanes.astype(bool)
    bg.A[lm] = 0.82
    bg.T[lm] -= 0.015
    return vx


def _cast_building_shadows(rng: np.random.Generator, bg: Background) -> None:
    """Building shadows across the road (VI dark, IR slightly cooler asphalt); day only."""
    H, W = bg.T.shape
    ys = bg.kerb
    for _ in range(int(rng.integers(0, 3))):
        x0 = rng.uniform(-0.2, 0.9) * W
        wd = rng.uniform(0.1, 0.35) * W
        sl = rng.uniform(-0.6, 0.6) * (H - ys)
        m = polygon_mask(H, W, [(x0, ys), (x0 + wd, ys), (x0 + wd + sl, H), (x0 + sl, H)])
        bg.L[m] *= rng.uniform(0.4, 0.55)
        bg.T[m] -= 0.05


def _cast_tree_shadows(rng: np.random.Generator, bg: Background) -> None:
    """Soft-edged tree shadows on the road, wherever they fall; day only."""
    H, W = bg.T.shape
    ys, f = bg.kerb, H / 256.0
    for _ in range(int(rng.integers(0, 3))):
        m = blank_mask(H, W)
        cx, cy = rng.uniform(0, W), rng.uniform(ys, H)
        for _ in range(4):
            cv2.ellipse(m, (round(cx + rng.uniform(-0.06, 0.06) * W), round(cy + rng.uniform(-0.04, 0.04) * H)),
                        (max(2, round(rng.uniform(0.04, 0.1) * W)), max(2, round(rng.uniform(0.02, 0.05) * H))),
                        0, 0, 360, 1, -1)
        soft = cv2.GaussianBlur(m.astype(np.float32), (0, 0), 2.0 * f)
        bg.L *= 1.0 - rng.uniform(0.4, 0.55) * soft
        bg.T -= 0.05 * soft
