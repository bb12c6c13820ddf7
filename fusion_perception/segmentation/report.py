"""Segmentation results as the paper shows them: the Table 4 row, ``results.json``, MSRS-palette pictures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
import torch

from fusion_perception.console import percent
from fusion_perception.data.records import MSRS_CLASSES
from fusion_perception.metrics.segmentation import IOU_CONVENTION, iou_from_confusion
from fusion_perception.runs import read_results

__all__ = ["build_results", "table4_header", "table4_row", "write_results", "read_results", "TABLE_COLUMNS",
           "MSRS_PALETTE", "colorize", "prediction_panel", "palette_legend"]

# The comparison's columns: Table 4 lists the MSRS classes in id order, then mIoU.
TABLE_COLUMNS: tuple[str, ...] = MSRS_CLASSES + ("mIoU",)


def _num(x: float) -> float | None:
    """JSON has no NaN: an undefined IoU is written as null."""
    return None if x is None or math.isnan(x) else float(x)


def table4_header(classes: Sequence[str] = MSRS_CLASSES) -> str:
    """``| Method | unlabelled | car | ... | bump | mIoU |`` and its separator line."""
    cols = ["Method", *classes, "mIoU"]
    return "| " + " | ".join(cols) + " |\n|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|"


def table4_row(label: str, per_class: Mapping[str, float | None], miou: float | None,
               classes: Sequence[str] = MSRS_CLASSES) -> str:
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
    from fusion_perception.runs import write_results as write_run_results

    classes = results.get("classes") or list(MSRS_CLASSES)
    return write_run_results(out, results, table4_header(classes) + "\n" + results["markdown_row"] + "\n",
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

# The MSRS / MFNet colour map (class id -> RGB), as used by the dataset's own visualisations.
MSRS_PALETTE = np.array(
    [
        [0, 0, 0],  # unlabelled
        [64, 0, 128],  # car
        [64, 64, 0],  # person
        [0, 128, 192],  # bike
        [0, 0, 192],  # curve
        [128, 128, 0],  # car_stop
        [64, 64, 128],  # guardrail
        [192, 128, 128],  # color_cone
        [192, 64, 0],  # bump
    ],
    dtype=np.uint8,
)
_IGNORE_COLOUR = (255, 255, 255)


def colorize(ids: np.ndarray | torch.Tensor, palette: np.ndarray = MSRS_PALETTE) -> np.ndarray:
    """``HxW`` class ids -> ``HxWx3`` uint8 RGB; ids beyond the palette (the ignore value) are white."""
    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().numpy()
    lut = np.zeros((256, 3), np.uint8)
    lut[:] = _IGNORE_COLOUR
    lut[: len(palette)] = palette
    return lut[ids.astype(np.uint8)]


def prediction_panel(image: np.ndarray, gt: np.ndarray | None, pred: np.ndarray) -> np.ndarray:
    """``fused image | ground truth | prediction`` side by side with white 4-px gaps (RGB uint8)."""
    tiles = [image] + ([colorize(gt)] if gt is not None else []) + [colorize(pred)]
    h = image.shape[0]
    gap = np.full((h, 4, 3), 255, np.uint8)
    row: list[np.ndarray] = []
    for t in tiles:
        row += [t, gap]
    return np.concatenate(row[:-1], axis=1)


def palette_legend(classes: Sequence[str] = MSRS_CLASSES, palette: np.ndarray = MSRS_PALETTE) -> np.ndarray:
    """A small RGB picture naming each palette colour (OpenCV's built-in font: nothing to fetch)."""
    row_h, w = 22, 180
    img = np.full((row_h * len(classes), w, 3), 255, np.uint8)
    for i, name in enumerate(classes):
        y = i * row_h
        img[y + 3: y + row_h - 3, 4:34] = palette[i]
        cv2.putText(img, name, (42, y + row_h - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return img
