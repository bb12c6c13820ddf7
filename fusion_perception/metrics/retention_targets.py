"""Which objects of a pair only one modality shows: the annotated objects (labels drawn per
modality, VOC XML tags, the synthetic MSRS sidecar, a per-object CSV), the :class:`TargetRule`
that decides (see :mod:`fusion_perception.metrics.retention`), and the source pairs they belong to."""

from __future__ import annotations

import csv
import io
import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fusion_perception.errors import ConfigError, DatasetError

if TYPE_CHECKING:
    from fusion_perception.data.records import Box, PairDataset

MIN_SOURCE_CONTRAST = 0.03
SOURCES = ("ir", "vi")
SIDECAR = "synthetic_objects.json"  # the synthetic MSRS layout's per-object tags
MODES = ("auto", "labels", "tags", "contrast", "file")
# The visibility tags (ir, vi) of an object labelled per modality: shown by one camera, or by both.
_LABELLED_VISIBILITY = {"ir": (1.0, 0.0), "vi": (0.0, 1.0), "both": (1.0, 1.0)}


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

    mode: str = "auto"  # auto | labels | tags | contrast | file
    tag_shown: float = 0.5
    tag_hidden: float = 0.2
    contrast_shown: float = 0.05
    contrast_hidden: float = 0.03
    classes: tuple[str, ...] | None = None
    min_source_contrast: float = MIN_SOURCE_CONTRAST
    objects_file: Path | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"target rule must be auto, labels, tags, contrast or a CSV file, not {self.mode!r}")
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
        if spec in MODES[:-1]:
            return cls(mode=spec, **kw)
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ConfigError(f"--targets {spec!r}: neither a rule (auto, labels, tags, contrast) nor a CSV file")
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


@dataclass(frozen=True)
class TargetPair:
    """A source pair and its annotated objects (or, under the file rule, its listed objects)."""

    name: str
    ir_path: Path
    vi_path: Path
    objects: tuple[AnnotatedObject, ...]
    sources: tuple[str | None, ...] | None = None  # fixed by a per-object file
    condition: str | None = None  # e.g. day / night: the tables break retention down by it


def labelled_objects(modality_boxes: Mapping[str, Sequence["Box"]]) -> list[AnnotatedObject]:
    """The objects of a pair labelled per modality, tagged with who shows them: visibility (1, 0)
    for IR-only, (0, 1) for VI-only, (1, 1) for both (:mod:`fusion_perception.data.modality_labels`)."""
    from fusion_perception.data.modality_labels import labelled_objects as seen_by

    return [AnnotatedObject(b.label, (b.x1, b.y1, b.x2, b.y2), _LABELLED_VISIBILITY[seen])
            for b, seen in seen_by(modality_boxes.get("ir", []), modality_boxes.get("vi", []))]


def read_voc_objects(path: str | Path) -> list[AnnotatedObject]:
    """A VOC XML's objects with their ``<visibility>`` tags where present."""
    from fusion_perception.data.annotations import read_voc_xml

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


def dataset_target_records(ds: "PairDataset") -> list[dict]:
    """A loaded dataset's pairs with their annotations, as :func:`target_pairs` reads them (``objects``:
    those of the labels drawn per modality, where the layout has them)."""
    return [{"name": r.name, "ir": r.ir_path, "vi": r.vi_path, "split": r.split, "condition": r.condition,
             "annotation": r.annotation_path, "boxes": None if r.boxes is None else [vars(b) for b in r.boxes],
             "objects": None if r.modality_boxes is None else labelled_objects(r.modality_boxes)}
            for r in ds.records]


def labelled_source_records(manifest: Mapping) -> list[dict] | None:
    """A fused copy's source pairs re-read with their labels per modality, where its source layout has
    them (its manifest carries one view's boxes only); None for any other source."""
    from fusion_perception.data.layouts import find_layout

    source = manifest.get("source") if isinstance(manifest.get("source"), Mapping) else {}
    try:
        layout = find_layout(str(source.get("layout") or ""))
    except ConfigError:  # options this version does not know: not a layout with labels per modality
        return None
    if layout is None or not layout.modality_labels:
        return None
    from fusion_perception.data.readers import load_dataset

    splits = {e.get("name"): e.get("split") for e in manifest.get("records") or []}  # the copy's split
    ds = load_dataset(source["root"], source["layout"])
    return [{**r, "split": splits[r["name"]]} for r in dataset_target_records(ds) if r["name"] in splits]


def target_pairs(records: Sequence[Mapping], rule: TargetRule) -> list[TargetPair]:
    """Source pairs with their objects, from fuse-manifest-like records.

    Each record: ``name``, ``ir``, ``vi`` (source paths), optionally ``condition``, and ``objects``
    (labelled per modality: :func:`dataset_target_records`), else ``annotation`` (a VOC XML path, or
    None) and/or ``boxes`` (``[{label, x1, y1, x2, y2}]``). The synthetic MSRS layout's sidecar
    beside the split folder supplies tags for records without an annotation.
    """
    listed = read_objects_file(rule.objects_file) if rule.mode == "file" else None
    sidecars: dict[Path, dict[str, list[AnnotatedObject]]] = {}
    pairs = []
    for r in records:
        ir, vi = Path(r["ir"]), Path(r["vi"])
        if listed is not None:
            items = listed.get(r["name"], [])
            if items:
                pairs.append(TargetPair(r["name"], ir, vi, tuple(o for o, _ in items), tuple(s for _, s in items),
                                        r.get("condition")))
            continue
        objects: list[AnnotatedObject] = []
        if r.get("objects") is not None:
            objects = list(r["objects"])
        elif rule.mode == "labels":
            raise DatasetError(Path(r.get("annotation") or ir), "the labels rule needs labels drawn on each modality "
                                                                "(the msrs_det layout); use --targets auto or contrast")
        elif r.get("annotation") and Path(r["annotation"]).suffix.lower() == ".xml" and Path(r["annotation"]).is_file():
            objects = read_voc_objects(r["annotation"])
        elif r.get("boxes"):
            objects = [AnnotatedObject(b["label"], (b["x1"], b["y1"], b["x2"], b["y2"])) for b in r["boxes"]]
        else:
            sidecar = ir.parent.parent / SIDECAR
            if sidecar.is_file():
                if sidecar not in sidecars:
                    sidecars[sidecar] = read_sidecar_objects(sidecar)
                objects = sidecars[sidecar].get(r["name"], [])
        if rule.mode == "tags" and any(o.visibility is None for o in objects):
            raise DatasetError(Path(r.get("annotation") or ir), "the tags rule needs per-object visibility tags; "
                                                                "use --targets contrast or a per-object CSV")
        if objects:
            pairs.append(TargetPair(r["name"], ir, vi, tuple(objects), condition=r.get("condition")))
    if listed is not None and not pairs:
        raise DatasetError(rule.objects_file, "none of its images is among the source pairs")
    return pairs


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
