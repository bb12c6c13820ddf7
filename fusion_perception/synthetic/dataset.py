"""Synthetic multi-modal scenes: the project's default data for demos and tests.

:func:`generate` writes seeded, deterministic street scenes as a registered infrared/visible
pair dataset in the real datasets' layouts:

``OUT/m3fd`` (``task="det"``), M3FD's original layout::

    Ir/00000.png          infrared, stored as 3-channel gray like M3FD
    Vis/00000.png         visible, colour
    Annotation/00000.xml  Pascal VOC: People, Car, Bus, Motorcycle, Lamp, Truck
    synthetic.json        generator parameters and counts (written last: the completion marker)

``OUT/msrs`` (``task="seg"``), MSRS's layout, about 3:1 train/test::

    {train,test}/ir/00012D.png                  infrared, single channel; D = day, N = night
    {train,test}/vi/00012D.png                  visible, colour
    {train,test}/Segmentation_labels/00012D.png class ids 0..8 (MSRS_CLASSES)
    {train,test}/synthetic_objects.json         per image: time of day and its objects
    synthetic.json

The scenes are built so that each modality alone misses objects the other shows (see
:mod:`fusion_perception.synthetic`). Every object carries its measured visibility
in each modality (0..1; below :data:`LOW_VISIBILITY` counts as low contrast): in the VOC XML as
extra fields that readers ignore::

    <object><name>People</name>...<bndbox>...</bndbox>
      <thermal>warm</thermal><visibility><ir>0.92</ir><vi>0.08</vi></visibility></object>

and in the MSRS sidecar JSON (class, box, thermal, lit, visibility). Image ``i`` depends only on
``(seed, task, i)``, so a smaller ``count`` gives a prefix of a larger one, byte for byte.

``held_out``: that many further scenes (indices ``count`` on) for testing only, leaving the first
``count`` as they are: MSRS puts them in ``test/``; M3FD, which has no split of its own, holds them
as further pairs (names ``count`` on), which the user's split puts in its test list (the demo's
larger test sets).

:func:`default_root` / :func:`ensure_default` give the synthetic default (200 pairs per task at
320x256, seed 0) under ``./data/synthetic`` (or ``$FUSION_PERCEPTION_DATA``), generated once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from xml.sax.saxutils import escape

import cv2
import numpy as np
from tqdm import tqdm

from fusion_perception.data.records import M3FD_CLASSES, MSRS_CLASSES
from fusion_perception.synthetic.objects import (
    DET_CLASSES, DET_CLUTTER, LOW_VISIBILITY, SEG_CLASSES, SEG_CLUTTER, Scene, SceneObject,
)
from fusion_perception.synthetic.render import clip_box, render_scene
from fusion_perception.errors import ConfigError, OutputError
from fusion_perception.files import replace_dir
from fusion_perception.outputs import check_output_dir
from fusion_perception.record import describe_changes, refuse_to_replace

# Bump when the pictures change, so that a cached default set is regenerated.
GENERATOR_VERSION = 2
DEFAULT_COUNT = 200
DEFAULT_SIZE = (320, 256)
DEFAULT_SEED = 0
DATA_ENV = "FUSION_PERCEPTION_DATA"  # moves the synthetic default
TASKS = ("det", "seg", "both")
_SUBDIR = {"det": "m3fd", "seg": "msrs"}
_TASK_CODE = {"det": 1, "seg": 2}  # mixed into each image's seed: det and seg scenes differ
_MARKER = "synthetic.json"
# The marker's "generator": the generator's first module name, a fixed identifier (not an import
# path) kept so that sets written by earlier versions stay recognised and the bytes stay the same.
GENERATOR_NAME = "fusion_perception.data.synthetic"
# Fast PNG settings (measured): Huffman-only suits the noisy single-plane images; the 3-channel
# gray IR needs deflate's matching to store its repeated channels compactly.
_PNG_FAST = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
_PNG_GRAY3 = [cv2.IMWRITE_PNG_COMPRESSION, 1]

__all__ = ["generate", "default_root", "ensure_default", "is_synthetic", "summarize", "LOW_VISIBILITY", "GENERATOR_VERSION"]


def _scene(seed: int, task: str, index: int, size: tuple[int, int]) -> Scene:
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _TASK_CODE[task], int(index)]))
    night = bool(rng.random() < 0.5)
    classes, clutter = (DET_CLASSES, DET_CLUTTER) if task == "det" else (SEG_CLASSES, SEG_CLUTTER)
    return render_scene(rng, size, night, classes, clutter)


def _visibility_class(obj: SceneObject) -> str:
    ir, vi = obj.vis_ir >= LOW_VISIBILITY, obj.vis_vi >= LOW_VISIBILITY
    return {(True, False): "ir_only", (False, True): "vi_only", (True, True): "both"}.get((ir, vi), "neither")


def _seen(seen: Counter) -> dict[str, int]:
    return {k: seen[k] for k in ("ir_only", "vi_only", "both", "neither")}


def _png(img: np.ndarray, params: list[int] = _PNG_FAST) -> bytes:
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
    ok, buf = cv2.imencode(".png", bgr, params)
    if not ok:  # pragma: no cover - cv2 always encodes uint8 arrays
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _voc_xml(name: str, scene: Scene) -> str:
    H, W = scene.owner.shape
    lines = [
        "<annotation>",
        "\t<folder>Annotation</folder>",
        f"\t<filename>{name}.png</filename>",
        "\t<source><database>fusion_perception synthetic</database></source>",
        f"\t<size><width>{W}</width><height>{H}</height><depth>3</depth></size>",
        "\t<segmented>0</segmented>",
        f"\t<time>{'night' if scene.night else 'day'}</time>",
    ]
    for obj in scene.objects:
        if obj.label is None:
            continue
        x1, y1, x2, y2 = clip_box(obj, W, H)
        lines += [
            "\t<object>",
            f"\t\t<name>{escape(obj.label)}</name>",
            "\t\t<pose>Unspecified</pose>",
            "\t\t<truncated>0</truncated>",
            "\t\t<difficult>0</difficult>",
            f"\t\t<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox>",
            f"\t\t<thermal>{'warm' if obj.warm else 'cold'}</thermal>",
            f"\t\t<visibility><ir>{obj.vis_ir:.2f}</ir><vi>{obj.vis_vi:.2f}</vi></visibility>",
            "\t</object>",
        ]
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def _objects_json(scene: Scene) -> list[dict]:
    H, W = scene.owner.shape
    out = []
    for obj in scene.objects:
        if obj.label is None:
            continue
        out.append({
            "class": obj.label, "class_id": MSRS_CLASSES.index(obj.label), "kind": obj.kind,
            "bbox": list(clip_box(obj, W, H)), "thermal": "warm" if obj.warm else "cold", "lit": obj.lit,
            "visibility": {"ir": obj.vis_ir, "vi": obj.vis_vi},
        })
    return out


def _write_det(root: Path, count: int, size: tuple[int, int], seed: int, progress: bool, held_out: int = 0) -> dict:
    for d in ("Ir", "Vis", "Annotation"):
        (root / d).mkdir(parents=True)
    classes: Counter = Counter()
    times: Counter = Counter()
    seen: Counter = Counter()
    for i in tqdm(range(count + held_out), desc="synthetic M3FD", disable=not progress, leave=False):
        scene = _scene(seed, "det", i, size)
        name = f"{i:05d}"
        (root / "Ir" / f"{name}.png").write_bytes(_png(np.repeat(scene.ir[..., None], 3, axis=2), _PNG_GRAY3))
        (root / "Vis" / f"{name}.png").write_bytes(_png(scene.vi))
        (root / "Annotation" / f"{name}.xml").write_text(_voc_xml(name, scene), encoding="utf-8")
        times["night" if scene.night else "day"] += 1
        classes.update(o.label for o in scene.objects if o.label is not None)
        seen.update(_visibility_class(o) for o in scene.objects if o.label is not None)
    return {"pairs": count + held_out, "time": dict(sorted(times.items())),
            "objects": {c: classes[c] for c in M3FD_CLASSES}, "visible_in": _seen(seen)}


def _write_seg(root: Path, count: int, size: tuple[int, int], seed: int, progress: bool, held_out: int = 0) -> dict:
    splits = {"train": {}, "test": {}}
    for s in splits:
        for d in ("ir", "vi", "Segmentation_labels"):
            (root / s / d).mkdir(parents=True)
    pixels = np.zeros(len(MSRS_CLASSES), np.int64)
    classes: Counter = Counter()
    seen: Counter = Counter()
    times: dict[str, Counter] = {s: Counter() for s in splits}
    for i in tqdm(range(count + held_out), desc="synthetic MSRS", disable=not progress, leave=False):
        scene = _scene(seed, "seg", i, size)
        split = "test" if i % 4 == 3 or i >= count else "train"
        name = f"{i:05d}{'N' if scene.night else 'D'}"
        lut = np.zeros(len(scene.objects) + 1, np.uint8)  # owner index + 1 -> class id
        for j, obj in enumerate(scene.objects):
            lut[j + 1] = MSRS_CLASSES.index(obj.label) if obj.label is not None else 0
        label = lut[scene.owner.astype(np.int64) + 1]
        sd = root / split
        (sd / "ir" / f"{name}.png").write_bytes(_png(scene.ir))
        (sd / "vi" / f"{name}.png").write_bytes(_png(scene.vi))
        (sd / "Segmentation_labels" / f"{name}.png").write_bytes(_png(label, _PNG_GRAY3))
        splits[split][name] = {"time": "night" if scene.night else "day", "objects": _objects_json(scene)}
        times[split]["night" if scene.night else "day"] += 1
        pixels += np.bincount(label.ravel(), minlength=len(MSRS_CLASSES))
        classes.update(o.label for o in scene.objects if o.label is not None)
        seen.update(_visibility_class(o) for o in scene.objects if o.label is not None)
    for s, entries in splits.items():
        (root / s / "synthetic_objects.json").write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")
    return {"pairs": {s: len(e) for s, e in splits.items()},
            "time": {s: dict(sorted(t.items())) for s, t in times.items()},
            "objects": {c: classes[c] for c in MSRS_CLASSES[1:]}, "visible_in": _seen(seen),
            "pixel_fraction": {c: round(float(p) / max(1, int(pixels.sum())), 5)
                               for c, p in zip(MSRS_CLASSES, pixels)}}


def _check_args(task: str, count: int, size: tuple[int, int]) -> tuple[list[str], tuple[int, int]]:
    if task not in TASKS:
        raise ConfigError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    if int(count) < 1:
        raise ConfigError(f"count must be at least 1, not {count}")
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ConfigError(f"size must be (width, height), not {size!r}") from None
    if w < 96 or h < 64 or w > 4096 or h > 4096:
        raise ConfigError(f"size {w}x{h} is outside 96x64 .. 4096x4096")
    return (["det", "seg"] if task == "both" else [task]), (w, h)


def generate(out: str | Path, task: str = "both", count: int = DEFAULT_COUNT,
             size: tuple[int, int] = DEFAULT_SIZE, seed: int = DEFAULT_SEED, *,
             progress: bool = False, overwrite: bool = False, held_out: int = 0) -> dict[str, Path]:
    """Write ``count`` synthetic pairs per task under ``out``; return ``{"m3fd": path, "msrs": path}``.

    ``task``: ``"det"`` (``out/m3fd``, M3FD layout), ``"seg"`` (``out/msrs``, MSRS layout) or
    ``"both"``. ``size`` is ``(width, height)``. Same arguments give byte-identical files.
    Each task's folder is written into a hidden temporary folder and renamed into place when
    complete, so an interrupted run never leaves a half-written set. A folder already there is
    kept when it was made with the same arguments; one made otherwise (or not by this generator)
    is replaced only with ``overwrite``. ``held_out``: further scenes for testing only (see above).
    """
    tasks, size = _check_args(task, count, size)
    if int(held_out) < 0:
        raise ConfigError(f"held_out must be at least 0, not {held_out}")
    out = check_output_dir(out)
    wanted = {"version": GENERATOR_VERSION, "count": int(count), "size": list(size), "seed": int(seed),
              **({"held_out": int(held_out)} if held_out else {})}  # absent from sets without any
    for t in tasks:
        _check_replace(out / _SUBDIR[t], {**wanted, "task": t}, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for t in tasks:
        sub = _SUBDIR[t]
        if _marker(out / sub) is not None and _same_set(_marker(out / sub), {**wanted, "task": t}):
            written[sub] = out / sub  # the same bytes are there already
            continue
        tmp = Path(tempfile.mkdtemp(prefix=f".{sub}.tmp-", dir=out))
        try:
            tmp.chmod(0o755)  # mkdtemp makes it private; the dataset is not
            writer = _write_det if t == "det" else _write_seg
            summary = writer(tmp, int(count), size, int(seed), progress, int(held_out))
            marker = {"generator": GENERATOR_NAME, "version": GENERATOR_VERSION,
                      "task": t, "layout": sub, "count": int(count), "size": list(size), "seed": int(seed),
                      **({"held_out": int(held_out)} if held_out else {}),
                      "low_visibility": LOW_VISIBILITY, **summary}
            (tmp / _MARKER).write_text(json.dumps(marker, indent=1) + "\n")
            replace_dir(tmp, out / sub)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        written[sub] = out / sub
    return written


def _marker(folder: Path) -> dict | None:
    try:
        m = json.loads((folder / _MARKER).read_text())
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) else None


def _same_set(marker: dict, wanted: dict) -> bool:
    return all(marker.get(k) == v for k, v in wanted.items()) and marker.get("held_out", 0) == wanted.get("held_out", 0)


def _check_replace(folder: Path, wanted: dict, overwrite: bool) -> None:
    """Refuse to replace a dataset made with other arguments, or not by this generator, unless asked."""
    if overwrite or not folder.exists():
        return
    marker = _marker(folder)
    if marker is None:
        raise OutputError(folder, "exists and is not a synthetic set made here (no synthetic.json); pass "
                                  "--overwrite to replace it, or give another --out to keep it")
    if not _same_set(marker, wanted):
        wanted = {**wanted, "held_out": wanted.get("held_out", 0)}
        before = {k: marker.get(k, 0 if k == "held_out" else None) for k in wanted}
        raise refuse_to_replace(folder, "a synthetic set", describe_changes(before, wanted))


def default_root() -> Path:
    """Where the synthetic default lives: ``$FUSION_PERCEPTION_DATA`` if set, else ``./data/synthetic``."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser().resolve() if env else (Path.cwd() / "data" / "synthetic").resolve()


def is_synthetic(root: str | Path) -> bool:
    """True for a dataset this generator wrote (a task folder with its marker, or a root holding them)."""
    root = Path(root)

    def marked(folder: Path) -> bool:
        try:
            return json.loads((folder / _MARKER).read_text()).get("generator") == GENERATOR_NAME
        except (OSError, ValueError, AttributeError):
            return False

    return marked(root) or any(marked(root / sub) for sub in _SUBDIR.values() if (root / sub).is_dir())


def _is_default(folder: Path, task: str) -> bool:
    try:
        m = json.loads((folder / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    return (m.get("version") == GENERATOR_VERSION and m.get("task") == task and m.get("count") == DEFAULT_COUNT
            and tuple(m.get("size", ())) == DEFAULT_SIZE and m.get("seed") == DEFAULT_SEED and not m.get("held_out"))


def ensure_default(task: str = "both") -> Path:
    """Generate the synthetic default once (200 pairs per task, 320x256, seed 0); return its root.

    The root holds ``m3fd/`` and/or ``msrs/``. A task's folder is reused when its
    ``synthetic.json`` marker matches the default parameters and generator version; an older
    generator's default is regenerated atomically. Anything else is refused, never written over
    (:func:`_check_default_root`): the root may be a user's folder (``$FUSION_PERCEPTION_DATA``).
    """
    tasks, _ = _check_args(task, DEFAULT_COUNT, DEFAULT_SIZE)
    root = default_root()
    for t in tasks:
        if not _is_default(root / _SUBDIR[t], t):
            _check_default_root(root, t)
            generate(root, task=t, count=DEFAULT_COUNT, size=DEFAULT_SIZE, seed=DEFAULT_SEED, progress=True,
                     overwrite=(root / _SUBDIR[t]).exists())
    return root


# What the generator writes in a task's folder, and nothing else (a file that does not match is
# someone else's); the default root holds the task folders and the generator's temporary ones.
_GENERATED = {"det": re.compile(r"(Ir|Vis)/\d{5}\.png|Annotation/\d{5}\.xml|synthetic\.json"),
              "seg": re.compile(r"(train|test)/((ir|vi|Segmentation_labels)/\d{5}[DN]\.png|synthetic_objects\.json)"
                                r"|synthetic\.json")}
_ROOT_ENTRY = re.compile(r"(m3fd|msrs)|\.(m3fd|msrs)\.(tmp|old)-\w+")


def _check_default_root(root: Path, task: str) -> None:
    """Refuse to make the default in ``root`` when that would delete or mix with files the generator
    did not write: the root must hold nothing but the task folders, and a task folder may be
    regenerated only when it is an older generator's default (same parameters) and nothing else."""
    foreign = sorted(p.name for p in root.iterdir() if not _ROOT_ENTRY.fullmatch(p.name)) if root.is_dir() else []
    folder = root / _SUBDIR[task]
    if not foreign and folder.exists():
        marker = _marker(folder) or {}
        wanted = {"generator": GENERATOR_NAME, "task": task, "count": DEFAULT_COUNT, "size": list(DEFAULT_SIZE),
                  "seed": DEFAULT_SEED}
        if not _same_set(marker, wanted):
            foreign = [f"{folder.name}/ (not the synthetic default: "
                       + (describe_changes({k: marker.get(k) for k in wanted}, wanted) if marker else "no synthetic.json")
                       + ")"]
        else:
            files = (p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir())
            foreign = [f"{folder.name}/{f}" for f in sorted(files) if not _GENERATED[task].fullmatch(f)]
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise OutputError(root, f"{_default_root_source()} holds what the synthetic generator did not write "
                                f"({shown}), so the synthetic default is not made there; set {DATA_ENV} to an "
                                "empty folder, or pass --data to use a dataset of your own")


def _default_root_source() -> str:
    """How the default root was chosen, for messages: the variable that set it, or the default."""
    return f"the synthetic default's folder (set by {DATA_ENV})" if os.environ.get(DATA_ENV) else \
        "the synthetic default's folder (./data/synthetic)"


def summarize(written: dict[str, Path]) -> str:
    """Human-readable summary of what :func:`generate` wrote (from the markers)."""
    lines = []
    for sub, path in written.items():
        m = json.loads((path / _MARKER).read_text())
        w, h = m["size"]
        lines.append(f"{path}  ({sub} layout, {w}x{h}, seed {m['seed']})")
        if sub == "m3fd":
            lines.append(f"  pairs: {m['pairs']}  day/night: {m['time'].get('day', 0)}/{m['time'].get('night', 0)}")
        else:
            for s, n in m["pairs"].items():
                t = m["time"][s]
                lines.append(f"  {s}: {n} pairs  day/night: {t.get('day', 0)}/{t.get('night', 0)}")
        lines.append("  objects: " + ", ".join(f"{c} {n}" for c, n in m["objects"].items()))
        v = m["visible_in"]
        lines.append(f"  visible (>= {m['low_visibility']}) in IR only {v['ir_only']}, VI only {v['vi_only']}, "
                     f"both {v['both']}, neither {v['neither']}")
        if "pixel_fraction" in m:
            lines.append("  pixel share: " + ", ".join(f"{c} {100 * f:.2f}%" for c, f in m["pixel_fraction"].items()))
    return "\n".join(lines)
