"""Paired bootstrap over test images: is method A's score on these test images really above B's?

Two methods scored on the same test images are compared by resampling the images with
replacement (``B`` resamples, seeded) and recomputing both methods' metric on every resample from
their per-image results. A resample is a row of image multiplicities (how often each image is
drawn), so the metric of a resample is a weighted recomputation of the whole-split metric:

- mIoU: the per-image confusion matrices summed with those weights (one matrix product);
- mAP@0.5: see :mod:`fusion_perception.metrics.detection_resampling` (matching done once).

With several training seeds, seed ``s`` of A is paired with seed ``s`` of B and the resampled
differences of all pairs are pooled. The result is the mean difference over the pairs, its
percentile interval and a two-sided p-value. What it measures: how much the verdict depends on
which test images were drawn, for the trained models at hand; training noise is the seed spread
reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

__all__ = ["ImageScores", "PairedDifference", "SegmentationScores", "aligned_counts", "miou_resampled",
           "paired_difference", "resample_counts", "whole_split"]


class ImageScores(Protocol):
    """A run's per-image results: its test images and its metric on any weighting of them."""

    images: tuple[str, ...]

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        """The metric for each row of ``counts`` (``(B, N)`` image multiplicities): ``(B,)``."""
        ...


def resample_counts(num_images: int, resamples: int, seed: int | Sequence[int] = 0) -> np.ndarray:
    """``(resamples, num_images)`` multiplicities of ``num_images`` images drawn with replacement
    (each row sums to ``num_images``); the same ``seed`` gives the same rows."""
    if num_images < 1 or resamples < 1:
        raise ValueError(f"need at least one image and one resample, not {num_images} and {resamples}")
    rng = np.random.default_rng(seed)
    return rng.multinomial(num_images, np.full(num_images, 1.0 / num_images), size=resamples).astype(np.float64)


def whole_split(num_images: int) -> np.ndarray:
    """The unresampled split as one row of multiplicities (every image once)."""
    return np.ones((1, num_images), dtype=np.float64)


def aligned_counts(counts: np.ndarray, images: Sequence[str], other: Sequence[str]) -> np.ndarray:
    """``counts`` (columns in the order of ``images``) reordered for a run whose images are ``other``.

    Raises ``ValueError`` when the two runs were not scored on the same test images.
    """
    index = {name: i for i, name in enumerate(images)}
    if len(index) != len(images) or sorted(images) != sorted(other):
        missing = sorted(set(images) ^ set(other))
        raise ValueError(f"the runs were scored on different test images ({len(images)} and {len(other)}; "
                         f"e.g. {missing[:3]} in only one)")
    return counts[:, [index[name] for name in other]]


@dataclass(frozen=True)
class SegmentationScores:
    """Per-image confusion matrices ``(N, C, C)`` (rows target, columns prediction) of one run."""

    images: tuple[str, ...]
    confusion: np.ndarray

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        return miou_resampled(self.confusion, counts)


def miou_resampled(confusion: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """mIoU of each resample: the per-image matrices ``(N, C, C)`` summed with the weights ``(B, N)``.

    The convention of :func:`fusion_perception.metrics.segmentation.iou_from_confusion`: a class
    absent from both target and prediction is left out of the mean (NaN when none is defined).
    """
    n, c, _ = confusion.shape
    summed = (np.asarray(counts, np.float64) @ confusion.reshape(n, c * c).astype(np.float64)).reshape(-1, c, c)
    tp = np.diagonal(summed, axis1=1, axis2=2)
    union = summed.sum(axis=1) + summed.sum(axis=2) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / np.where(union > 0, union, 1.0), np.nan)
    defined = ~np.isnan(iou)
    total = np.where(defined, iou, 0.0).sum(axis=1)
    count = defined.sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


@dataclass(frozen=True)
class PairedDifference:
    """A minus B: the mean over seed pairs of the whole-split difference, the percentile interval
    of the pooled resampled differences, and a two-sided bootstrap p-value."""

    difference: float
    low: float
    high: float
    p_value: float
    resamples: int  # per pair
    pairs: int  # seed pairs pooled
    confidence: float = 0.95

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies wholly above or below 0 (the difference is resolved)."""
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict[str, float | int | bool]:
        return {"difference": self.difference, "low": self.low, "high": self.high, "p_value": self.p_value,
                "resamples": self.resamples, "pairs": self.pairs, "confidence": self.confidence,
                "excludes_zero": self.excludes_zero}


def paired_difference(
    resampled_a: Sequence[np.ndarray], resampled_b: Sequence[np.ndarray],
    observed_a: Sequence[float], observed_b: Sequence[float], confidence: float = 0.95,
) -> PairedDifference:
    """Pool the per-pair resampled differences ``a - b`` (each ``(B,)``, the same resamples for
    both members of a pair) into a percentile interval and a two-sided p-value.

    The p-value is ``2 * min(P(d <= 0), P(d >= 0))`` over the pooled differences, each share
    counted as ``(k + 1) / (n + 1)`` so that it is never 0, and capped at 1: identical runs give
    exactly 1.
    """
    if not resampled_a or len(resampled_a) != len(resampled_b) or len(observed_a) != len(resampled_a) \
            or len(observed_b) != len(resampled_a):
        raise ValueError("need one resampled metric and one observed value per run for each pair")
    diffs = np.concatenate([np.asarray(a, np.float64) - np.asarray(b, np.float64)
                            for a, b in zip(resampled_a, resampled_b)])
    diffs = diffs[~np.isnan(diffs)]
    if not diffs.size:
        raise ValueError("no resample has a defined metric for both runs")
    tail = (1.0 - confidence) / 2.0
    low, high = np.percentile(diffs, [100.0 * tail, 100.0 * (1.0 - tail)])
    n = diffs.size
    below, above = (np.count_nonzero(diffs <= 0) + 1) / (n + 1), (np.count_nonzero(diffs >= 0) + 1) / (n + 1)
    observed = float(np.mean([a - b for a, b in zip(observed_a, observed_b)]))
    return PairedDifference(observed, float(low), float(high), float(min(1.0, 2.0 * min(below, above))),
                            resamples=len(resampled_a[0]), pairs=len(resampled_a), confidence=confidence)
