"""Rendering: paint the placed objects into the background, then image it with each camera.

:func:`render_scene` samples a scene, paints it, takes the visible and the thermal frame with the
frame's random sensor settings (:class:`Camera`), and measures how visible each object is in each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from fusion_perception.synthetic.background import Background, sample_background
from fusion_perception.synthetic.drawing import add_gaussian, draw_light, ellipse_mask, gaussian_noise
from fusion_perception.synthetic.layout import Placement, choose_signatures, place_object
from fusion_perception.synthetic.objects import FULL_CONTRAST, Scene, SceneObject

@dataclass
class Camera:
    """Everything random about the two cameras for one frame, so a counterfactual frame (the same
    scene without one object) can be rendered with exactly the same noise."""

    night: bool
    vi_gain: float
    vi_add: np.ndarray  # HxWx3: sensor noise (+ sun glare by day), added after the gain
    ir_sigma: float
    ir_lo: float
    ir_hi: float
    ir_add: np.ndarray  # HxW: sensor noise and fixed-pattern column stripes

    def vi(self, radiance: np.ndarray, win: tuple[slice, slice] = (slice(None), slice(None))) -> np.ndarray:
        """Visible frame (float, [0, 1]) from scene radiance ``A * L + E`` on a window."""
        x = radiance * self.vi_gain + self.vi_add[win]
        if self.night:  # low-light denoising in the camera smears a little
            x = cv2.GaussianBlur(x, (0, 0), 0.6)
        return np.clip(x, 0.0, 1.0)

    def ir(self, temperature: np.ndarray, win: tuple[slice, slice] = (slice(None), slice(None))) -> np.ndarray:
        """Thermal frame (float, [0, 1]): optics blur, the frame's automatic gain, noise."""
        x = cv2.GaussianBlur(temperature, (0, 0), self.ir_sigma)
        x = 0.04 + 0.92 * (x - self.ir_lo) / max(1e-3, self.ir_hi - self.ir_lo) + self.ir_add[win]
        return np.clip(x, 0.0, 1.0)


def visibility(final: np.ndarray, without: np.ndarray, mask: np.ndarray) -> float:
    """How much an object changes the frame: mean over its visible pixels of the largest channel
    difference between the frame and the same frame without it (same noise), as 0..1."""
    if mask.sum() < 1:
        return 0.0
    d = np.abs(final - without)
    if d.ndim == 3:
        d = d.max(axis=2)
    return round(min(1.0, float(d[mask].mean()) / FULL_CONTRAST), 2)


ClassTable = Sequence[tuple[str, str, float]]  # (label, kind, weight), as DET_CLASSES


def render_scene(rng: np.random.Generator, size: tuple[int, int], night: bool, classes: ClassTable,
                 clutter: Sequence[str], n_objects: tuple[int, int] = (3, 8)) -> Scene:
    """Sample and render one scene. ``classes``: (label, kind, weight) triples; ``clutter``: kinds."""
    W, H = size
    bg = sample_background(rng, H, W, night)
    objects = _sample_objects(rng, classes, clutter, n_objects, Placement(bg, H, W, night, 12.0 * H / 256.0))
    # Painter's order: road paint first, then far to near.
    objects.sort(key=lambda o: (not o.flat, o.y0 + o.h))
    alone = _Unpainted(bg.A.copy(), bg.T.copy())  # the background alone: the counterfactual for visibility
    owner = np.full((H, W), -1, np.int16)
    for j, obj in enumerate(objects):
        own_light = _paint_object(rng, obj, bg, alone.T, night)
        owner[obj.y0:obj.y0 + obj.h, obj.x0:obj.x0 + obj.w][obj.union()] = j
        if night:
            _light_at_night(rng, obj, bg, own_light)
            if own_light is not None:
                bg.E += own_light
                alone.emitted[j] = own_light
        elif obj.kind in ("car", "bus", "truck") and obj.s_vi == 1.0 and rng.random() < 0.7:
            _cast_vehicle_shadow(obj, bg)

    radiance = bg.A * bg.L[..., None] + bg.E
    cam = _sample_camera(rng, radiance, bg, night)
    vi, ir = cam.vi(radiance), cam.ir(bg.T)
    _measure_visibility(objects, owner, vi, ir, cam, bg, alone)
    vi8 = np.rint(vi * 255.0).astype(np.uint8)
    ir8 = np.rint(ir * 255.0).astype(np.uint8)
    return Scene(night, vi8, ir8, owner, objects)


@dataclass
class _Unpainted:
    """The scene without its objects: albedo, temperature, and each object's own emitted light."""

    A: np.ndarray
    T: np.ndarray
    emitted: dict[int, np.ndarray] = field(default_factory=dict)  # object index -> its own light


def _sample_objects(rng: np.random.Generator, classes: ClassTable, clutter: Sequence[str],
                    n_objects: tuple[int, int], where: Placement) -> list[SceneObject]:
    """Draw which objects the scene wants, place those that fit and choose their signatures."""
    weights = np.array([c[2] for c in classes], np.float64)
    weights /= weights.sum()
    objects: list[SceneObject] = []
    wanted = [classes[i] for i in rng.choice(len(classes), size=int(rng.integers(n_objects[0], n_objects[1] + 1)),
                                             p=weights)]
    wanted += [(None, clutter[i], 0.0) for i in rng.integers(0, len(clutter), size=int(rng.integers(0, 3)))]
    for label, kind, _ in wanted:
        obj = place_object(kind, label, rng, where)
        if obj is None:
            continue
        choose_signatures(obj, rng, where.night)
        objects.append(obj)
        where.taken.append(obj.box)
    return objects


def _paint_object(rng: np.random.Generator, obj: SceneObject, bg: Background, T0: np.ndarray,
                  night: bool) -> np.ndarray | None:
    """Paint an object's colour and temperature into ``bg``; return its own emitted light (retro
    paint lit at night) as a full-size layer, or None when it emits nothing."""
    ys, xs = slice(obj.y0, obj.y0 + obj.h), slice(obj.x0, obj.x0 + obj.w)
    t_bg = float(T0[ys, xs].mean())
    tex = 1.0 + 0.05 * gaussian_noise(rng, obj.h, obj.w)
    Ap, Tp = bg.A[ys, xs], bg.T[ys, xs]
    Ej = np.zeros_like(bg.E) if night and (obj.lit or obj.headlights) else None
    for p in obj.parts:
        m = p.mask
        if not m.any():
            continue
        colour = np.asarray(p.rgb, np.float32) * tex[m][:, None]
        Ap[m] = (1 - obj.s_vi) * Ap[m] + obj.s_vi * colour
        # Warm bodies have their own, uniform temperature; cold ones follow what is behind them
        # (air temperature), so they leave no silhouette where the background changes.
        target = min(0.97, t_bg + p.heat) if obj.warm else Tp[m] + p.heat
        Tp[m] = (1 - obj.s_ir) * Tp[m] + obj.s_ir * target
        if Ej is not None and p.retro and obj.lit:
            Ej[ys, xs][m] += colour * rng.uniform(0.25, 0.45)
    return Ej


def _light_at_night(rng: np.random.Generator, obj: SceneObject, bg: Background, own_light: np.ndarray | None) -> None:
    """Street light falling on (or from) a lit object, and the object's own lamps into ``own_light``."""
    L = bg.L
    if obj.lit and obj.kind == "lamp":
        hx, hy = obj.x0 + obj.lights[0].x, obj.y0 + obj.lights[0].y
        add_gaussian(L, obj.y0 + obj.h, hx, 0.3 * obj.h, 0.35 * obj.h, rng.uniform(0.7, 1.0))
        add_gaussian(L, (hy + obj.y0 + obj.h) / 2, hx, 0.35 * obj.h, 0.15 * obj.h, 0.4)
    elif obj.lit and not obj.flat:
        add_gaussian(L, obj.y0 + 0.55 * obj.h, obj.x0 + obj.w / 2, 0.6 * obj.h + 2, 0.6 * obj.w + 2,
                     rng.uniform(0.7, 1.0))
    if own_light is not None and (obj.kind == "lamp" or obj.headlights):
        for lt in obj.lights:
            draw_light(own_light, lt, obj.x0, obj.y0, L.shape[0])


def _cast_vehicle_shadow(obj: SceneObject, bg: Background) -> None:
    """Cast shadow on the road under a vehicle (day)."""
    H, W = bg.L.shape
    m = ellipse_mask(H, W, obj.x0 + obj.w / 2, obj.y0 + obj.h - 1, 0.55 * obj.w, max(2, 0.07 * obj.h))
    bg.L[m] *= 0.55


def _sample_camera(rng: np.random.Generator, radiance: np.ndarray, bg: Background, night: bool) -> Camera:
    """The frame's random camera settings: visible gain and noise (glare by day), thermal blur,
    automatic gain from the painted temperature, sensor noise and column stripes."""
    H, W = bg.T.shape
    # Visible camera: illumination, emission, low-light gain and noise; glare saturates.
    if night:
        gain = float(rng.uniform(1.0, 1.5))
        # Shot noise grows with the signal; part of it is shared by the channels (luma noise).
        luma = cv2.sqrt(np.clip(radiance[..., 1] * gain, 0, 1))[..., None]
        vi_add = (0.018 + 0.03 * luma) * (0.6 * gaussian_noise(rng, H, W, 1) + 0.5 * gaussian_noise(rng, H, W, 3))
    else:
        gain = 1.0
        vi_add = float(rng.uniform(0.006, 0.014)) * gaussian_noise(rng, H, W, 3)
        if rng.random() < 0.3:  # low sun glare in the sky
            add_gaussian(vi_add, rng.uniform(0, bg.horizon), rng.uniform(0, W), 0.15 * H, 0.15 * H, (0.5, 0.45, 0.35))
    # Thermal camera: optics blur, automatic gain, sensor noise, fixed-pattern column stripes.
    sigma = float(rng.uniform(0.8, 1.4) * H / 256.0 + 0.3)
    lo, hi = np.percentile(cv2.GaussianBlur(bg.T[::2, ::2], (0, 0), sigma / 2), (0.5, 99.8))
    ir_add = (float(rng.uniform(0.008, 0.02)) * gaussian_noise(rng, H, W)
              + float(rng.uniform(0.003, 0.015)) * gaussian_noise(rng, 1, W))
    return Camera(night, gain, vi_add, sigma, float(lo), float(hi), ir_add)


def _measure_visibility(objects: list[SceneObject], owner: np.ndarray, vi: np.ndarray, ir: np.ndarray,
                        cam: Camera, bg: Background, alone: _Unpainted) -> None:
    """Set each object's ``vis_vi``/``vis_ir``: its pixels against the frame rendered without it."""
    H, W = owner.shape
    pad = int(3 * cam.ir_sigma) + 3
    for j, obj in enumerate(objects):
        y0, y1 = max(0, obj.y0 - pad), min(H, obj.y0 + obj.h + pad)
        x0, x1 = max(0, obj.x0 - pad), min(W, obj.x0 + obj.w + pad)
        win = (slice(y0, y1), slice(x0, x1))
        mask = owner[win] == j
        without = alone.A[win] * bg.L[win][..., None] + bg.E[win] - (alone.emitted[j][win] if j in alone.emitted else 0.0)
        obj.vis_vi = visibility(vi[win], cam.vi(without, win), mask)
        obj.vis_ir = visibility(ir[win], cam.ir(alone.T[win], win), mask)


def clip_box(obj: SceneObject, W: int, H: int) -> tuple[int, int, int, int]:
    """The object's box clipped to a W x H image."""
    x1, y1, x2, y2 = obj.box
    return max(0, x1), max(0, y1), min(W, x2), min(H, y2)


