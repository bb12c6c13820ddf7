"""ultralytics' detection trainer, importable so that DDP workers pick up the offline patches.

ultralytics' multi-GPU launcher pickles the trainer *class* by reference and re-imports it in
every worker process; importing this module there applies :func:`ultralytics_offline` (no
AMP-check download, no font download, settings sync off) before training starts.
"""

from __future__ import annotations

from fusion_perception.downstream.det_offline import ultralytics_offline

ultralytics_offline()

from ultralytics.models.yolo.detect import DetectionTrainer  # noqa: E402  (after the offline setup)


class OfflineDetectionTrainer(DetectionTrainer):
    """ultralytics' DetectionTrainer, defined here only so DDP workers import the offline setup."""
