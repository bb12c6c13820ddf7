"""Segmentation results: the results.json record and the paper's Table 4 Markdown row."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from fusion_perception.data.image_io import atomic_write_text
from fusion_perception.data.records import MSRS_CLASSES
from fusion_perception.metrics.segmentation import IOU_CONVENTION, iou_from_confusion

__all__ = ["build_results", "table4_header", "table4_row", "write_results", "read_results"]


def _num(x: float) -> float | None:
    """JSON has no NaN: an undefined IoU is written as null."""
    return None if x is None or math.isnan(x) else float(x)


def _pct(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100.0 * x:.1f}"


def table4_header(classes: Sequence[str] = MSRS_CLASSES) -> str:
    """``| Method | unlabelled | car | ... | bump | mIoU |`` and its separator line."""
    cols = ["Method", *classes, "mIoU"]
    return "| " + " | ".join(cols) + " |\n|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|"


def table4_row(label: str, per_class: Mapping[str, float | None], miou: float | None,
               classes: Sequence[str] = MSRS_CLASSES) -> str:
    """One Table 4 row: IoU per class then mIoU, in percent with one decimal ("–" = undefined)."""
    return "| " + " | ".join([label, *(_pct(per_class.get(c)) for c in classes), _pct(miou)]) + " |"


def build_results(
    confusion: torch.Tensor,
    classes: Sequence[str],
    *,
    method: str,
    label: str,
    seed: int,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The results.json record (fractions in 0..1; null for undefined IoU) from a confusion matrix."""
    per_class, miou = iou_from_confusion(confusion)
    per = {c: _num(v) for c, v in zip(classes, per_class.tolist())}
    res: dict[str, Any] = {
        "task": "seg",
        "method": method,
        "label": label,
        "seed": int(seed),
        "mIoU": _num(float(miou)),
        "per_class_IoU": per,
        "classes": list(classes),
        "iou_convention": IOU_CONVENTION,
        "confusion_matrix": confusion.long().tolist(),
        "pixels_scored": int(confusion.sum()),
    }
    res["markdown_row"] = table4_row(label, per, res["mIoU"], classes)
    if extra:
        res.update(extra)
    return res


def write_results(out: str | Path, results: Mapping[str, Any]) -> Path:
    """Write ``results.md`` (Table 4 header + row) then ``results.json`` last, both atomically:
    the presence of results.json means the run finished."""
    out = Path(out)
    classes = results.get("classes") or list(MSRS_CLASSES)
    atomic_write_text(out / "results.md", table4_header(classes) + "\n" + results["markdown_row"] + "\n")
    path = out / "results.json"
    atomic_write_text(path, json.dumps(results, indent=2) + "\n")
    return path


def read_results(out: str | Path) -> dict[str, Any] | None:
    path = Path(out) / "results.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None
