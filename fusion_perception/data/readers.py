"""Dataset readers: paired IR/visible folders in the layouts users have, as typed records.

Accepted layouts (``layout=`` names; ``"auto"`` detects them in this order):

``msrs``
    MSRS segmentation: ``ROOT/{train,test}/{ir,vi,Segmentation_labels}`` (a ``val/`` split is
    read too). Label PNGs hold class ids ``0..8`` (:data:`MSRS_CLASSES`). Names ending in
    ``D``/``N`` get ``tags={"time": "day"|"night"}``. Records have ``split`` and ``mask_path``.
``m3fd``
    M3FD detection in its original layout: ``ROOT/{Ir,Vis,Annotation}`` with one Pascal VOC
    XML per pair (a root holding a single ``M3FD_Detection/`` folder works too). Class names
    are normalised to :data:`M3FD_CLASSES` (``person``/``People`` -> ``People``,
    ``motorbike`` -> ``Motorcycle``, ...). ``split`` is ``None`` (M3FD ships no split).
``m3fd_tardal``
    The TarDAL re-layout: ``ROOT/{ir,vi}`` plus ``labels/`` (YOLO txt: ``class cx cy w h``
    normalised, class ids in TarDAL's order :data:`TARDAL_CLASSES`) and/or
    ``meta/{train,val,pred}.txt`` (image names; ``pred`` becomes split ``"test"``).
``pairs``
    Any folder with exactly two image sub-folders (``ir/`` + ``vi/``, ``IR/`` + ``VI/``,
    ``infrared/`` + ``visible/``, ``MRI/`` + ``CT/``, ...). The infrared-like folder is
    ``ir_path``; other names are taken in sorted order (``PairDataset.modalities`` says
    which is which). ``split`` is ``None``.

In every layout the two modalities are matched by file stem (any image extension, case
insensitive). :func:`load_dataset` validates as it reads: a file without a partner, IR/VI
size mismatch, unreadable or truncated images, XML with an unknown class or a box outside
the image, masks with out-of-range ids or the wrong size, missing masks or annotations:
each raises :class:`~fusion_perception.errors.DatasetError` naming the file and the problem,
or, with ``skip_bad=True``, is left out with a warning and listed in ``PairDataset.skipped``.
"""

from __future__ import annotations

import re
import warnings
import xml.etree.ElementTree as ET
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from fusion_perception.data.image_io import is_image_file
from fusion_perception.data.records import (
    LAYOUTS, M3FD_CLASSES, MSRS_CLASSES, Box, PairDataset, PairRecord, SkippedItem,
)
from fusion_perception.data.validate import check_mask, default_workers, probe_image
from fusion_perception.errors import ConfigError, DatasetError

# TarDAL's loader (loader/m3fd.py) numbers the classes in this order: Lamp before Motorcycle.
TARDAL_CLASSES: tuple[str, ...] = ("People", "Car", "Bus", "Lamp", "Motorcycle", "Truck")

# Spellings seen in M3FD-style VOC files, keyed by lower case without spaces, '_' or '-'.
_CLASS_ALIASES: dict[str, str] = {
    **dict.fromkeys(("people", "person", "persons", "pedestrian", "pedestrians", "human",
                     "humans"), "People"),
    **dict.fromkeys(("car", "cars"), "Car"),
    **dict.fromkeys(("bus", "buses", "busses"), "Bus"),
    **dict.fromkeys(("motorcycle", "motorcycles", "motorbike", "motorbikes", "motor"),
                    "Motorcycle"),
    **dict.fromkeys(("lamp", "lamps", "streetlamp", "streetlamps", "streetlight",
                     "streetlights"), "Lamp"),
    **dict.fromkeys(("truck", "trucks", "lorry", "lorries"), "Truck"),
}

# Folder names that say "this is the infrared / the visible modality" (first word, lower case).
_IR_WORDS = frozenset(("ir", "infrared", "thermal", "lwir", "inf"))
_VI_WORDS = frozenset(("vi", "vis", "visible", "rgb", "color", "colour", "optical"))
_SPLITS = ("train", "val", "test")
_BOX_TOLERANCE = 1.0  # pixels a box may stick out of the image (VOC is 1-based, rounding)
_PROGRESS_MIN = 500  # pairs from which a progress bar is worth showing

LAYOUT_HELP = (
    "MSRS (train/ and/or test/ holding ir/, vi/, Segmentation_labels/), "
    "M3FD (Ir/, Vis/, Annotation/ with VOC XML, or one M3FD_Detection/ folder holding them), "
    "TarDAL M3FD (ir/, vi/ with labels/ YOLO txt and/or meta/{train,val,pred}.txt), "
    "or a pair folder (exactly two image sub-folders such as ir/ + vi/ or MRI/ + CT/)"
)


class SkippedItemWarning(UserWarning):
    """Warned once per item that ``skip_bad=True`` leaves out."""


# --------------------------------------------------------------------------- class names
def canonical_m3fd_class(name: str) -> str:
    """Map an M3FD class spelling (``"person"``, ``" Motorbike"``, ``"truck "``) to its
    canonical name in :data:`M3FD_CLASSES`; raises ``KeyError`` for an unknown class."""
    key = re.sub(r"[\s_\-]+", "", name).lower()
    return _CLASS_ALIASES[key]


# --------------------------------------------------------------------------- annotations
def _checked_box(path: Path, where: str, label: str, x1: float, y1: float, x2: float,
                 y2: float, size: tuple[int, int]) -> Box:
    """Validate a pixel box against the image size; clip the allowed 1-pixel overhang."""
    w, h = size
    coords = f"({x1:g}, {y1:g}, {x2:g}, {y2:g})"
    if x2 <= x1 or y2 <= y1:
        raise DatasetError(path, f"{where}: box {label} {coords} is empty or inverted "
                                 "(needs x2 > x1 and y2 > y1)")
    t = _BOX_TOLERANCE
    if x1 < -t or y1 < -t or x2 > w + t or y2 > h + t:
        raise DatasetError(path, f"{where}: box {label} {coords} lies outside the {w}x{h} image")
    x1, y1, x2, y2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))
    if x2 <= x1 or y2 <= y1:
        raise DatasetError(path, f"{where}: box {label} {coords} has no area inside the "
                                 f"{w}x{h} image")
    return Box(label, x1, y1, x2, y2)


def read_voc_xml(path: str | Path) -> tuple[list[tuple[str, float, float, float, float]],
                                            tuple[int, int] | None]:
    """Parse a Pascal VOC XML: ``([(class, x1, y1, x2, y2), ...], (width, height) | None)``.

    Class names come back canonical (:func:`canonical_m3fd_class`). Raises
    :class:`DatasetError` naming the file for invalid XML, an unknown class or a bad box.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise DatasetError(path, f"not valid XML ({e})") from None
    except OSError as e:
        raise DatasetError(path, f"cannot read the annotation ({e.strerror or e})") from None
    size = None
    el = root.find("size")
    if el is not None:
        try:
            w, h = int(float(el.findtext("width", "0"))), int(float(el.findtext("height", "0")))
        except ValueError:
            raise DatasetError(path, "<size> holds a non-numeric width or height") from None
        size = (w, h) if w > 0 and h > 0 else None
    objects = []
    for i, obj in enumerate(root.iter("object"), start=1):
        raw = (obj.findtext("name") or "").strip()
        if not raw:
            raise DatasetError(path, f"object #{i} has no <name>")
        try:
            label = canonical_m3fd_class(raw)
        except KeyError:
            raise DatasetError(path, f"object #{i}: unknown class {raw!r} "
                                     f"(M3FD classes: {', '.join(M3FD_CLASSES)})") from None
        bb = obj.find("bndbox")
        try:
            x1, y1, x2, y2 = (float(bb.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError):
            raise DatasetError(path, f"object #{i} ({raw}) has no valid <bndbox> "
                                     "with xmin, ymin, xmax, ymax") from None
        objects.append((label, x1, y1, x2, y2))
    return objects, size


def voc_boxes(path: str | Path, image_size: tuple[int, int]) -> list[Box]:
    """Boxes of a VOC XML, checked against its ``<size>`` (else ``image_size``) and the image."""
    path = Path(path)
    objects, xml_size = read_voc_xml(path)
    if xml_size is not None and xml_size != tuple(image_size):
        raise DatasetError(path, f"<size> says {xml_size[0]}x{xml_size[1]} but the image is "
                                 f"{image_size[0]}x{image_size[1]}")
    size = xml_size or tuple(image_size)
    return [_checked_box(path, f"object #{i}", label, x1, y1, x2, y2, size)
            for i, (label, x1, y1, x2, y2) in enumerate(objects, start=1)]


def yolo_boxes(path: str | Path, image_size: tuple[int, int],
               classes: tuple[str, ...] = TARDAL_CLASSES) -> list[Box]:
    """Boxes of a YOLO txt (``class cx cy w h`` per line, normalised) in pixels of ``image_size``."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(path, f"cannot read the label file ({e})") from None
    w, h = image_size
    boxes = []
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            raise DatasetError(path, f"line {n}: expected 5 numbers 'class cx cy w h', "
                                     f"got {len(parts)}")
        try:
            cls_f, cx, cy, bw, bh = map(float, parts)
        except ValueError:
            raise DatasetError(path, f"line {n}: non-numeric value in {line.strip()!r}") from None
        if cls_f != int(cls_f) or not 0 <= cls_f < len(classes):
            raise DatasetError(path, f"line {n}: class id {parts[0]} out of range "
                                     f"0..{len(classes) - 1} ({', '.join(classes)})")
        label = classes[int(cls_f)]
        boxes.append(_checked_box(path, f"line {n}", label, (cx - bw / 2) * w, (cy - bh / 2) * h,
                                  (cx + bw / 2) * w, (cy + bh / 2) * h, (w, h)))
    return boxes


# --------------------------------------------------------------------------- folder scanning
def _subdirs(folder: Path) -> dict[str, Path]:
    """Non-hidden sub-folders keyed by lower-case name (layout folder names vary in case)."""
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_dir() and not p.name.startswith("."):
            out.setdefault(p.name.lower(), p)
    return out


def _has_images(folder: Path) -> bool:
    return any(is_image_file(p) and not p.name.startswith(".") for p in folder.iterdir())


def _image_dirs(folder: Path) -> list[Path]:
    return [p for p in _subdirs(folder).values() if _has_images(p)]


def _first_word(name: str) -> str:
    return re.split(r"[^a-z0-9]+", name.lower())[0]


def _modality_order(p: Path) -> tuple[int, str]:
    word = _first_word(p.name)
    return (0 if word in _IR_WORDS else 2 if word in _VI_WORDS else 1), p.name


def _split_dirs(root: Path) -> dict[str, Path]:
    subs = _subdirs(root)
    return {s: subs[s] for s in _SPLITS if s in subs}


def _is_msrs(root: Path) -> bool:
    return any({"ir", "vi"} <= _subdirs(d).keys() for d in _split_dirs(root).values())


def _is_m3fd(subs: dict[str, Path]) -> bool:
    return "ir" in subs and ("vis" in subs or ("vi" in subs and _annotation_dir(subs) is not None))


def _annotation_dir(subs: dict[str, Path]) -> Path | None:
    return subs.get("annotation") or subs.get("annotations")


def _is_tardal(subs: dict[str, Path]) -> bool:
    return {"ir", "vi"} <= subs.keys() and ("labels" in subs or "meta" in subs)


def _pair_dirs(root: Path) -> tuple[Path, Path] | None:
    dirs = _image_dirs(root)
    if len(dirs) > 2:  # e.g. ir/, vi/ and a fused/ output: take the ir-like and vi-like ones
        ir = [d for d in dirs if _first_word(d.name) in _IR_WORDS]
        vi = [d for d in dirs if _first_word(d.name) in _VI_WORDS]
        dirs = ir + vi if len(ir) == 1 and len(vi) == 1 else dirs
    if len(dirs) != 2:
        return None
    a, b = sorted(dirs, key=_modality_order)
    return a, b


def _detect_here(root: Path) -> str | None:
    if _is_msrs(root):
        return "msrs"
    subs = _subdirs(root)
    if _is_m3fd(subs):
        return "m3fd"
    if _is_tardal(subs):
        return "m3fd_tardal"
    if _pair_dirs(root) is not None:
        return "pairs"
    return None


def _fits(root: Path, layout: str) -> bool:
    """Whether ``root`` holds the folders an explicitly requested layout needs."""
    subs = _subdirs(root)
    if layout == "msrs":
        return _is_msrs(root)
    if layout == "m3fd":
        return "ir" in subs and ("vis" in subs or "vi" in subs)
    if layout == "m3fd_tardal":
        return {"ir", "vi"} <= subs.keys()
    return _pair_dirs(root) is not None


def _found(root: Path) -> str:
    entries = [p for p in sorted(root.iterdir()) if not p.name.startswith(".")]
    if not entries:
        return "the folder is empty"
    dirs = [p.name + "/" for p in entries if p.is_dir()]
    files = [p for p in entries if p.is_file()]
    parts = []
    if dirs:
        parts.append("sub-folders " + ", ".join(dirs[:10]) + (", ..." if len(dirs) > 10 else ""))
    if files:
        parts.append(f"{len(files)} file(s)")
    return "found " + " and ".join(parts)


def _wrapped(root: Path) -> Path | None:
    """The single sub-folder of a wrapper folder (``M3FD/M3FD_Detection/``), else None."""
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    dirs = [p for p in entries if p.is_dir()]
    if len(dirs) == 1 and not any(is_image_file(p) for p in entries):
        return dirs[0]
    return None


def _check_root(root: str | Path) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(root, "dataset folder not found")
    if not root.is_dir():
        raise DatasetError(root, "not a folder; pass the dataset's root folder")
    return root


def _resolve(root: str | Path, layout: str = "auto") -> tuple[str, Path]:
    """(layout, the folder that actually holds it), looking one wrapper folder deep."""
    root = _check_root(root)
    if layout != "auto" and layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; choose auto or one of {', '.join(LAYOUTS)}")
    here = root
    for _ in range(2):
        if layout == "auto":
            found = _detect_here(here)
            if found is not None:
                return found, here
        elif _fits(here, layout):
            return layout, here
        inner = _wrapped(here)
        if inner is None:
            break
        here = inner
    what = ("no dataset layout recognised" if layout == "auto"
            else f"this is not a {layout!r} layout folder")
    found = _found(root)
    inner = {d.name: _detect_here(d) for d in _subdirs(root).values()}
    inner = {name: lay for name, lay in inner.items() if lay is not None}
    if len(inner) > 1:  # e.g. the synthetic default's m3fd/ + msrs/
        listed = ", ".join(f"{name}/ ({lay})" for name, lay in inner.items())
        raise DatasetError(root, f"this folder holds several datasets: {listed}; "
                                 "point at one of them")
    if found == "the folder is empty":
        raise DatasetError(root, f"the folder is empty; looked for {LAYOUT_HELP}")
    empty = _empty_modality(root)
    if empty is not None:
        raise empty
    looked = LAYOUT_HELP if layout == "auto" else _layout_need(layout)
    raise DatasetError(root, f"{what} ({found}); looked for {looked}")


def _empty_modality(root: Path) -> DatasetError | None:
    """An IR-like or visible-like folder without images (the layout is there, one modality is not)."""
    for here in (root, *_split_dirs(root).values()):
        dirs = list(_subdirs(here).values())
        ir = [d for d in dirs if _first_word(d.name) in _IR_WORDS]
        vi = [d for d in dirs if _first_word(d.name) in _VI_WORDS]
        if len(ir) != 1 or len(vi) != 1:
            continue
        full = [d for d in (ir[0], vi[0]) if _has_images(d)]
        if len(full) == 2:
            continue
        if not full:
            return DatasetError(here, f"{ir[0].name}/ and {vi[0].name}/ hold no images")
        empty = vi[0] if full[0] is ir[0] else ir[0]
        n = sum(1 for p in full[0].iterdir() if is_image_file(p) and not p.name.startswith("."))
        return DatasetError(empty, f"holds no images, while {full[0].name}/ holds {n}: every image there "
                                   f"needs its partner here (same name)")
    return None


def _layout_need(layout: str) -> str:
    return {
        "msrs": "train/ and/or test/ holding ir/, vi/ and Segmentation_labels/",
        "m3fd": "Ir/ and Vis/ (and Annotation/ with VOC XML)",
        "m3fd_tardal": "ir/ and vi/ (with labels/ and/or meta/)",
        "pairs": "exactly two image sub-folders such as ir/ + vi/ or MRI/ + CT/",
    }[layout]


def detect_layout(root: str | Path) -> str:
    """Name of the layout (one of :data:`LAYOUTS`) the folder ``root`` holds.

    Looks for MSRS, then original M3FD, then the TarDAL re-layout, then a plain pair folder
    (see the module docstring), also one wrapper folder deep (``M3FD/M3FD_Detection/``).
    Raises :class:`DatasetError` naming the folder, what it holds and the layouts looked for.
    """
    return _resolve(root)[0]


# --------------------------------------------------------------------------- listing
@dataclass
class _Item:
    """A candidate pair found by listing, not yet validated."""

    name: str
    ir: Path
    vi: Path
    split: str | None = None
    ann: Path | None = None
    ann_kind: str | None = None  # "voc" | "yolo"
    mask: Path | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class _Listing:
    items: list[_Item] = field(default_factory=list)
    problems: list[DatasetError] = field(default_factory=list)
    modalities: tuple[str, str] = ("ir", "vi")


def _files_by_stem(folder: Path, problems: list[DatasetError], keep=is_image_file) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        # a broken symbolic link stays in: its pair then fails validation naming the link
        if not (p.is_file() or p.is_symlink()) or p.name.startswith(".") or not keep(p):
            continue
        if p.stem in out:
            problems.append(DatasetError(p, f"has the same name as {out[p.stem].name}; "
                                            "each pair needs exactly one file per name"))
            continue
        out[p.stem] = p
    return out


def _pair_items(ir_dir: Path, vi_dir: Path, problems: list[DatasetError],
                split: str | None = None) -> list[_Item]:
    """Match the two folders' images by stem; every unmatched file becomes a problem."""
    ir, vi = _files_by_stem(ir_dir, problems), _files_by_stem(vi_dir, problems)
    items = []
    for stem in sorted(ir.keys() | vi.keys()):
        if stem in ir and stem in vi:
            items.append(_Item(stem, ir[stem], vi[stem], split))
        else:
            have, other = (ir[stem], vi_dir) if stem in ir else (vi[stem], ir_dir)
            problems.append(DatasetError(have, f"has no partner image: no {stem}.<image> in {other}"))
    return items


def _attach(items: list[_Item], folder: Path, problems: list[DatasetError], what: str,
            keep, ext: str, attr: str, partner_dirs: str) -> list[_Item]:
    """Attach one file per pair from ``folder`` (annotations, masks); report gaps and orphans."""
    files = _files_by_stem(folder, problems, keep)
    kept = []
    for it in items:
        f = files.pop(it.name, None)
        if f is None:
            problems.append(DatasetError(folder / f"{it.name}{ext}",
                                         f"{what} missing for the pair {it.name} "
                                         "(expected this file)"))
            continue
        setattr(it, attr, f)
        kept.append(it)
    names = {it.name for it in items}
    for stem, f in files.items():
        if stem not in names:
            problems.append(DatasetError(f, f"{what} without an image pair in {partner_dirs}"))
    return kept


def _list_pairs(root: Path) -> _Listing:
    lst = _Listing()
    a, b = _pair_dirs(root)
    lst.modalities = (a.name, b.name)
    lst.items = _pair_items(a, b, lst.problems)
    return lst


def _list_m3fd(root: Path) -> _Listing:
    subs = _subdirs(root)
    ir, vi = subs["ir"], subs.get("vis") or subs["vi"]
    lst = _Listing(modalities=(ir.name, vi.name))
    lst.items = _pair_items(ir, vi, lst.problems)
    ann = _annotation_dir(subs)
    if ann is None:  # fusion-only copy: pairs without boxes (describe() says so)
        return lst
    lst.items = _attach(lst.items, ann, lst.problems, "VOC annotation",
                        lambda p: p.suffix.lower() == ".xml", ".xml", "ann",
                        f"{ir.name}/ and {vi.name}/")
    for it in lst.items:
        it.ann_kind = "voc"
    return lst


def _list_tardal(root: Path) -> _Listing:
    subs = _subdirs(root)
    ir, vi = subs["ir"], subs["vi"]
    lst = _Listing(modalities=(ir.name, vi.name))
    lst.items = _pair_items(ir, vi, lst.problems)
    if "labels" in subs:
        lst.items = _attach(lst.items, subs["labels"], lst.problems, "YOLO label file",
                            lambda p: p.suffix.lower() == ".txt", ".txt", "ann",
                            f"{ir.name}/ and {vi.name}/")
        for it in lst.items:
            it.ann_kind = "yolo"
    if "meta" not in subs:  # no split: every record keeps split=None
        return lst
    by_name = {it.name: it for it in lst.items}
    known = {p.stem for d in (ir, vi) for p in d.iterdir() if is_image_file(p)}
    first_list: dict[str, Path] = {}
    conflicted: set[str] = set()
    for fname, split in (("train.txt", "train"), ("val.txt", "val"), ("test.txt", "test"),
                         ("pred.txt", "test")):
        meta = subs["meta"] / fname
        if not meta.is_file():
            continue
        for n, line in enumerate(meta.read_text().splitlines(), start=1):
            entry = line.strip()
            if not entry:
                continue
            stem = Path(entry).stem
            if stem not in known:
                lst.problems.append(DatasetError(
                    meta, f"line {n} lists {entry!r} but {ir.name}/ and {vi.name}/ hold no "
                          "such image"))
                continue
            it = by_name.get(stem)
            if it is None:  # its missing partner is already reported
                continue
            if it.split is not None and it.split != split:
                lst.problems.append(DatasetError(
                    meta, f"line {n}: {entry!r} is also listed in {first_list[stem].name}; "
                          "train, val and test must not overlap"))
                conflicted.add(stem)
                continue
            it.split = split
            first_list.setdefault(stem, meta)
    lst.items = [it for it in lst.items if it.name not in conflicted]
    return lst


def _list_msrs(root: Path) -> _Listing:
    lst = _Listing()
    for split, sd in _split_dirs(root).items():
        subs = _subdirs(sd)
        missing = [m for m in ("ir", "vi") if m not in subs]
        if missing:
            lst.problems.append(DatasetError(sd, f"split folder has no {' or '.join(missing)}/ "
                                                 "sub-folder; its pairs cannot be read"))
            continue
        items = _pair_items(subs["ir"], subs["vi"], lst.problems, split)
        labels = subs.get("segmentation_labels")
        if labels is not None:  # without it: a fusion-only copy, records have mask_path None
            items = _attach(items, labels, lst.problems, "segmentation mask", is_image_file,
                            ".png", "mask", f"{split}/ir/ and {split}/vi/")
        for it in items:
            if it.name[-1:] in ("D", "N"):
                it.tags["time"] = "day" if it.name.endswith("D") else "night"
        lst.items += items
    return lst


_LISTERS = {"pairs": _list_pairs, "m3fd": _list_m3fd, "m3fd_tardal": _list_tardal,
            "msrs": _list_msrs}


# --------------------------------------------------------------------------- validation
def _check_item(it: _Item) -> PairRecord | DatasetError:
    """Validate one pair by its headers (and its annotation or mask); never raises."""
    try:
        ir_size, vi_size = probe_image(it.ir), probe_image(it.vi)
        if ir_size != vi_size:
            return DatasetError(it.ir, f"IR/visible size mismatch: {it.ir} is "
                                       f"{ir_size[0]}x{ir_size[1]} but {it.vi} is "
                                       f"{vi_size[0]}x{vi_size[1]}")
        boxes = None
        if it.ann_kind == "voc":
            boxes = voc_boxes(it.ann, ir_size)
        elif it.ann_kind == "yolo":
            boxes = yolo_boxes(it.ann, ir_size)
        if it.mask is not None:
            check_mask(it.mask, ir_size, len(MSRS_CLASSES))
    except DatasetError as e:
        return e
    except OSError as e:  # permissions, I/O errors: still name the file
        return DatasetError(e.filename or it.ir, f"cannot read ({e.strerror or e})")
    return PairRecord(name=it.name, ir_path=it.ir, vi_path=it.vi, split=it.split, boxes=boxes,
                      annotation_path=it.ann, mask_path=it.mask, tags=dict(it.tags),
                      size=ir_size)


def _skip(e: DatasetError, skipped: list[SkippedItem]) -> None:
    skipped.append(SkippedItem(e.path, e.problem))
    warnings.warn(f"skipped {e.path}: {e.problem}", SkippedItemWarning, stacklevel=3)


def load_dataset(root: str | Path, layout: str = "auto", *, skip_bad: bool = False,
                 progress: bool | None = None) -> PairDataset:
    """Read and validate a paired dataset into a :class:`PairDataset`.

    Layouts (details in the module docstring): ``msrs`` ``{train,test}/{ir,vi,Segmentation_labels}``;
    ``m3fd`` ``{Ir,Vis,Annotation}`` with VOC XML; ``m3fd_tardal`` ``{ir,vi,labels,meta}``;
    ``pairs`` any two image sub-folders matched by file stem (``ir/vi``, ``MRI/CT``, ...).
    ``layout="auto"`` detects the layout (:func:`detect_layout`); a layout name forces it.
    Every pair is checked from file headers (size, truncation) in a thread pool, with its
    annotation or mask. Without ``skip_bad`` the first problem raises :class:`DatasetError`
    naming the file and the problem; with it, each bad item is warned about
    (:class:`SkippedItemWarning`), left out and listed in ``PairDataset.skipped``.
    ``progress`` shows a tqdm bar (default: only for large datasets).
    """
    layout, here = _resolve(root, layout)
    lst = _LISTERS[layout](here)
    skipped: list[SkippedItem] = []
    for e in lst.problems:  # structural problems first: cheap, and they explain later gaps
        if not skip_bad:
            raise e
        _skip(e, skipped)
    if not lst.items and not skipped:
        raise DatasetError(here, f"no image pairs found in this {layout!r} layout folder")
    records: list[PairRecord] = []
    show = len(lst.items) >= _PROGRESS_MIN if progress is None else progress
    ex = ThreadPoolExecutor(max_workers=default_workers())
    try:
        bar = tqdm(ex.map(_check_item, lst.items), total=len(lst.items), disable=not show,
                   desc=f"checking {here.name}", unit="pair")
        for out in bar:  # map keeps the listing order: the first problem is deterministic
            if isinstance(out, PairRecord):
                records.append(out)
            elif skip_bad:
                _skip(out, skipped)
            else:
                raise out
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
    if not records:
        raise DatasetError(here, f"no usable pairs: all {len(skipped)} item(s) were bad "
                                 f"(first: {skipped[0].path}: {skipped[0].problem})")
    classes = {"m3fd": M3FD_CLASSES, "m3fd_tardal": M3FD_CLASSES, "msrs": MSRS_CLASSES}
    return PairDataset(root=here, layout=layout, records=records,
                       classes=classes.get(layout, ()), modalities=lst.modalities,
                       skipped=skipped)


# --------------------------------------------------------------------------- describe
def _counts(counter: Counter, order: tuple[str, ...] | None = None) -> str:
    keys = list(order) if order else sorted(counter, key=lambda k: (k is None, str(k)))
    return ", ".join(f"{k} {counter[k]}" for k in keys if counter[k] or order)


def describe(ds: PairDataset) -> str:
    """A readable multi-line summary: layout, root, modalities, pairs per split, boxes per
    class (detection), masks and day/night counts (segmentation), image sizes, skipped items."""
    recs = ds.records
    lines = [f"dataset: {ds.root}",
             f"layout: {ds.layout}   modalities: {ds.modalities[0]}/ -> ir_path, "
             f"{ds.modalities[1]}/ -> vi_path",
             f"pairs: {len(recs)}"]
    splits = Counter(r.split or "(no split)" for r in recs)
    if set(splits) != {"(no split)"}:
        lines.append("  per split: " + ", ".join(
            f"{s} {splits[s]}" for s in (*_SPLITS, "(no split)") if splits[s]))
    labelled = [r for r in recs if r.boxes is not None]
    if ds.layout in ("m3fd", "m3fd_tardal") and not labelled:
        lines.append("boxes: none (no annotation folder)")
    if labelled:
        per_class = Counter(b.label for r in labelled for b in r.boxes)
        lines.append(f"boxes: {sum(per_class.values())} in {len(labelled)} annotated pairs "
                     f"({sum(1 for r in labelled if not r.boxes)} with none)")
        lines.append("  per class: " + _counts(per_class, ds.classes or None))
        other = sorted(set(per_class) - set(ds.classes))
        if other:
            lines.append("  other classes: " + _counts(Counter({k: per_class[k] for k in other})))
    masks = sum(r.mask_path is not None for r in recs)
    if masks:
        lines.append(f"masks: {masks} of {len(recs)} pairs (class ids 0..{len(ds.classes) - 1}: "
                     f"{', '.join(ds.classes)})")
    elif ds.layout == "msrs":
        lines.append("masks: none (no Segmentation_labels folder)")
    times = Counter(r.tags.get("time") for r in recs if r.tags.get("time"))
    if times:
        lines.append(f"time of day: day {times['day']}, night {times['night']}")
        for s in _SPLITS:
            t = Counter(r.tags.get("time") for r in recs if r.split == s and r.tags.get("time"))
            if t:
                lines.append(f"  {s}: day {t['day']}, night {t['night']}")
    sizes = Counter(r.size for r in recs if r.size is not None)
    if sizes:
        common = sizes.most_common(5)
        text = ", ".join(f"{w}x{h} ({n})" for (w, h), n in common)
        if len(sizes) > len(common):
            text += f" and {len(sizes) - len(common)} more sizes"
        lines.append(f"image sizes (WxH): {text}")
    if ds.skipped:
        lines.append(f"skipped: {len(ds.skipped)} bad item(s)")
        lines.extend(f"  - {s.path}: {s.problem}" for s in ds.skipped)
    else:
        lines.append("skipped: none")
    return "\n".join(lines)
