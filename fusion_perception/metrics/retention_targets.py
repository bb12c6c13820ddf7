"""Which objects of a pair only one modality shows: the annotated objects (VOC XML tags, the
synthetic MSRS sidecar, a per-object CSV) and the :class:`TargetRule` that decides
(see :mod:`fusion_perception.metrics.retention`)."""

from __future__ import annotations

import csv
import io
import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fusion_perception.errors import ConfigError, DatasetError

MIN_SOURCE_CONTRAST = 0.03
SOURCES = ("ir", "vi")
SIDECAR = "synthetic_objects.json"  # the synthetic MSRS layout's per-object tags


# ------------------------------------------------------------------------------ which objects
@dataclass(frozen=True)
class AnnotatedObject:
    """An annotated object of one pair, with the annotation's visibility tags where it has them."""

    label: str
    box: tuple[float, float, float, float]
    visibility: tuple[float, float] | None = None  # (ir, vi) in [0, 1]


@dataclass(frozen=True)
class TargetRule:
    """Decides which objects only one modality shows (see the module docstring)."""

    mode: str = "auto"  # auto | tags | contrast | file
    tag_shown: float = 0.5
    tag_hidden: float = 0.2
    contrast_shown: float = 0.05
    contrast_hidden: float = 0.03
    classes: tuple[str, ...] | None = None
    min_source_contrast: float = MIN_SOURCE_CONTRAST
    objects_file: Path | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "tags", "contrast", "file"):
            raise ConfigError(f"target rule must be auto, tags, contrast or a CSV file, not {self.mode!r}")
        if self.mode == "file" and self.objects_file is None:
            raise ConfigError("the file rule needs the per-object CSV file")

    @classmethod
    def parse(cls, spec: str, classes: str | Sequence[str] | None = None,
              contrast: str | Sequence[float] | None = None) -> "TargetRule":
        """From command-line values: ``spec`` a mode or a CSV path, ``classes`` ``"People,Car"``,
        ``contrast`` ``"SHOWN,HIDDEN"``."""
        kw: dict = {}
        if classes:
            kw["classes"] = tuple(c.strip() for c in (classes.split(",") if isinstance(classes, str) else classes)
                                  if c.strip())
        if contrast:
            parts = contrast.split(",") if isinstance(contrast, str) else list(contrast)
            try:
                shown, hidden = (float(x) for x in parts)
                if not (0 <= shown <= 1 and 0 <= hidden <= 1):  # NaN included: no object would ever qualify
                    raise ValueError
            except ValueError:
                raise ConfigError(f"target contrast thresholds are SHOWN,HIDDEN in 0..1 (e.g. 0.1,0.03), "
                                  f"not {contrast!r}") from None
            kw.update(contrast_shown=shown, contrast_hidden=hidden)
        if spec in ("auto", "tags", "contrast"):
            return cls(mode=spec, **kw)
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ConfigError(f"--targets {spec!r}: neither a rule (auto, tags, contrast) nor a CSV file")
        return cls(mode="file", objects_file=path, **kw)

    def by_tags(self, vis: tuple[float, float]) -> str | None:
        ir, vi = vis
        if ir >= self.tag_shown and vi <= self.tag_hidden:
            return "ir"
        if vi >= self.tag_shown and ir <= self.tag_hidden:
            return "vi"
        return None

    def by_contrast(self, c_ir: float, c_vi: float) -> str | None:
        if c_ir >= self.contrast_shown and c_vi <= self.contrast_hidden:
            return "ir"
        if c_vi >= self.contrast_shown and c_ir <= self.contrast_hidden:
            return "vi"
        return None

    def wants(self, label: str) -> bool:
        return self.classes is None or label.lower() in {c.lower() for c in self.classes}


def read_voc_objects(path: str | Path) -> list[AnnotatedObject]:
    """A VOC XML's objects with their ``<visibility>`` tags where present."""
    from fusion_perception.data.readers import read_voc_xml

    path = Path(path)
    objects, _ = read_voc_xml(path)  # validated labels and boxes, in file order
    tags = []
    for el in ET.parse(path).getroot().iter("object"):
        v = el.find("visibility")
        try:
            tags.append(None if v is None else (float(v.findtext("ir")), float(v.findtext("vi"))))
            if tags[-1] is not None and not all(math.isfinite(t) for t in tags[-1]):
                raise ValueError
        except (TypeError, ValueError):
            raise DatasetError(path, "an object's <visibility> needs numeric <ir> and <vi> (finite numbers)") from None
    return [AnnotatedObject(label, (x1, y1, x2, y2), t) for (label, x1, y1, x2, y2), t in zip(objects, tags)]


def read_sidecar_objects(path: str | Path) -> dict[str, list[AnnotatedObject]]:
    """The synthetic MSRS sidecar: image name -> objects with visibility tags."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        return {name: [AnnotatedObject(o["class"], tuple(float(x) for x in o["bbox"]),
                                       (float(o["visibility"]["ir"]), float(o["visibility"]["vi"])))
                       for o in entry["objects"]]
                for name, entry in data.items()}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DatasetError(path, f"not a readable per-object tag file ({type(e).__name__}: {e})") from None


def read_objects_file(path: str | Path) -> dict[str, list[tuple[AnnotatedObject, str]]]:
    """A per-object CSV (``image,x1,y1,x2,y2,source[,label]``): image -> [(object, source)]."""
    path = Path(path)
    out: dict[str, list[tuple[AnnotatedObject, str]]] = {}
    try:
        rows = list(csv.DictReader(io.StringIO(path.read_text())))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(path, f"cannot read the per-object CSV ({e})") from None
    for i, row in enumerate(rows, start=2):
        try:
            box = tuple(float(row[k]) for k in ("x1", "y1", "x2", "y2"))
            source = row["source"].strip().lower()
            image = Path(row["image"].strip()).stem
        except (KeyError, TypeError, ValueError, AttributeError):
            raise DatasetError(path, f"line {i}: expected columns image,x1,y1,x2,y2,source[,label]") from None
        if source not in SOURCES:
            raise DatasetError(path, f"line {i}: source must be ir or vi, not {row['source']!r}")
        if not all(math.isfinite(v) for v in box):  # NaN passes the comparison below
            raise DatasetError(path, f"line {i}: box {box} has a coordinate that is not a finite number")
        if box[2] <= box[0] or box[3] <= box[1]:
            raise DatasetError(path, f"line {i}: box {box} is empty or inverted")
        out.setdefault(image, []).append((AnnotatedObject((row.get("label") or "object").strip(), box), source))
    if not out:
        raise DatasetError(path, "the per-object CSV lists no objects")
    return out
