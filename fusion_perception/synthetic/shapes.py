"""Object shapes: each draws one kind of object on its own patch as coloured, heated parts.

A shape function takes the patch height (and the generator, and what decides its look) and returns
a :data:`Shape`: the patch width, its parts and its lights, facing right.
"""

from __future__ import annotations

import cv2
import numpy as np

from fusion_perception.synthetic.drawing import (
    blank_mask, clothing_colour, disc_mask, ellipse_mask, jitter_colour, polygon_mask, rect_mask,
    rounded_rect_mask, stripe_mask,
)
from fusion_perception.synthetic.objects import (
    BLACK, BUS_PAINTS, CAR_PAINTS, CARGO_PAINTS, GLASS, ORANGE, TYRE, WHITE, YELLOW, Light, Part,
)

# What a shape function returns: (patch width, parts, lights).
Shape = tuple[int, list[Part], list[Light]]

# ----------------------------------------------------------------------------- object shapes
def person_shape(h: int, rng: np.random.Generator, night: bool) -> Shape:
    w = max(5, round(0.42 * h))
    cx = w / 2 + rng.uniform(-0.03, 0.03) * h
    spread = rng.uniform(0.0, 0.1) * h
    swing = rng.uniform(-0.08, 0.08) * h
    head = disc_mask(h, w, cx, 0.1 * h, max(1.5, 0.09 * h))
    torso = ellipse_mask(h, w, cx, 0.37 * h, 0.15 * h, 0.18 * h)
    t = max(1, round(0.05 * h))
    arms = blank_mask(h, w)
    for side in (-1, 1):
        cv2.line(arms, (round(cx + side * 0.13 * h), round(0.25 * h)),
                 (round(cx + side * 0.19 * h + swing * side * 0.3), round(0.52 * h)), 1, t)
    legs = polygon_mask(h, w, [(cx - 0.12 * h, 0.5 * h), (cx, 0.5 * h), (cx - spread, h - 1), (cx - spread - 0.08 * h, h - 1)])
    legs |= polygon_mask(h, w, [(cx, 0.5 * h), (cx + 0.12 * h, 0.5 * h), (cx + spread + 0.08 * h, h - 1),
                         (cx + spread, h - 1)])
    skin = jitter_colour(rng, (0.85, 0.65, 0.5), 0.15)
    heat = rng.uniform(0.3, 0.42)
    parts = [
        Part(legs, clothing_colour(rng, night), heat - 0.05),
        Part(torso | arms.astype(bool), clothing_colour(rng, night), heat),
        Part(head, skin, heat + 0.06),
    ]
    return w, parts, []


def wheel_parts(h: int, w: int, xs: list[float], r: float, warm: bool) -> list[Part]:
    yc = h - 1 - r
    tyres = np.zeros((h, w), bool)
    hubs = np.zeros((h, w), bool)
    for x in xs:
        tyres |= disc_mask(h, w, x, yc, r)
        hubs |= disc_mask(h, w, x, yc, max(1.0, 0.4 * r))
    tyres &= ~hubs
    return [Part(tyres, TYRE, 0.33 if warm else 0.0), Part(hubs, (0.5, 0.5, 0.52), 0.36 if warm else 0.0)]


def vehicle_lights(h: int, w: int, y: float, r: float, front_right: bool) -> list[Light]:
    xf, xr = (w - 1 - r, r) if front_right else (r, w - 1 - r)
    return [Light(y, xf, max(1.0, r), (1.0, 0.97, 0.9), 0.9),
            Light(y, xr, max(1.0, 0.7 * r), (1.0, 0.15, 0.1), 0.35)]


def car_shape(h: int, rng: np.random.Generator, warm: bool) -> Shape:
    w = round(h * rng.uniform(1.9, 2.3))
    r = 0.17 * h
    paint = jitter_colour(rng, CAR_PAINTS[rng.integers(len(CAR_PAINTS))])
    body = rounded_rect_mask(h, w, 0, 0.38 * h, w, h - 0.55 * r, 0.12 * h)
    cabin = polygon_mask(h, w, [(0.18 * w, 0.42 * h), (0.3 * w, 0.03 * h), (0.68 * w, 0.03 * h), (0.84 * w, 0.42 * h)])
    glass = polygon_mask(h, w, [(0.24 * w, 0.4 * h), (0.33 * w, 0.1 * h), (0.48 * w, 0.1 * h), (0.48 * w, 0.4 * h)])
    glass |= polygon_mask(h, w, [(0.51 * w, 0.4 * h), (0.51 * w, 0.1 * h), (0.65 * w, 0.1 * h), (0.77 * w, 0.4 * h)])
    shell = (body | cabin) & ~glass
    hood = shell & (np.arange(w)[None, :] > 0.7 * w) & (np.arange(h)[:, None] > 0.38 * h)
    parts = [
        Part(shell & ~hood, paint, 0.2 if warm else 0.0),
        Part(hood, paint, 0.4 if warm else 0.0),
        Part(glass, GLASS, 0.06 if warm else -0.08),
        *wheel_parts(h, w, [0.2 * w, 0.8 * w], r, warm),
    ]
    return w, parts, vehicle_lights(h, w, 0.5 * h, 0.06 * h, True)


def bus_shape(h: int, rng: np.random.Generator, warm: bool) -> Shape:
    w = round(h * rng.uniform(2.6, 3.2))
    r = 0.12 * h
    paint = jitter_colour(rng, BUS_PAINTS[rng.integers(len(BUS_PAINTS))])
    body = rounded_rect_mask(h, w, 0, 0, w, h - 0.6 * r, 0.08 * h)
    n = max(3, int(w / (0.32 * h)))
    pitch = 0.9 * w / n
    xx = np.arange(w)[None, :]
    yy = np.arange(h)[:, None]
    win = ((yy > 0.1 * h) & (yy < 0.42 * h) & (xx > 0.05 * w) & (xx < 0.95 * w)
           & (((xx - 0.05 * w) % pitch) < 0.8 * pitch))
    door = rect_mask(h, w, 0.86 * w, 0.12 * h, 0.93 * w, h - 1.6 * r)
    glass = (win | door) & body
    engine = body & ~glass & (xx < 0.18 * w)
    parts = [
        Part(body & ~glass & ~engine, paint, 0.16 if warm else 0.0),
        Part(engine, paint, 0.4 if warm else 0.0),
        Part(glass, GLASS, 0.1 if warm else -0.08),
        *wheel_parts(h, w, [0.17 * w, 0.8 * w], r, warm),
    ]
    return w, parts, vehicle_lights(h, w, 0.75 * h, 0.045 * h, True)


def truck_shape(h: int, rng: np.random.Generator, warm: bool) -> Shape:
    w = round(h * rng.uniform(2.1, 2.6))
    r = 0.13 * h
    bottom = h - 0.7 * r
    cargo = rect_mask(h, w, 0, 0, 0.7 * w, bottom - 0.1 * h)
    ribs = cargo & ((np.arange(w)[None, :] % max(3.0, 0.22 * h)) < max(1.0, 0.05 * h))
    chassis = rect_mask(h, w, 0.02 * w, bottom - 0.12 * h, 0.98 * w, bottom)
    cab = rounded_rect_mask(h, w, 0.72 * w, 0.25 * h, w, bottom, 0.07 * h)
    glass = polygon_mask(h, w, [(0.76 * w, 0.3 * h), (0.9 * w, 0.3 * h), (0.98 * w, 0.52 * h), (0.76 * w, 0.52 * h)])
    parts = [
        Part(cargo & ~ribs, jitter_colour(rng, CARGO_PAINTS[rng.integers(len(CARGO_PAINTS))]), 0.12 if warm else 0.0),
        Part(ribs, (0.35, 0.35, 0.37), 0.12 if warm else 0.0),
        Part(chassis & ~cab, (0.15, 0.15, 0.16), 0.3 if warm else 0.0),
        Part(cab & ~glass, jitter_colour(rng, CAR_PAINTS[rng.integers(len(CAR_PAINTS))]), 0.4 if warm else 0.0),
        Part(glass, GLASS, 0.08 if warm else -0.08),
        *wheel_parts(h, w, [0.14 * w, 0.3 * w, 0.85 * w], r, warm),
    ]
    return w, parts, vehicle_lights(h, w, 0.72 * h, 0.05 * h, True)


def two_wheeler_shape(h: int, rng: np.random.Generator, warm: bool, rider: bool,
                 night: bool) -> Shape:
    """Motorcycle (with a rider when running, M3FD) or a rider-less bike (MSRS)."""
    w = round(h * (rng.uniform(1.1, 1.3) if rider else rng.uniform(1.5, 1.8)))
    r = (0.2 if rider else 0.3) * h
    yw = h - 1 - r
    frame_top = yw - 1.2 * r
    paint = jitter_colour(rng, CAR_PAINTS[rng.integers(len(CAR_PAINTS))])
    body = polygon_mask(h, w, [(0.22 * w, yw), (0.35 * w, frame_top), (0.72 * w, frame_top - 0.1 * r), (0.8 * w, yw),
                        (0.62 * w, yw), (0.5 * w, yw - 0.4 * r)])
    engine = ellipse_mask(h, w, 0.5 * w, yw - 0.35 * r, 0.12 * w, 0.4 * r)
    bars = blank_mask(h, w)
    cv2.line(bars, (round(0.74 * w), round(frame_top)), (round(0.8 * w), round(frame_top - 0.6 * r)), 1,
             max(1, round(0.04 * h)))
    parts = [
        Part(body & ~engine, paint, 0.15 if warm else 0.0),
        Part(engine, (0.3, 0.3, 0.32), 0.42 if warm else 0.0),
        Part(bars.astype(bool) & ~body, (0.2, 0.2, 0.2), 0.1 if warm else 0.0),
        *wheel_parts(h, w, [r + 0.5, w - r - 1.5], r, warm),
    ]
    if rider:
        heat = rng.uniform(0.3, 0.42)
        torso = ellipse_mask(h, w, 0.46 * w, 0.36 * h, 0.1 * h, 0.17 * h, angle=rng.uniform(-15, 15))
        helmet = disc_mask(h, w, 0.5 * w, 0.11 * h, 0.085 * h)
        taken = np.zeros((h, w), bool)
        for p in parts:
            taken |= p.mask
        parts.insert(0, Part(torso & ~taken, clothing_colour(rng, night), heat))
        parts.append(Part(helmet, jitter_colour(rng, CAR_PAINTS[rng.integers(len(CAR_PAINTS))]), heat - 0.1))
    return w, parts, [Light(frame_top - 0.3 * r, w - 1.5, max(1.0, 0.05 * h), (1.0, 0.97, 0.9), 0.8)]


def lamp_shape(h: int, rng: np.random.Generator, night: bool) -> Shape:
    """Street lamp: ``h`` is the pole height; the arm points into the patch from the pole."""
    pw = max(2, round(0.035 * h))
    arm = rng.uniform(0.18, 0.3) * h
    head_w, head_h = max(4.0, 0.14 * h), max(2.0, 0.05 * h)
    w = round(pw + arm + head_w / 2 + 1)
    pole = rect_mask(h, w, 0, 0.04 * h, pw, h)
    arm_m = rect_mask(h, w, 0, 0.04 * h, pw + arm, 0.04 * h + max(1.0, 0.6 * pw))
    hx, hy = pw + arm, 0.04 * h + head_h / 2
    head = ellipse_mask(h, w, hx, hy, head_w / 2, head_h / 2)
    metal = jitter_colour(rng, (0.26, 0.28, 0.3), 0.15)
    parts = [
        Part(pole | arm_m, metal, 0.0),
        Part(head & (np.arange(h)[:, None] < hy), metal, 0.06),
        Part(head & (np.arange(h)[:, None] >= hy), (0.95, 0.93, 0.85) if night else (0.82, 0.84, 0.86), 0.08),
    ]
    return w, parts, [Light(hy + 0.3 * head_h, hx, max(1.5, head_w / 3), (1.0, 0.9, 0.65), 1.2)]


def cone_shape(h: int, rng: np.random.Generator) -> Shape:
    w = max(5, round(0.75 * h))
    body = polygon_mask(h, w, [(w / 2, 0), (0.1 * w, 0.86 * h), (0.9 * w, 0.86 * h)])
    base = rect_mask(h, w, 0, 0.84 * h, w, h)
    yy = np.arange(h)[:, None]
    band = body & (yy > 0.38 * h) & (yy < 0.56 * h)
    orange = jitter_colour(rng, ORANGE, 0.05)
    return w, [Part((body & ~band) | base, orange, 0.0, retro=True), Part(band, WHITE, 0.0, retro=True)], []


def car_stop_shape(h: int, rng: np.random.Generator) -> Shape:
    w = round(h * rng.uniform(3.0, 4.0))
    block = rounded_rect_mask(h, w, 0, 0, w, h, 0.3 * h)
    paint = block & stripe_mask(h, w, w / 7, slope=0.6)
    base = (0.5, 0.5, 0.48) if rng.random() < 0.5 else BLACK
    return w, [Part(block & ~paint, base, 0.0), Part(paint, jitter_colour(rng, YELLOW), 0.0, retro=True)], []


def guardrail_shape(h: int, w: int, rng: np.random.Generator) -> Shape:
    rails = rect_mask(h, w, 0, 0.05 * h, w, 0.32 * h) | rect_mask(h, w, 0, 0.45 * h, w, 0.66 * h)
    pitch = max(6.0, 1.4 * h)
    xx = np.arange(w)[None, :]
    posts = ((xx % pitch) < max(2.0, 0.12 * h)) & (np.arange(h)[:, None] >= 0) & ~rails
    metal = jitter_colour(rng, (0.74, 0.76, 0.78), 0.08)
    reflect = rails & ((xx % pitch) < max(2.0, 0.2 * h)) & (np.arange(h)[:, None] < 0.32 * h)
    return w, [Part(rails & ~reflect, metal, -0.03), Part(posts, (0.5, 0.5, 0.52), -0.03),
               Part(reflect, (0.95, 0.85, 0.2), -0.03, retro=True)], []


def bump_shape(h: int, w: int, rng: np.random.Generator) -> Shape:
    skew = rng.uniform(-0.1, 0.1) * w
    band = polygon_mask(h, w, [(max(0, skew), 0), (w - 1 + min(0, skew), 0), (w - 1 - max(0, skew), h - 1),
                        (-min(0, skew), h - 1)])
    paint = band & stripe_mask(h, w, max(3.0, 1.2 * h), slope=1.0)
    return w, [Part(band & ~paint, BLACK, 0.0), Part(paint, jitter_colour(rng, YELLOW), 0.0, retro=True)], []

