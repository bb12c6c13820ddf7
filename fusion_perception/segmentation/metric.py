"""The segmenter's metric: one confusion matrix over every pixel of the evaluated split, IoU per
class, mIoU (:class:`SegIoUMetric`, registered with mmengine), with pictures of the first
predictions in the dataset's palette."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS

from fusion_perception.data.image_io import write_image
from fusion_perception.metrics.segmentation import confusion_matrix, iou_from_confusion
from fusion_perception.segmentation.report import colorize, palette_legend, prediction_panel

__all__ = ["PER_IMAGE_FILE", "SegIoUMetric", "write_per_image"]

# Beside a run's results.json: each test image's confusion matrix (what the paired bootstrap resamples).
PER_IMAGE_FILE = "per_image_confusion.npz"


@METRICS.register_module()
class SegIoUMetric(BaseMetric):
    """IoU per class and mIoU from one confusion matrix over the whole evaluated split.

    Each sample contributes its own ``(C, C)`` confusion matrix to ``results`` (so distributed
    evaluation, which pads the split and trims it back per sample, counts every image once);
    :meth:`compute_metrics` sums them. Classes absent from both prediction and target have NaN IoU
    and are excluded from mIoU (see :mod:`fusion_perception.metrics.segmentation`).

    Returned keys: ``mIoU`` and ``IoU.<class>``; the summed matrix stays in ``last_confusion``.
    With ``per_image_file`` set, the per-image matrices are written there (:func:`write_per_image`:
    what the paired bootstrap of a comparison resamples).
    With ``pred_dir`` set, the first ``num_pred_images`` samples are also written as PNGs in the
    dataset's palette (``<name>_pred.png``) and panels (``<name>_panel.png``: fused | ground truth |
    prediction).
    """

    default_prefix: str | None = None

    def __init__(
        self,
        num_classes: int = 9,
        ignore_index: int = 255,
        class_names: Sequence[str] | None = None,
        pred_dir: str | None = None,
        num_pred_images: int = 0,
        collect_device: str = "cpu",
        prefix: str | None = None,
        per_image_file: str | None = None,
    ):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.class_names = tuple(class_names) if class_names else None
        self.pred_dir = Path(pred_dir) if pred_dir else None
        self.num_pred_images = int(num_pred_images)
        self.per_image_file = Path(per_image_file) if per_image_file else None
        self._saved = 0
        self.last_confusion: torch.Tensor | None = None

    def _names(self) -> tuple[str, ...]:
        if self.class_names:
            return self.class_names
        meta = self.dataset_meta or {}
        names = tuple(meta.get("classes", ()))
        return names if len(names) == self.num_classes else tuple(map(str, range(self.num_classes)))

    def _palette(self) -> tuple:
        from fusion_perception.data.layouts.base import spread_palette

        palette = (self.dataset_meta or {}).get("palette")
        return tuple(map(tuple, palette)) if palette else spread_palette(self.num_classes)

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for s in data_samples:
            cm = confusion_matrix(s["pred"], s["gt"], self.num_classes, self.ignore_index)
            self.results.append((str(s.get("name", len(self.results))), cm.cpu()))
            if self.pred_dir is not None and self._saved < self.num_pred_images:
                self._save_picture(s)
                self._saved += 1

    def _save_picture(self, s: dict) -> None:
        from fusion_perception.segmentation.data import read_rgb

        pred = s["pred"].detach().cpu().numpy().astype(np.uint8)
        gt = s["gt"].detach().cpu().numpy().astype(np.uint8) if "gt" in s else None
        palette = self._palette()
        self.pred_dir.mkdir(parents=True, exist_ok=True)
        write_image(self.pred_dir / f"{s['name']}_pred.png", colorize(pred, palette))
        write_image(self.pred_dir / f"{s['name']}_panel.png",
                    prediction_panel(read_rgb(s["img_path"]), gt, pred, palette))
        legend = self.pred_dir / "legend.png"
        if not legend.exists():
            write_image(legend, palette_legend(self._names(), palette))

    def compute_metrics(self, results: list) -> dict[str, float]:
        per_image = torch.stack([cm for _, cm in results]) if results else \
            torch.zeros(0, self.num_classes, self.num_classes, dtype=torch.long)
        cm = per_image.sum(0)
        self.last_confusion = cm
        if self.per_image_file is not None:
            write_per_image(self.per_image_file, [name for name, _ in results], per_image)
        per_class, miou = iou_from_confusion(cm)
        out = {"mIoU": float(miou)}
        for name, v in zip(self._names(), per_class.tolist()):
            out[f"IoU.{name}"] = float(v)
        self._saved = 0  # the next evaluation writes its pictures again
        return out


def write_per_image(path: str | Path, names: Sequence[str], confusion: torch.Tensor) -> Path:
    """``names`` (one per test image) and their ``(N, C, C)`` confusion matrices, compressed, atomically."""
    import io

    from fusion_perception.files import atomic_write_bytes

    buf = io.BytesIO()
    np.savez_compressed(buf, names=np.array(list(names), dtype=str), confusion=confusion.cpu().numpy().astype(np.int64))
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
