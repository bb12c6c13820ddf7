"""Annotation files as validated boxes: Pascal VOC XML (M3FD) and YOLO txt (TarDAL, MSRS-detection-label),
and a YOLO class list (``classes.txt``).

Each parser checks what it reads (XML that parses, known class names, numeric boxes inside the
image, within a 1-pixel overhang that is clipped) and raises
:class:`~fusion_perception.errors.DatasetError` naming the file, and the object or line, at fault.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from fusion_perception.data.records import M3FD_CLASSES, Box
from fusion_perception.errors import DatasetError

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
_BOX_TOLERANCE = 1.0  # pixels a box may stick out of the image (VOC is 1-based, rounding)


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
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):  # NaN passes every comparison below
        raise DatasetError(path, f"{where}: box {label} {coords} has a coordinate that is not a finite number")
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
        except (ValueError, OverflowError):  # int() of NaN, of infinity
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
        if not 0 <= cls_f < len(classes) or cls_f != int(cls_f):  # NaN and infinity fail the range first
            raise DatasetError(path, f"line {n}: class id {parts[0]} out of range "
                                     f"0..{len(classes) - 1} ({', '.join(classes)})")
        label = classes[int(cls_f)]
        boxes.append(_checked_box(path, f"line {n}", label, (cx - bw / 2) * w, (cy - bh / 2) * h,
                                  (cx + bw / 2) * w, (cy + bh / 2) * h, (w, h)))
    return boxes


def read_class_list(path: str | Path) -> tuple[str, ...]:
    """The class names of a YOLO ``classes.txt``: one class a line, ``ID NAME`` (ids 0, 1, ... in
    order) or ``NAME`` alone; blank lines and surrounding spaces are ignored."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(path, f"cannot read the class list ({e})") from None
    names: list[str] = []
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if parts[0].lstrip("-").isdigit():
            if int(parts[0]) != len(names) or len(parts) != 2:
                raise DatasetError(path, f"line {n}: expected 'ID NAME' with id {len(names)}, got {line.strip()!r}")
            parts = parts[1:]
        if len(parts) != 1 or parts[0] in names:
            raise DatasetError(path, f"line {n}: expected one new class name, got {line.strip()!r}")
        names.append(parts[0])
    if not names:
        raise DatasetError(path, "the class list is empty")
    return tuple(names)


__all__ = ["TARDAL_CLASSES", "canonical_m3fd_class", "read_class_list", "read_voc_xml", "voc_boxes", "yolo_boxes"]
