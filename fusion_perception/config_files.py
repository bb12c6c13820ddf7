"""Reading mmengine config files and ``--cfg-options``: a broken file or a bad override is one
line naming it, not a traceback from inside mmengine."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from mmengine.config import Config

from fusion_perception.errors import ConfigError, DatasetError, clean_message


def read_config(path: str | Path) -> Config:
    """``Config.fromfile(path)``; a file mmengine cannot run or parse raises a DatasetError naming it."""
    try:
        return Config.fromfile(str(path))
    except Exception as e:  # noqa: BLE001 - a config file is Python: anything in it can fail
        raise DatasetError(path, f"not a readable config file ({type(e).__name__}: {clean_message(e)})") from None


def merge_options(cfg: Config, options: Mapping[str, Any]) -> None:
    """``--cfg-options`` merged into ``cfg`` (in place); a key that does not fit raises a ConfigError."""
    try:
        cfg.merge_from_dict(dict(options))
    except Exception as e:  # noqa: BLE001 - e.g. a key below a value that is not a dict
        raise ConfigError(f"--cfg-options {', '.join(f'{k}={v}' for k, v in options.items())}: cannot be "
                          f"applied ({type(e).__name__}: {clean_message(e)})") from None


__all__ = ["read_config", "merge_options"]
