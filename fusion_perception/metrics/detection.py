"""Detection metrics: COCO-format ground truth and predictions, scored by pycocotools.

The numbers are pycocotools' own (``COCOeval``): mAP@0.5 and mAP@0.5:0.95 over the classes
that have ground truth, and AP@0.5 per class read from ``eval["precision"]`` (the
101-point interpolated precision), with its ``-1`` entries (no ground truth) left out.

Boxes here are VOC-style pixel corners ``(x1, y1, x2, y2)``; COCO's ``[x, y, w, h]`` is
produced internally. Category ids are ``class index + 1`` (COCO reserves 0). The Table 3 row
is the detection task's report (:mod:`fusion_perception.detection.report`).
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from fusion_perception.data.records import Box

@dataclass(frozen=True)
class ImageEntry:
    """One evaluated image: its COCO id, file name, size and ground-truth boxes."""

    image_id: int
    file_name: str
    width: int
    height: int
    boxes: Sequence[Box]


@dataclass(frozen=True)
class Detection:
    """One predicted box on image ``image_id`` (class index into the class list)."""

    image_id: int
    class_index: int
    score: float
    x1: float
    y1: float
    x2: float
    y2: float


def coco_categories(classes: Sequence[str]) -> list[dict[str, Any]]:
    return [{"id": i + 1, "name": name, "supercategory": "object"} for i, name in enumerate(classes)]


def coco_ground_truth(images: Iterable[ImageEntry], classes: Sequence[str]) -> dict[str, Any]:
    """A COCO ground-truth dict (``images``, ``annotations``, ``categories``).

    Raises ``ValueError`` for a box whose label is not one of ``classes``.
    """
    index = {name: i for i, name in enumerate(classes)}
    coco_images, annotations = [], []
    for entry in images:
        coco_images.append(
            {"id": int(entry.image_id), "file_name": entry.file_name, "width": int(entry.width), "height": int(entry.height)}
        )
        for box in entry.boxes:
            if box.label not in index:
                raise ValueError(f"image {entry.file_name}: class {box.label!r} is not one of {list(classes)}")
            w, h = float(box.x2 - box.x1), float(box.y2 - box.y1)
            annotations.append(
                {
                    "id": len(annotations) + 1,  # COCO ids start at 1; 0 is falsy in pycocotools' checks
                    "image_id": int(entry.image_id),
                    "category_id": index[box.label] + 1,
                    "bbox": [float(box.x1), float(box.y1), w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    return {
        "info": {"description": "fusion_perception detection ground truth"},
        "images": coco_images,
        "annotations": annotations,
        "categories": coco_categories(classes),
    }


def coco_detections(detections: Iterable[Detection]) -> list[dict[str, Any]]:
    """Predictions in COCO's results format (a list of dicts with ``bbox`` as ``[x, y, w, h]``)."""
    return [
        {
            "image_id": int(d.image_id),
            "category_id": int(d.class_index) + 1,
            "bbox": [float(d.x1), float(d.y1), float(d.x2 - d.x1), float(d.y2 - d.y1)],
            "score": float(d.score),
        }
        for d in detections
    ]


def _nan_to_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def evaluate_coco(
    ground_truth: dict[str, Any], detections: list[dict[str, Any]], classes: Sequence[str]
) -> dict[str, Any]:
    """Score COCO-format ``detections`` against ``ground_truth`` with pycocotools.

    Returns fractions in [0, 1]: ``mAP50``, ``mAP50_95``, ``per_class_AP50`` and
    ``per_class_AP50_95`` (``None`` for a class without ground truth, which the means leave
    out, as pycocotools does), and ``num_instances`` per class.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    counts = {name: 0 for name in classes}
    for ann in ground_truth["annotations"]:
        counts[classes[ann["category_id"] - 1]] += 1
    result: dict[str, Any] = {"num_images": len(ground_truth["images"]), "num_instances": counts,
                              "num_detections": len(detections)}

    if not detections or not ground_truth["annotations"]:
        # pycocotools cannot load an empty result list; no detections means AP 0 for every class with GT.
        per50 = {name: (0.0 if counts[name] else None) for name in classes}
        result.update(mAP50=0.0, mAP50_95=0.0, per_class_AP50=per50, per_class_AP50_95=dict(per50))
        return result

    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):  # pycocotools prints progress lines
        gt = COCO()
        gt.dataset = {k: v for k, v in ground_truth.items()}
        gt.createIndex()
        dt = gt.loadRes([dict(d) for d in detections])  # loadRes mutates its input (adds area/id)
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()

    # precision: [T iou thresholds, R=101 recall points, K classes, A areas, M maxDets]
    precision = ev.eval["precision"]
    cat_ids = ev.params.catIds
    per50: dict[str, float | None] = {}
    per5095: dict[str, float | None] = {}
    for k, cat_id in enumerate(cat_ids):
        name = classes[cat_id - 1]
        p50 = precision[0, :, k, 0, -1]
        p50 = p50[p50 > -1]
        pall = precision[:, :, k, 0, -1]
        pall = pall[pall > -1]
        per50[name] = float(np.mean(p50)) if p50.size else None
        per5095[name] = float(np.mean(pall)) if pall.size else None
    valid50 = [v for v in per50.values() if v is not None]
    valid5095 = [v for v in per5095.values() if v is not None]
    result.update(
        mAP50=float(np.mean(valid50)) if valid50 else 0.0,
        mAP50_95=float(np.mean(valid5095)) if valid5095 else 0.0,
        per_class_AP50={name: _nan_to_none(per50.get(name)) for name in classes},
        per_class_AP50_95={name: _nan_to_none(per5095.get(name)) for name in classes},
    )
    return result


def evaluate_groups(
    ground_truth: dict[str, Any], detections: list[dict[str, Any]], classes: Sequence[str], groups: Mapping[int, str]
) -> dict[str, dict[str, Any]]:
    """:func:`evaluate_coco` on each group of images (``groups``: image id -> its group, e.g. the
    pair's condition day / night); images without a group are left out."""
    out: dict[str, dict[str, Any]] = {}
    for group in sorted(set(groups.values())):
        ids = {i for i, g in groups.items() if g == group}
        gt = {**ground_truth, "images": [im for im in ground_truth["images"] if im["id"] in ids],
              "annotations": [a for a in ground_truth["annotations"] if a["image_id"] in ids]}
        out[group] = evaluate_coco(gt, [d for d in detections if d["image_id"] in ids], classes)
    return out


def evaluate_detections(
    images: Sequence[ImageEntry], detections: Iterable[Detection], classes: Sequence[str]
) -> dict[str, Any]:
    """Convenience: build both COCO structures and score them (see :func:`evaluate_coco`)."""
    return evaluate_coco(coco_ground_truth(images, classes), coco_detections(detections), classes)
