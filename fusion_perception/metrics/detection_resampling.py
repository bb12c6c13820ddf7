"""mAP@0.5 on resampled test images, equal to pycocotools' on the unresampled split.

:func:`match_detections` does what ``COCOeval.evaluate`` does at IoU 0.5 for the area range "all"
and 100 detections per image and class (the numbers :func:`fusion_perception.metrics.detection.evaluate_coco`
reads): per image and class, detections by score, each matched greedily to the unmatched ground
truth box of highest IoU >= 0.5 (crowd boxes matchable again, ignored ones neither a hit nor a miss),
done ONCE. Each detection is then a hit or a false positive of one image; a resample only changes
how often each image counts. :meth:`DetectionScores.resampled` recomputes COCO's accumulation for
every resample with matrix products:

- at the k-th hit of a class in score order, the cumulative hits and false positives are
  ``counts @ hits_before[k]`` and ``counts @ false_before[k]`` (per-image counts up to that rank);
- the 101-point interpolated precision at recall r is the highest precision of any hit whose
  recall is >= r (false positives never raise it: each sits at the recall of the hit before it
  with a lower precision), which is COCO's right-to-left envelope read at ``searchsorted``;
- AP@0.5 per class over the resample's classes with ground truth, and their mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["DetectionScores", "match_detections", "RECALL_THRESHOLDS"]

# COCOeval's Params: 101 recall points, IoU 0.5 (the first of its thresholds), area "all", maxDets 100.
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
IOU_THRESHOLD = min(0.5, 1 - 1e-10)
AREA_RANGE = (0.0**2, 1e5**2)
MAX_DETECTIONS = 100


@dataclass(frozen=True)
class _ClassCurve:
    """One class: per image its countable ground truth, and at each hit (in score order) the
    per-image hits up to it and false positives before it."""

    ground_truth: np.ndarray  # (N,)
    hits_before: np.ndarray  # (H, N)
    false_before: np.ndarray  # (H, N)


@dataclass(frozen=True)
class DetectionScores:
    """A detection run's per-image matching at IoU 0.5; its mAP@0.5 on any weighting of the images."""

    images: tuple[str, ...]
    classes: tuple[_ClassCurve, ...]

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        """mAP@0.5 for each row of ``counts`` (``(B, N)`` image multiplicities), ``(B,)``; 0 where
        no class has ground truth (as :func:`~fusion_perception.metrics.detection.evaluate_coco`)."""
        counts = np.asarray(counts, np.float64)
        aps = np.stack([_average_precision(c, counts) for c in self.classes], axis=1) if self.classes \
            else np.full((len(counts), 1), np.nan)
        defined = ~np.isnan(aps)
        total, n = np.where(defined, aps, 0.0).sum(axis=1), defined.sum(axis=1)
        return np.where(n > 0, total / np.maximum(n, 1), 0.0)

    @classmethod
    def from_files(cls, ground_truth: str | Path, predictions: str | Path) -> "DetectionScores":
        """From a run's ``eval/<split>/ground_truth.json`` and ``predictions.json``."""
        import json

        return match_detections(json.loads(Path(ground_truth).read_text()), json.loads(Path(predictions).read_text()))


def _average_precision(curve: _ClassCurve, counts: np.ndarray) -> np.ndarray:
    """COCO's 101-point AP of one class for each resample; NaN where it has no ground truth."""
    positives = counts @ curve.ground_truth
    hits_cum = counts @ curve.hits_before.T  # (B, H), exact: sums of whole numbers
    if not hits_cum.shape[1]:
        return np.where(positives > 0, 0.0, np.nan)
    false_cum = counts @ curve.false_before.T
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = hits_cum / positives[:, None]
    precision = hits_cum / (false_cum + hits_cum + np.spacing(1))
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    # thresholds at or below each hit's recall; the first hit reaching threshold r is the number of
    # hits reaching fewer than r + 1 thresholds (recall is non-decreasing along a row)
    reached = np.searchsorted(RECALL_THRESHOLDS, recall, side="right")
    r = len(RECALL_THRESHOLDS)
    rows = np.arange(len(counts))[:, None]
    first = np.cumsum(np.bincount((rows * (r + 1) + reached).ravel(), minlength=len(counts) * (r + 1))
                      .reshape(len(counts), r + 1), axis=1)[:, :r]
    padded = np.concatenate([envelope, np.zeros((len(counts), 1))], axis=1)  # past the last hit: 0
    ap = np.take_along_axis(padded, first, axis=1).mean(axis=1)
    return np.where(positives > 0, ap, np.nan)


def match_detections(ground_truth: Mapping[str, Any], detections: Sequence[Mapping[str, Any]]) -> DetectionScores:
    """COCO's matching at IoU 0.5 of ``detections`` (results format) against ``ground_truth`` (a
    COCO dict), once; images named by file stem in image-id order (what two runs pair on)."""
    images = sorted(ground_truth["images"], key=lambda im: im["id"])
    position = {im["id"]: i for i, im in enumerate(images)}
    gts: dict[tuple[int, int], list[Mapping[str, Any]]] = {}
    for ann in ground_truth["annotations"]:
        gts.setdefault((ann["image_id"], ann["category_id"]), []).append(ann)
    dts: dict[tuple[int, int], list[Mapping[str, Any]]] = {}
    for det in detections:
        if det["image_id"] not in position:
            raise ValueError(f"a prediction on image id {det['image_id']}, which the ground truth lacks")
        dts.setdefault((det["image_id"], det["category_id"]), []).append(det)
    curves = []
    for cat in sorted(c["id"] for c in ground_truth["categories"]):
        positives = np.zeros(len(images))
        flags: list[tuple[np.ndarray, np.ndarray, int]] = []  # per image: scores, hits, image position
        for im in images:
            gt, dt = gts.get((im["id"], cat), []), dts.get((im["id"], cat), [])
            scores, hit, ignored, countable = _match_image(gt, dt)
            positives[position[im["id"]]] = countable
            flags.append((scores[~ignored], hit[~ignored], position[im["id"]]))
        curves.append(_class_curve(flags, positives))
    return DetectionScores(tuple(Path(im["file_name"]).stem for im in images), tuple(curves))


def _match_image(gt: Sequence[Mapping[str, Any]], dt: Sequence[Mapping[str, Any]]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``COCOeval.evaluateImg`` at IoU 0.5 for one image and class: the kept detections' scores
    (by score, stable), whether each is a hit, whether it is ignored; the countable ground truth."""
    gt_ignore = np.array([bool(g.get("iscrowd", 0)) or not AREA_RANGE[0] <= g["area"] <= AREA_RANGE[1]
                          for g in gt], dtype=bool)
    g_order = np.argsort(gt_ignore, kind="mergesort")  # ignored ground truth last
    crowd = np.array([bool(gt[i].get("iscrowd", 0)) for i in range(len(gt))], dtype=bool)
    d_order = np.argsort([-d["score"] for d in dt], kind="mergesort")[:MAX_DETECTIONS]
    dt = [dt[i] for i in d_order]
    scores = np.array([d["score"] for d in dt], dtype=np.float64)
    ious = _box_iou(np.array([d["bbox"] for d in dt], np.float64).reshape(-1, 4),
                    np.array([g["bbox"] for g in gt], np.float64).reshape(-1, 4), crowd)[:, g_order]
    g_ignore, g_crowd = gt_ignore[g_order], crowd[g_order]
    matched_gt = np.zeros(len(gt), dtype=bool)
    hit = np.zeros(len(dt), dtype=bool)
    ignored = np.zeros(len(dt), dtype=bool)
    for d in np.flatnonzero(ious.max(axis=1, initial=0.0) >= IOU_THRESHOLD):  # others match nothing
        best, m = IOU_THRESHOLD, -1
        for g in range(len(gt)):
            if matched_gt[g] and not g_crowd[g]:
                continue
            if m > -1 and not g_ignore[m] and g_ignore[g]:
                break
            if ious[d, g] < best:
                continue
            best, m = ious[d, g], g
        if m > -1:
            hit[d], ignored[d], matched_gt[m] = True, g_ignore[m], True
    area = np.array([d["bbox"][2] * d["bbox"][3] for d in dt], dtype=np.float64)
    ignored |= ~hit & ((area < AREA_RANGE[0]) | (area > AREA_RANGE[1]))
    return scores, hit, ignored, int(np.count_nonzero(~gt_ignore))


def _box_iou(dt: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """pycocotools' ``bbIou`` on ``[x, y, w, h]`` boxes, ``(D, G)``; a crowd box divides by the
    detection's area alone."""
    if not len(dt) or not len(gt):
        return np.zeros((len(dt), len(gt)))
    d, g = dt[:, None, :], gt[None, :, :]
    w = np.minimum(d[..., 2] + d[..., 0], g[..., 2] + g[..., 0]) - np.maximum(d[..., 0], g[..., 0])
    h = np.minimum(d[..., 3] + d[..., 1], g[..., 3] + g[..., 1]) - np.maximum(d[..., 1], g[..., 1])
    inter = w * h
    d_area, g_area = d[..., 2] * d[..., 3], g[..., 2] * g[..., 3]
    union = np.where(crowd[None, :], d_area, d_area + g_area - inter)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((w > 0) & (h > 0), inter / union, 0.0)


def _class_curve(flags: Sequence[tuple[np.ndarray, np.ndarray, int]], positives: np.ndarray) -> _ClassCurve:
    """COCO's accumulation order for one class (images in id order, each by score; then a stable
    sort by score) turned into the per-image counts at each hit."""
    n = len(positives)
    scores = np.concatenate([f[0] for f in flags]) if flags else np.zeros(0)
    hit = np.concatenate([f[1] for f in flags]) if flags else np.zeros(0, bool)
    image = np.concatenate([np.full(len(f[0]), f[2]) for f in flags]).astype(np.int64) if flags \
        else np.zeros(0, np.int64)
    order = np.argsort(-scores, kind="mergesort")
    hit, image = hit[order], image[order]
    hit_rank = np.flatnonzero(hit)
    hits_before = np.zeros((len(hit_rank), n))
    hits_before[np.arange(len(hit_rank)), image[hit_rank]] = 1.0
    hits_before = np.cumsum(hits_before, axis=0)
    # a false positive counts for every hit ranked after it
    false_rank = np.flatnonzero(~hit)
    next_hit = np.searchsorted(hit_rank, false_rank)
    false_before = np.bincount(next_hit * n + image[false_rank], minlength=(len(hit_rank) + 1) * n)
    false_before = np.cumsum(false_before.reshape(len(hit_rank) + 1, n), axis=0)[:len(hit_rank)].astype(np.float64)
    return _ClassCurve(positives, hits_before, false_before)
