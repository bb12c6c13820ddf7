"""Config files: where they are, reading them and ``--cfg-options``.

:func:`find_config` is the one lookup of a config given by path or by name in ``configs/<group>``
(``det``, ``seg``): a broken file or a bad override is one line naming it, not a traceback from
inside mmengine. mmengine is imported when a file is read, not to find one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, TypeVar

from fusion_perception.errors import ConfigError, DatasetError, clean_message

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
    """``Config.fromfile(path)``; a file mmengine cannot run or parse raises a DatasetError naming it."""
    from mmengine.config import Config

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


Settings = TypeVar("Settings")


def config_keys(settings: type[Settings], keys: Mapping[str, Any], owner: str) -> Settings:
    """``settings(**keys)``: the config keys a class built from a config passes on to a dataclass
    of its settings, with a key the dataclass lacks named in one line (a misspelt key would
    otherwise read as a TypeError of the dataclass). ``owner``: what the keys belong to."""
    known = [f.name for f in dataclasses.fields(settings)]
    unknown = sorted(set(keys) - set(known))
    if unknown:
        raise ConfigError(f"{owner}: unknown config key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                          f"(it takes {', '.join(known)} besides its own arguments)")
    return settings(**keys)


__all__ = ["CONFIG_ROOT", "available_configs", "config_keys", "find_config", "read_config", "merge_options"]
