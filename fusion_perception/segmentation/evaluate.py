"""Scoring a segmenter: one confusion matrix over every pixel of the test split, IoU per class, mIoU.

:class:`SegIoUMetric` is the mmengine metric the runs use (with MSRS-palette pictures of the first
predictions); :func:`evaluate_segmentation` re-scores a checkpoint of a run (``tools/eval_seg.py``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS

from fusion_perception.data.image_io import write_image
from fusion_perception.data.records import MSRS_CLASSES
from fusion_perception.errors import DatasetError, check_input_file
from fusion_perception.metrics.segmentation import confusion_matrix, iou_from_confusion
from fusion_perception.segmentation.report import colorize, palette_legend, prediction_panel

if TYPE_CHECKING:
    from fusion_perception.metrics.bootstrap import SegmentationScores

__all__ = ["PER_IMAGE_FILE", "SegIoUMetric", "evaluate_segmentation", "image_scores", "test_runner", "test_scores",
           "write_per_image"]

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
        if len(names) == self.num_classes:
            return names
        return MSRS_CLASSES if self.num_classes == len(MSRS_CLASSES) else tuple(map(str, range(self.num_classes)))

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
        self.pred_dir.mkdir(parents=True, exist_ok=True)
        write_image(self.pred_dir / f"{s['name']}_pred.png", colorize(pred))
        write_image(self.pred_dir / f"{s['name']}_panel.png", prediction_panel(read_rgb(s["img_path"]), gt, pred))
        legend = self.pred_dir / "legend.png"
        if not legend.exists():
            write_image(legend, palette_legend(self._names()))

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

    from fusion_perception.data.image_io import atomic_write_bytes

    buf = io.BytesIO()
    np.savez_compressed(buf, names=np.array(list(names), dtype=str), confusion=confusion.cpu().numpy().astype(np.int64))
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def image_scores(result: dict[str, Any]) -> "SegmentationScores":
    """A finished run's per-image confusion matrices (``PER_IMAGE_FILE`` beside its results.json),
    checked against the run's own matrix. Runs scored before the file existed lack it: ``DatasetError``
    (``tools/eval_seg.py --run RUN`` writes one under ``RUN/eval/<checkpoint>``)."""
    from fusion_perception.metrics.bootstrap import SegmentationScores

    folder = Path(result.get("results_dir") or result.get("run_dir") or ".")
    path = folder / PER_IMAGE_FILE
    if not path.is_file():
        ckpt = Path(result["checkpoint"]).stem if result.get("checkpoint") else None
        again = folder / "eval" / ckpt / PER_IMAGE_FILE if ckpt else None
        if again is None or not again.is_file():
            raise DatasetError(path, "no per-image confusion matrices (a run scored before they were kept; "
                                     f"tools/eval_seg.py --run {folder} writes them)")
        path = again
    with np.load(path, allow_pickle=False) as data:
        names, confusion = tuple(str(n) for n in data["names"]), data["confusion"]
    if confusion.sum(axis=0).tolist() != result.get("confusion_matrix"):
        raise DatasetError(path, "its per-image matrices do not add up to the run's confusion matrix")
    return SegmentationScores(names, confusion)


def test_runner(runner: Any, device: str) -> tuple[dict[str, Any], float]:
    """Test ``runner``'s model on its test split; returns the metrics and the seconds it took."""
    from fusion_perception.segmentation.train import runner_scope

    with runner_scope(device):
        t0 = time.perf_counter()
        metrics = runner.test()
        return metrics, time.perf_counter() - t0


def test_scores(runner: Any) -> tuple[torch.Tensor, tuple[str, ...], int]:
    """After ``runner.test()``: the split-wide confusion matrix, the class names, the test images."""
    metric = runner.test_loop.evaluator.metrics[0]
    dataset = runner.test_dataloader.dataset
    classes = tuple(getattr(dataset, "metainfo", {}).get("classes", MSRS_CLASSES))
    return metric.last_confusion, classes, len(dataset)


def evaluate_segmentation(
    run: str | Path,
    checkpoint: str | Path | None = None,
    out: str | Path | None = None,
    *,
    device: str | None = None,
    num_pred_images: int | None = None,
) -> dict[str, Any]:
    """Re-score a checkpoint of a finished or interrupted run on its test split.

    ``run``: a run folder of :func:`~fusion_perception.segmentation.task.run_segmentation`;
    ``checkpoint``: default the run's last one; ``out``: default ``RUN/eval/<checkpoint name>``.
    Writes results.json/results.md and the prediction PNGs there and returns the results.
    """
    from mmengine.runner import Runner

    from fusion_perception.devices import resolve_device
    from fusion_perception.outputs import check_output_dir
    from fusion_perception.segmentation.report import build_results, versions, write_results
    from fusion_perception.segmentation.train import SETTINGS_FILE, latest_checkpoint, register_components, runner_scope

    register_components()
    run = Path(run).expanduser().resolve()
    if not (run / "config.py").is_file():
        raise DatasetError(run, "not a segmentation run folder (no config.py)")
    device = resolve_device(device)
    ckpt = Path(checkpoint).expanduser().resolve() if checkpoint else latest_checkpoint(run / "train")
    if ckpt is None:
        raise DatasetError(run / "train", "no checkpoint to evaluate")
    check_input_file(ckpt, "checkpoint")
    settings = json.loads((run / SETTINGS_FILE).read_text()) if (run / SETTINGS_FILE).is_file() else {}
    out = check_output_dir(out).resolve() if out else run / "eval" / ckpt.stem
    cfg = _test_config(run / "config.py", ckpt, out, num_pred_images)
    with runner_scope(device):
        runner = Runner.from_cfg(cfg)
    _, seconds = test_runner(runner, device)
    confusion, classes, num_test = test_scores(runner)
    method = settings.get("method", "unknown")
    results = build_results(
        confusion, classes, method=method, label=settings.get("label", method), seed=settings.get("seed", 0),
        extra={"num_test_images": num_test, "checkpoint": str(ckpt),
               "run": str(run), "results_dir": str(out), "predictions_dir": str(out / "predictions"),
               "eval_time_s": round(seconds, 2), "device": device, "versions": versions(), "settings": settings},
    )
    write_results(out, results)
    return results


def _test_config(config: Path, ckpt: Path, out: Path, num_pred_images: int | None):
    """A run's config for testing ``ckpt`` alone, writing into ``out``."""
    from fusion_perception.config_files import read_config

    cfg = read_config(config)
    cfg.work_dir = str(out)
    cfg.experiment_name = f"seg_eval_{ckpt.stem}_{time.strftime('%Y%m%d_%H%M%S')}_{time.time_ns() % 10**6}"
    cfg.launcher = "none"
    cfg.resume = False
    cfg.load_from = str(ckpt)
    cfg.test_evaluator.pred_dir = str(out / "predictions")
    cfg.test_evaluator.per_image_file = str(out / PER_IMAGE_FILE)
    if num_pred_images is not None:
        cfg.test_evaluator.num_pred_images = int(num_pred_images)
    # Evaluation needs no training parts (and must not build them).
    for key in ("train_dataloader", "train_cfg", "optim_wrapper", "param_scheduler", "val_dataloader",
                "val_cfg", "val_evaluator"):
        cfg.pop(key, None)
    cfg.custom_hooks = []
    return cfg
