"""Training the detector: ultralytics YOLO on the exported layout, offline; an interrupted run resumes.

ultralytics' multi-GPU launcher pickles the trainer *class* by reference and re-imports it in
every worker process; importing this module there applies
:func:`~fusion_perception.detection.model.ultralytics_offline` (no AMP-check download, no font
download, settings sync off) before training starts.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from fusion_perception.detection.model import ultralytics_offline

ultralytics_offline()

from ultralytics.models.yolo.detect import DetectionTrainer  # noqa: E402  (after the offline setup)

from fusion_perception.console import progress as progress_bar  # noqa: E402
from fusion_perception.detection.data import YoloDataset  # noqa: E402
from fusion_perception.devices import torch_device  # noqa: E402

_LOG = logging.getLogger(__name__)


class OfflineDetectionTrainer(DetectionTrainer):
    """ultralytics' DetectionTrainer, defined here only so DDP workers import the offline setup."""


def train_yolo(
    yolo: YoloDataset,
    run_dir: str | Path,
    cfg: dict[str, Any],
    *,
    seed: int = 0,
    device: str = "cpu",
    det_weights: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> Path:
    """Train ultralytics YOLO on the exported layout; returns ``run_dir/train/weights/best.pt``.

    ``progress``: a bar over the epochs on the terminal (ultralytics' own per-batch bars go
    wherever stdout goes: the run's log under :func:`~fusion_perception.console.chatter_to`)."""
    from ultralytics import YOLO

    run_dir = Path(run_dir)
    weights_dir = run_dir / "train" / "weights"
    bar = progress_bar(total=int(cfg["epochs"]), desc="train YOLO", unit="epoch", disable=not progress)
    if resume and (weights_dir / "last.pt").is_file():
        _LOG.info("resuming training from %s", weights_dir / "last.pt")
        model = YOLO(str(weights_dir / "last.pt"))
        args = {"resume": True, "device": device, "workers": cfg["workers"], "plots": False}
    else:
        shutil.rmtree(run_dir / "train", ignore_errors=True)
        model = YOLO(cfg["model"], task="detect")
        args = _train_args(yolo, run_dir, cfg, seed=seed, device=device, det_weights=det_weights)
    _follow_epochs(model, bar)
    _stop_at_non_finite_loss(model, run_dir)
    with bar:
        model.train(trainer=OfflineDetectionTrainer, **args)
    best = weights_dir / "best.pt"
    if not best.is_file():
        best = weights_dir / "last.pt"
    if not best.is_file():
        raise RuntimeError(f"training finished without a checkpoint in {weights_dir}")
    return best


def _train_args(yolo: YoloDataset, run_dir: Path, cfg: dict[str, Any], *, seed: int, device: str,
                det_weights: str | Path | None) -> dict[str, Any]:
    """ultralytics' ``train()`` arguments of a new run: the recipe, then the config's ``train_args``."""
    return {
        "data": str(yolo.yaml_path),
        "epochs": int(cfg["epochs"]),
        "batch": int(cfg["batch"]),
        "imgsz": int(cfg["imgsz"]),
        "optimizer": cfg["optimizer"],
        "lr0": float(cfg["lr0"]),
        "workers": int(cfg["workers"]),
        "device": device,
        "seed": int(seed),
        "deterministic": True,
        "project": str(run_dir.resolve()),
        "name": "train",
        "exist_ok": True,
        "plots": False,  # plots need fonts and time; our own predictions.png is drawn with cv2
        "amp": torch_device(device) != "cpu",
        "pretrained": str(det_weights) if det_weights else False,
        "verbose": True,
        **cfg["train_args"],
    }


def _follow_epochs(model: Any, bar: Any) -> None:
    """Move ``bar`` one step per finished epoch, showing the epoch's mean training loss."""

    def on_start(trainer) -> None:
        bar.reset(total=max(0, trainer.epochs - trainer.start_epoch))  # fewer when resuming

    def on_epoch_end(trainer) -> None:
        bar.update(1)
        loss = getattr(trainer, "tloss", None)  # the epoch's mean training losses (box, cls, dfl)
        values = loss.values() if isinstance(loss, dict) else [loss] if loss is not None else []
        total = sum(float(v.sum()) if hasattr(v, "sum") else float(v) for v in values)
        if values:
            bar.set_postfix_str(f"loss {total:.3f}", refresh=False)

    model.add_callback("on_train_start", on_start)
    model.add_callback("on_train_epoch_end", on_epoch_end)


def _stop_at_non_finite_loss(model: Any, run_dir: Path) -> None:
    """End the training in one line at the first batch whose loss is NaN or infinite (ultralytics
    would reload its last epoch and try again, three times, then fail with a traceback)."""
    import torch

    from fusion_perception.errors import TrainingDiverged

    batches = {"n": 0}

    def on_batch_end(trainer) -> None:
        batches["n"] += 1
        loss = getattr(trainer, "loss", None)
        if loss is not None and not bool(torch.isfinite(loss).all()):
            lr = trainer.optimizer.param_groups[0]["lr"] if getattr(trainer, "optimizer", None) else None
            raise TrainingDiverged.at(run_dir, "the loss", float(loss.detach().sum()), trainer.epoch + 1,
                                      batches["n"], lr)

    model.add_callback("on_train_batch_end", on_batch_end)


def training_state(weights_dir: str | Path) -> str:
    """``"done"`` (ultralytics strips the optimizer from last.pt at the end), ``"partial"`` (resumable) or ``"none"``."""
    last = Path(weights_dir) / "last.pt"
    if not last.is_file():
        return "none"
    from ultralytics.nn.tasks import torch_safe_load

    try:
        ckpt, _ = torch_safe_load(str(last), safe_only=True)
    except Exception as exc:  # noqa: BLE001 - cut by a crash, or refused by safe loading: start over
        _LOG.warning("cannot read %s (%s); training from scratch", last, exc)
        return "none"
    if not isinstance(ckpt, dict):
        return "none"
    if ckpt.get("epoch", -1) >= 0 and ckpt.get("optimizer") is not None:
        return "partial"
    return "done"


__all__ = ["OfflineDetectionTrainer", "train_yolo", "training_state"]
