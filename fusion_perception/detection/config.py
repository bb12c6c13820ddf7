"""The detection recipe: the paper's settings, a config file from ``configs/det``, the tools' overrides."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from fusion_perception.config_files import available_configs, find_config
from fusion_perception.devices import torch_device
from fusion_perception.errors import ConfigError, clean_message, did_you_mean

CONFIG_GROUP = "det"  # configs/det
DEFAULT_CONFIG = "yolov5s_m3fd"
CPU_CONFIG = "small_cpu"
IMGSZ_STRIDE = 32  # the largest stride of the YOLO models: ultralytics rounds imgsz up to a multiple of it

# The paper's recipe; a config file overrides any of these keys.
DEFAULTS: dict[str, Any] = {
    "model": "yolov5s.yaml",
    "epochs": 400,
    "batch": 8,
    "imgsz": 640,
    "optimizer": "SGD",
    "lr0": 1e-2,
    "workers": 8,
    "split_ratio": (8, 1, 1),
    "train_args": {},  # passed to ultralytics' train() as they are (mosaic, close_mosaic, ...)
    "eval_args": {"conf": 0.001, "iou": 0.7, "max_det": 300, "batch": 8},
    "vis": {"num_images": 4, "conf": 0.25},
}

# Keys whose change makes a finished run stale (device and workers only change speed).
RESULT_KEYS = ("model", "epochs", "batch", "imgsz", "optimizer", "lr0", "split_ratio", "train_args", "eval_args")


def default_config(device: str | int | None) -> str:
    """The paper's recipe on GPUs; on a CPU the small config (the paper's 400 epochs of YOLOv5s at
    640 px would take days there)."""
    return CPU_CONFIG if torch_device(device) == "cpu" else DEFAULT_CONFIG


def resolve_config_path(config: str | Path | None) -> Path | None:
    """A config given by path, or by name in ``configs/det`` (``"small_cpu"``); ``None`` -> the paper recipe."""
    if config is None:
        config = DEFAULT_CONFIG
    path = find_config(CONFIG_GROUP, config)
    if path is not None:
        return path.resolve()
    if str(config) == DEFAULT_CONFIG:
        return None  # configs/ not shipped (non-editable install): the built-in defaults are the recipe
    raise ConfigError(f"detection config {str(config)!r} not found (a file, or one of "
                      f"{available_configs(CONFIG_GROUP)})")


def load_config(config: str | Path | dict | None = None, **overrides: Any) -> dict[str, Any]:
    """The run's settings: :data:`DEFAULTS`, then the config file, then non-``None`` ``overrides``."""
    from fusion_perception.detection.model import resolve_model

    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULTS.items()}
    source = None
    if isinstance(config, dict):
        loaded = config
    else:
        source = resolve_config_path(config)
        loaded = {}
        if source is not None:
            from fusion_perception.config_files import read_config

            loaded = read_config(source).to_dict()
    unknown = sorted(set(loaded) - set(DEFAULTS))
    if unknown:  # a misspelt key would otherwise be ignored, and the run made with the default
        hints = "".join(did_you_mean(key, DEFAULTS) for key in unknown)
        raise ConfigError(f"{source}: unknown config key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}"
                          f"{hints} (a detection config sets {', '.join(DEFAULTS)})")
    for key, value in loaded.items():
        if key in ("train_args", "eval_args", "vis") and isinstance(value, dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    for key, value in overrides.items():
        if value is not None:
            cfg[key] = value
    _check_numbers(cfg)
    cfg["split_ratio"] = tuple(float(x) for x in cfg["split_ratio"])
    cfg["model"] = resolve_model(str(cfg["model"]), source.parent if source else None)
    cfg["config_file"] = str(source) if source else None
    cfg["config_name"] = "custom" if isinstance(config, dict) else (source.stem if source else DEFAULT_CONFIG)
    return cfg


def _check_numbers(cfg: dict[str, Any]) -> None:
    """The run's numbers, checked before any data is read (the option names are the tools')."""
    from fusion_perception.config_files import check_numbers

    check_numbers(cfg, "detection config")
    rules = (("epochs", 1, "--epochs"), ("imgsz", 32, "--imgsz"), ("workers", 0, "--workers"))
    for key, least, option in rules:
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"{option} (config key {key!r}) must be an integer of at least {least}, not {value!r}")
    batch = cfg["batch"]
    if isinstance(batch, bool) or not isinstance(batch, int) or (batch < 1 and batch != -1):
        raise ConfigError(f"--batch-size (config key 'batch') must be a positive integer (or -1 for ultralytics' "
                          f"AutoBatch), not {batch!r}")
    if not isinstance(cfg["lr0"], (int, float)) or cfg["lr0"] <= 0:
        raise ConfigError(f"config key 'lr0' must be a positive number, not {cfg['lr0']!r}")
    ratio = cfg["split_ratio"]
    if len(ratio) != 3 or any(not isinstance(x, (int, float)) or x < 0 for x in ratio) or sum(ratio) <= 0:
        raise ConfigError(f"config key 'split_ratio' must be three non-negative numbers (train, val, test), "
                          f"not {ratio!r}")
    if cfg["imgsz"] % IMGSZ_STRIDE:  # ultralytics would round it up and train at a size the run does not record
        low = cfg["imgsz"] // IMGSZ_STRIDE * IMGSZ_STRIDE
        raise ConfigError(f"--imgsz (config key 'imgsz') must be a multiple of {IMGSZ_STRIDE}, the detector's "
                          f"stride, not {cfg['imgsz']}: give {low or IMGSZ_STRIDE} or {low + IMGSZ_STRIDE}")
    _check_ultralytics_args(cfg)


def _check_ultralytics_args(cfg: dict[str, Any]) -> None:
    """The values ultralytics' ``train()`` and ``val()`` get, checked by ultralytics' own rules (key
    names, types, ranges) before any data is read: one line naming the config key, not its traceback."""
    from fusion_perception.detection.model import ultralytics_offline

    ultralytics_offline()
    from ultralytics.cfg import DEFAULT_CFG_DICT, check_cfg

    train = {k: cfg[k] for k in ("epochs", "batch", "imgsz", "optimizer", "lr0", "workers")}
    for key, args in (("train_args", {**train, **cfg["train_args"]}), ("eval_args", cfg["eval_args"])):
        unknown = sorted(set(args) - set(DEFAULT_CFG_DICT))
        if unknown:
            near = [m for u in unknown for m in difflib.get_close_matches(u, DEFAULT_CFG_DICT, 1)]
            raise ConfigError(f"detection config {key}: {', '.join(unknown)} not an argument ultralytics knows"
                              + (f" (did you mean {', '.join(near)}?)" if near else ""))
        try:
            check_cfg(dict(args))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"detection config {key}: {clean_message(e).replace(chr(39), '')}") from None


__all__ = ["CPU_CONFIG", "DEFAULTS", "DEFAULT_CONFIG", "RESULT_KEYS", "default_config", "load_config",
           "resolve_config_path"]
