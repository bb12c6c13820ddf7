"""The segmentation protocol (the paper's Table 4): fuse MSRS, train DeepLabV3+, score IoU.

``run_segmentation`` fuses the MSRS-layout dataset with a fusion method (``fuse_dataset``, cached
by manifest), trains an smp DeepLabV3+ on the fused training split through mmengine's Runner
(config files in ``configs/seg``), evaluates the test split with one confusion matrix over all
its pixels, and writes into the run folder::

    OUT/fused/            the fused dataset (unless ``fused_dir`` points elsewhere)
    OUT/train/            mmengine work_dir: checkpoints, logs
    OUT/config.py         the resolved config (what eval_seg.py re-reads)
    OUT/run_settings.json what the run depends on (a finished run is reused only if it matches)
    OUT/predictions/      MSRS-palette PNGs and fused|truth|prediction panels for a few test images
    OUT/results.md        the Table 4 row
    OUT/results.json      written last and atomically: its presence means the run finished

``evaluate_segmentation`` re-scores a checkpoint of a run (``tools/eval_seg.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch  # noqa: E402

from fusion_perception.config_files import merge_options, read_config  # noqa: E402
from fusion_perception.console import chatter_to, stage  # noqa: E402
from fusion_perception.data.image_io import atomic_write_text  # noqa: E402
from fusion_perception.data.layouts import find_layout  # noqa: E402
from fusion_perception.data.records import MSRS_CLASSES  # noqa: E402
from fusion_perception.devices import check_device  # noqa: E402
from fusion_perception.errors import ConfigError, DatasetError, check_input_file  # noqa: E402
from fusion_perception.fusion.base import build_fuser, file_sha256, method_label, resolve_weights  # noqa: E402
from fusion_perception.outputs import check_output_dir, describe_changes, refuse_to_replace  # noqa: E402
from fusion_perception.provenance import library_versions  # noqa: E402

__all__ = ["run_segmentation", "evaluate_segmentation", "default_config", "CONFIG_DIR", "DEFAULT_WORK_ROOT"]

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "seg"
PAPER_CONFIG = "deeplabv3plus_r50_msrs.py"
SMALL_CONFIG = "small_cpu.py"
DEFAULT_WORK_ROOT = Path("work_dirs") / "seg"
SETTINGS_FILE = "run_settings.json"

log = logging.getLogger(__name__)


def _register_components() -> None:
    # Importing registers the dataset, collate function, model, hooks and metric with mmengine.
    import fusion_perception.downstream.seg_data  # noqa: F401
    import fusion_perception.downstream.seg_metric  # noqa: F401
    import fusion_perception.downstream.seg_model  # noqa: F401
    import fusion_perception.training.hooks  # noqa: F401  (ConsoleProgressHook)


def default_config(device: str) -> Path:
    """The paper's recipe on a GPU, the small CPU config otherwise."""
    return CONFIG_DIR / (PAPER_CONFIG if device.startswith("cuda") else SMALL_CONFIG)


def _resolve_device(device: str | None) -> str:
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"device must be 'cpu' or 'cuda', not {device!r}")
    return check_device(device)


def _load_config(config: Any, device: str):
    from mmengine.config import Config

    if isinstance(config, Config):
        cfg = config.copy() if hasattr(config, "copy") else Config(config.to_dict())
        name = "custom"
    else:
        path = Path(config) if config is not None else default_config(device)
        # a bare name ("small_cpu" or "small_cpu.py") means a file in configs/seg
        for cand in (path, CONFIG_DIR / path, CONFIG_DIR / f"{path}.py"):
            if cand.is_file():
                path = cand
                break
        else:
            known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.py")))
            raise ConfigError(f"config file not found: {path} (configs in {CONFIG_DIR}: {known})")
        cfg = read_config(path)
        name = path.stem
    return cfg, name


def _apply_overrides(cfg, epochs: int | None, batch: int | None, workers: int | None) -> None:
    """``epochs``: train that many epochs, with the cosine schedule, the frozen-encoder phase and
    the checkpoint interval scaled to it; ``batch``: total training batch; ``workers``: loader
    processes (train and test)."""
    if epochs is not None:
        if epochs < 1:
            raise ConfigError(f"epochs must be >= 1, not {epochs}")
        old = int(cfg.train_cfg.max_epochs)
        cfg.train_cfg.max_epochs = int(epochs)
        if "val_interval" in cfg.train_cfg and cfg.get("val_dataloader"):
            cfg.train_cfg.val_interval = max(1, min(int(cfg.train_cfg.val_interval), epochs))
        for sch in cfg.get("param_scheduler") or []:
            if sch.get("by_epoch", True):
                sch["begin"], sch["end"] = 0, int(epochs)
                if "T_max" in sch:
                    sch["T_max"] = int(epochs)
        for hook in cfg.get("custom_hooks") or []:
            if hook.get("type") == "SegFreezeEncoderHook":
                hook["frozen_epochs"] = int(round(int(hook.get("frozen_epochs", 0)) * epochs / max(old, 1)))
        ck = cfg.get("default_hooks", {}).get("checkpoint")
        if ck is not None and int(ck.get("interval", 1)) > epochs:
            ck["interval"] = int(epochs)
    if batch is not None:
        if batch < 1:
            raise ConfigError(f"batch must be >= 1, not {batch}")
        cfg.train_dataloader.batch_size = int(batch)
    if workers is not None:
        for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
            if cfg.get(key):
                cfg[key].num_workers = int(workers)


def _cfg_sha256(cfg) -> str:
    text = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def msrs_source(data_root: str | Path | None) -> Path:
    """The MSRS-layout folder to fuse: the synthetic default's ``msrs`` part when none is given;
    a multi-task root holding ``msrs/`` is accepted as well."""
    if data_root is None:
        from fusion_perception.data.synthetic import ensure_default

        return (Path(ensure_default("seg")) / "msrs").resolve()
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise DatasetError(root, "dataset folder not found")
    if (root / "msrs").is_dir() and not (root / "train").is_dir():
        root = root / "msrs"
    return root.resolve()


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


@contextlib.contextmanager
def _device_scope(device: str) -> Iterator[None]:
    """mmengine puts models on ``get_device()`` (CUDA whenever present); honour ``device='cpu'``."""
    if device == "cpu" and torch.cuda.is_available():
        from unittest import mock

        import mmengine.runner.runner as runner_mod

        with mock.patch.object(runner_mod, "get_device", lambda: "cpu"):
            yield
    else:
        yield


def _fill_config(cfg, *, fused_root: Path, out: Path, seed: int, amp: bool, launcher: str,
                 encoder_weights: str | Path | None, resume: bool, num_pred_images: int | None,
                 label: str, progress: bool = True) -> None:
    """Put the run's paths and switches into the config (in place)."""
    cfg.custom_hooks = [*(cfg.get("custom_hooks") or []),
                        dict(type="ConsoleProgressHook", desc="train DeepLabV3+", disable=not progress)]
    cfg.work_dir = str(out / "train")
    cfg.experiment_name = f"seg_{label}_seed{seed}_{time.strftime('%Y%m%d_%H%M%S')}_{os.getpid()}_{time.time_ns() % 10**6}"
    cfg.launcher = launcher
    cfg.resume = bool(resume)
    cfg.load_from = None
    cfg.randomness = dict(cfg.get("randomness", {}), seed=int(seed))
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        dl = cfg.get(key)
        if dl:
            dl.dataset.root = str(fused_root)
            if key == "train_dataloader":
                dl.dataset.seed = int(seed)
                ws = _world_size()
                if ws > 1:  # the config's batch size is the total over all processes
                    dl.batch_size = max(1, int(dl.batch_size) // ws)
    if encoder_weights is not None:
        cfg.model.encoder_weights = str(Path(encoder_weights).resolve())
    if amp:
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.setdefault("loss_scale", "dynamic")
    if cfg.get("test_evaluator"):
        cfg.test_evaluator.pred_dir = str(out / "predictions")
        if num_pred_images is not None:
            cfg.test_evaluator.num_pred_images = int(num_pred_images)
    # param schedulers with no end run to the last epoch
    max_epochs = int(cfg.train_cfg.max_epochs)
    for sch in cfg.get("param_scheduler") or []:
        if sch.get("by_epoch", True) and sch.get("end") is None:
            sch["end"] = max_epochs


def _clear_run(out: Path) -> None:
    """Remove a previous run's training state and results (not the fused cache)."""
    for name in ("results.json", "results.md", SETTINGS_FILE, "config.py"):
        (out / name).unlink(missing_ok=True)
    for name in ("train", "predictions"):
        shutil.rmtree(out / name, ignore_errors=True)


# What a run's settings are called in a refusal ("epochs 10 → 2, config small_cpu → deeplabv3plus_r50_msrs").
_WORDS = {"config": "config", "config_values.train_cfg.max_epochs": "epochs",
          "config_values.train_dataloader.batch_size": "batch", "method": "method", "seed": "seed",
          "source": "data", "fusion_checkpoint_sha256": "fusion weights", "amp": "amp",
          "encoder_weights_sha256": "encoder weights", "world_size": "processes", "config_sha256": "",
          "label": "", "fuser.method": ""}


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """What differs between two runs' settings, in words (older runs stored fewer settings)."""
    new = new if "config_values" in old else {k: v for k, v in new.items() if k != "config_values"}
    return describe_changes(old, new, _WORDS)


def _seg_versions() -> dict[str, str]:
    return library_versions("torch", "mmengine", "segmentation_models_pytorch")


def run_segmentation(
    data_root: str | Path | None = None,
    fusion: str = "mean",
    out: str | Path | None = None,
    *,
    config: Any = None,
    seed: int = 0,
    weights: str | Path | None = None,
    device: str | None = None,
    resume: bool = False,
    launcher: str = "none",
    amp: bool = False,
    encoder_weights: str | Path | None = None,
    fused_dir: str | Path | None = None,
    cfg_options: Mapping[str, Any] | None = None,
    epochs: int | None = None,
    batch: int | None = None,
    workers: int | None = None,
    num_pred_images: int | None = None,
    skip_bad: bool = False,
    force: bool = False,
    overwrite: bool = False,
    fuse_batch_size: int = 4,
    progress: bool = True,
    verbose: bool = False,
) -> dict[str, Any]:
    """Run the segmentation protocol for one fusion method and seed; return results.json's content.

    Args:
        data_root: MSRS-layout folder (``{train,test}/{ir,vi,Segmentation_labels}``); ``None``
            for the synthetic default's ``msrs`` set.
        fusion: a registered fusion method (``registered_methods()``) or ``folder:NAME=PATH``.
        out: run folder; default ``work_dirs/seg/<config>/<label>_seed<seed>``.
        config: config file (path, or name in ``configs/seg``) or an mmengine ``Config``; default
            the paper recipe on GPU, ``small_cpu.py`` on CPU.
        seed: training seed (sampling, augmentation, initialisation).
        weights: fusion checkpoint (e.g. EMMA's); a changed checkpoint re-fuses and retrains.
        device: ``"cpu"`` or ``"cuda"``; default CUDA when present.
        resume: continue an interrupted run from its last checkpoint.
        launcher: ``"none"`` or ``"pytorch"`` (DDP under ``torchrun``; GPUs only).
        amp: mixed precision (mmengine ``AmpOptimWrapper``; GPUs only).
        encoder_weights: local file with pretrained encoder weights (never downloaded).
        fused_dir: where the fused dataset is cached; default the shared cache
            ``work_dirs/fused/<method>/<dataset>`` (:mod:`fusion_perception.fusion.cache`), which
            ``fuse_dataset.py`` and the other tools use too.
        epochs: train this many epochs (schedule and frozen phase scaled to it).
        batch: total training batch size; workers: data-loader processes.
        cfg_options: overrides merged into the config last (mmengine ``--cfg-options`` keys).
        num_pred_images: how many test images get prediction PNGs (config default otherwise).
        skip_bad: leave out bad pairs (with a warning) instead of failing.
        force: retrain even when a finished run with the same settings exists.
        overwrite: replace a run in ``out`` (or a fused dataset in ``fused_dir``) made with other
            settings; without it such a run is refused, saying what differs.
        progress: a line per stage and progress bars on the terminal.
        verbose: the libraries' output on the terminal too (by default it goes to ``out/run.log``).

    Every argument is checked before anything is read or written. A run whose results.json
    exists and whose settings (method, fusion checkpoint, data, config, seed, encoder weights,
    AMP, world size) match is returned without retraining. An unfinished run with the same
    settings continues from its last checkpoint (the same command again; ``resume`` is implied).
    """
    _register_components()
    from fusion_perception.downstream.seg_report import read_results

    # the arguments first: nothing is read or written until they are all right
    device = _resolve_device(device)
    if launcher not in ("none", "pytorch"):
        raise ConfigError(f"launcher must be 'none' or 'pytorch', not {launcher!r}")
    if launcher == "pytorch" and not device.startswith("cuda"):
        raise ConfigError("--launcher pytorch (DDP) needs CUDA GPUs")
    if amp and not device.startswith("cuda"):
        raise ConfigError("--amp needs a CUDA GPU")
    chosen = config is None
    cfg, cfg_name = _load_config(config, device)
    _apply_overrides(cfg, epochs, batch, workers)
    if cfg_options:  # explicit entries win over what --epochs/--batch derived
        merge_options(cfg, cfg_options)
    label = method_label(fusion)
    # Building the fuser checks the method name (ConfigError listing the registered ones) and
    # tells which checkpoint it would fuse with.
    weights = resolve_weights(fusion, weights, data_root)
    fuser = build_fuser(fusion, "cpu", **({"weights": weights} if weights is not None else {}))
    if encoder_weights is not None:
        check_input_file(encoder_weights, "encoder weights file")
    out = Path(out) if out is not None else DEFAULT_WORK_ROOT / cfg_name / f"{label}_seed{seed}"
    out = check_output_dir(out).resolve()
    if fused_dir is not None:
        check_output_dir(fused_dir, "--fused-dir")
    source = msrs_source(data_root)

    settings = json.loads(json.dumps({
        "task": "seg",
        "method": fusion,
        "label": label,
        "seed": int(seed),
        "source": str(source),
        "fuser": fuser.config(),
        "fusion_checkpoint_sha256": fuser.checkpoint_sha256(),
        "config": cfg_name,
        "config_sha256": _cfg_sha256(cfg),
        "config_values": cfg.to_dict(),
        "encoder_weights_sha256": file_sha256(encoder_weights) if encoder_weights else None,
        "amp": bool(amp),
        "skip_bad": bool(skip_bad),
        "world_size": _world_size(),
    }, default=str))
    del fuser

    done = read_results(out)
    if done is not None and done.get("settings") == settings and not force:
        log.info("segmentation run %s is finished with the same settings: reusing its results", out)
        if progress and _rank() == 0:
            stage(f"seg {label} seed {seed}: finished earlier in {out} with the same settings; its results are "
                  "reused (--force retrains)")
        return done
    old_settings = None
    if (out / SETTINGS_FILE).is_file():
        try:
            old_settings = json.loads((out / SETTINGS_FILE).read_text())
        except ValueError:
            old_settings = {}
    elif done is None and _latest_checkpoint(out / "train") is not None and not resume:
        old_settings = {}  # checkpoints whose settings were not recorded: continued only when asked (resume)
    before = done.get("settings") if done is not None else old_settings
    if before is not None and before != settings and not overwrite:
        what = "a finished segmentation run" if done is not None else "an unfinished segmentation run"
        why = _diff(before, settings) if before else "settings not recorded; --resume continues it"
        raise refuse_to_replace(out, what, why)
    # an unfinished run with these settings continues from its last checkpoint (a killed run
    # resumes with the same command); anything else there goes, as asked (--force, --overwrite)
    resume = resume or (done is None and before == settings)
    clear = _rank() == 0 and before is not None and not resume

    if progress and _rank() == 0:
        if chosen and not device.startswith("cuda"):
            stage(f"segmentation config: {cfg_name} on the CPU ({cfg.model.encoder_name}, {cfg.train_cfg.max_epochs} "
                  f"epochs); the paper's recipe: --config {Path(PAPER_CONFIG).stem} (for GPUs)")
        stage(f"seg {label} seed {seed} -> {out}" + ("" if verbose else f" (log: {out / 'run.log'})"))
    out.mkdir(parents=True, exist_ok=True)
    with chatter_to(out / "run.log" if _rank() == 0 else None, verbose):
        return _run_segmentation(cfg, cfg_name, settings, out, source, fusion, label, seed=seed, weights=weights,
                                 device=device, launcher=launcher, amp=amp, encoder_weights=encoder_weights,
                                 fused_dir=fused_dir, num_pred_images=num_pred_images, skip_bad=skip_bad,
                                 overwrite=overwrite, resume=resume, clear=clear, fuse_batch_size=fuse_batch_size,
                                 progress=progress)


def _run_segmentation(cfg, cfg_name: str, settings: dict, out: Path, source: Path, fusion: str, label: str, *,
                      seed: int, weights: str | None, device: str, launcher: str, amp: bool,
                      encoder_weights: str | Path | None, fused_dir: str | Path | None, num_pred_images: int | None,
                      skip_bad: bool, overwrite: bool, resume: bool, clear: bool, fuse_batch_size: int,
                      progress: bool) -> dict[str, Any]:
    """:func:`run_segmentation` once its arguments are checked: fuse, train, score."""
    from mmengine.runner import Runner

    from fusion_perception.downstream.seg_report import build_results, write_results
    from fusion_perception.fusion.cache import cache_label, default_fused_dir
    from fusion_perception.fusion.stage import fuse_dataset, load_fused_dataset
    from fusion_perception.training.runner import allow_mmengine_checkpoints

    if launcher == "pytorch":
        from mmengine.dist import init_dist, is_distributed

        if not is_distributed():
            init_dist("pytorch", backend=cfg.get("env_cfg", {}).get("dist_cfg", {}).get("backend", "nccl"))
    if fused_dir is None:
        fused_dir = default_fused_dir(source, cache_label(label, weights))
    fused_root = Path(fused_dir).expanduser().resolve()
    fuse_device = device
    if launcher == "pytorch":
        fuse_device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    if _rank() == 0:
        fused = fuse_dataset(source, fusion, fused_root, layout="msrs", device=fuse_device,
                             batch_size=fuse_batch_size, weights=weights,
                             on_mismatch="replace" if overwrite else "error", skip_bad=skip_bad, progress=progress)
        if progress:
            c = fused.manifest["counts"]
            stage(f"fuse {label}: {c['total']} images in {fused_root} ({c['fused']} new, {c['skipped']} reused)")
    if launcher == "pytorch":
        from mmengine.dist import barrier

        barrier()
        fused = load_fused_dataset(fused_root)
    if "seg" not in getattr(find_layout(fused.source_layout), "tasks", ()):  # the layout: are its labels masks?
        raise DatasetError(source, f"segmentation needs an MSRS-layout dataset, this one is {fused.source_layout!r}")
    if clear:
        _clear_run(out)  # as asked (--force, --overwrite), once the data is known to be good

    if cfg.model.get("class_weight") == "auto":
        from fusion_perception.downstream.seg_data import label_histogram, median_frequency_weights

        hist = label_histogram([r.mask_path for r in fused.split("train")], int(cfg.model.num_classes))
        cfg.model.class_weight = [round(float(w), 4) for w in median_frequency_weights(hist)]
    _fill_config(cfg, fused_root=fused_root, out=out, seed=seed, amp=amp, launcher=launcher,
                 encoder_weights=encoder_weights, resume=resume, num_pred_images=num_pred_images, label=label,
                 progress=progress)
    if _rank() == 0:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / SETTINGS_FILE, json.dumps(settings, indent=2) + "\n")
        cfg.dump(str(out / "config.py"))

    with _device_scope(device), allow_mmengine_checkpoints():
        runner = Runner.from_cfg(cfg)
        t0 = time.perf_counter()
        runner.train()
        t1 = time.perf_counter()
        metrics = runner.test()
        t2 = time.perf_counter()
    metric = runner.test_loop.evaluator.metrics[0]
    classes = tuple(getattr(runner.test_dataloader.dataset, "metainfo", {}).get("classes", MSRS_CLASSES))
    results: dict[str, Any] = {}
    if _rank() == 0:
        ckpt = _latest_checkpoint(out / "train")
        results = build_results(
            metric.last_confusion, classes, method=fusion, label=label, seed=seed,
            extra={
                "num_test_images": len(runner.test_dataloader.dataset),
                "config": cfg_name,
                "checkpoint": str(ckpt) if ckpt else None,
                "run_dir": str(out),
                "fused_dir": str(fused_root),
                "predictions_dir": str(out / "predictions"),
                "epochs": int(cfg.train_cfg.max_epochs),
                "train_time_s": round(t1 - t0, 2),
                "eval_time_s": round(t2 - t1, 2),
                "device": device,
                "versions": _seg_versions(),
                "settings": settings,
            },
        )
        write_results(out, results)
        if progress:
            stage(f"test: {results['num_test_images']} images, mIoU {100 * (results['mIoU'] or float('nan')):.1f} "
                  f"(train {t1 - t0:.0f} s, test {t2 - t1:.0f} s)")
    else:
        results = {"task": "seg", "method": fusion, "label": label, "seed": seed, "mIoU": metrics.get("mIoU")}
    return results


def _latest_checkpoint(work_dir: Path) -> Path | None:
    """The checkpoint mmengine's ``last_checkpoint`` file names, else the newest ``*.pth``."""
    marker = work_dir / "last_checkpoint"
    if marker.is_file():
        p = Path(marker.read_text().strip())
        if p.is_file():
            return p
    ckpts = sorted(work_dir.glob("*.pth"), key=lambda p: p.stat().st_mtime)
    return ckpts[-1] if ckpts else None


def evaluate_segmentation(
    run: str | Path,
    checkpoint: str | Path | None = None,
    out: str | Path | None = None,
    *,
    device: str | None = None,
    num_pred_images: int | None = None,
) -> dict[str, Any]:
    """Re-score a checkpoint of a finished or interrupted run on its test split.

    ``run``: a run folder of :func:`run_segmentation`; ``checkpoint``: default the run's last
    one; ``out``: default ``RUN/eval/<checkpoint name>``. Writes results.json/results.md and the
    prediction PNGs there and returns the results.
    """
    _register_components()
    from mmengine.runner import Runner

    from fusion_perception.downstream.seg_report import build_results, write_results
    from fusion_perception.training.runner import allow_mmengine_checkpoints

    run = Path(run).expanduser().resolve()
    cfg_path = run / "config.py"
    if not cfg_path.is_file():
        raise DatasetError(run, "not a segmentation run folder (no config.py)")
    device = _resolve_device(device)
    ckpt = Path(checkpoint).expanduser().resolve() if checkpoint else _latest_checkpoint(run / "train")
    if ckpt is None:
        raise DatasetError(run / "train", "no checkpoint to evaluate")
    check_input_file(ckpt, "checkpoint")
    settings = json.loads((run / SETTINGS_FILE).read_text()) if (run / SETTINGS_FILE).is_file() else {}
    out = check_output_dir(out).resolve() if out else run / "eval" / ckpt.stem
    cfg = read_config(cfg_path)
    cfg.work_dir = str(out)
    cfg.experiment_name = f"seg_eval_{ckpt.stem}_{time.strftime('%Y%m%d_%H%M%S')}_{time.time_ns() % 10**6}"
    cfg.launcher = "none"
    cfg.resume = False
    cfg.load_from = str(ckpt)
    cfg.test_evaluator.pred_dir = str(out / "predictions")
    if num_pred_images is not None:
        cfg.test_evaluator.num_pred_images = int(num_pred_images)
    # Evaluation needs no training parts (and must not build them).
    for key in ("train_dataloader", "train_cfg", "optim_wrapper", "param_scheduler", "val_dataloader",
                "val_cfg", "val_evaluator"):
        cfg.pop(key, None)
    cfg.custom_hooks = []
    with _device_scope(device), allow_mmengine_checkpoints():
        runner = Runner.from_cfg(cfg)
        t0 = time.perf_counter()
        runner.test()
        t1 = time.perf_counter()
    metric = runner.test_loop.evaluator.metrics[0]
    classes = tuple(getattr(runner.test_dataloader.dataset, "metainfo", {}).get("classes", MSRS_CLASSES))
    method = settings.get("method", "unknown")
    results = build_results(
        metric.last_confusion, classes, method=method, label=settings.get("label", method),
        seed=settings.get("seed", 0),
        extra={"num_test_images": len(runner.test_dataloader.dataset), "checkpoint": str(ckpt),
               "run": str(run), "results_dir": str(out), "predictions_dir": str(out / "predictions"), "eval_time_s": round(t1 - t0, 2),
               "device": device, "versions": _seg_versions(), "settings": settings},
    )
    write_results(out, results)
    return results
