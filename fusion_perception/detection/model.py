"""The detector: ultralytics YOLO, kept offline and safe, and the model files it may start from.

- :func:`resolve_model`: a model YAML ultralytics ships or a local file (never a download);
- :func:`check_yolo_weights`: local YOLO weights, checked by loading them safely;
- :func:`ultralytics_offline`: ultralytics without the network and without the user's own
  Ultralytics setup.

Call :func:`ultralytics_offline` instead of ``import ultralytics`` anywhere in the toolkit. It

- sets the environment of this process (and of the processes it starts, such as
  ultralytics' DDP workers) before ultralytics' first import: ``YOLO_OFFLINE=1`` makes its
  import-time ``is_online()`` DNS probe return at once; ``YOLO_AUTOINSTALL=false`` stops pip
  auto-installs; ``ULTRALYTICS_SAFE_LOAD=1`` loads every ``.pt`` file with
  ``torch.load(weights_only=True)`` against ultralytics' allow-list of model classes, so a
  crafted checkpoint cannot run code (real YOLO checkpoints still load); ``YOLO_CONFIG_DIR``
  points at the toolkit's private folder, so the user's own Ultralytics settings file and
  config folder are never read or written. The user's shell and other programs are unaffected;
- turns settings sync and every logger integration off in memory only (the settings file,
  even the private one, keeps what it holds);
- answers ultralytics' font checks with matplotlib's DejaVu Sans instead of downloading
  ``Arial.ttf`` (``check_det_dataset`` asks for it on every training run); nothing is copied;
- replaces the AMP check, which downloads ``yolo26n.pt``, by an offline one (CUDA only).

If ultralytics was imported before (by the user's own code), the safe-loading and offline
flags are set on its modules directly and its settings are changed in memory only.

The trainer class in :mod:`fusion_perception.detection.train` imports this module, so DDP workers
(which unpickle that class) apply the same patches.
"""

from __future__ import annotations

import importlib
import os
import re
import tempfile
from pathlib import Path
from types import ModuleType

from fusion_perception.errors import ConfigError, DatasetError, check_input_file, clean_message

_DONE = False

_ENV_DEFAULTS = {
    "YOLO_AUTOINSTALL": "false",
    # albumentations' own update check, used by ultralytics' augmentations
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "HF_HUB_OFFLINE": "1",
}
# never negotiable: the toolkit must not probe the network, nor unpickle a user's file unsafely
_ENV_FORCED = {"YOLO_OFFLINE": "1", "ULTRALYTICS_SAFE_LOAD": "1"}


def default_config_dir() -> Path:
    """The toolkit's private ultralytics config folder: ``$XDG_CACHE_HOME/fusion_perception/ultralytics``
    (ultralytics keeps its settings in ``<it>/Ultralytics``)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "fusion_perception" / "ultralytics"


def _set_environment() -> None:
    for key, value in _ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ.update(_ENV_FORCED)
    private = default_config_dir()
    if os.environ.get("YOLO_CONFIG_DIR") != str(private):  # a user's own YOLO_CONFIG_DIR is theirs: not ours to use
        try:
            private.mkdir(parents=True, exist_ok=True)
        except OSError:
            private = Path(tempfile.gettempdir()) / f"fusion_perception-ultralytics-{os.getuid()}"
            private.mkdir(parents=True, exist_ok=True)
        os.environ["YOLO_CONFIG_DIR"] = str(private)


def local_font() -> Path | None:
    """A TrueType font shipped with matplotlib (no download)."""
    try:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        return path if path.is_file() else None
    except Exception:  # pragma: no cover - matplotlib is a dependency
        return None


def _offline_check_font(font: str = "Arial.ttf"):
    """ultralytics' check_font without the download (nor a copy): a font already in its config
    folder, else matplotlib's."""
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
    import ultralytics.nn.tasks as tasks
    import ultralytics.utils.downloads as downloads

    _patch(downloads, "is_online", lambda: False)
    # read at call time from these module globals (set by the environment only at first import)
    _patch(uutils, "SAFE_LOAD", True)
    _patch(tasks, "SAFE_LOAD", True)

    settings = {"sync": False, "clearml": False, "comet": False, "dvc": False, "mlflow": False,
                "raytune": False, "tensorboard": False, "wandb": False, "vscode_msg": False,
                "openvino_msg": False}
    # dict.update, not SETTINGS.update: the settings manager would write its file
    dict.update(uutils.SETTINGS, {k: v for k, v in settings.items() if k in uutils.SETTINGS})

    _patch(checks, "check_font", _offline_check_font)
    _patch(data_utils, "check_font", _offline_check_font)
    _patch(plotting, "check_font", _offline_check_font)

    _ORIGINAL_CHECK_AMP = checks.check_amp
    _patch(trainer_mod, "check_amp", _offline_check_amp)
    _DONE = True
    return ultralytics


# --------------------------------------------------------------------------- model files


def resolve_model(model: str, config_dir: Path | None) -> str:
    """A local YAML/.pt path (absolute, or beside the config), else a name ultralytics ships (``yolov5s.yaml``).

    Never a URL and never a weights name that ultralytics would download.
    """
    if "://" in model:
        raise ConfigError(f"model {model!r}: URLs are not allowed (nothing is downloaded); give a local file")
    for base in (Path.cwd(), config_dir):
        if base is None:
            continue
        p = (base / model).expanduser()
        if p.is_file():
            if p.suffix.lower() not in (".yaml", ".yml"):
                check_yolo_weights(p, "--model")
            return str(p.resolve())
    if model.endswith(".pt"):
        raise ConfigError(f"model weights {model!r} not found locally (nothing is downloaded)")
    if not model.endswith((".yaml", ".yml")):
        raise ConfigError(f"model {model!r}: expected a model YAML (e.g. yolov5s.yaml) or a local .pt file")
    ultralytics_offline()
    from ultralytics.nn.tasks import yaml_model_load

    try:
        yaml_model_load(model)  # resolves ultralytics' packaged cfgs (yolov5s.yaml -> v5/yolov5.yaml, scale s)
    except (FileNotFoundError, OSError) as exc:
        raise ConfigError(f"model YAML {model!r} not found locally or among ultralytics' packaged cfgs") from exc
    return model


def check_yolo_weights(path: str | Path, option: str = "--det-weights") -> Path:
    """A local ultralytics checkpoint, checked by loading it safely (nothing in it runs); a
    DatasetError naming the file otherwise (not found, not a ``.pt``, not a YOLO checkpoint)."""
    path = check_input_file(path, f"{option} file")
    if path.suffix.lower() != ".pt":
        raise DatasetError(path, f"{option}: ultralytics reads YOLO weights from .pt files, not "
                                 f"{path.suffix or 'a file without suffix'} (EMMA weights go to --weights)")
    ultralytics_offline()
    from ultralytics.nn.tasks import torch_safe_load

    try:
        ckpt, _ = torch_safe_load(str(path), safe_only=True)
    except Exception as e:  # noqa: BLE001 - whatever the loader says, the file is not usable
        detail = clean_message(e).replace("ERROR ❌️", "").strip().split(" Use an official")[0]
        raise DatasetError(path, f"{option}: not a YOLO checkpoint that loads safely ({detail})") from None
    import torch

    model = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, dict) else None
    if not isinstance(model, torch.nn.Module):
        raise DatasetError(path, f"{option}: not a YOLO checkpoint: it holds no ultralytics model (a plain "
                                 "state dict, such as EMMA weights?)")
    return path
