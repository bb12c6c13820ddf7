"""mmengine Metric for segmentation (split-wide confusion matrix -> IoU) and MSRS-palette pictures."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS

from fusion_perception.data.image_io import write_image
from fusion_perception.data.records import MSRS_CLASSES
from fusion_perception.metrics.segmentation import confusion_matrix, iou_from_confusion

__all__ = ["SegIoUMetric", "MSRS_PALETTE", "colorize", "prediction_panel", "palette_legend"]

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


@METRICS.register_module()
class SegIoUMetric(BaseMetric):
    """IoU per class and mIoU from one confusion matrix over the whole evaluated split.

    Each sample contributes its own ``(C, C)`` confusion matrix to ``results`` (so distributed
    evaluation, which pads the split and trims it back per sample, counts every image once);
    :meth:`compute_metrics` sums them. Classes absent from both prediction and target have NaN IoU
    and are excluded from mIoU (see :mod:`fusion_perception.metrics.segmentation`).

    Returned keys: ``mIoU`` and ``IoU.<class>``; the summed matrix stays in ``last_confusion``.
    With ``pred_dir`` set, the first ``num_pred_images`` samples are also written as MSRS-palette
    PNGs (``<name>_pred.png``) and panels (``<name>_panel.png``: fused | ground truth | prediction).
    """

    default_prefix: str | None = None

    def __init__(
        self,
        num_classes: int = len(MSRS_CLASSES),
        ignore_index: int = 255,
        class_names: Sequence[str] | None = None,
        pred_dir: str | None = None,
        num_pred_images: int = 0,
        collect_device: str = "cpu",
        prefix: str | None = None,
    ):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.class_names = tuple(class_names) if class_names else None
        self.pred_dir = Path(pred_dir) if pred_dir else None
        self.num_pred_images = int(num_pred_images)
        self._saved = 0
        self.last_confusion: torch.Tensor | None = None

    def _names(self) -> tuple[str, ...]:
        if self.class_names:
            return self.class_names
        meta = self.dataset_meta or {}
        names = tuple(meta.get("classes", ()))
        if len(names) == self.num_classes:
            return names
        return MSRS_CLASSES if self.num_classes == len(MSRS_CLASSES) else tuple(map(str, range(self.num_classes)))

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for s in data_samples:
            cm = confusion_matrix(s["pred"], s["gt"], self.num_classes, self.ignore_index)
            self.results.append(cm.cpu())
            if self.pred_dir is not None and self._saved < self.num_pred_images:
                self._save_picture(s)
                self._saved += 1

    def _save_picture(self, s: dict) -> None:
        from fusion_perception.downstream.seg_data import read_rgb

        pred = s["pred"].detach().cpu().numpy().astype(np.uint8)
        gt = s["gt"].detach().cpu().numpy().astype(np.uint8) if "gt" in s else None
        self.pred_dir.mkdir(parents=True, exist_ok=True)
        write_image(self.pred_dir / f"{s['name']}_pred.png", colorize(pred))
        write_image(self.pred_dir / f"{s['name']}_panel.png", prediction_panel(read_rgb(s["img_path"]), gt, pred))
        legend = self.pred_dir / "legend.png"
        if not legend.exists():
            write_image(legend, palette_legend(self._names()))

    def compute_metrics(self, results: list) -> dict[str, float]:
        cm = torch.stack(results).sum(0) if results else torch.zeros(self.num_classes, self.num_classes, dtype=torch.long)
        self.last_confusion = cm
        per_class, miou = iou_from_confusion(cm)
        out = {"mIoU": float(miou)}
        for name, v in zip(self._names(), per_class.tolist()):
            out[f"IoU.{name}"] = float(v)
        self._saved = 0  # the next evaluation writes its pictures again
        return out
