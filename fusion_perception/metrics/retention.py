"""Target retention: how much of a single-modality object's local contrast survives fusion.

EN, SD, SF and AG reward contrast and noise whatever their source; a fusion can score well on them
and still drop every warm person only the thermal camera sees. Retention measures what the
downstream task needs (DESIGN section 5b):

- an object's local contrast in an image is ``c = |mean(box) - mean(ring)|`` on the luminance in
  [0, 1], the ring being the 6 pixels around the box (clipped to the image);
- an object that only one modality shows (its *source*) keeps ``c(fused) / c(source)`` of its
  contrast, clipped to [0, 2]; objects whose source contrast is below 0.03 are left out (their
  ratio would be noise);
- a method's IR-only (VI-only) retention is the mean over the IR-only (VI-only) objects, with a
  95% confidence interval over objects (Student's t), overall and per condition of the pairs
  (day / night) where the dataset has conditions.

Which objects only one modality shows (:class:`TargetRule`):

- ``labels``: human judgement, where the dataset has labels drawn on each modality separately
  (``msrs_det``): IR-only is labelled in infrared with no same-class visible box at IoU >= 0.3,
  VI-only the reverse (:mod:`fusion_perception.data.modality_labels`); ``auto`` takes them there;
- ``tags``: the annotation's per-object visibility (the synthetic generator writes
  ``<visibility><ir>..</ir><vi>..</vi></visibility>`` in its VOC XML and ``visibility`` in the MSRS
  sidecar ``synthetic_objects.json``): IR-only when ir >= 0.5 and vi <= 0.2, VI-only the reverse;
- ``contrast``: for real data with boxes but no tags, measured on the sources themselves: IR-only
  when ``c(ir) >= 0.05`` and ``c(vi) <= 0.03`` (VI-only the reverse). Against the tags on the
  synthetic default's 1,069 objects, these thresholds pick IR-only objects with precision 0.76 and
  recall 0.67 and VI-only ones with 0.98 and 0.50 (an object can show in the visible image by its
  texture while its mean matches its surroundings), and they rank the methods as the tags do;
- a per-object CSV file (``image,x1,y1,x2,y2,source`` with source ``ir`` or ``vi``, optional
  ``label``): the user's own judgement, e.g. from an annotator.

``classes`` restricts any rule to some object classes (e.g. ``People,Car``).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from fusion_perception.errors import DatasetError
from fusion_perception.filters import sums_in_boxes
from fusion_perception.metrics.retention_targets import (
    SOURCES, AnnotatedObject, TargetPair, TargetRule, read_objects_file, read_sidecar_objects,
    read_voc_objects, target_pairs)

RING = 6
MAX_RATIO = 2.0


# ------------------------------------------------------------------------------ tensor functions
def local_contrast(images: Tensor, boxes: Tensor, ring: int = RING) -> Tensor:
    """``|mean(box) - mean(ring)|`` of every box on every image.

    ``images``: ``(..., H, W)`` luminance; ``boxes``: ``(N, 4)`` pixel boxes ``x1, y1, x2, y2``
    (x2, y2 exclusive; fractional corners are widened to whole pixels); returns ``(..., N)``.
    The ring is the ``ring``-pixel band around the box, clipped to the image; a box whose ring is
    empty (it covers the image) has contrast 0.
    """
    h, w = images.shape[-2:]
    b = boxes.to(torch.float64)
    inner = torch.stack((b[:, 0].floor(), b[:, 1].floor(), b[:, 2].ceil(), b[:, 3].ceil()), -1)
    limits = torch.tensor([w, h, w, h], dtype=torch.float64, device=boxes.device)
    inner = torch.minimum(inner.clamp_min(0), limits).long()
    outer = torch.minimum((inner + torch.tensor([-ring, -ring, ring, ring], device=boxes.device)).clamp_min(0),
                          limits.long())
    integral = torch.nn.functional.pad(images.to(torch.float64).cumsum(-1).cumsum(-2), (1, 0, 1, 0))
    area = lambda bx: ((bx[:, 2] - bx[:, 0]) * (bx[:, 3] - bx[:, 1])).to(torch.float64)  # noqa: E731
    s_in, s_out = sums_in_boxes(integral, inner), sums_in_boxes(integral, outer)
    n_in, n_ring = area(inner), area(outer) - area(inner)
    mean_in = s_in / n_in.clamp_min(1)
    mean_ring = (s_out - s_in) / n_ring.clamp_min(1)
    c = (mean_in - mean_ring).abs()
    return torch.where((n_in > 0) & (n_ring > 0), c, torch.zeros_like(c)).to(images.dtype)


def retention_ratio(fused_contrast: Tensor, source_contrast: Tensor, max_ratio: float = MAX_RATIO) -> Tensor:
    """``c(fused) / c(source)`` clipped to ``[0, max_ratio]`` (0 where the source shows nothing)."""
    ratio = fused_contrast / source_contrast.clamp_min(1e-12)
    return torch.where(source_contrast > 0, ratio.clamp(0.0, max_ratio), torch.zeros_like(ratio))


# ------------------------------------------------------------------------------ evaluation
@dataclass(frozen=True)
class RetentionStat:
    mean: float
    low: float  # 95% confidence interval of the mean over objects
    high: float
    n: int

    def __str__(self) -> str:
        if self.n == 0:
            return "–"
        return f"{self.mean:.2f} [{self.low:.2f}, {self.high:.2f}]"


def summarize(values: Sequence[float]) -> RetentionStat:
    """Mean and 95% Student-t confidence interval over objects."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return RetentionStat(math.nan, math.nan, math.nan, 0)
    mean = float(v.mean())
    if v.size == 1:
        return RetentionStat(mean, math.nan, math.nan, 1)
    from scipy.stats import t

    half = float(t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return RetentionStat(mean, mean - half, mean + half, int(v.size))


@dataclass
class RetentionResult:
    """Per-object retention of each method, and what decided the objects."""

    rule: str
    objects: list[dict] = field(default_factory=list)  # image, label, box, source, c_source
    values: dict[str, list[float]] = field(default_factory=dict)  # method -> one value per object

    def summary(self, method: str, condition: str | None = None) -> dict[str, RetentionStat]:
        """IR-only and VI-only retention of ``method``: over every object, or those of one condition."""
        return {s: summarize([v for v, o in zip(self.values[method], self.objects) if o["source"] == s
                              and (condition is None or o.get("condition") == condition)])
                for s in SOURCES}

    def summaries(self, condition: str | None = None) -> dict[str, dict[str, RetentionStat]]:
        return {m: self.summary(m, condition) for m in self.values}

    def conditions(self) -> list[str]:
        """The conditions of the objects' pairs (e.g. day, night), where the dataset has them."""
        return sorted({o["condition"] for o in self.objects if o.get("condition")})

    def to_json(self) -> dict:
        def plain(summary: dict[str, RetentionStat]) -> dict:
            return {s: {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in vars(st).items()}
                    for s, st in summary.items()}

        return {
            "rule": self.rule,
            "objects": self.objects,
            "methods": {m: {"summary": plain(self.summary(m)),
                            "by_condition": {c: plain(self.summary(m, c)) for c in self.conditions()},
                            "per_object": vals}
                        for m, vals in self.values.items()},
        }


def select_targets(pair: TargetPair, rule: TargetRule, c_ir: Sequence[float], c_vi: Sequence[float]
                   ) -> list[str | None]:
    """For each object of ``pair`` (the class filter applied by the caller), the one modality that
    shows it (``"ir"``/``"vi"``), or ``None``: both, neither, or too faint in its source.
    ``c_ir``/``c_vi``: the objects' local contrast in the two sources."""
    out: list[str | None] = []
    for k, obj in enumerate(pair.objects):
        if pair.sources is not None:
            source = pair.sources[k]
        elif obj.visibility is not None and rule.mode in ("auto", "tags", "labels"):
            source = rule.by_tags(obj.visibility)
        elif rule.mode in ("auto", "contrast"):
            source = rule.by_contrast(float(c_ir[k]), float(c_vi[k]))
        else:
            source = None
        c_src = c_ir[k] if source == "ir" else c_vi[k]
        out.append(source if source is not None and float(c_src) >= rule.min_source_contrast else None)
    return out


def _read_luminance(path: Path):
    from fusion_perception.data.image_io import luminance01, read_image

    return luminance01(read_image(path))


def _wanted(pair: TargetPair, rule: TargetRule) -> TargetPair:
    keep = [k for k, o in enumerate(pair.objects) if rule.wants(o.label)]
    return replace(pair, objects=tuple(pair.objects[k] for k in keep),
                   sources=None if pair.sources is None else tuple(pair.sources[k] for k in keep))


def evaluate_retention(
    pairs: Sequence[TargetPair],
    fused: Mapping[str, Mapping[str, Path]],
    rule: TargetRule = TargetRule(),
    *,
    progress: bool = False,
) -> RetentionResult:
    """Retention of every method's fused images (``fused``: method -> image name -> file)."""
    from tqdm import tqdm

    methods = list(fused)
    result = RetentionResult(rule=rule.mode, values={m: [] for m in methods})
    for pair in tqdm(pairs, desc="target retention", unit="pair", disable=not progress):
        pair = _wanted(pair, rule)
        if not pair.objects:
            continue
        ir, vi = _read_luminance(pair.ir_path), _read_luminance(pair.vi_path)
        images = [ir, vi]
        for m in methods:
            f = _read_luminance(fused[m][pair.name])
            if f.shape != ir.shape:
                raise DatasetError(fused[m][pair.name], f"fused image is {f.shape[1]}x{f.shape[0]}, its source "
                                                        f"pair is {ir.shape[1]}x{ir.shape[0]}")
            images.append(f)
        boxes = torch.tensor([o.box for o in pair.objects], dtype=torch.float64)
        c = local_contrast(torch.from_numpy(np.stack(images)).to(torch.float64), boxes)  # (2 + M, N)
        for j, (obj, source) in enumerate(zip(pair.objects, select_targets(pair, rule, c[0], c[1]))):
            if source is None:
                continue
            c_src = c[SOURCES.index(source), j]
            result.objects.append({"image": pair.name, "label": obj.label, "box": list(obj.box), "source": source,
                                   "source_contrast": round(float(c_src), 6), "condition": pair.condition})
            for i, m in enumerate(methods):
                result.values[m].append(float(retention_ratio(c[2 + i, j], c_src)))
    return result


class RetentionProbe:
    """Held-out pairs and their single-modality objects, loaded once, to score a fuser quickly
    (EMMA's model selection during training: :class:`~fusion_perception.emma.training.hooks.RetentionSelectionHook`)."""

    def __init__(self, pairs: Sequence[TargetPair], rule: TargetRule = TargetRule()):
        self.items: list[tuple[Tensor, Tensor, Tensor, Tensor, Tensor]] = []  # ir, vi, boxes, source idx, c_src
        for pair in pairs:
            pair = _wanted(pair, rule)
            if not pair.objects:
                continue
            ir, vi = (torch.from_numpy(_read_luminance(p)) for p in (pair.ir_path, pair.vi_path))
            boxes = torch.tensor([o.box for o in pair.objects], dtype=torch.float64)
            c = local_contrast(torch.stack((ir, vi)).to(torch.float64), boxes)
            sources = select_targets(pair, rule, c[0], c[1])
            keep = [k for k, s in enumerate(sources) if s is not None]
            if keep:
                idx = torch.tensor([SOURCES.index(sources[k]) for k in keep])
                self.items.append((ir, vi, boxes[keep], idx, c[idx, torch.tensor(keep)]))
        if not self.items:
            raise DatasetError(None, "no held-out object is shown by one modality only")

    def score(self, fuse, batch_size: int = 4) -> dict[str, float]:
        """``fuse(ir, vi) -> fused`` on ``(B, 1, H, W)`` luminance in [0, 1]; returns the mean IR-only and
        VI-only retention and the worse of the two (``min``)."""
        values: dict[int, list[float]] = {0: [], 1: []}
        for start in range(0, len(self.items), batch_size):
            chunk = self.items[start:start + batch_size]
            by_size: dict[tuple, list] = {}
            for item in chunk:
                by_size.setdefault(tuple(item[0].shape), []).append(item)
            for group in by_size.values():
                ir = torch.stack([g[0] for g in group])[:, None]
                vi = torch.stack([g[1] for g in group])[:, None]
                fused = fuse(ir, vi)[:, 0].to(torch.float64).cpu()
                for f, (_, _, boxes, idx, c_src) in zip(fused, group):
                    ratio = retention_ratio(local_contrast(f, boxes), c_src)
                    for s, r in zip(idx.tolist(), ratio.tolist()):
                        values[s].append(r)
        ir_only = float(np.mean(values[0])) if values[0] else math.nan
        vi_only = float(np.mean(values[1])) if values[1] else math.nan
        return {"ir_only": ir_only, "vi_only": vi_only, "min": float(np.nanmin([ir_only, vi_only]))}


# ------------------------------------------------------------------------------ tables
def markdown_table(result: RetentionResult) -> str:
    """IR-only / VI-only retention per method (mean [95% CI], n objects), overall and per condition."""
    groups = [None, *result.conditions()]  # None: every object
    head, rule = "| Method |", "|---|"
    for c in groups:
        for s in SOURCES:
            n = sum(o["source"] == s and (c is None or o.get("condition") == c) for o in result.objects)
            head += f" {s.upper()}-only{'' if c is None else ' ' + c} (n={n}) |"
            rule += "---:|"
    lines = [f"Target retention (rule: {result.rule}; contrast kept of objects one modality shows, "
             "mean [95% CI])\n", "\n", head + "\n", rule + "\n"]
    for method in result.values:
        cells = [str(result.summary(method, c)[s]) for c in groups for s in SOURCES]
        lines.append(f"| {method} | " + " | ".join(cells) + " |\n")
    return "".join(lines)


def csv_text(result: RetentionResult) -> str:
    """One row per method, source and condition (``all``: every object)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "source", "condition", "mean", "ci_low", "ci_high", "n"])
    for method in result.values:
        for condition in (None, *result.conditions()):
            for src, st in result.summary(method, condition).items():
                w.writerow([method, f"{src}_only", condition or "all", repr(st.mean), repr(st.low), repr(st.high),
                            st.n])
    return buf.getvalue()


__all__ = [
    "AnnotatedObject", "RetentionProbe", "RetentionResult", "RetentionStat", "TargetPair", "TargetRule",
    "evaluate_retention", "select_targets",
    "local_contrast", "markdown_table", "read_objects_file", "read_sidecar_objects", "read_voc_objects",
    "retention_ratio", "summarize", "target_pairs",
]
