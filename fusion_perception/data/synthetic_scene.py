"""Procedural street scenes rendered as a registered infrared/visible pair.

Rendering only; :mod:`fusion_perception.data.synthetic` writes the datasets. The scenes are
built so that fusion matters the way it does on real M3FD/MSRS pairs:

* warm objects (people, running vehicles) are hot in IR; at night they stand in the dark and
  are nearly invisible in the visible image; by day some wear the colours of what is behind them;
* cold objects (parked vehicles, lamps, cones, painted curbs and bumps, guardrails, car stops)
  sit at the background's temperature (no thermal contrast) but have colour and texture in the
  visible image, at night thanks to street lights and retro-reflective paint;
* a few warm objects by day are at the hot road's temperature (thermal crossover): VI only;
* lit lamps and headlights glare in night VI; IR is blurred, noisy, with column stripes.

Every random number comes from the ``numpy.random.Generator`` passed in, so a scene is a pure
function of its seed. Geometry is drawn with OpenCV on small per-object patches and composited
with numpy; a 320x256 scene takes about 20 ms of CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import NormalDist

import cv2
import numpy as np

# An object whose recorded visibility in a modality is below this counts as "low contrast" there.
LOW_VISIBILITY = 0.3
# Mean change an object makes to its pixels (in [0, 1] units) that counts as fully visible.
_FULL_CONTRAST = 0.15

_RGB = tuple[float, float, float]


# ----------------------------------------------------------------------------- data types
@dataclass
class Part:
    """One piece of an object, drawn in the object's patch."""

    mask: np.ndarray  # bool (h, w)
    rgb: _RGB  # visible albedo under daylight, [0, 1]
    heat: float  # IR temperature above the local background when the object is warm (s_ir=1)
    retro: bool = False  # retro-reflective paint: shines in headlights at night


@dataclass
class Light:
    """A self-luminous spot (lamp head, headlight) in patch coordinates; night only."""

    y: float
    x: float
    radius: float
    rgb: _RGB
    glare: float  # halo strength


@dataclass
class SceneObject:
    """One object of a scene: what it is, where, how it looks in each modality."""

    label: str | None  # class name in the task's vocabulary; None = unlabelled clutter
    kind: str  # geometry: person, car, bus, truck, motorcycle, bike, lamp, cone, car_stop, ...
    warm: bool  # running / alive: hot in IR unless in thermal crossover
    x0: int
    y0: int
    h: int
    w: int
    parts: list[Part] = field(default_factory=list)
    lights: list[Light] = field(default_factory=list)
    flat: bool = False  # painted on the road: drawn under everything else
    s_ir: float = 1.0  # how much of its thermal signature shows (0 = background temperature)
    s_vi: float = 1.0  # how much of its colour shows (0 = camouflaged)
    lit: bool = False  # lit by a street light at night
    headlights: bool = False
    vis_ir: float = 0.0  # measured after rendering
    vis_vi: float = 0.0

    @property
    def box(self) -> tuple[int, int, int, int]:
        """Tight (x1, y1, x2, y2) box of the drawn pixels, x2/y2 exclusive."""
        union = np.zeros((self.h, self.w), bool)
        for p in self.parts:
            union |= p.mask
        ys, xs = np.nonzero(union)
        if len(ys) == 0:
            return self.x0, self.y0, self.x0 + self.w, self.y0 + self.h
        return (self.x0 + int(xs.min()), self.y0 + int(ys.min()),
                self.x0 + int(xs.max()) + 1, self.y0 + int(ys.max()) + 1)

    def union(self) -> np.ndarray:
        union = np.zeros((self.h, self.w), bool)
        for p in self.parts:
            union |= p.mask
        return union


@dataclass
class Scene:
    """A rendered pair: ``vi`` HxWx3 RGB uint8, ``ir`` HxW uint8, ``owner`` HxW object index (-1 = none)."""

    night: bool
    vi: np.ndarray
    ir: np.ndarray
    owner: np.ndarray
    objects: list[SceneObject]


# Which classes each task draws: (label, kind, weight). Kinds with warm variants decide that below.
DET_CLASSES: tuple[tuple[str, str, float], ...] = (
    ("People", "person", 0.27), ("Car", "car", 0.25), ("Bus", "bus", 0.09),
    ("Motorcycle", "motorcycle", 0.12), ("Lamp", "lamp", 0.14), ("Truck", "truck", 0.13),
)
SEG_CLASSES: tuple[tuple[str, str, float], ...] = (
    ("car", "car", 0.18), ("car", "bus", 0.03), ("car", "truck", 0.05), ("person", "person", 0.24),
    ("bike", "bike", 0.14), ("curve", "curve", 0.06), ("car_stop", "car_stop", 0.07),
    ("guardrail", "guardrail", 0.07), ("color_cone", "color_cone", 0.08), ("bump", "bump", 0.07),
)
# Unlabelled clutter: objects of the other dataset's classes, so neither task is "anything = object".
DET_CLUTTER: tuple[str, ...] = ("color_cone", "car_stop", "guardrail", "bump")
SEG_CLUTTER: tuple[str, ...] = ("lamp",)

# Probability that an object of this kind is warm (running engine / alive).
_P_WARM = {"person": 1.0, "car": 0.5, "bus": 0.5, "truck": 0.5, "motorcycle": 0.75, "bike": 0.7}
_FLAT = {"curve", "bump"}

# Object height at the bottom of the image, as a fraction of the image height: (low, high).
_BASE_HEIGHT = {
    "person": (0.30, 0.36), "car": (0.20, 0.24), "bus": (0.32, 0.38), "truck": (0.30, 0.35),
    "motorcycle": (0.26, 0.30), "motorcycle_parked": (0.16, 0.19), "bike": (0.15, 0.18),
    "color_cone": (0.11, 0.14), "car_stop": (0.06, 0.075), "guardrail": (0.09, 0.11),
    "bump": (0.05, 0.065),
}
_MIN_SCALE = {"color_cone": 0.55, "car_stop": 0.7, "bump": 0.45}

_CAR_PAINTS: tuple[_RGB, ...] = (
    (0.86, 0.86, 0.86), (0.1, 0.1, 0.12), (0.56, 0.58, 0.62), (0.72, 0.1, 0.1), (0.12, 0.22, 0.58),
    (0.27, 0.3, 0.34), (0.8, 0.74, 0.58), (0.2, 0.45, 0.3),
)
_BUS_PAINTS: tuple[_RGB, ...] = (
    (0.92, 0.76, 0.1), (0.78, 0.15, 0.12), (0.15, 0.38, 0.72), (0.2, 0.58, 0.32), (0.9, 0.9, 0.88),
)
_CARGO_PAINTS: tuple[_RGB, ...] = (
    (0.9, 0.9, 0.9), (0.92, 0.5, 0.12), (0.18, 0.35, 0.7), (0.25, 0.55, 0.3), (0.7, 0.7, 0.72),
)
_GLASS: _RGB = (0.14, 0.18, 0.24)
_TYRE: _RGB = (0.06, 0.06, 0.06)
_YELLOW: _RGB = (0.95, 0.8, 0.12)
_BLACK: _RGB = (0.08, 0.08, 0.08)
_WHITE: _RGB = (0.92, 0.92, 0.92)
_ORANGE: _RGB = (0.97, 0.42, 0.08)


# ----------------------------------------------------------------------------- noise
# Standard-normal quantiles of 256 equiprobable bins: a byte from the generator becomes a Gaussian
# sample through a table lookup, several times faster than ``standard_normal`` on big images.
_NORMAL_LUT = np.array([NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)], np.float32)
_NORMAL_LUT /= _NORMAL_LUT.std()


def _noise(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Float32 noise with (close to) unit normal distribution, drawn from ``rng``."""
    n = int(np.prod(shape))
    b = np.frombuffer(rng.bytes(n), np.uint8).reshape(1, n)
    return cv2.LUT(b, _NORMAL_LUT).reshape(shape)


# ----------------------------------------------------------------------------- mask helpers
def _blank(h: int, w: int) -> np.ndarray:
    return np.zeros((h, w), np.uint8)


def _poly(h: int, w: int, pts) -> np.ndarray:
    m = _blank(h, w)
    cv2.fillPoly(m, [np.round(np.asarray(pts, np.float64)).astype(np.int32)], 1)
    return m.astype(bool)


def _ellipse(h: int, w: int, cx: float, cy: float, ax: float, ay: float, angle: float = 0.0) -> np.ndarray:
    m = _blank(h, w)
    cv2.ellipse(m, (round(cx), round(cy)), (max(1, round(ax)), max(1, round(ay))), angle, 0, 360, 1, -1)
    return m.astype(bool)


def _circle(h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    m = _blank(h, w)
    cv2.circle(m, (round(cx), round(cy)), max(1, round(r)), 1, -1)
    return m.astype(bool)


def _rect(h: int, w: int, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    m = np.zeros((h, w), bool)
    xa, ya = max(0, round(x0)), max(0, round(y0))
    xb, yb = min(w, max(xa + 1, round(x1))), min(h, max(ya + 1, round(y1)))
    m[ya:yb, xa:xb] = True
    return m


def _rrect(h: int, w: int, x0: float, y0: float, x1: float, y1: float, r: float) -> np.ndarray:
    """Rounded rectangle: two crossing rectangles and four corner discs."""
    r = max(1.0, min(r, (x1 - x0) / 2, (y1 - y0) / 2))
    m = _rect(h, w, x0 + r, y0, x1 - r, y1) | _rect(h, w, x0, y0 + r, x1, y1 - r)
    for cx, cy in ((x0 + r, y0 + r), (x1 - r - 1, y0 + r), (x0 + r, y1 - r - 1), (x1 - r - 1, y1 - r - 1)):
        m |= _circle(h, w, cx, cy, r)
    return m


def _stripes(h: int, w: int, period: float, slope: float = 0.0) -> np.ndarray:
    """Alternating bands (diagonal when ``slope`` != 0): True on every other band."""
    yy, xx = np.mgrid[0:h, 0:w]
    return ((xx + slope * yy) // max(1.0, period)).astype(np.int64) % 2 == 0


def _jitter(rng: np.random.Generator, rgb: _RGB, amount: float = 0.06) -> _RGB:
    c = np.clip(np.asarray(rgb) * rng.uniform(1 - amount, 1 + amount) + rng.normal(0, amount / 3, 3), 0, 1)
    return tuple(float(v) for v in c)  # type: ignore[return-value]


def _clothes(rng: np.random.Generator, dark: bool) -> _RGB:
    """A clothing colour; ``dark`` draws the dull colours people wear at night."""
    hue = rng.uniform(0, 180)
    sat = rng.uniform(40, 200)
    val = rng.uniform(30, 110) if dark else rng.uniform(60, 240)
    bgr = cv2.cvtColor(np.uint8([[[hue, sat, val]]]), cv2.COLOR_HSV2RGB)[0, 0] / 255.0
    return tuple(float(v) for v in bgr)  # type: ignore[return-value]


# ----------------------------------------------------------------------------- object shapes
def _person(h: int, rng: np.random.Generator, night: bool) -> tuple[int, list[Part], list[Light]]:
    w = max(5, round(0.42 * h))
    cx = w / 2 + rng.uniform(-0.03, 0.03) * h
    spread = rng.uniform(0.0, 0.1) * h
    swing = rng.uniform(-0.08, 0.08) * h
    head = _circle(h, w, cx, 0.1 * h, max(1.5, 0.09 * h))
    torso = _ellipse(h, w, cx, 0.37 * h, 0.15 * h, 0.18 * h)
    t = max(1, round(0.05 * h))
    arms = _blank(h, w)
    for side in (-1, 1):
        cv2.line(arms, (round(cx + side * 0.13 * h), round(0.25 * h)),
                 (round(cx + side * 0.19 * h + swing * side * 0.3), round(0.52 * h)), 1, t)
    legs = _poly(h, w, [(cx - 0.12 * h, 0.5 * h), (cx, 0.5 * h), (cx - spread, h - 1), (cx - spread - 0.08 * h, h - 1)])
    legs |= _poly(h, w, [(cx, 0.5 * h), (cx + 0.12 * h, 0.5 * h), (cx + spread + 0.08 * h, h - 1),
                         (cx + spread, h - 1)])
    skin = _jitter(rng, (0.85, 0.65, 0.5), 0.15)
    heat = rng.uniform(0.3, 0.42)
    parts = [
        Part(legs, _clothes(rng, night), heat - 0.05),
        Part(torso | arms.astype(bool), _clothes(rng, night), heat),
        Part(head, skin, heat + 0.06),
    ]
    return w, parts, []


def _wheels(h: int, w: int, xs: list[float], r: float, warm: bool) -> list[Part]:
    yc = h - 1 - r
    tyres = np.zeros((h, w), bool)
    hubs = np.zeros((h, w), bool)
    for x in xs:
        tyres |= _circle(h, w, x, yc, r)
        hubs |= _circle(h, w, x, yc, max(1.0, 0.4 * r))
    tyres &= ~hubs
    return [Part(tyres, _TYRE, 0.33 if warm else 0.0), Part(hubs, (0.5, 0.5, 0.52), 0.36 if warm else 0.0)]


def _head_lamps(h: int, w: int, y: float, r: float, front_right: bool) -> list[Light]:
    xf, xr = (w - 1 - r, r) if front_right else (r, w - 1 - r)
    return [Light(y, xf, max(1.0, r), (1.0, 0.97, 0.9), 0.9),
            Light(y, xr, max(1.0, 0.7 * r), (1.0, 0.15, 0.1), 0.35)]


def _car(h: int, rng: np.random.Generator, warm: bool) -> tuple[int, list[Part], list[Light]]:
    w = round(h * rng.uniform(1.9, 2.3))
    r = 0.17 * h
    paint = _jitter(rng, _CAR_PAINTS[rng.integers(len(_CAR_PAINTS))])
    body = _rrect(h, w, 0, 0.38 * h, w, h - 0.55 * r, 0.12 * h)
    cabin = _poly(h, w, [(0.18 * w, 0.42 * h), (0.3 * w, 0.03 * h), (0.68 * w, 0.03 * h), (0.84 * w, 0.42 * h)])
    glass = _poly(h, w, [(0.24 * w, 0.4 * h), (0.33 * w, 0.1 * h), (0.48 * w, 0.1 * h), (0.48 * w, 0.4 * h)])
    glass |= _poly(h, w, [(0.51 * w, 0.4 * h), (0.51 * w, 0.1 * h), (0.65 * w, 0.1 * h), (0.77 * w, 0.4 * h)])
    shell = (body | cabin) & ~glass
    hood = shell & (np.arange(w)[None, :] > 0.7 * w) & (np.arange(h)[:, None] > 0.38 * h)
    parts = [
        Part(shell & ~hood, paint, 0.2 if warm else 0.0),
        Part(hood, paint, 0.4 if warm else 0.0),
        Part(glass, _GLASS, 0.06 if warm else -0.08),
        *_wheels(h, w, [0.2 * w, 0.8 * w], r, warm),
    ]
    return w, parts, _head_lamps(h, w, 0.5 * h, 0.06 * h, True)


def _bus(h: int, rng: np.random.Generator, warm: bool) -> tuple[int, list[Part], list[Light]]:
    w = round(h * rng.uniform(2.6, 3.2))
    r = 0.12 * h
    paint = _jitter(rng, _BUS_PAINTS[rng.integers(len(_BUS_PAINTS))])
    body = _rrect(h, w, 0, 0, w, h - 0.6 * r, 0.08 * h)
    n = max(3, int(w / (0.32 * h)))
    pitch = 0.9 * w / n
    xx = np.arange(w)[None, :]
    yy = np.arange(h)[:, None]
    win = ((yy > 0.1 * h) & (yy < 0.42 * h) & (xx > 0.05 * w) & (xx < 0.95 * w)
           & (((xx - 0.05 * w) % pitch) < 0.8 * pitch))
    door = _rect(h, w, 0.86 * w, 0.12 * h, 0.93 * w, h - 1.6 * r)
    glass = (win | door) & body
    engine = body & ~glass & (xx < 0.18 * w)
    parts = [
        Part(body & ~glass & ~engine, paint, 0.16 if warm else 0.0),
        Part(engine, paint, 0.4 if warm else 0.0),
        Part(glass, _GLASS, 0.1 if warm else -0.08),
        *_wheels(h, w, [0.17 * w, 0.8 * w], r, warm),
    ]
    return w, parts, _head_lamps(h, w, 0.75 * h, 0.045 * h, True)


def _truck(h: int, rng: np.random.Generator, warm: bool) -> tuple[int, list[Part], list[Light]]:
    w = round(h * rng.uniform(2.1, 2.6))
    r = 0.13 * h
    bottom = h - 0.7 * r
    cargo = _rect(h, w, 0, 0, 0.7 * w, bottom - 0.1 * h)
    ribs = cargo & ((np.arange(w)[None, :] % max(3.0, 0.22 * h)) < max(1.0, 0.05 * h))
    chassis = _rect(h, w, 0.02 * w, bottom - 0.12 * h, 0.98 * w, bottom)
    cab = _rrect(h, w, 0.72 * w, 0.25 * h, w, bottom, 0.07 * h)
    glass = _poly(h, w, [(0.76 * w, 0.3 * h), (0.9 * w, 0.3 * h), (0.98 * w, 0.52 * h), (0.76 * w, 0.52 * h)])
    parts = [
        Part(cargo & ~ribs, _jitter(rng, _CARGO_PAINTS[rng.integers(len(_CARGO_PAINTS))]), 0.12 if warm else 0.0),
        Part(ribs, (0.35, 0.35, 0.37), 0.12 if warm else 0.0),
        Part(chassis & ~cab, (0.15, 0.15, 0.16), 0.3 if warm else 0.0),
        Part(cab & ~glass, _jitter(rng, _CAR_PAINTS[rng.integers(len(_CAR_PAINTS))]), 0.4 if warm else 0.0),
        Part(glass, _GLASS, 0.08 if warm else -0.08),
        *_wheels(h, w, [0.14 * w, 0.3 * w, 0.85 * w], r, warm),
    ]
    return w, parts, _head_lamps(h, w, 0.72 * h, 0.05 * h, True)


def _two_wheeler(h: int, rng: np.random.Generator, warm: bool, rider: bool,
                 night: bool) -> tuple[int, list[Part], list[Light]]:
    """Motorcycle (with a rider when running, M3FD) or a rider-less bike (MSRS)."""
    w = round(h * (rng.uniform(1.1, 1.3) if rider else rng.uniform(1.5, 1.8)))
    r = (0.2 if rider else 0.3) * h
    yw = h - 1 - r
    frame_top = yw - 1.2 * r
    paint = _jitter(rng, _CAR_PAINTS[rng.integers(len(_CAR_PAINTS))])
    body = _poly(h, w, [(0.22 * w, yw), (0.35 * w, frame_top), (0.72 * w, frame_top - 0.1 * r), (0.8 * w, yw),
                        (0.62 * w, yw), (0.5 * w, yw - 0.4 * r)])
    engine = _ellipse(h, w, 0.5 * w, yw - 0.35 * r, 0.12 * w, 0.4 * r)
    bars = _blank(h, w)
    cv2.line(bars, (round(0.74 * w), round(frame_top)), (round(0.8 * w), round(frame_top - 0.6 * r)), 1,
             max(1, round(0.04 * h)))
    parts = [
        Part(body & ~engine, paint, 0.15 if warm else 0.0),
        Part(engine, (0.3, 0.3, 0.32), 0.42 if warm else 0.0),
        Part(bars.astype(bool) & ~body, (0.2, 0.2, 0.2), 0.1 if warm else 0.0),
        *_wheels(h, w, [r + 0.5, w - r - 1.5], r, warm),
    ]
    if rider:
        heat = rng.uniform(0.3, 0.42)
        torso = _ellipse(h, w, 0.46 * w, 0.36 * h, 0.1 * h, 0.17 * h, angle=rng.uniform(-15, 15))
        helmet = _circle(h, w, 0.5 * w, 0.11 * h, 0.085 * h)
        taken = np.zeros((h, w), bool)
        for p in parts:
            taken |= p.mask
        parts.insert(0, Part(torso & ~taken, _clothes(rng, night), heat))
        parts.append(Part(helmet, _jitter(rng, _CAR_PAINTS[rng.integers(len(_CAR_PAINTS))]), heat - 0.1))
    return w, parts, [Light(frame_top - 0.3 * r, w - 1.5, max(1.0, 0.05 * h), (1.0, 0.97, 0.9), 0.8)]


def _lamp(h: int, rng: np.random.Generator, night: bool) -> tuple[int, list[Part], list[Light]]:
    """Street lamp: ``h`` is the pole height; the arm points into the patch from the pole."""
    pw = max(2, round(0.035 * h))
    arm = rng.uniform(0.18, 0.3) * h
    head_w, head_h = max(4.0, 0.14 * h), max(2.0, 0.05 * h)
    w = round(pw + arm + head_w / 2 + 1)
    pole = _rect(h, w, 0, 0.04 * h, pw, h)
    arm_m = _rect(h, w, 0, 0.04 * h, pw + arm, 0.04 * h + max(1.0, 0.6 * pw))
    hx, hy = pw + arm, 0.04 * h + head_h / 2
    head = _ellipse(h, w, hx, hy, head_w / 2, head_h / 2)
    metal = _jitter(rng, (0.26, 0.28, 0.3), 0.15)
    parts = [
        Part(pole | arm_m, metal, 0.0),
        Part(head & (np.arange(h)[:, None] < hy), metal, 0.06),
        Part(head & (np.arange(h)[:, None] >= hy), (0.95, 0.93, 0.85) if night else (0.82, 0.84, 0.86), 0.08),
    ]
    return w, parts, [Light(hy + 0.3 * head_h, hx, max(1.5, head_w / 3), (1.0, 0.9, 0.65), 1.2)]


def _cone(h: int, rng: np.random.Generator) -> tuple[int, list[Part], list[Light]]:
    w = max(5, round(0.75 * h))
    body = _poly(h, w, [(w / 2, 0), (0.1 * w, 0.86 * h), (0.9 * w, 0.86 * h)])
    base = _rect(h, w, 0, 0.84 * h, w, h)
    yy = np.arange(h)[:, None]
    band = body & (yy > 0.38 * h) & (yy < 0.56 * h)
    orange = _jitter(rng, _ORANGE, 0.05)
    return w, [Part((body & ~band) | base, orange, 0.0, retro=True), Part(band, _WHITE, 0.0, retro=True)], []


def _car_stop(h: int, rng: np.random.Generator) -> tuple[int, list[Part], list[Light]]:
    w = round(h * rng.uniform(3.0, 4.0))
    block = _rrect(h, w, 0, 0, w, h, 0.3 * h)
    paint = block & _stripes(h, w, w / 7, slope=0.6)
    base = (0.5, 0.5, 0.48) if rng.random() < 0.5 else _BLACK
    return w, [Part(block & ~paint, base, 0.0), Part(paint, _jitter(rng, _YELLOW), 0.0, retro=True)], []


def _guardrail(h: int, w: int, rng: np.random.Generator) -> tuple[int, list[Part], list[Light]]:
    rails = _rect(h, w, 0, 0.05 * h, w, 0.32 * h) | _rect(h, w, 0, 0.45 * h, w, 0.66 * h)
    pitch = max(6.0, 1.4 * h)
    xx = np.arange(w)[None, :]
    posts = ((xx % pitch) < max(2.0, 0.12 * h)) & (np.arange(h)[:, None] >= 0) & ~rails
    metal = _jitter(rng, (0.74, 0.76, 0.78), 0.08)
    reflect = rails & ((xx % pitch) < max(2.0, 0.2 * h)) & (np.arange(h)[:, None] < 0.32 * h)
    return w, [Part(rails & ~reflect, metal, -0.03), Part(posts, (0.5, 0.5, 0.52), -0.03),
               Part(reflect, (0.95, 0.85, 0.2), -0.03, retro=True)], []


def _bump(h: int, w: int, rng: np.random.Generator) -> tuple[int, list[Part], list[Light]]:
    skew = rng.uniform(-0.1, 0.1) * w
    band = _poly(h, w, [(max(0, skew), 0), (w - 1 + min(0, skew), 0), (w - 1 - max(0, skew), h - 1),
                        (-min(0, skew), h - 1)])
    paint = band & _stripes(h, w, max(3.0, 1.2 * h), slope=1.0)
    return w, [Part(band & ~paint, _BLACK, 0.0), Part(paint, _jitter(rng, _YELLOW), 0.0, retro=True)], []


# ----------------------------------------------------------------------------- background
def _lowfreq(rng: np.random.Generator, h: int, w: int, cells: int = 6) -> np.ndarray:
    small = _noise(rng, cells, max(2, round(cells * w / h)))
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _fine(rng: np.random.Generator, h: int, w: int, sigma: float = 0.7) -> np.ndarray:
    """Unit-variance fine-grained texture (blurred white noise)."""
    n = cv2.GaussianBlur(_noise(rng, h, w), (0, 0), sigma)
    return n / (float(n.std()) + 1e-6)


@dataclass
class _Background:
    A: np.ndarray  # HxWx3 albedo (visible, day-lit)
    T: np.ndarray  # HxW temperature [0, 1]
    E: np.ndarray  # HxWx3 visible emission (self-luminous)
    L: np.ndarray  # HxW visible illumination
    horizon: int
    kerb: int  # far sidewalk ends, road begins
    vanish_x: float


def _background(rng: np.random.Generator, H: int, W: int, night: bool) -> _Background:
    f = H / 256.0
    yh = round(H * rng.uniform(0.3, 0.44))
    ys = yh + round(H * rng.uniform(0.04, 0.07))
    yy = np.arange(H, dtype=np.float32)[:, None]
    A = np.zeros((H, W, 3), np.float32)
    T = np.zeros((H, W), np.float32)
    E = np.zeros((H, W, 3), np.float32)
    L = np.full((H, W), 1.0 if not night else rng.uniform(0.04, 0.08), np.float32)

    # Sky: blue by day (reflected light), emitted navy at night; always the coldest thing in IR.
    gy = np.clip(yy[:yh] / max(1, yh), 0, 1)
    if night:
        E[:yh] = (np.array([0.02, 0.03, 0.07]) + gy * np.array([0.06, 0.05, 0.06]))[:, None, :]
        T[:yh] = (0.04 + 0.08 * gy)
    else:
        top, low = np.array(_jitter(rng, (0.35, 0.55, 0.85), 0.1)), np.array([0.78, 0.84, 0.9])
        A[:yh] = (top + gy * (low - top))[:, None, :]
        A[:yh] += 0.06 * np.clip(_lowfreq(rng, yh, W, 4), 0, None)[..., None]  # clouds
        T[:yh] = (0.1 + 0.1 * gy)

    # Buildings along the horizon, with window grids (some lit at night, a little warmer in IR).
    x = -rng.uniform(0, 0.1) * W
    while x < W:
        bw = rng.uniform(0.08, 0.24) * W
        top = max(0, round(yh - rng.uniform(0.08, 0.9) * yh))
        x0, x1 = max(0, round(x)), min(W, round(x + bw))
        x += bw * rng.uniform(0.7, 1.1)
        if x1 - x0 < 2 or top >= yh:
            continue
        colour = np.array(_jitter(rng, ((0.55, 0.52, 0.48), (0.62, 0.6, 0.6), (0.45, 0.36, 0.3),
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
            E[top:yh, x0:x1][win_lit] = np.array(_jitter(rng, (0.8, 0.65, 0.35), 0.15)) * rng.uniform(0.4, 0.8)
            T[top:yh, x0:x1][win_lit] = tb + 0.04

    # Trees and bushes in front of the buildings: green, cooler than the buildings in IR.
    for _ in range(int(rng.integers(1, 5))):
        cx, cy = rng.uniform(0, W), yh - rng.uniform(0, 0.12) * H
        ax, ay = rng.uniform(0.04, 0.12) * W, rng.uniform(0.04, 0.1) * H
        m = _ellipse(H, W, cx, cy, ax, ay) & (yy < ys)
        A[m] = np.array(_jitter(rng, (0.2, 0.4, 0.15), 0.15))
        T[m] = rng.uniform(0.22, 0.3) if not night else rng.uniform(0.2, 0.28)

    # Far sidewalk and road; asphalt is hot by day (bright IR), mild at night.
    A[yh:ys] = np.array(_jitter(rng, (0.6, 0.58, 0.55), 0.08))
    T[yh:ys] = rng.uniform(0.45, 0.55) if not night else rng.uniform(0.28, 0.34)
    asphalt = rng.uniform(0.28, 0.42)
    A[ys:] = asphalt
    gr = (yy[ys:] - ys) / max(1, H - ys)
    T[ys:] = (rng.uniform(0.52, 0.64) + 0.06 * gr) if not night else (rng.uniform(0.3, 0.4) + 0.03 * gr)
    tex = 0.04 * _fine(rng, H - ys, W) + 0.05 * _lowfreq(rng, H - ys, W, 5)
    A[ys:] *= (1.0 + tex)[..., None]
    T[ys:] += 0.25 * tex

    # Dashed lane markings converging on a vanishing point: painted, so visible only in VI.
    vx = W * rng.uniform(0.35, 0.65)
    lanes = _blank(H, W)
    bx = vx + rng.uniform(-0.15, 0.15) * W  # where the centre line meets the bottom row
    for i in range(7):
        a, b = (i + 0.2) / 7, (i + 0.65) / 7
        p0 = (round(vx + (bx - vx) * a), round(ys + (H - ys) * a))
        p1 = (round(vx + (bx - vx) * b), round(ys + (H - ys) * b))
        cv2.line(lanes, p0, p1, 1, max(1, round(1 + 3 * f * b)))
    lm = lanes.astype(bool)
    A[lm] = 0.82
    T[lm] -= 0.015

    if not night:
        # Building shadows across the road (VI dark, IR slightly cooler asphalt).
        for _ in range(int(rng.integers(0, 3))):
            x0 = rng.uniform(-0.2, 0.9) * W
            wd = rng.uniform(0.1, 0.35) * W
            sl = rng.uniform(-0.6, 0.6) * (H - ys)
            m = _poly(H, W, [(x0, ys), (x0 + wd, ys), (x0 + wd + sl, H), (x0 + sl, H)])
            L[m] *= rng.uniform(0.4, 0.55)
            T[m] -= 0.05
        # Soft-edged tree shadows on the road, wherever they fall.
        for _ in range(int(rng.integers(0, 3))):
            m = _blank(H, W)
            cx, cy = rng.uniform(0, W), rng.uniform(ys, H)
            for _ in range(4):
                cv2.ellipse(m, (round(cx + rng.uniform(-0.06, 0.06) * W), round(cy + rng.uniform(-0.04, 0.04) * H)),
                            (max(2, round(rng.uniform(0.04, 0.1) * W)), max(2, round(rng.uniform(0.02, 0.05) * H))),
                            0, 0, 360, 1, -1)
            soft = cv2.GaussianBlur(m.astype(np.float32), (0, 0), 2.0 * f)
            L *= 1.0 - rng.uniform(0.4, 0.55) * soft
            T -= 0.05 * soft
    return _Background(A, T, E, L, yh, ys, vx)


# ----------------------------------------------------------------------------- placement
def _scale(y: float, bg: _Background, H: int) -> float:
    """Perspective: size factor 0.3 at the horizon, 1.0 at the bottom row."""
    return 0.3 + 0.7 * max(0.0, (y - bg.horizon)) / max(1, H - bg.horizon)


def _place(kind: str, label: str | None, rng: np.random.Generator, bg: _Background, H: int, W: int,
           night: bool, taken: list[tuple[int, int, int, int]], min_h: float) -> SceneObject | None:
    """Sample one object's state, size and position; None when it cannot fit without overlap."""
    warm = rng.random() < _P_WARM.get(kind, 0.0)
    for _ in range(25):
        lights: list[Light] = []
        if kind == "lamp":
            foot = rng.uniform(bg.kerb - 2, bg.horizon + 0.4 * (H - bg.horizon))
            h = round(min(foot - 2, rng.uniform(0.9, 1.25) * 0.6 * H * _scale(foot, bg, H)))
            if h < 3 * min_h:
                continue
            w, parts, lights = _lamp(h, rng, night)
        elif kind == "curve":
            obj = _curve(rng, bg, H, W)
            if _free(obj.box, taken, 0.3):
                return obj
            continue
        else:
            key = "motorcycle_parked" if kind == "motorcycle" and not warm else kind
            lo, hi = _BASE_HEIGHT[key]
            span = (0.1, 1.0) if kind not in ("guardrail",) else (0.1, 0.65)
            foot = bg.horizon + rng.uniform(*span) * (H - bg.horizon)
            s = _scale(foot, bg, H)
            if s < _MIN_SCALE.get(kind, 0.0):
                continue
            h = round(rng.uniform(lo, hi) * H * s)
            if kind == "bump":
                if h < 0.6 * min_h:
                    continue
                w, parts, lights = _bump(h, round(rng.uniform(0.3, 0.6) * W * s), rng)
            elif h < min_h:
                continue
            elif kind == "guardrail":
                w, parts, lights = _guardrail(h, round(rng.uniform(0.25, 0.5) * W), rng)
            elif kind == "person":
                w, parts, lights = _person(h, rng, night)
            elif kind == "car":
                w, parts, lights = _car(h, rng, warm)
            elif kind == "bus":
                w, parts, lights = _bus(h, rng, warm)
            elif kind == "truck":
                w, parts, lights = _truck(h, rng, warm)
            elif kind == "motorcycle":
                w, parts, lights = _two_wheeler(h, rng, warm, rider=warm, night=night)
            elif kind == "bike":
                w, parts, lights = _two_wheeler(h, rng, warm, rider=False, night=night)
            elif kind == "color_cone":
                w, parts, lights = _cone(h, rng)
            elif kind == "car_stop":
                w, parts, lights = _car_stop(h, rng)
            else:
                raise ValueError(f"unknown object kind {kind!r}")
        if w > 0.8 * W or h > H - 2:
            continue
        if rng.random() < 0.5:  # face left or right
            for p in parts:
                p.mask = p.mask[:, ::-1].copy()
            for lt in lights:
                lt.x = w - 1 - lt.x
        x0 = round(rng.uniform(1, W - w - 1))
        y0 = round(foot) - h
        if y0 < 1:
            continue
        obj = SceneObject(label, kind, warm, x0, y0, h, w, parts, lights, flat=kind in _FLAT)
        if _free(obj.box, taken, 0.15):
            return obj
    return None


def _curve(rng: np.random.Generator, bg: _Background, H: int, W: int) -> SceneObject:
    """Painted kerb along the road edge, in perspective: a thin band widening towards the camera."""
    side = -1 if rng.random() < 0.5 else 1
    y_top = bg.kerb + rng.uniform(0.05, 0.3) * (H - bg.kerb)
    y_bot = H - 1 - rng.uniform(0.0, 0.15) * (H - bg.kerb)
    x_bottom = bg.vanish_x + side * rng.uniform(0.3, 0.55) * W

    def at(y: float) -> float:
        return bg.vanish_x + (x_bottom - bg.vanish_x) * (y - bg.kerb) / max(1, H - bg.kerb)

    half = [1.0 + 0.03 * W * _scale(y, bg, H) for y in (y_top, y_bot)]
    pts = np.array([(at(y_top) - half[0], y_top), (at(y_top) + half[0], y_top),
                    (at(y_bot) + half[1], y_bot), (at(y_bot) - half[1], y_bot)])
    pts[:, 0] = np.clip(pts[:, 0], 0, W - 1)
    x0, y0 = int(pts[:, 0].min()), int(pts[:, 1].min())
    w, h = int(pts[:, 0].max()) - x0 + 1, int(pts[:, 1].max()) - y0 + 1
    band = _poly(h, w, pts - (x0, y0))
    # Alternating paint blocks that lengthen towards the camera.
    yy = np.arange(h, dtype=np.float32)[:, None] + y0
    phase = np.log1p(np.maximum(0.0, yy - bg.horizon)) * rng.uniform(5.0, 7.0)
    blocks = band & ((phase.astype(np.int64) % 2) == 0)
    colours = ((_YELLOW, _BLACK), (_WHITE, (0.8, 0.12, 0.1)), (_WHITE, (0.4, 0.4, 0.4)))[rng.integers(3)]
    parts = [Part(blocks, _jitter(rng, colours[0]), 0.0, retro=True),
             Part(band & ~blocks, _jitter(rng, colours[1]), 0.0, retro=True)]
    return SceneObject("curve", "curve", False, x0, y0, h, w, parts, [], flat=True)


def _free(box: tuple[int, int, int, int], taken: list[tuple[int, int, int, int]], limit: float) -> bool:
    """True when ``box`` overlaps no taken box by more than ``limit`` of the smaller one."""
    x1, y1, x2, y2 = box
    a = (x2 - x1) * (y2 - y1)
    for u1, v1, u2, v2 in taken:
        iw, ih = min(x2, u2) - max(x1, u1), min(y2, v2) - max(y1, v1)
        if iw > 0 and ih > 0 and iw * ih > limit * min(a, (u2 - u1) * (v2 - v1)):
            return False
    return True


# ----------------------------------------------------------------------------- modality design
def _design(obj: SceneObject, rng: np.random.Generator, night: bool) -> None:
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


# ----------------------------------------------------------------------------- rendering
def _gauss_add(img: np.ndarray, cy: float, cx: float, sy: float, sx: float, amp) -> None:
    """Add ``amp * exp(-d^2/2s^2)`` in place, on a 3-sigma window (img HxW or HxWx3)."""
    H, W = img.shape[:2]
    y0, y1 = max(0, int(cy - 3 * sy)), min(H, int(cy + 3 * sy) + 1)
    x0, x1 = max(0, int(cx - 3 * sx)), min(W, int(cx + 3 * sx) + 1)
    if y0 >= y1 or x0 >= x1:
        return
    gy = np.exp(-0.5 * ((np.arange(y0, y1, dtype=np.float32) - cy) / sy) ** 2)
    gx = np.exp(-0.5 * ((np.arange(x0, x1, dtype=np.float32) - cx) / sx) ** 2)
    g = gy[:, None] * gx[None, :]
    if img.ndim == 3:
        img[y0:y1, x0:x1] += g[..., None] * np.asarray(amp, np.float32)
    else:
        img[y0:y1, x0:x1] += g * np.float32(amp)


def _draw_light(E: np.ndarray, lt: Light, x0: int, y0: int, H: int) -> None:
    cy, cx = y0 + lt.y, x0 + lt.x
    r = lt.radius
    rgb = np.asarray(lt.rgb, np.float32)
    _gauss_add(E, cy, cx, 0.8 * r, 0.8 * r, 1.6 * rgb)  # the source itself, clipped to white
    _gauss_add(E, cy, cx, 3.0 * r, 3.0 * r, 0.45 * lt.glare * rgb)  # glare halo
    _gauss_add(E, cy, cx, 9.0 * r, 9.0 * r, 0.12 * lt.glare * rgb)


@dataclass
class _Camera:
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


def _visibility(final: np.ndarray, without: np.ndarray, mask: np.ndarray) -> float:
    """How much an object changes the frame: mean over its visible pixels of the largest channel
    difference between the frame and the same frame without it (same noise), as 0..1."""
    if mask.sum() < 1:
        return 0.0
    d = np.abs(final - without)
    if d.ndim == 3:
        d = d.max(axis=2)
    return round(min(1.0, float(d[mask].mean()) / _FULL_CONTRAST), 2)


def render_scene(rng: np.random.Generator, size: tuple[int, int], night: bool, classes, clutter,
                 n_objects: tuple[int, int] = (3, 8)) -> Scene:
    """Sample and render one scene. ``classes``: (label, kind, weight) triples; ``clutter``: kinds."""
    W, H = size
    bg = _background(rng, H, W, night)
    min_h = 12.0 * H / 256.0
    weights = np.array([c[2] for c in classes], np.float64)
    weights /= weights.sum()
    objects: list[SceneObject] = []
    taken: list[tuple[int, int, int, int]] = []
    wanted = [classes[i] for i in rng.choice(len(classes), size=int(rng.integers(n_objects[0], n_objects[1] + 1)),
                                             p=weights)]
    wanted += [(None, clutter[i], 0.0) for i in rng.integers(0, len(clutter), size=int(rng.integers(0, 3)))]
    for label, kind, _ in wanted:
        obj = _place(kind, label, rng, bg, H, W, night, taken, min_h)
        if obj is None:
            continue
        _design(obj, rng, night)
        objects.append(obj)
        taken.append(obj.box)

    # Painter's order: road paint first, then far to near.
    objects.sort(key=lambda o: (not o.flat, o.y0 + o.h))
    A, T, E, L = bg.A, bg.T, bg.E, bg.L
    A0, T0 = A.copy(), T.copy()  # the background alone: the counterfactual for visibility
    emitted: dict[int, np.ndarray] = {}  # object index -> its own light (retro paint, lamps, headlights)
    owner = np.full((H, W), -1, np.int16)
    for j, obj in enumerate(objects):
        ys, xs = slice(obj.y0, obj.y0 + obj.h), slice(obj.x0, obj.x0 + obj.w)
        t_bg = float(T0[ys, xs].mean())
        tex = 1.0 + 0.05 * _noise(rng, obj.h, obj.w)
        Ap, Tp = A[ys, xs], T[ys, xs]
        Ej = np.zeros_like(E) if night and (obj.lit or obj.headlights) else None
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
        owner[ys, xs][obj.union()] = j
        if night:
            if obj.lit and obj.kind == "lamp":
                hx, hy = obj.x0 + obj.lights[0].x, obj.y0 + obj.lights[0].y
                _gauss_add(L, obj.y0 + obj.h, hx, 0.3 * obj.h, 0.35 * obj.h, rng.uniform(0.7, 1.0))
                _gauss_add(L, (hy + obj.y0 + obj.h) / 2, hx, 0.35 * obj.h, 0.15 * obj.h, 0.4)
            elif obj.lit and not obj.flat:
                _gauss_add(L, obj.y0 + 0.55 * obj.h, obj.x0 + obj.w / 2, 0.6 * obj.h + 2, 0.6 * obj.w + 2,
                           rng.uniform(0.7, 1.0))
            if Ej is not None and (obj.kind == "lamp" or obj.headlights):
                for lt in obj.lights:
                    _draw_light(Ej, lt, obj.x0, obj.y0, H)
            if Ej is not None:
                E += Ej
                emitted[j] = Ej
        elif obj.kind in ("car", "bus", "truck") and obj.s_vi == 1.0 and rng.random() < 0.7:
            # Cast shadow on the road under the vehicle.
            m = _ellipse(H, W, obj.x0 + obj.w / 2, obj.y0 + obj.h - 1, 0.55 * obj.w, max(2, 0.07 * obj.h))
            L[m] *= 0.55

    # Visible camera: illumination, emission, low-light gain and noise; glare saturates.
    radiance = A * L[..., None] + E
    if night:
        gain = float(rng.uniform(1.0, 1.5))
        # Shot noise grows with the signal; part of it is shared by the channels (luma noise).
        luma = cv2.sqrt(np.clip(radiance[..., 1] * gain, 0, 1))[..., None]
        vi_add = (0.018 + 0.03 * luma) * (0.6 * _noise(rng, H, W, 1) + 0.5 * _noise(rng, H, W, 3))
    else:
        gain = 1.0
        vi_add = float(rng.uniform(0.006, 0.014)) * _noise(rng, H, W, 3)
        if rng.random() < 0.3:  # low sun glare in the sky
            _gauss_add(vi_add, rng.uniform(0, bg.horizon), rng.uniform(0, W), 0.15 * H, 0.15 * H, (0.5, 0.45, 0.35))
    # Thermal camera: optics blur, automatic gain, sensor noise, fixed-pattern column stripes.
    sigma = float(rng.uniform(0.8, 1.4) * H / 256.0 + 0.3)
    lo, hi = np.percentile(cv2.GaussianBlur(T[::2, ::2], (0, 0), sigma / 2), (0.5, 99.8))
    ir_add = float(rng.uniform(0.008, 0.02)) * _noise(rng, H, W) + float(rng.uniform(0.003, 0.015)) * _noise(rng, 1, W)
    cam = _Camera(night, gain, vi_add, sigma, float(lo), float(hi), ir_add)
    vi, ir = cam.vi(radiance), cam.ir(T)

    # Visibility: compare each object's pixels with the frame rendered without it.
    pad = int(3 * sigma) + 3
    for j, obj in enumerate(objects):
        y0, y1 = max(0, obj.y0 - pad), min(H, obj.y0 + obj.h + pad)
        x0, x1 = max(0, obj.x0 - pad), min(W, obj.x0 + obj.w + pad)
        win = (slice(y0, y1), slice(x0, x1))
        mask = owner[win] == j
        without = A0[win] * L[win][..., None] + E[win] - (emitted[j][win] if j in emitted else 0.0)
        obj.vis_vi = _visibility(vi[win], cam.vi(without, win), mask)
        obj.vis_ir = _visibility(ir[win], cam.ir(T0[win], win), mask)
    vi8 = np.rint(vi * 255.0).astype(np.uint8)
    ir8 = np.rint(ir * 255.0).astype(np.uint8)
    return Scene(night, vi8, ir8, owner, objects)


def clip_box(obj: SceneObject, W: int, H: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = obj.box
    return max(0, x1), max(0, y1), min(W, x2), min(H, y2)


__all__ = ["LOW_VISIBILITY", "DET_CLASSES", "SEG_CLASSES", "DET_CLUTTER", "SEG_CLUTTER", "Part", "Light",
           "SceneObject", "Scene", "render_scene", "clip_box"]
