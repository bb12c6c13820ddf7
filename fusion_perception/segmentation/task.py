"""The segmentation protocol as a registered task (the paper's Table 4): fuse MSRS, train DeepLabV3+, score IoU.

:func:`run_segmentation` fuses a segmentation dataset (MSRS, or any layout whose labels are masks:
its classes, ignore index and palette are the layout's) with a fusion method (the shared cache,
reused by manifest), trains an smp DeepLabV3+ on the fused training split through mmengine's
Runner (config files in ``configs/seg``), evaluates the test split with one confusion matrix over
all its pixels, and writes into the run folder::

    OUT/train/            mmengine work_dir: checkpoints, logs
    OUT/config.py         the resolved config (what eval_seg.py re-reads)
    OUT/run.json          the run record: what the run depends on (fusion_perception.record)
    OUT/predictions/      palette PNGs and fused|truth|prediction panels for a few test images
    OUT/results.md        the Table 4 row
    OUT/results.json      written last and atomically: its presence means the run finished

Its settings do not depend on the data, so a finished run is found before any work; an
unfinished one with the same settings continues from its last checkpoint.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from fusion_perception.record import MANIFEST_FILE, RESULTS_FILE  # noqa: E402
from fusion_perception.registry import TASKS  # noqa: E402
from fusion_perception.runs import RunPlan, RunRequest, Task  # noqa: E402

__all__ = ["SegmentationOptions", "SegmentationTask", "run_segmentation", "DEFAULT_WORK_ROOT"]

DEFAULT_WORK_ROOT = Path("work_dirs") / "seg"
log = logging.getLogger(__name__)


@dataclass
class SegmentationOptions:
    """The segmentation run's own options: resuming, distribution, precision, the recipe's overrides."""

    resume: bool = False  # continue an interrupted run from its last checkpoint
    launcher: str = "none"  # "pytorch": DDP under torchrun (GPUs only)
    amp: bool = False  # mixed precision (GPUs only)
    encoder_weights: str | Path | None = None  # a local file of pretrained encoder weights
    cfg_options: Mapping[str, Any] | None = None  # merged into the config last (``--cfg-options``)
    epochs: int | None = None  # schedule and frozen phase scaled to it
    batch: int | None = None  # total training batch
    workers: int | None = None
    num_pred_images: int | None = None  # test images drawn as PNGs


@dataclass
class SegmentationPlan(RunPlan):
    cfg: Any = None  # the mmengine Config
    cfg_name: str = ""
    chosen: bool = False  # the config was picked for the device
    runner: Any = None
    seconds: dict[str, float] | None = None

    @property
    def options(self) -> SegmentationOptions:
        return self.request.options


@TASKS.register_module(name="seg")
class SegmentationTask(Task):
    """Segmentation: DeepLabV3+ on the fused images, mIoU (the paper's Table 4)."""

    noun = "segmentation"
    title = "Segmentation (DeepLabV3+)"
    metric = "mIoU"
    plot_stem = "miou"
    options_type = SegmentationOptions
    synthetic_part = "msrs"
    data_help = "MSRS root (default: the synthetic default's msrs set)"
    config_help = "segmentation config (same defaults)"  # listed after detection's
    run_files = ("config.py",)
    run_dirs = ("train", "predictions")
    resume_option = "--resume"

    def plan(self, request: RunRequest) -> SegmentationPlan:
        from fusion_perception.config_files import check_numbers, merge_options
        from fusion_perception.devices import torch_device
        from fusion_perception.errors import ConfigError, check_input_file
        from fusion_perception.fusion.method import resolve_method
        from fusion_perception.outputs import check_output_dir
        from fusion_perception.segmentation.config import apply_overrides, load_config, set_dataset
        from fusion_perception.segmentation.data import seg_source
        from fusion_perception.segmentation.train import rank, register_components

        register_components()
        # the arguments first: nothing is read or written until they are all right
        opts = request.options
        device = torch_device(request.device)  # one torch device (GPU ids: this process's)
        if opts.launcher not in ("none", "pytorch"):
            raise ConfigError(f"launcher must be 'none' or 'pytorch', not {opts.launcher!r}")
        if opts.launcher == "pytorch" and not device.startswith("cuda"):
            raise ConfigError("--launcher pytorch (DDP) needs CUDA GPUs")
        if opts.amp and not device.startswith("cuda"):
            raise ConfigError("--amp needs a CUDA GPU")
        cfg, cfg_name = load_config(request.config, device)
        apply_overrides(cfg, opts.epochs, opts.batch, opts.workers)
        if opts.cfg_options:  # explicit entries win over what --epochs/--batch derived
            merge_options(cfg, opts.cfg_options)
        check_numbers(cfg.to_dict(), f"segmentation config {cfg_name}")
        # Resolving the method checks its name (a ConfigError listing the registered ones) and
        # tells which weights it fuses with.
        method = resolve_method(request.method, request.weights, request.data)
        if opts.encoder_weights is not None:
            check_input_file(opts.encoder_weights, "encoder weights file")
        out = request.out if request.out is not None else \
            DEFAULT_WORK_ROOT / cfg_name / f"{method.label}_seed{request.seed}"
        out = check_output_dir(out, done=RESULTS_FILE).resolve()
        if request.fused_dir is not None:
            check_output_dir(request.fused_dir, "--fused-dir", done=MANIFEST_FILE)
        source = seg_source(request.data, self.synthetic_part)
        set_dataset(cfg, source)  # the dataset's classes and ignore index, from its layout
        fuse_device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if opts.launcher == "pytorch" else device
        leader = rank() == 0
        return SegmentationPlan(request, out, method, _settings(request, method.label, source, method, cfg, cfg_name),
                                device=device, fuse_device=fuse_device, log_file=out / "run.log" if leader else None,
                                leader=leader, source=source, cfg=cfg, cfg_name=cfg_name, chosen=request.config is None)

    def has_work(self, out: Path) -> bool:
        from fusion_perception.segmentation.train import latest_checkpoint

        return latest_checkpoint(out / "train") is not None

    def announce(self, plan: SegmentationPlan) -> None:
        from fusion_perception.console import stage
        from fusion_perception.segmentation.config import PAPER_CONFIG

        cfg = plan.cfg
        if plan.request.progress and plan.leader and plan.chosen and not plan.device.startswith("cuda"):
            stage(f"segmentation config: {plan.cfg_name} on the CPU ({cfg.model.encoder_name}, "
                  f"{cfg.train_cfg.max_epochs} epochs); the paper's recipe: --config {Path(PAPER_CONFIG).stem} "
                  "(for GPUs)")
        super().announce(plan)

    def read_source(self, plan: SegmentationPlan) -> Path:
        return plan.source

    def fuse(self, plan: SegmentationPlan, source: Path) -> Any:
        """The leader fuses (into the shared cache); under torchrun the other ranks wait, then read it."""
        from fusion_perception.console import stage
        from fusion_perception.runs import fuse_for_run, fused_folder
        from fusion_perception.segmentation.report import fusion_line
        from fusion_perception.segmentation.train import init_distributed

        distributed = plan.options.launcher == "pytorch"
        if distributed:
            init_distributed(plan.cfg)
        plan.fused_dir = fused_folder(plan, source)
        fused = None
        if plan.leader:
            fused = fuse_for_run(plan, source, self.fuse_layout)
            if plan.request.progress:
                stage(fusion_line(plan.label, fused, plan.fused_dir.resolve()))
        if distributed:
            from mmengine.dist import barrier

            from fusion_perception.fusion.manifest import load_fused_dataset

            barrier()
            fused = load_fused_dataset(plan.fused_dir.resolve())
        return fused

    def prepare(self, plan: SegmentationPlan, fused: Any) -> Any:
        """The fused dataset checked (its labels are masks), the config filled in."""
        from fusion_perception.data.layouts import find_layout
        from fusion_perception.errors import DatasetError
        from fusion_perception.segmentation.config import fill_config
        from fusion_perception.segmentation.data import class_weights

        if "seg" not in getattr(find_layout(fused.source_layout), "tasks", ()):  # the layout: are its labels masks?
            raise DatasetError(plan.source, "segmentation needs a dataset whose labels are masks (the MSRS "
                                            f"layout, say); this one is {fused.source_layout!r}")
        cfg = plan.cfg
        if cfg.model.get("class_weight") == "auto":
            cfg.model.class_weight = class_weights(fused, int(cfg.model.num_classes))
        fill_config(cfg, plan)
        return fused

    def train(self, plan: SegmentationPlan, fused: Any) -> None:
        from fusion_perception.checkpoints import drop_cut_checkpoints
        from fusion_perception.console import stage
        from fusion_perception.runner_guards import load_or_resume
        from fusion_perception.segmentation.train import train_runner

        if plan.resume and plan.leader:
            for cut in drop_cut_checkpoints(plan.out / "train"):  # cut short by a crash: resume from the one before
                stage(f"{cut} was cut short (a crash?); removed, resuming from the checkpoint before it")
        load_or_resume(plan.cfg, plan.resume)  # an unfinished run with these settings continues
        if plan.leader:
            plan.cfg.dump(str(plan.out / "config.py"))
        plan.runner, train_s = train_runner(plan.cfg, plan.device)
        plan.seconds = {"train": train_s}

    def evaluate(self, plan: SegmentationPlan, fused: Any) -> dict[str, Any]:
        from fusion_perception.segmentation.evaluate import test_runner

        metrics, plan.seconds["test"] = test_runner(plan.runner, plan.device)
        request = plan.request
        if not plan.leader:
            return {"task": "seg", "method": request.method, "label": plan.label, "seed": request.seed,
                    "mIoU": metrics.get("mIoU")}
        return _leader_results(plan)

    def source_root(self, data: str | Path | None) -> Path:
        from fusion_perception.segmentation.data import seg_source

        return seg_source(data, self.synthetic_part)

    def table_columns(self, results: list[dict[str, Any]]) -> tuple[str, ...]:
        """The classes in id order (the paper's Table 4, the unlabelled class included), then mIoU."""
        return (*next((r.get("classes") or list(r.get("per_class_IoU") or ()) for r in results), ()), self.metric)

    def table_values(self, result: dict[str, Any]) -> dict[str, float]:
        return super().table_values({**result["per_class_IoU"], "classes": self.table_columns([result])[:-1],
                                     self.metric: result["mIoU"]})

    def image_scores(self, result: dict[str, Any]) -> Any:
        from fusion_perception.segmentation.evaluate import image_scores

        return image_scores(result)


def _settings(request: RunRequest, label: str, source: Path, method: Any, cfg: Any, cfg_name: str) -> dict[str, Any]:
    """What the run depends on (a finished run is reused only when they match)."""
    from fusion_perception.files import file_sha256
    from fusion_perception.record import fingerprint, jsonable
    from fusion_perception.segmentation.train import world_size

    opts = request.options
    return jsonable({
        "task": "seg",
        "method": request.method,
        "label": label,
        "seed": int(request.seed),
        "source": str(source),
        **method.settings(),
        "config": cfg_name,
        "config_sha256": fingerprint(cfg.to_dict()),
        "config_values": cfg.to_dict(),
        "encoder_weights_sha256": file_sha256(opts.encoder_weights) if opts.encoder_weights else None,
        "amp": bool(opts.amp),
        "skip_bad": bool(request.skip_bad),
        "world_size": world_size(),
    })


def _leader_results(plan: SegmentationPlan) -> dict[str, Any]:
    """The run's results (``results.json``, ``results.md``) from the test's confusion matrix."""
    from fusion_perception.console import percent, stage
    from fusion_perception.segmentation.evaluate import test_scores
    from fusion_perception.segmentation.report import build_results, versions, write_results
    from fusion_perception.segmentation.train import latest_checkpoint

    request, out, seconds = plan.request, plan.out, plan.seconds
    ckpt = latest_checkpoint(out / "train")
    confusion, classes, num_test = test_scores(plan.runner)
    results = build_results(
        confusion, classes, method=request.method, label=plan.label, seed=request.seed,
        extra={
            "num_test_images": num_test,
            "config": plan.cfg_name,
            "checkpoint": str(ckpt) if ckpt else None,
            "run_dir": str(out),
            "fused_dir": str(plan.fused_dir.resolve()),
            "predictions_dir": str(out / "predictions"),
            "epochs": int(plan.cfg.train_cfg.max_epochs),
            "train_time_s": round(seconds["train"], 2),
            "eval_time_s": round(seconds["test"], 2),
            "device": plan.device,
            "versions": versions(),
            "settings": plan.settings,
        },
    )
    write_results(out, results)
    if request.progress:
        stage(f"test: {results['num_test_images']} images, mIoU {percent(results['mIoU'])} "
              f"(train {seconds['train']:.0f} s, test {seconds['test']:.0f} s)")
    return results


def run_segmentation(data_root: str | Path | None = None, fusion: str = "mean", out: str | Path | None = None,
                     **options: Any) -> dict[str, Any]:
    """Run the segmentation protocol for one fusion method and seed; return results.json's content.

    ``data_root``: MSRS-layout folder (``{train,test}/{ir,vi,Segmentation_labels}``); ``None`` for
    the synthetic default's ``msrs`` set. ``fusion``: a registered fusion method or
    ``folder:NAME=PATH``. ``out``: default ``work_dirs/seg/<config>/<label>_seed<seed>``.
    ``options``: the fields of :class:`~fusion_perception.runs.RunRequest` (``config`` — a file, a
    name in ``configs/seg`` or an mmengine ``Config``; default the paper recipe on GPU, ``small_cpu``
    on CPU —, ``seed``, ``weights`` — the fusion checkpoint —, ``device`` — ``"cpu"`` or ``"cuda"``,
    default CUDA when present —, ``fused_dir``, ``fuse_batch_size``, ``skip_bad``, ``force``,
    ``overwrite``, ``progress``, ``verbose``) and of :class:`SegmentationOptions`.

    Every argument is checked before anything is read or written. A run whose results.json
    exists and whose settings (method, fusion checkpoint, data, config, seed, encoder weights,
    AMP, world size) match is returned without retraining. An unfinished run with the same
    settings continues from its last checkpoint (the same command again; ``resume`` is implied).
    A run with other settings is refused, saying what differs, unless ``overwrite``.
    """
    options.setdefault("device", None)
    return SegmentationTask().run(RunRequest.from_options(SegmentationOptions, data=data_root, method=fusion,
                                                          out=out, **options))
