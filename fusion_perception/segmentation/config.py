"""The segmentation recipe: an mmengine config from ``configs/seg``, the tools' overrides, the run's paths."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from fusion_perception.config_files import CONFIG_ROOT, available_configs, find_config
from fusion_perception.errors import ConfigError

CONFIG_GROUP = "seg"  # configs/seg
CONFIG_DIR = CONFIG_ROOT / CONFIG_GROUP
PAPER_CONFIG = "deeplabv3plus_r50_msrs.py"
SMALL_CONFIG = "small_cpu.py"


def default_config(device: str) -> Path:
    """The paper's recipe on a GPU, the small CPU config otherwise."""
    return CONFIG_DIR / (PAPER_CONFIG if device.startswith("cuda") else SMALL_CONFIG)


def load_config(config: Any, device: str) -> tuple[Any, str]:
    """``(mmengine Config, its name)``: ``config`` as a Config, a file, or a name in ``configs/seg``
    (``"small_cpu"``); ``None`` -> :func:`default_config`."""
    from mmengine.config import Config

    from fusion_perception.config_files import read_config

    if isinstance(config, Config):
        return (config.copy() if hasattr(config, "copy") else Config(config.to_dict())), "custom"
    path = Path(config) if config is not None else default_config(device)
    found = find_config(CONFIG_GROUP, path)
    if found is None:
        raise ConfigError(f"config file not found: {path} (configs in {CONFIG_DIR}: "
                          f"{', '.join(available_configs(CONFIG_GROUP))})")
    return read_config(found), found.stem


def apply_overrides(cfg: Any, epochs: int | None, batch: int | None, workers: int | None) -> None:
    """``epochs``: train that many epochs, with the cosine schedule, the frozen-encoder phase and
    the checkpoint interval scaled to it; ``batch``: total training batch; ``workers``: loader
    processes (train and test)."""
    if epochs is not None:
        if epochs < 1:
            raise ConfigError(f"epochs must be >= 1, not {epochs}")
        _scale_epochs(cfg, int(epochs))
    if batch is not None:
        if batch < 1:
            raise ConfigError(f"batch must be >= 1, not {batch}")
        cfg.train_dataloader.batch_size = int(batch)
    if workers is not None:
        for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
            if cfg.get(key):
                cfg[key].num_workers = int(workers)


def _scale_epochs(cfg: Any, epochs: int) -> None:
    old = int(cfg.train_cfg.max_epochs)
    cfg.train_cfg.max_epochs = epochs
    if "val_interval" in cfg.train_cfg and cfg.get("val_dataloader"):
        cfg.train_cfg.val_interval = max(1, min(int(cfg.train_cfg.val_interval), epochs))
    for sch in cfg.get("param_scheduler") or []:
        if sch.get("by_epoch", True):
            sch["begin"], sch["end"] = 0, epochs
            if "T_max" in sch:
                sch["T_max"] = epochs
    for hook in cfg.get("custom_hooks") or []:
        if hook.get("type") == "SegFreezeEncoderHook":
            hook["frozen_epochs"] = int(round(int(hook.get("frozen_epochs", 0)) * epochs / max(old, 1)))
    ck = cfg.get("default_hooks", {}).get("checkpoint")
    if ck is not None and int(ck.get("interval", 1)) > epochs:
        ck["interval"] = epochs


def set_dataset(cfg: Any, source: Path) -> None:
    """The dataset's own numbers in the recipe (in place): its number of classes and, where its
    masks have unlabelled pixels, their value as the ignore index, as its layout gives them,
    wherever the config names them (model, datasets, collate function, metrics). A config written
    for MSRS runs on any segmentation layout this way."""
    from fusion_perception.data.readers import find_dataset_layout

    layout, here = find_dataset_layout(source)
    values = {"num_classes": len(layout.read_classes(here))}
    if layout.ignore_index is not None:  # its masks' unlabelled pixels; else the config's padding value
        values["ignore_index"] = int(layout.ignore_index)
    parts = [cfg.get("model"), cfg.get("test_evaluator"), cfg.get("val_evaluator")]
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        loader = cfg.get(key)
        if loader:
            parts += [loader.get("dataset"), loader.get("collate_fn")]
    for part in parts:
        for name, value in values.items():
            if part and name in part and part[name] != value:
                part[name] = value


def fill_config(cfg: Any, plan: Any) -> None:
    """Put the run's paths and switches into the config (in place); ``plan``: the run's
    (:class:`~fusion_perception.segmentation.task.SegmentationPlan`)."""
    from fusion_perception.segmentation.train import world_size

    request, out = plan.request, plan.out
    cfg.custom_hooks = [*(cfg.get("custom_hooks") or []), dict(type="FiniteLossHook"),
                        dict(type="ConsoleProgressHook", desc="train DeepLabV3+", disable=not request.progress)]
    cfg.work_dir = str(out / "train")
    cfg.experiment_name = (f"seg_{plan.label}_seed{request.seed}_{time.strftime('%Y%m%d_%H%M%S')}_{os.getpid()}_"
                           f"{time.time_ns() % 10**6}")
    cfg.launcher = plan.options.launcher
    cfg.randomness = dict(cfg.get("randomness", {}), seed=int(request.seed))
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        dl = cfg.get(key)
        if dl:
            dl.dataset.root = str(plan.fused_dir.resolve())
            if key == "train_dataloader":
                dl.dataset.seed = int(request.seed)
                if world_size() > 1:  # the config's batch size is the total over all processes
                    dl.batch_size = max(1, int(dl.batch_size) // world_size())
    if plan.options.encoder_weights is not None:
        cfg.model.encoder_weights = str(Path(plan.options.encoder_weights).resolve())
    if plan.options.amp:
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.setdefault("loss_scale", "dynamic")
    if cfg.get("test_evaluator"):
        from fusion_perception.segmentation.metric import PER_IMAGE_FILE

        cfg.test_evaluator.pred_dir = str(out / "predictions")
        cfg.test_evaluator.per_image_file = str(out / PER_IMAGE_FILE)  # what a comparison's bootstrap resamples
        if plan.options.num_pred_images is not None:
            cfg.test_evaluator.num_pred_images = int(plan.options.num_pred_images)
    # param schedulers with no end run to the last epoch
    for sch in cfg.get("param_scheduler") or []:
        if sch.get("by_epoch", True) and sch.get("end") is None:
            sch["end"] = int(cfg.train_cfg.max_epochs)


__all__ = ["CONFIG_DIR", "PAPER_CONFIG", "SMALL_CONFIG", "apply_overrides", "default_config", "fill_config",
           "load_config", "set_dataset"]
