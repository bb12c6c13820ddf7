"""Segmentation results as the paper shows them: the Table 4 row, ``results.json``, palette pictures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
import torch

from fusion_perception.console import percent
from fusion_perception.metrics.segmentation import IOU_CONVENTION, iou_from_confusion

__all__ = ["build_results", "table4_header", "table4_row", "write_results", "colorize", "prediction_panel",
           "palette_legend"]


def _num(x: float) -> float | None:
    """JSON has no NaN: an undefined IoU is written as null."""
    return None if x is None or math.isnan(x) else float(x)


def table4_header(classes: Sequence[str]) -> str:
    """``| Method | unlabelled | car | ... | bump | mIoU |`` and its separator line."""
    cols = ["Method", *classes, "mIoU"]
    return "| " + " | ".join(cols) + " |\n|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|"


def table4_row(label: str, per_class: Mapping[str, float | None], miou: float | None,
               classes: Sequence[str]) -> str:
    """One Table 4 row: IoU per class then mIoU, in percent with one decimal ("–" = undefined)."""
    return "| " + " | ".join([label, *(percent(per_class.get(c)) for c in classes), percent(miou)]) + " |"


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
    from fusion_perception.record import write_results as write_run_results

    return write_run_results(out, results, table4_header(results["classes"]) + "\n" + results["markdown_row"] + "\n",
                             newline=True)


def versions() -> dict[str, str]:
    """The libraries a segmentation result depends on, with their versions."""
    from fusion_perception.provenance import library_versions

    return library_versions("torch", "mmengine", "segmentation_models_pytorch")


def fusion_line(label: str, fused: Any, fused_root: Path) -> str:
    """The run's line about its fused images (``fuse emma: 200 images in ... (0 new, 200 reused)``)."""
    c = fused.manifest["counts"]
    return f"fuse {label}: {c['total']} images in {fused_root} ({c['fused']} new, {c['skipped']} reused)"


# --------------------------------------------------------------------------- pictures

_IGNORE_COLOUR = (255, 255, 255)


def colorize(ids: np.ndarray | torch.Tensor, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """``HxW`` class ids -> ``HxWx3`` uint8 RGB; ids beyond the palette (the ignore value) are white."""
    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().numpy()
    lut = np.zeros((256, 3), np.uint8)
    lut[:] = _IGNORE_COLOUR
    lut[: len(palette)] = np.asarray(palette, np.uint8)
    return lut[ids.astype(np.uint8)]


def prediction_panel(image: np.ndarray, gt: np.ndarray | None, pred: np.ndarray,
                     palette: Sequence[Sequence[int]]) -> np.ndarray:
    """``fused image | ground truth | prediction`` side by side with white 4-px gaps (RGB uint8)."""
    tiles = [image] + ([colorize(gt, palette)] if gt is not None else []) + [colorize(pred, palette)]
    h = image.shape[0]
    gap = np.full((h, 4, 3), 255, np.uint8)
    row: list[np.ndarray] = []
    for t in tiles:
        row += [t, gap]
    return np.concatenate(row[:-1], axis=1)


def palette_legend(classes: Sequence[str], palette: Sequence[Sequence[int]]) -> np.ndarray:
    """A small RGB picture naming each palette colour (OpenCV's built-in font: nothing to fetch)."""
    row_h, w = 22, 180
    img = np.full((row_h * len(classes), w, 3), 255, np.uint8)
    for i, name in enumerate(classes):
        y = i * row_h
        img[y + 3: y + row_h - 3, 4:34] = palette[i]
        cv2.putText(img, name, (42, y + row_h - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return img
