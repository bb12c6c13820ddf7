"""Build mmengine Runners from config files and run EMMA's two training steps.

``train_sensing`` trains the pseudo-sensing nets ``A_i`` and ``A_v`` on pseudo ground
truth; ``train_emma`` trains the U-Fuser through them. Both write mmengine checkpoints
every epoch, resume from the latest one (``resume=True``), and export the networks as
plain official-format state dicts in the work dir (``sensing_ir.pth``, ``sensing_vi.pth``,
``emma_fuser.pth``) that ``load_official_checkpoint`` and the ``emma`` fuser read.

Checkpoints load with ``weights_only=True`` within
:func:`fusion_perception.checkpoints.allow_mmengine_checkpoints` (the project's one allow-list).
"""

from __future__ import annotations

import os
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from mmengine.config import Config
from mmengine.dist import is_main_process

from fusion_perception.emma.training.hooks import BEST_FUSER, deployed_model  # (importing registers the hooks)
from fusion_perception.emma.training.models import EMMALossWeights  # (importing registers SensingModel, EMMAModel)
from fusion_perception.emma.training.patches import (  # (importing registers the patch datasets)
    pseudo_gt_methods,
    with_weights,
)
from fusion_perception.checkpoints import allow_mmengine_checkpoints, drop_cut_checkpoints
from fusion_perception.config_files import CONFIG_ROOT, check_numbers, find_config, merge_options, read_config
from fusion_perception.files import atomic_write_bytes
from fusion_perception.console import chatter_to, stage
from fusion_perception.errors import ConfigError, check_input_file
from fusion_perception.emma.checkpoint import save_official_state_dict
from fusion_perception.outputs import check_output_dir
from fusion_perception.record import (
    describe_changes, folder_lock, jsonable, refuse_to_replace, same_settings, stored_run, write_record)
from fusion_perception.runner_guards import CheckedRunner, load_or_resume  # (importing registers FiniteLossHook)

REPO_ROOT = Path(__file__).resolve().parents[3]
CONFIG_DIR = CONFIG_ROOT
DEFAULT_SENSING_CONFIG = CONFIG_DIR / "sensing" / "small_cpu.py"
DEFAULT_EMMA_CONFIG = CONFIG_DIR / "emma" / "small_cpu.py"

SENSING_EXPORTS = {"ir": "sensing_ir.pth", "vi": "sensing_vi.pth"}
EMMA_EXPORT = "emma_fuser.pth"
EMMA_LAST_EXPORT = "emma_fuser_last.pth"  # the last iteration's fuser, when another one was selected

_RUN_COUNT = 0


# ------------------------------------------------------------------------------ configs
def _config_path(config: str | Path, default_dir: str) -> Path:
    # Bare names ("small_cpu", "paper") refer to configs/<default_dir>/ (the toolkit's one lookup).
    found = find_config(default_dir, config)
    if found is None:
        raise ConfigError(f"config file {config} not found (looked in {CONFIG_DIR / default_dir} too)")
    return found


@dataclass
class TrainingRun:
    """How an mmengine training run is driven, the same for the sensing nets and for EMMA."""

    work_dir: str | Path | None = None
    resume: bool = False
    launcher: str = "none"
    amp: bool = False
    epochs: int | None = None
    max_patches: int | None = None
    cfg_options: Mapping[str, Any] | None = None
    overwrite: bool = False
    verbose: bool = False
    progress: bool = True

    @classmethod
    def of(cls, run: "TrainingRun | None", options: Mapping[str, Any]) -> "TrainingRun":
        """``run`` with ``options`` (its fields by name) applied; an unknown name is a TypeError."""
        return replace(run or cls(), **options)


def load_config(
    config: str | Path,
    *,
    default_dir: str,
    work_dir: str | Path,
    run: TrainingRun | None = None,
    data_root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    layout: str | None = None,
) -> Config:
    """Read a config and apply the command-line overrides of ``run`` (its ``cfg_options`` last, so
    they win). ``layout``: how ``data_root`` is read, a layout spec (``msrs_det:split_lists=DIR``:
    the patches come from the split's train part)."""
    run = run or TrainingRun()
    launcher, epochs, max_patches = run.launcher, run.epochs, run.max_patches
    cfg = read_config(_config_path(config, default_dir))
    cfg.work_dir = str(work_dir)
    cfg.launcher = launcher
    ds = cfg.train_dataloader.dataset
    if data_root is not None:
        ds.data_root = str(data_root)
    if layout is not None and layout != "auto":
        ds.layout = layout
    if ds.get("cache_dir") is None:
        ds.cache_dir = str(cache_dir if cache_dir is not None else work_dir)
    if epochs is not None:
        cfg.train_cfg.max_epochs = int(epochs)
    if max_patches is not None:
        ds.max_patches = int(max_patches)
    if launcher != "none" and not torch.cuda.is_available():
        env = dict(cfg.get("env_cfg") or {})
        env["dist_cfg"] = {**dict(env.get("dist_cfg") or {}), "backend": "gloo"}  # NCCL needs GPUs
        cfg.env_cfg = env
        # mmengine's default wrapper passes device_ids=[LOCAL_RANK], which DDP rejects for CPU modules.
        cfg.setdefault("model_wrapper_cfg", dict(type="MMDistributedDataParallel", device_ids=None,
                                                broadcast_buffers=False))
    if run.amp:
        if torch.cuda.is_available():
            cfg.optim_wrapper.type = "AmpOptimWrapper"
            cfg.optim_wrapper.loss_scale = "dynamic"
        else:
            warnings.warn("--amp ignored: no CUDA device (mixed precision here is a GPU feature)", stacklevel=2)
    if run.cfg_options:
        merge_options(cfg, run.cfg_options)
    return cfg


# Config keys that say where or how a run executes, not what it trains.
_VOLATILE = ("work_dir", "experiment_name", "launcher", "resume", "env_cfg", "model_wrapper_cfg")


def _settings(cfg: Config) -> dict[str, Any]:
    return jsonable({k: v for k, v in cfg.to_dict().items() if k not in _VOLATILE})


def continue_or_refuse(work_dir: Path, settings: dict[str, Any], resume: bool, overwrite: bool,
                       apply: bool = True) -> bool:
    """Whether the run in ``work_dir`` continues from its latest checkpoint.

    A killed run with the same settings continues (the same command again); checkpoints made with
    other settings are refused, saying what differs, unless ``overwrite`` (they are removed) or,
    for a run from before settings were stored, ``resume`` (it is continued as asked). ``apply``
    (the main process only): remove replaced checkpoints and record the settings (the run record,
    :mod:`fusion_perception.record`).
    """
    checkpoints = sorted(work_dir.glob("*.pth")) if work_dir.is_dir() else []
    stored = stored_run(work_dir, has_work=bool(checkpoints))
    old = None if stored is None else stored.settings
    if old is not None and same_settings(old, settings):
        return True
    if checkpoints and not overwrite:
        if old is None and resume:
            return True
        why = describe_changes(old, settings) if old is not None else "settings not recorded"
        raise refuse_to_replace(work_dir, "training checkpoints", why, option="--work-dir")
    if apply:
        for ckpt in checkpoints:
            ckpt.unlink()
        (work_dir / "last_checkpoint").unlink(missing_ok=True)
        write_record(work_dir, settings)
    return False


def _run(cfg: Config, name: str, run: TrainingRun) -> torch.nn.Module:
    """Train with mmengine's Runner; return the trained (unwrapped) model, its moving average with an EMAHook.

    The terminal shows one line and a progress bar; mmengine's logger goes to ``work_dir/run.log``
    (and its own timestamped log) unless ``verbose``.
    """
    # mmengine appends a timestamp; the counter keeps two runs in one second (sensing ir
    # then vi, tests) from sharing a logger/visualizer instance.
    global _RUN_COUNT
    _RUN_COUNT += 1
    cfg.experiment_name = f"{name}_{os.getpid()}_{_RUN_COUNT}"
    work_dir = Path(cfg.work_dir)
    if is_main_process():
        work_dir.mkdir(parents=True, exist_ok=True)
    with folder_lock(work_dir, what="training") if is_main_process() else nullcontext():
        return _train(cfg, name, run, work_dir)


def _train(cfg: Config, name: str, run: TrainingRun, work_dir: Path) -> torch.nn.Module:
    verbose, progress = run.verbose, run.progress
    check_numbers(cfg.to_dict(), f"{name} config")  # a NaN or negative rate or loss weight, before any work
    if is_main_process():
        for cut in drop_cut_checkpoints(work_dir):  # cut short by a crash: resume from the one before
            stage(f"{name}: {cut} was cut short (a crash?); removed, resuming from the checkpoint before it")
    resume = continue_or_refuse(work_dir, _settings(cfg), run.resume, run.overwrite, apply=is_main_process())
    load_or_resume(cfg, resume)  # its latest checkpoint, or the load_from given (--cfg-options)
    # after the settings are compared: how a run is shown is not what it trains
    cfg.custom_hooks = [*cfg.get("custom_hooks", []), dict(type="FiniteLossHook"),
                        dict(type="ConsoleProgressHook", desc=name, disable=not progress)]
    if cfg.get("launcher", "none") == "pytorch" and not torch.cuda.is_available():
        _init_cpu_process_group()
    if progress and is_main_process():
        stage(f"{name}: {'resuming' if resume else 'training'} {cfg.train_cfg.max_epochs} epochs in {work_dir}"
              + ("" if verbose else f" (log: {work_dir / 'run.log'})"))
    with chatter_to(work_dir / "run.log", verbose):
        runner = CheckedRunner.from_cfg(cfg)
        with allow_mmengine_checkpoints():
            runner.train()
    return deployed_model(runner)


def _init_cpu_process_group() -> None:
    """torchrun on CPU: mmengine's pytorch launcher calls ``torch.cuda.set_device``, so join the
    gloo group here; the Runner then finds the group initialised and uses it."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")


# ------------------------------------------------------------------------------ training
def train_sensing(
    config: str | Path = DEFAULT_SENSING_CONFIG,
    *,
    data_root: str | Path | None = None,
    layout: str | None = None,
    pseudo_gt: Sequence[str | Mapping[str, Any]] | None = None,
    weights: Mapping[str, str] | None = None,
    target: str = "both",
    run: TrainingRun | None = None,
    **run_options: Any,
) -> dict[str, Path]:
    """Train ``A_i`` and/or ``A_v``; returns ``{"ir": work_dir/sensing_ir.pth, "vi": ...}``.

    ``pseudo_gt``: fusion method specs (``"mean"``, ``"gff"``, ``"folder:X=PATH"``) or
    ``{"method": "didfuse", "weights": PATH, ...}`` entries that make the pseudo ground truth;
    default: the config's list. ``weights``: ``{method: PATH}`` for the learned methods of that list
    (``--weights``: the config's list may name ``didfuse``, never a path). ``layout``: how
    ``data_root`` is read (a layout spec; its train part is trained on, every pair where it has no
    split). Each target trains in
    ``work_dir/<target>`` (its checkpoints and logs); the patch cache is shared. ``run`` (or its
    fields as keywords: ``work_dir=``, ``epochs=``, ...) says how the run is driven.
    """
    run = TrainingRun.of(run, run_options)
    targets = {"both": ("ir", "vi"), "ir": ("ir",), "vi": ("vi",)}.get(target)
    if targets is None:
        raise ConfigError(f"target must be 'ir', 'vi' or 'both', not {target!r}")
    work_dir = check_output_dir(run.work_dir or REPO_ROOT / "work_dirs" / f"sensing_{Path(str(config)).stem}",
                                "--work-dir")
    out: dict[str, Path] = {}
    for tgt in targets:
        cfg = load_config(config, default_dir="sensing", work_dir=work_dir / tgt, run=run, data_root=data_root,
                          cache_dir=work_dir, layout=layout)
        cfg.model.target = tgt
        cfg.train_dataloader.dataset.target = tgt
        if pseudo_gt is not None:
            if not pseudo_gt:
                raise ConfigError("--pseudo-gt needs at least one fusion method")
            cfg.train_dataloader.dataset.pseudo_gt = list(pseudo_gt)
        if weights:
            cfg.train_dataloader.dataset.pseudo_gt = with_weights(cfg.train_dataloader.dataset.pseudo_gt, weights)
        if tgt == targets[0]:
            pseudo_gt_methods(cfg.train_dataloader.dataset.pseudo_gt)  # each resolves, before any work
        model = _run(cfg, f"sensing_{tgt}", run)
        out[tgt] = work_dir / SENSING_EXPORTS[tgt]
        if is_main_process():
            save_official_state_dict(model.net, out[tgt])
    return out


def resolve_sensing_paths(
    sensing_dir: str | Path | None, sensing_ir: str | Path | None, sensing_vi: str | Path | None
) -> tuple[Path, Path]:
    """The two sensing checkpoints: explicit paths win, else ``sensing_dir/sensing_{ir,vi}.pth``."""
    if sensing_dir is not None:
        sensing_ir = sensing_ir or Path(sensing_dir) / SENSING_EXPORTS["ir"]
        sensing_vi = sensing_vi or Path(sensing_dir) / SENSING_EXPORTS["vi"]
    if sensing_ir is None or sensing_vi is None:
        raise ConfigError(
            "EMMA trains through frozen sensing nets: pass --sensing-dir DIR (the work dir of "
            "tools/train_sensing.py) or both --sensing-ir and --sensing-vi"
        )
    for p in (sensing_ir, sensing_vi):
        if not Path(p).exists():
            raise ConfigError(f"sensing checkpoint {p} not found; train it with tools/train_sensing.py")
        check_input_file(p, "sensing checkpoint")
    return Path(sensing_ir), Path(sensing_vi)


def train_emma(
    config: str | Path = DEFAULT_EMMA_CONFIG,
    *,
    data_root: str | Path | None = None,
    layout: str | None = None,
    sensing_dir: str | Path | None = None,
    sensing_ir: str | Path | None = None,
    sensing_vi: str | Path | None = None,
    loss: Mapping[str, Any] | None = None,
    run: TrainingRun | None = None,
    **run_options: Any,
) -> Path:
    """Train the U-Fuser through the frozen sensing nets; returns ``work_dir/emma_fuser.pth``.

    ``loss``: overrides of the config's loss, ``dict(a1=..., a2=..., equivariance=False)`` (the
    ablation). ``layout``: how ``data_root`` is read (a layout spec, as for :func:`train_sensing`).
    ``run`` (or its fields as keywords: ``work_dir=``, ``epochs=``, ...) says how the run
    is driven.
    """
    run = TrainingRun.of(run, run_options)
    loss = dict(loss or {})
    names = [f.name for f in fields(EMMALossWeights)]  # the model's loss keys
    unknown = sorted(set(loss) - set(names))
    if unknown:
        raise ConfigError(f"unknown loss setting(s) {', '.join(unknown)}; EMMA's are {', '.join(names)}")
    ir_path, vi_path = resolve_sensing_paths(sensing_dir, sensing_ir, sensing_vi)
    work_dir = check_output_dir(run.work_dir or REPO_ROOT / "work_dirs" / f"emma_{Path(str(config)).stem}",
                                "--work-dir")
    cfg = load_config(config, default_dir="emma", work_dir=work_dir, run=run, data_root=data_root, layout=layout)
    cfg.model.sensing_ir = str(ir_path)
    cfg.model.sensing_vi = str(vi_path)
    equivariance = bool(loss.get("equivariance", True))
    cfg.model.equivariance = equivariance
    for key in ("a1", "a2"):
        if loss.get(key) is not None:
            cfg.model[key] = float(loss[key])
    model = _run(cfg, "emma" if equivariance else "emma_noeq", run)
    if model.warming_up() and is_main_process():  # the last iteration was still a warm-start one
        stage(f"warning: the run ended within its {model.warm_start_iters}-step warm start, so the fuser only "
              f"imitates {cfg.model.warm_start['method']}; train longer (or set model.warm_start=None) for EMMA")
    out = work_dir / EMMA_EXPORT
    if is_main_process():
        # with a RetentionSelectionHook in the config, the fuser it selected is the run's result
        best = work_dir / BEST_FUSER
        save_official_state_dict(model.fuser, work_dir / EMMA_LAST_EXPORT if best.is_file() else out)
        if best.is_file():
            atomic_write_bytes(out, best.read_bytes())
    return out


__all__ = [
    "load_config", "resolve_sensing_paths",
    "TrainingRun", "train_emma", "train_sensing",
]
