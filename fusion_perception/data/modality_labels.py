"""Labels drawn on each modality separately: which objects one modality shows, and their union.

Where annotators labelled the infrared and the visible image of a pair on their own (the
MSRS-detection-label release), an object labelled in one modality is *shown by both* when the
other modality has a box of the same class overlapping it at IoU >= :data:`MATCH_IOU`, and
*shown by that modality only* otherwise. Every box is judged against all boxes of the other
modality (not one-to-one): on the 300 published MSRS pairs this gives 782 IR-only, 108 VI-only
and 715 shown-by-both infrared objects, the counts DESIGN section 5c quotes. (A greedy one-to-one
matching gives 794 / 136 / 703: where one annotator drew one box round two people and the other
two, it leaves one of the two as single-modality.)

The union, the detector's ground truth that favours no modality, is every object once: an
IR-only or VI-only object with its own box, an object both show with the mean of its infrared box
and its best-overlapping visible box (the pairs are registered; neither extent is preferred).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fusion_perception.data.records import Box

MATCH_IOU = 0.3  # same-class boxes of the two modalities overlapping this much are one object
SEEN = ("ir", "vi", "both")  # which modality shows an object (labelled_objects)


def box_iou(a: Sequence[Box], b: Sequence[Box]) -> np.ndarray:
    """``(len(a), len(b))`` IoU of every pair of boxes; 0 between boxes of different classes."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    pa = np.array([(x.x1, x.y1, x.x2, x.y2) for x in a], dtype=np.float64)[:, None]
    pb = np.array([(x.x1, x.y1, x.x2, x.y2) for x in b], dtype=np.float64)[None]
    w = (np.minimum(pa[..., 2], pb[..., 2]) - np.maximum(pa[..., 0], pb[..., 0])).clip(0)
    h = (np.minimum(pa[..., 3], pb[..., 3]) - np.maximum(pa[..., 1], pb[..., 1])).clip(0)
    area = lambda p: (p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1])  # noqa: E731
    inter = w * h
    union = area(pa) + area(pb) - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    same = np.array([x.label for x in a])[:, None] == np.array([x.label for x in b])[None]
    return np.where(same, iou, 0.0)


def _mean_box(a: Box, b: Box) -> Box:
    return Box(a.label, (a.x1 + b.x1) / 2, (a.y1 + b.y1) / 2, (a.x2 + b.x2) / 2, (a.y2 + b.y2) / 2)


def labelled_objects(ir: Sequence[Box], vi: Sequence[Box], iou: float = MATCH_IOU) -> list[tuple[Box, str]]:
    """Every object of a pair once, with the modality that shows it (``"ir"``, ``"vi"`` or
    ``"both"``): the infrared boxes in their order, then the visible boxes no infrared box matches."""
    m = box_iou(ir, vi)
    out: list[tuple[Box, str]] = []
    for i, box in enumerate(ir):
        j = int(m[i].argmax()) if len(vi) else -1
        out.append((_mean_box(box, vi[j]), "both") if j >= 0 and m[i, j] >= iou else (box, "ir"))
    unmatched = ~(m >= iou).any(axis=0) if len(ir) else np.ones(len(vi), dtype=bool)
    out += [(box, "vi") for box, alone in zip(vi, unmatched) if alone]
    return out


def union_boxes(ir: Sequence[Box], vi: Sequence[Box], iou: float = MATCH_IOU) -> list[Box]:
    """The objects either modality shows, each once (see the module docstring)."""
    return [box for box, _ in labelled_objects(ir, vi, iou)]


def seen_counts(modality_boxes: Sequence[dict[str, list[Box]]], iou: float = MATCH_IOU) -> dict[str, int]:
    """How many objects only infrared, only visible and both show, over pairs' per-modality labels."""
    counts = dict.fromkeys(SEEN, 0)
    for boxes in modality_boxes:
        for _, seen in labelled_objects(boxes.get("ir", []), boxes.get("vi", []), iou):
            counts[seen] += 1
    return counts


__all__ = ["MATCH_IOU", "SEEN", "box_iou", "labelled_objects", "seen_counts", "union_boxes"]
