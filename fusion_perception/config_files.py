"""Config files: where they are, reading them and ``--cfg-options``.

:func:`find_config` is the one lookup of a config given by path or by name in ``configs/<group>``
(``det``, ``seg``): a broken file or a bad override is one line naming it, not a traceback from
inside mmengine. mmengine is imported when a file is read, not to find one.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, TypeVar

from fusion_perception.errors import ConfigError, clean_message, did_you_mean

if TYPE_CHECKING:
    from mmengine.config import Config

# The repository's configs/ (absent from a non-editable install: the recipes' defaults apply).
CONFIG_ROOT = Path(__file__).resolve().parents[1] / "configs"


def find_config(group: str, config: str | Path) -> Path | None:
    """The config file ``config`` names: a file as given, else ``configs/<group>/<config>`` or
    ``configs/<group>/<config>.py``; ``None`` when there is none (the caller says what is known)."""
    from fusion_perception.outputs import path_segment

    path = Path(config)
    folder = CONFIG_ROOT / group
    for candidate in (path, folder / path, folder / f"{path}.py"):
        if candidate.is_file():
            path_segment(candidate.stem, "config name")  # it names the runs' folder (work_dirs/det/<name>)
            return candidate
    return None


def available_configs(group: str) -> list[str]:
    """The names of the configs in ``configs/<group>`` (sorted)."""
    folder = CONFIG_ROOT / group
    return sorted(p.stem for p in folder.glob("*.py")) if folder.is_dir() else []


def read_config(path: str | Path) -> Config:
    """``Config.fromfile(path)``; a file mmengine cannot run or parse is a ConfigError naming it."""
    from mmengine.config import Config

    try:
        return Config.fromfile(str(path))
    except Exception as e:  # noqa: BLE001 - a config file is Python: anything in it can fail
        raise ConfigError(f"{path}: not a readable config file ({type(e).__name__}: {clean_message(e)})") from None


def merge_options(cfg: Config, options: Mapping[str, Any]) -> None:
    """``--cfg-options`` merged into ``cfg`` (in place); a key that does not fit, or a value of another
    type than the config's (``max_epochs=abc``, ``batch_size=2.5``), raises a ConfigError naming it."""
    tree = cfg.to_dict() if hasattr(cfg, "to_dict") else cfg
    for key, value in options.items():
        old = _config_value(tree, key)
        expected = _expected_type(old, value)
        if expected is not None:
            raise ConfigError(f"--cfg-options {key}={value!r}: expected {expected} (the config has {old!r})")
    try:
        cfg.merge_from_dict(dict(options))
    except Exception as e:  # noqa: BLE001 - e.g. a key below a value that is not a dict
        raise ConfigError(f"--cfg-options {', '.join(f'{k}={v}' for k, v in options.items())}: cannot be "
                          f"applied ({type(e).__name__}: {clean_message(e)})") from None


def _config_value(cfg: Any, key: str) -> Any:
    """The config's value at a dotted ``key`` (None where there is none: a new key takes anything)."""
    value = cfg
    for part in key.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, (list, tuple)) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _expected_type(old: Any, new: Any) -> str | None:
    """What ``new`` should be to replace the config's ``old`` (None: it fits). Numbers, switches and
    lists keep their kind; a string may become anything (``class_weight='auto'`` or a list)."""
    if old is None or new is None:
        return None
    if isinstance(old, bool):
        return None if isinstance(new, bool) else "True or False"
    if isinstance(old, int):
        return None if isinstance(new, int) and not isinstance(new, bool) else "an integer"
    if isinstance(old, float):
        return None if isinstance(new, (int, float)) and not isinstance(new, bool) else "a number"
    if isinstance(old, (list, tuple)):
        return None if isinstance(new, (list, tuple)) else "a list such as [1,2]"
    return None


# Config keys that are rates or loss weights, wherever they sit (the optimiser, the model, YOLO's
# train_args): never negative, and a learning rate above 0.
_RATE_OR_WEIGHT = re.compile(r"(^|\.)(lr\d*|lrf|weight_decay|momentum|a1|a2|box|cls|dfl|\w*_weight|\w*_gain)(\.\d+)?$")
_LEARNING_RATE = re.compile(r"(^|\.)lr\d*$")


def check_numbers(values: Mapping[str, Any], owner: str) -> None:
    """Every number of a config finite, its rates and loss weights not negative, its learning rates
    above 0; a ConfigError naming the key otherwise (``owner``: whose config). A NaN learning rate or
    loss weight trains to NaN, a negative loss weight rewards the error: both are refused up front."""
    for key, value in _numbers(values, ""):
        if not math.isfinite(value):
            raise ConfigError(f"{owner}: {key} is {value}; it must be a finite number")
        if _LEARNING_RATE.search(key) and value <= 0:
            raise ConfigError(f"{owner}: {key} is {value}; a learning rate must be above 0")
        if _RATE_OR_WEIGHT.search(key) and value < 0:
            raise ConfigError(f"{owner}: {key} is {value}; a rate or loss weight must not be negative")


def _numbers(value: Any, key: str) -> Iterator[tuple[str, float]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _numbers(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _numbers(v, f"{key}.{i}")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield key, float(value)


Settings = TypeVar("Settings")


def config_keys(settings: type[Settings], keys: Mapping[str, Any], owner: str) -> Settings:
    """``settings(**keys)``: the config keys a class built from a config passes on to a dataclass
    of its settings, with a key the dataclass lacks named in one line (a misspelt key would
    otherwise read as a TypeError of the dataclass). ``owner``: what the keys belong to."""
    known = [f.name for f in dataclasses.fields(settings)]
    unknown = sorted(set(keys) - set(known))
    if unknown:
        hints = "".join(did_you_mean(key, known) for key in unknown)
        raise ConfigError(f"{owner}: unknown config key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}{hints} "
                          f"(it takes {', '.join(known)} besides its own arguments)")
    return settings(**keys)


__all__ = ["CONFIG_ROOT", "available_configs", "check_numbers", "config_keys", "find_config", "read_config",
           "merge_options"]
