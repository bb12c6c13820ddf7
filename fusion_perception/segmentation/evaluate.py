"""Scoring a segmenter on its test split: the trained run's test (:func:`test_runner`,
:func:`test_scores`, with the metric of :mod:`.metric`), and re-scoring a checkpoint of a run
(:func:`evaluate_segmentation`, ``tools/eval_seg.py``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fusion_perception.errors import DatasetError, OutputError, check_input_file
from fusion_perception.segmentation.metric import PER_IMAGE_FILE

if TYPE_CHECKING:
    from fusion_perception.metrics.bootstrap import SegmentationScores

__all__ = ["evaluate_segmentation", "image_scores", "test_runner", "test_scores"]


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
    classes = tuple(getattr(dataset, "metainfo", {}).get("classes") or metric._names())
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
    from fusion_perception.record import read_record
    from fusion_perception.segmentation.train import latest_checkpoint, register_components, runner_scope

    register_components()
    run = Path(run).expanduser().resolve()
    if not (run / "config.py").is_file():
        raise DatasetError(run, "not a segmentation run folder (no config.py)")
    device = resolve_device(device)
    ckpt = Path(checkpoint).expanduser().resolve() if checkpoint else latest_checkpoint(run / "train")
    if ckpt is None:
        raise DatasetError(run / "train", "no checkpoint to evaluate")
    check_input_file(ckpt, "checkpoint")
    settings = (read_record(run) or {}).get("settings") or {}
    out = check_output_dir(out).resolve() if out else run / "eval" / ckpt.stem
    if read_record(out) is not None:  # a run's own folder: its results are the run's, not an evaluation's
        raise OutputError(out, "holds a run (its run record): an evaluation written there would replace the run's "
                               f"results; give another --out (default: {run / 'eval' / ckpt.stem})")
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
    cfg.test_evaluator.per_image_file = str(out / PER_IMAGE_FILE)
    if num_pred_images is not None:
        cfg.test_evaluator.num_pred_images = int(num_pred_images)
    # Evaluation needs no training parts (and must not build them).
    for key in ("train_dataloader", "train_cfg", "optim_wrapper", "param_scheduler", "val_dataloader",
                "val_cfg", "val_evaluator"):
        cfg.pop(key, None)
    cfg.custom_hooks = []
    return cfg
