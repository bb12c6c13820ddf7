"""Training the segmenter: DeepLabV3+ through mmengine's Runner, on one device or under torchrun.

mmengine builds everything from the run's config (:mod:`fusion_perception.segmentation.config`):
the dataset and collate function (:mod:`.data`), the model and its hooks (:mod:`.model`), the
metric (:mod:`.evaluate`). :func:`register_components` imports them so that they register.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Iterator

import torch

def register_components() -> None:
    # Importing registers the dataset, collate function, model, hooks and metric with mmengine.
    import fusion_perception.segmentation.data  # noqa: F401
    import fusion_perception.segmentation.metric  # noqa: F401
    import fusion_perception.segmentation.model  # noqa: F401
    import fusion_perception.runner_progress  # noqa: F401  (ConsoleProgressHook)
    import fusion_perception.runner_guards  # noqa: F401  (FiniteLossHook)


def world_size() -> int:
    """The processes of a torchrun job (1 without one)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank in a torchrun job (0, the leader, without one)."""
    return int(os.environ.get("RANK", "0"))


def init_distributed(cfg: Any) -> None:
    """Join the torchrun job (``--launcher pytorch``) before any rank fuses or trains."""
    from mmengine.dist import init_dist, is_distributed

    if not is_distributed():
        init_dist("pytorch", backend=cfg.get("env_cfg", {}).get("dist_cfg", {}).get("backend", "nccl"))


@contextlib.contextmanager
def runner_scope(device: str) -> Iterator[None]:
    """Where mmengine's Runner trains and tests: on ``device`` (mmengine puts models on
    ``get_device()``, CUDA whenever present), loading checkpoints with ``weights_only=True``."""
    from fusion_perception.checkpoints import allow_mmengine_checkpoints

    with _device_scope(device), allow_mmengine_checkpoints():
        yield


@contextlib.contextmanager
def _device_scope(device: str) -> Iterator[None]:
    if device == "cpu" and torch.cuda.is_available():
        from unittest import mock

        import mmengine.runner.runner as runner_mod

        with mock.patch.object(runner_mod, "get_device", lambda: "cpu"):
            yield
    else:
        yield


def train_runner(cfg: Any, device: str) -> tuple[Any, float]:
    """Build mmengine's Runner from ``cfg`` and train; returns the runner and the training's seconds."""
    from fusion_perception.runner_guards import CheckedRunner

    with runner_scope(device):
        runner = CheckedRunner.from_cfg(cfg)
        t0 = time.perf_counter()
        runner.train()
        return runner, time.perf_counter() - t0


def latest_checkpoint(work_dir: Path) -> Path | None:
    """The checkpoint mmengine's ``last_checkpoint`` file names, else the newest ``*.pth``."""
    marker = work_dir / "last_checkpoint"
    if marker.is_file():
        p = Path(marker.read_text().strip())
        if p.is_file():
            return p
    ckpts = sorted(work_dir.glob("*.pth"), key=lambda p: p.stat().st_mtime)
    return ckpts[-1] if ckpts else None


__all__ = ["init_distributed", "latest_checkpoint", "rank", "register_components",
           "runner_scope", "train_runner", "world_size"]
