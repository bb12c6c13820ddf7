"""Scene layout: where objects stand, how big, which way they face, and what each modality sees.

:func:`place_object` samples one object's warmth, size and free spot; :func:`choose_signatures`
decides how much of its thermal and colour signature shows, the part that makes fusion matter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fusion_perception.synthetic.background import Background
from fusion_perception.synthetic.drawing import jitter_colour, polygon_mask
from fusion_perception.synthetic.objects import (
    BASE_HEIGHT, BLACK, FLAT_KINDS, MIN_SCALE, P_WARM, WHITE, YELLOW, Light, Part, SceneObject,
)
from fusion_perception.synthetic.shapes import (
    Shape, bump_shape, car_shape, car_stop_shape, cone_shape, guardrail_shape, bus_shape, lamp_shape,
    person_shape, truck_shape, two_wheeler_shape,
)

# ----------------------------------------------------------------------------- placement
def perspective_scale(y: float, bg: Background, H: int) -> float:
    """Perspective: size factor 0.3 at the horizon, 1.0 at the bottom row."""
    return 0.3 + 0.7 * max(0.0, (y - bg.horizon)) / max(1, H - bg.horizon)


Box = tuple[int, int, int, int]  # (x1, y1, x2, y2), x2/y2 exclusive


@dataclass
class Placement:
    """What placing an object needs to know: the street, the image size, the time of day, the
    smallest object worth drawing (pixels) and the boxes already taken."""

    bg: Background
    H: int
    W: int
    night: bool
    min_h: float
    taken: list[Box] = field(default_factory=list)


def place_object(kind: str, label: str | None, rng: np.random.Generator, where: Placement) -> SceneObject | None:
    """Sample one object's state, size and position; None when it cannot fit without overlap."""
    warm = rng.random() < P_WARM.get(kind, 0.0)
    H, W = where.H, where.W
    for _ in range(25):
        if kind == "curve":
            obj = painted_kerb(rng, where.bg, H, W)
            if is_free(obj.box, where.taken, 0.3):
                return obj
            continue
        sized = _sized_lamp(rng, where) if kind == "lamp" else _sized_ground_object(kind, warm, rng, where)
        if sized is None:
            continue
        foot, h, (w, parts, lights) = sized
        if w > 0.8 * W or h > H - 2:
            continue
        if rng.random() < 0.5:  # face left or right
            _mirror(parts, lights, w)
        x0 = round(rng.uniform(1, W - w - 1))
        y0 = round(foot) - h
        if y0 < 1:
            continue
        obj = SceneObject(label, kind, warm, x0, y0, h, w, parts, lights, flat=kind in FLAT_KINDS)
        if is_free(obj.box, where.taken, 0.15):
            return obj
    return None


def _sized_lamp(rng: np.random.Generator, where: Placement) -> tuple[float, int, Shape] | None:
    """A street lamp's foot row, pole height and shape; None when it would be too small."""
    bg, H = where.bg, where.H
    foot = rng.uniform(bg.kerb - 2, bg.horizon + 0.4 * (H - bg.horizon))
    h = round(min(foot - 2, rng.uniform(0.9, 1.25) * 0.6 * H * perspective_scale(foot, bg, H)))
    if h < 3 * where.min_h:
        return None
    return foot, h, lamp_shape(h, rng, where.night)


def _sized_ground_object(kind: str, warm: bool, rng: np.random.Generator,
                         where: Placement) -> tuple[float, int, Shape] | None:
    """An object standing on the ground: foot row, height and shape; None when too small there."""
    bg, H = where.bg, where.H
    key = "motorcycle_parked" if kind == "motorcycle" and not warm else kind
    lo, hi = BASE_HEIGHT[key]
    span = (0.1, 1.0) if kind not in ("guardrail",) else (0.1, 0.65)
    foot = bg.horizon + rng.uniform(*span) * (H - bg.horizon)
    scale = perspective_scale(foot, bg, H)
    if scale < MIN_SCALE.get(kind, 0.0):
        return None
    h = round(rng.uniform(lo, hi) * H * scale)
    if h < (0.6 * where.min_h if kind == "bump" else where.min_h):
        return None
    return foot, h, _draw_shape(kind, h, scale, warm, rng, where)


def _draw_shape(kind: str, h: int, scale: float, warm: bool, rng: np.random.Generator, where: Placement) -> Shape:
    """Draw an object of ``kind`` and height ``h`` (``scale``: perspective size factor where it stands)."""
    W, night = where.W, where.night
    if kind == "bump":
        return bump_shape(h, round(rng.uniform(0.3, 0.6) * W * scale), rng)
    if kind == "guardrail":
        return guardrail_shape(h, round(rng.uniform(0.25, 0.5) * W), rng)
    if kind == "person":
        return person_shape(h, rng, night)
    if kind == "car":
        return car_shape(h, rng, warm)
    if kind == "bus":
        return bus_shape(h, rng, warm)
    if kind == "truck":
        return truck_shape(h, rng, warm)
    if kind == "motorcycle":
        return two_wheeler_shape(h, rng, warm, rider=warm, night=night)
    if kind == "bike":
        return two_wheeler_shape(h, rng, warm, rider=False, night=night)
    if kind == "color_cone":
        return cone_shape(h, rng)
    if kind == "car_stop":
        return car_stop_shape(h, rng)
    raise ValueError(f"unknown object kind {kind!r}")


def _mirror(parts: list[Part], lights: list[Light], w: int) -> None:
    """Flip an object's patch left to right, in place."""
    for p in parts:
        p.mask = p.mask[:, ::-1].copy()
    for lt in lights:
        lt.x = w - 1 - lt.x


def painted_kerb(rng: np.random.Generator, bg: Background, H: int, W: int) -> SceneObject:
    """Painted kerb along the road edge, in perspective: a thin band widening towards the camera."""
    side = -1 if rng.random() < 0.5 else 1
    y_top = bg.kerb + rng.uniform(0.05, 0.3) * (H - bg.kerb)
    y_bot = H - 1 - rng.uniform(0.0, 0.15) * (H - bg.kerb)
    x_bottom = bg.vanish_x + side * rng.uniform(0.3, 0.55) * W

    def at(y: float) -> float:
        return bg.vanish_x + (x_bottom - bg.vanish_x) * (y - bg.kerb) / max(1, H - bg.kerb)

    half = [1.0 + 0.03 * W * perspective_scale(y, bg, H) for y in (y_top, y_bot)]
    pts = np.array([(at(y_top) - half[0], y_top), (at(y_top) + half[0], y_top),
                    (at(y_bot) + half[1], y_bot), (at(y_bot) - half[1], y_bot)])
    pts[:, 0] = np.clip(pts[:, 0], 0, W - 1)
    x0, y0 = int(pts[:, 0].min()), int(pts[:, 1].min())
    w, h = int(pts[:, 0].max()) - x0 + 1, int(pts[:, 1].max()) - y0 + 1
    band = polygon_mask(h, w, pts - (x0, y0))
    # Alternating paint blocks that lengthen towards the camera.
    yy = np.arange(h, dtype=np.float32)[:, None] + y0
    phase = np.log1p(np.maximum(0.0, yy - bg.horizon)) * rng.uniform(5.0, 7.0)
    blocks = band & ((phase.astype(np.int64) % 2) == 0)
    colours = ((YELLOW, BLACK), (WHITE, (0.8, 0.12, 0.1)), (WHITE, (0.4, 0.4, 0.4)))[rng.integers(3)]
    parts = [Part(blocks, jitter_colour(rng, colours[0]), 0.0, retro=True),
             Part(band & ~blocks, jitter_colour(rng, colours[1]), 0.0, retro=True)]
    return SceneObject("curve", "curve", False, x0, y0, h, w, parts, [], flat=True)


def is_free(box: Box, taken: list[Box], limit: float) -> bool:
    """True when ``box`` overlaps no taken box by more than ``limit`` of the smaller one."""
    x1, y1, x2, y2 = box
    a = (x2 - x1) * (y2 - y1)
    for u1, v1, u2, v2 in taken:
        iw, ih = min(x2, u2) - max(x1, u1), min(y2, v2) - max(y1, v1)
        if iw > 0 and ih > 0 and iw * ih > limit * min(a, (u2 - u1) * (v2 - v1)):
            return False
    return True


# ----------------------------------------------------------------------------- modality design
def choose_signatures(obj: SceneObject, rng: np.random.Generator, night: bool) -> None:
    """Decide how much of each signature shows: the part of the scene that makes fusion matter."""
    obj.s_ir = float(rng.uniform(0.8, 1.0)) if obj.warm else float(rng.uniform(0.0, 0.12))
    obj.s_vi = 1.0
    if obj.kind == "lamp":
        obj.s_ir = float(rng.uniform(0.2, 0.5))  # a dim, barely warm housing
        obj.lit = night
        return
    if night:
        if obj.warm:
            obj.lit = rng.random() < 0.12  # mostly in the dark: IR only
            if not obj.lit:  # dark clothes / paint that the low light does not separate from the road
                obj.s_vi = float(rng.uniform(0.1, 0.3))
            obj.headlights = obj.kind in ("car", "bus", "truck", "motorcycle") and rng.random() < 0.25
        else:
            obj.lit = rng.random() < 0.9  # street light or retro-reflective paint: VI only
        return
    if obj.warm:
        if rng.random() < 0.12:  # thermal crossover: as warm as the sun-heated road, VI only
            obj.s_ir = float(rng.uniform(0.0, 0.05))
        elif rng.random() < 0.75:  # camouflaged: colours of the background behind it, IR only
            obj.s_vi = float(rng.uniform(0.0, 0.06))

