"""Keep ultralytics fully offline: no update checks, no font or AMP-weights downloads, no DNS probes.

Call :func:`ultralytics_offline` instead of ``import ultralytics`` anywhere in the toolkit. It

- sets the environment before ultralytics' first import (``YOLO_OFFLINE=1`` makes its
  import-time ``is_online()`` DNS probe return at once; ``YOLO_AUTOINSTALL=false`` stops pip
  auto-installs; ``YOLO_CONFIG_DIR`` points at a private local directory). The variables are
  inherited by ultralytics' DDP worker processes;
- turns settings sync and every logger integration off;
- puts a local font (matplotlib's DejaVu Sans, shipped with matplotlib) where ultralytics looks
  for ``Arial.ttf``, because ``check_det_dataset`` asks for it on every training run and would
  otherwise probe GitHub;
- replaces the AMP check, which downloads ``yolo26n.pt``, by an offline one (CUDA only).

The trainer class in :mod:`det_trainer` imports this module, so DDP workers (which unpickle
that class) apply the same patches.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from types import ModuleType

_LOG = logging.getLogger(__name__)
_DONE = False

_ENV_DEFAULTS = {
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "false",
    # albumentations' own update check, used by ultralytics' augmentations
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "HF_HUB_OFFLINE": "1",
}


def default_config_dir() -> Path:
    """Where ultralytics keeps its settings here: ``$XDG_CACHE_HOME/fusion_perception/ultralytics``."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "fusion_perception" / "ultralytics"


def _set_environment() -> None:
    for key, value in _ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ["YOLO_OFFLINE"] = "1"  # never negotiable: the toolkit must not probe the network
    if not os.environ.get("YOLO_CONFIG_DIR"):
        path = default_config_dir()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            path = Path(tempfile.gettempdir()) / f"fusion_perception-ultralytics-{os.getuid()}"
            path.mkdir(parents=True, exist_ok=True)
        os.environ["YOLO_CONFIG_DIR"] = str(path)


def local_font() -> Path | None:
    """A TrueType font shipped with matplotlib (no download)."""
    try:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        return path if path.is_file() else None
    except Exception:  # pragma: no cover - matplotlib is a dependency
        return None


def _install_fonts(config_dir: Path) -> Path | None:
    font = local_font()
    if font is None:
        return None
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        target = config_dir / name
        if not target.exists():
            try:
                tmp = target.with_suffix(f".{os.getpid()}.tmp")
                shutil.copyfile(font, tmp)
                os.replace(tmp, target)
            except OSError as exc:  # read-only config dir: the check_font patch below still avoids the network
                _LOG.debug("could not place %s: %s", target, exc)
    return font


def _offline_check_font(font: str = "Arial.ttf"):
    """ultralytics' check_font without the download: the local copy, else matplotlib's font."""
    from ultralytics.utils import USER_CONFIG_DIR

    file = USER_CONFIG_DIR / Path(font).name
    return file if file.exists() else local_font()


def _offline_check_amp(model) -> bool:
    """AMP on CUDA unless the GPU is on ultralytics' known-bad list; never downloads weights.

    ultralytics' own check compares a pretrained yolo26n's FP32 and AMP outputs, which needs
    that file; when it is already on disk the original check runs.
    """
    import torch

    from ultralytics.utils import WEIGHTS_DIR
    from ultralytics.utils import checks

    device = next(model.parameters()).device
    if device.type in {"cpu", "mps"}:
        return False
    if (WEIGHTS_DIR / "yolo26n.pt").is_file():
        return _ORIGINAL_CHECK_AMP(model)
    if device.type == "cuda":
        bad = re.compile(r"(nvidia|geforce|quadro|tesla).*?(1660|1650|1630|t400|t550|t600|t1000|t1200|t2000|k40m)", re.I)
        if bad.search(torch.cuda.get_device_name(device)):
            checks.LOGGER.warning("AMP: disabled on this GPU (known AMP issues)")
            return False
    checks.LOGGER.info("AMP: enabled; ultralytics' download-based AMP check skipped (offline)")
    return True


_ORIGINAL_CHECK_AMP = None


def _patch(module: ModuleType, name: str, value) -> None:
    if hasattr(module, name):
        setattr(module, name, value)


def ultralytics_offline() -> ModuleType:
    """Import ultralytics in offline mode (idempotent) and return the module."""
    global _DONE, _ORIGINAL_CHECK_AMP
    _set_environment()
    import ultralytics

    if _DONE:
        return ultralytics
    import ultralytics.data.utils as data_utils
    import ultralytics.engine.trainer as trainer_mod
    import ultralytics.utils as uutils
    import ultralytics.utils.checks as checks
    import ultralytics.utils.plotting as plotting

    # If ultralytics was imported before us (by someone else), its import-time probe may have
    # said "online": force the flag off wherever it was copied by name.
    for mod_name in ("ultralytics.utils", "ultralytics.utils.checks", "ultralytics.utils.events"):
        mod = importlib.import_module(mod_name)
        _patch(mod, "ONLINE", False)
    uutils.is_online = lambda: False  # downloads.py calls it by attribute at call time
    import ultralytics.utils.downloads as downloads

    _patch(downloads, "is_online", lambda: False)

    settings = {"sync": False, "clearml": False, "comet": False, "dvc": False, "mlflow": False,
                "raytune": False, "tensorboard": False, "wandb": False, "vscode_msg": False,
                "openvino_msg": False}
    changed = {k: v for k, v in settings.items() if k in uutils.SETTINGS and uutils.SETTINGS[k] != v}
    try:
        if changed:
            uutils.SETTINGS.update(changed)
    except Exception as exc:  # read-only settings file: the flags above still keep us offline
        _LOG.debug("could not update ultralytics settings: %s", exc)

    _install_fonts(Path(uutils.USER_CONFIG_DIR))
    _patch(checks, "check_font", _offline_check_font)
    _patch(data_utils, "check_font", _offline_check_font)
    _patch(plotting, "check_font", _offline_check_font)

    _ORIGINAL_CHECK_AMP = checks.check_amp
    _patch(trainer_mod, "check_amp", _offline_check_amp)
    _DONE = True
    return ultralytics
