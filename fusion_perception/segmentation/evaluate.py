"""Scoring a segmenter: one confusion matrix over every pixel of the test split, IoU per class, mIoU.

:class:`SegIoUMetric` is the mmengine metric the runs use (with MSRS-palette pictures of the first
predictions); :func:`evaluate_segmentation` re-scores a checkpoint of a run (``tools/eval_seg.py``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS

from fusion_perception.data.image_io import write_image
from fusion_perception.data.records import MSRS_CLASSES
from fusion_perception.errors import DatasetError, check_input_file
from fusion_perception.metrics.segmentation import confusion_matrix, iou_from_confusion
from fusion_perception.segmentation.report import colorize, palette_legend, prediction_panel

__all__ = ["SegIoUMetric", "evaluate_segmentation", "test_runner", "test_scores"]


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
        cm = torch.stack(results).sum(0) if results else torch.zeros(self.num_classes, self.num_classes, dtype=torch.long)
        self.last_confusion = cm
        per_class, miou = iou_from_confusion(cm)
        out = {"mIoU": float(miou)}
        for name, v in zip(self._names(), per_class.tolist()):
            out[f"IoU.{name}"] = float(v)
        self._saved = 0  # the next evaluation writes its pictures again
        return out


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
    verbose: bool = False,
) -> dict[str, Any]:
    """Re-score a checkpoint of a finished or interrupted run on its test split.

    ``run``: a run folder of :func:`~fusion_perception.segmentation.task.run_segmentation`;
    ``checkpoint``: default the run's last one; ``out``: default ``RUN/eval/<checkpoint name>``.
    Writes results.json/results.md and the prediction PNGs there and returns the results; mmengine's
    output goes to ``out/run.log`` (``verbose``: to the terminal too).
    """
    from fusion_perception.console import chatter_to
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
    from fusion_perception.runner_guards import CheckedRunner

    with chatter_to(out / "run.log", verbose):  # mmengine's environment dump and hook tables: the log's
        with runner_scope(device):
            runner = CheckedRunner.from_cfg(cfg)  # a checkpoint that does not fit the run's model is refused
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
    if num_pred_images is not None:
        cfg.test_evaluator.num_pred_images = int(num_pred_images)
    # Evaluation needs no training parts (and must not build them).
    for key in ("train_dataloader", "train_cfg", "optim_wrapper", "param_scheduler", "val_dataloader",
                "val_cfg", "val_evaluator"):
        cfg.pop(key, None)
    cfg.custom_hooks = []
    return cfg
