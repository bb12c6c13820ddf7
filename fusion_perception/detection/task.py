"""The detection protocol as a registered task: fuse M3FD, train YOLO on the fused images, score with pycocotools.

:func:`run_detection` is the whole protocol for one fusion method and seed, through the run
skeleton (:func:`fusion_perception.runs.run_task`):

1. the source dataset (M3FD original or TarDAL layout; anything without boxes is refused);
2. fused with the method into the shared cache (reused when its manifest matches);
3. split 8:1:1 by seed (split files stored and reused) and exported as ultralytics' YOLO layout;
4. a finished run with the same settings (the fused images and the split included) is returned;
5. ultralytics YOLO trained offline (CPU, one GPU, or DDP with ``device="0,1,2,3"``); an
   interrupted training resumes from ``last.pt``;
6. the test split predicted and scored: ``results.json`` (last), ``results.md`` (a Table 3 row)
   and ``predictions.png``.

Run directory layout (``out``)::

    run.json                  settings of the run (what eval_det.py reads)
    splits/seed<S>/           train/val/test name lists (unless ``split_dir`` is given)
    yolo/                     YOLO layout + dataset.yaml
    train/weights/{best,last}.pt
    eval/<split>/{ground_truth,predictions}.json
    predictions.png, results.md, results.json
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusion_perception.data.records import M3FD_CLASSES
from fusion_perception.detection.config import CPU_CONFIG, DEFAULT_CONFIG, DEFAULTS, RESULT_KEYS
from fusion_perception.detection.report import TABLE_COLUMNS
from fusion_perception.registry import TASKS
from fusion_perception.runs import (
    RunPlan, RunRequest, Task, clear_run, comparable, fingerprint, jsonable, read_results, same_settings)

_LOG = logging.getLogger(__name__)

# What a run's settings are called in a refusal ("epochs 10 → 2, config small_cpu → yolov5s_m3fd").
_WORDS = {"config_name": "config", "config.epochs": "epochs", "config.batch": "batch", "config.imgsz": "imgsz",
          "config.model": "model", "config.lr0": "lr0", "config.optimizer": "optimizer", "method": "method",
          "seed": "seed", "fusion_weights_sha256": "fusion weights", "det_weights_sha256": "detector weights",
          "source_root": "data", "fused": "fused images", "split": "split", "model_sha256": "model file"}
# Files of a finished or started run (``--overwrite`` removes them, nothing else).
_RUN_FILES = ("results.json", "results.md", "predictions.png", "run.json")
_RUN_DIRS = ("train", "eval")


@dataclass
class DetectionOptions:
    """The detection run's own options: the detector's start, the recipe's overrides, the split's folder."""

    det_weights: str | Path | None = None  # local YOLO weights to start from
    model: str | None = None  # a model YAML or local .pt (the config's otherwise)
    epochs: int | None = None
    batch: int | None = None
    imgsz: int | None = None
    workers: int | None = None
    split_dir: str | Path | None = None  # default OUT/splits/seed<S>


@dataclass
class DetectionPlan(RunPlan):
    cfg: dict[str, Any] = field(default_factory=dict)  # the recipe (config.load_config)
    chosen: bool = False  # the config was picked for the device
    det_weights: Path | None = None
    split_dir: Path = Path()
    stored: dict[str, Any] | None = None  # the run already in the folder (finished or started)


@dataclass
class PreparedDetection:
    fused: Any  # FusedDataset
    yolo: Any  # YoloDataset
    info: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)  # what the trained model depends on


@TASKS.register_module(name="det")
class DetectionTask(Task):
    """Detection: YOLO on the fused M3FD images, mAP@0.5 (the paper's Table 3)."""

    title = "Detection (YOLO)"
    metric = "mAP@0.5"
    plot_stem = "map50"
    columns = TABLE_COLUMNS
    options_type = DetectionOptions
    synthetic_default, synthetic_part = "det", "m3fd"
    gpu_ids = True  # ultralytics' own device string: "0,1" trains with DDP
    cpu_config_note = "detection on the CPU: configs/det/small_cpu.py (the paper's recipe: --det-config yolov5s_m3fd)"
    data_help = "M3FD root (default: the synthetic default's m3fd set)"
    config_help = "detection config (default: paper recipe on GPU, small CPU config on CPU)"

    def plan(self, request: RunRequest) -> DetectionPlan:
        from fusion_perception.detection.config import default_config, load_config
        from fusion_perception.detection.model import check_yolo_weights
        from fusion_perception.devices import check_device
        from fusion_perception.outputs import check_output_dir
        from fusion_perception.runs import build_run_fuser

        opts = request.options
        label = check_fusion_method(request.method)
        chosen = request.config is None
        cfg = load_config(default_config(request.device) if chosen else request.config, model=opts.model,
                          epochs=opts.epochs, batch=opts.batch, imgsz=opts.imgsz, workers=opts.workers)
        check_device(request.device)
        det_weights = check_yolo_weights(opts.det_weights) if opts.det_weights is not None else None
        weights, fuser = build_run_fuser(request.method, request.weights, request.data)
        out = check_output_dir(request.out if request.out is not None
                               else default_out(label, request.seed, cfg["config_name"]))
        for option, folder in (("--fused-dir", request.fused_dir), ("--split-dir", opts.split_dir)):
            if folder is not None:
                check_output_dir(folder, option)
        settings = _run_request(request, cfg, fuser, det_weights)
        plan = self._data_plan(request, out, label, weights, cfg)
        plan.settings, plan.chosen, plan.det_weights = settings, chosen, det_weights
        return plan

    def _data_plan(self, request: RunRequest, out: Path, label: str, weights: str | None,
                   cfg: dict[str, Any]) -> DetectionPlan:
        from fusion_perception.devices import torch_device

        split_dir = request.options.split_dir
        return DetectionPlan(request, Path(out), label, weights, {}, fuse_device=torch_device(request.device),
                             log_file=Path(out) / "run.log", cfg=cfg,
                             split_dir=Path(split_dir) if split_dir is not None
                             else Path(out) / "splits" / f"seed{request.seed}")

    def check_folder(self, plan: DetectionPlan) -> None:
        # a run already there with other settings is refused before any work
        plan.stored = _existing_run(plan.out)
        if plan.stored is not None and not plan.request.overwrite:
            why = _differences(plan.stored, plan.settings)
            if why is not None:
                from fusion_perception.outputs import refuse_to_replace

                raise refuse_to_replace(plan.out, "a detection run", why)
        return None

    def announce(self, plan: DetectionPlan) -> None:
        from fusion_perception.console import stage

        request, cfg = plan.request, plan.cfg
        if not request.progress:
            return
        if plan.chosen and cfg["config_name"] == CPU_CONFIG:
            stage(f"detection config: {CPU_CONFIG} on the CPU ({Path(str(cfg['model'])).name}, {cfg['epochs']} epochs "
                  f"at {cfg['imgsz']} px); the paper's recipe: --config {DEFAULT_CONFIG} (for GPUs)")
        stage(f"det {plan.label} seed {request.seed} -> {plan.out}"
              + ("" if request.verbose else f" (log: {plan.out / 'run.log'})"))

    def read_source(self, plan: DetectionPlan) -> Any:
        from fusion_perception.detection.data import load_detection_source
        from fusion_perception.errors import check_input_file

        if plan.weights is not None:
            check_input_file(plan.weights, "fusion checkpoint")
        return load_detection_source(plan.request.data, skip_bad=plan.request.skip_bad)

    def fuse(self, plan: DetectionPlan, source: Any) -> Any:
        from fusion_perception.console import stage
        from fusion_perception.detection.report import fusion_line
        from fusion_perception.runs import fuse_for_run

        fused = fuse_for_run(plan, source, self.fuse_layout)
        _LOG.info("%s fused cache %s", "reused" if plan.fused_reused else "wrote", plan.fused_dir)
        if plan.request.progress:
            stage(fusion_line(plan.label, len(fused), plan.fused_dir, plan.fused_reused))
        return fused

    def prepare(self, plan: DetectionPlan, fused: Any) -> PreparedDetection:
        from fusion_perception.detection.data import export_yolo, load_or_make_split

        classes = tuple(fused.classes) or M3FD_CLASSES
        split, split_reused = load_or_make_split(fused, plan.split_dir, plan.request.seed, plan.cfg["split_ratio"])
        yolo = export_yolo(fused, split, plan.out / "yolo", classes)
        source = plan.source
        info = {"fused_dir": str(plan.fused_dir.resolve()), "split_dir": str(plan.split_dir.resolve()),
                "fused_reused": plan.fused_reused, "split_reused": split_reused, "yolo_reused": yolo.reused,
                "source_root": str(Path(source.root).resolve()), "source_layout": source.layout}
        return PreparedDetection(fused, yolo, info)

    def finished(self, plan: DetectionPlan, prepared: PreparedDetection) -> dict[str, Any] | None:
        from fusion_perception.console import stage
        from fusion_perception.detection.data import fused_fingerprint, split_digest

        request, out = plan.request, plan.out
        prepared.settings = {**{k: plan.settings[k] for k in ("method", "seed")},
                             "config": {k: plan.cfg[k] for k in RESULT_KEYS},
                             **{k: plan.settings[k] for k in ("model_sha256", "det_weights_sha256")},
                             "fused": fused_fingerprint(prepared.fused), "split": split_digest(prepared.yolo.split)}
        key = fingerprint(prepared.settings)
        if plan.stored is not None and not request.overwrite:
            why = _differences(plan.stored, plan.settings, prepared.settings)
            if why is not None:  # same command, other data: the stored run is not this one any more
                from fusion_perception.outputs import refuse_to_replace

                raise refuse_to_replace(out, "a detection run", why)
            if not request.force and plan.stored.get("settings_key") == key and (out / "results.json").is_file():
                _LOG.info("run %s already finished with these settings; returning its results", out)
                if request.progress:
                    stage("finished earlier with the same settings: its results are reused (--force retrains)")
                return read_results(out)
        if request.overwrite or request.force:
            clear_run(out, _RUN_FILES, _RUN_DIRS, ("predictions_*.png",))  # asked for: right before training
        else:
            (out / "results.json").unlink(missing_ok=True)  # an unfinished run's: must not mark it finished
        return None

    def train(self, plan: DetectionPlan, prepared: PreparedDetection) -> None:
        import time

        from fusion_perception.detection.train import train_yolo, training_state
        from fusion_perception.runs import write_json

        request, out = plan.request, plan.out
        run = _run_record(plan, prepared)
        state = training_state(out / "train" / "weights")
        write_json(out / "run.json", run)
        if state == "done":
            _LOG.info("training already finished in %s; evaluating only", out / "train")
            return
        t0 = time.time()
        train_yolo(prepared.yolo, out, plan.cfg, seed=request.seed, device=request.device,
                   det_weights=plan.det_weights, resume=state == "partial", progress=request.progress)
        plan.times["train"] = round(time.time() - t0, 2)
        write_json(out / "run.json", {**run, "times_s": plan.times})

    def evaluate(self, plan: DetectionPlan, prepared: PreparedDetection) -> dict[str, Any]:
        from fusion_perception.console import stage
        from fusion_perception.detection.evaluate import evaluate_run

        results = evaluate_run(plan.out, "test", device=plan.request.device)
        if plan.request.progress:
            stage(f"test: {results['num_images']} images, mAP@0.5 {100 * results['mAP50']:.1f}")
        return results

    def comparison_options(self, out: Path, seed: int) -> dict[str, Any]:
        return {"split_dir": out / self.name / "splits" / f"seed{seed}"}  # every method: the same split

    def table_values(self, result: dict[str, Any]) -> dict[str, float]:
        values = {c: result["per_class_AP50"].get(c) for c in self.columns[:-1]}
        return super().table_values({**values, self.metric: result["mAP50"]})

    def image_scores(self, result: dict[str, Any]) -> Any:
        from fusion_perception.detection.evaluate import image_scores

        return image_scores(result)


def check_fusion_method(spec: str) -> str:
    """The method's label; an unknown name is a ConfigError listing the registered ones."""
    from fusion_perception.errors import ConfigError
    from fusion_perception.fusion.base import method_label, parse_method_spec, registered_methods

    name, _ = parse_method_spec(spec)
    known = registered_methods()
    if name not in known:
        raise ConfigError(f"unknown fusion method {name!r}; registered methods: {', '.join(known)} "
                          "(or folder:NAME=PATH for precomputed results)")
    return method_label(spec)


def default_out(label: str, seed: int, config_name: str = DEFAULT_CONFIG) -> Path:
    """``work_dirs/det/<config>/<method>_seed<S>``: runs of other configs do not share a folder."""
    return Path("work_dirs") / "det" / config_name / f"{label}_seed{seed}"


def _run_request(request: RunRequest, cfg: dict[str, Any], fuser: Any, det_weights: Path | None) -> dict[str, Any]:
    """What a run is, known before anything is fused: compared with a run already in the folder."""
    from fusion_perception.fusion.base import file_sha256

    source = None if request.data is None else str(Path(request.data).expanduser().resolve())
    return jsonable({
        "method": request.method,
        "seed": int(request.seed),
        "config_name": cfg["config_name"],
        "config": {k: cfg[k] for k in RESULT_KEYS},
        "model_sha256": file_sha256(cfg["model"]) if Path(cfg["model"]).is_file() else cfg["model"],
        "fuser": fuser.config(),
        "fusion_weights_sha256": fuser.checkpoint_sha256(),
        "det_weights_sha256": file_sha256(det_weights) if det_weights else None,
        "source_root": source,
    })


def _run_record(plan: DetectionPlan, prepared: PreparedDetection) -> dict[str, Any]:
    """``run.json``: what eval_det.py reads back (the recipe, the data's folders, the settings)."""
    request, weights, det_weights = plan.request, plan.weights, plan.det_weights
    return {
        "task": "det",
        "method": request.method,
        "label": plan.label,
        "seed": int(request.seed),
        "request": plan.settings,
        "settings_key": fingerprint(prepared.settings),
        "settings": prepared.settings,
        "config": plan.cfg,
        "classes": list(prepared.yolo.classes),
        "device": request.device,
        "fusion_weights": str(Path(weights).resolve()) if weights else None,
        "det_weights": str(Path(det_weights).resolve()) if det_weights else None,
        "dataset_yaml": str(prepared.yolo.yaml_path.resolve()),
        **prepared.info,
        "times_s": plan.times,
    }


def _existing_run(out: Path) -> dict[str, Any] | None:
    """The settings of the run in ``out`` (finished or started), or None when there is none."""
    from fusion_perception.runs import read_json

    stored = next((s for s in (read_json(out / name) for name in ("results.json", "run.json")) if s), {})
    weights = [p for p in (out / "train" / "weights").glob("*.pt")] if (out / "train").is_dir() else []
    if not stored and not weights:
        return None
    if "request" in stored:
        return stored
    # a run written before requests were stored: compare what it recorded
    cfg = stored.get("config") or {}
    return {**stored, "request": {"method": stored.get("method"), "seed": stored.get("seed"),
                                  "config": {k: cfg.get(k) for k in RESULT_KEYS if k in cfg}}}


def _differences(stored: dict[str, Any], request: dict[str, Any], settings: dict[str, Any] | None = None) -> str | None:
    """None when the run in a folder is this run; else what differs, in words."""
    from fusion_perception.outputs import describe_changes

    old = stored.get("request") or {}
    new = {k: v for k, v in request.items() if k in old} if "fuser" not in old else request
    if not same_settings(old, new):
        return describe_changes(comparable(old), comparable(new), _WORDS)
    if settings is not None and stored.get("settings_key") not in (None, fingerprint(settings)):
        before = stored.get("settings") or {}
        if before:
            return describe_changes({k: before.get(k) for k in ("fused", "split")},
                                    {k: settings[k] for k in ("fused", "split")}, _WORDS) + \
                " (the fused images or the split changed since it trained, e.g. edited sources)"
        return "the fused images or the split changed since it trained"
    return None


def run_detection(data_root: str | Path | None = None, fusion: str = "vi", out: str | Path | None = None,
                  **options: Any) -> dict[str, Any]:
    """Fuse, split, train and evaluate one detection run; returns the results dict (``results.json``).

    ``data_root=None`` uses the synthetic default's M3FD set. ``options``: the fields of
    :class:`~fusion_perception.runs.RunRequest` (``config``, ``seed``, ``weights`` — the fusion
    checkpoint —, ``device``, ``fused_dir``, ``skip_bad``, ``force``, ``overwrite``, ``progress``,
    ``verbose``) and of :class:`DetectionOptions` (``det_weights``, ``model``, ``epochs``, ``batch``,
    ``imgsz``, ``workers``, ``split_dir``). ``out`` defaults to ``work_dirs/det/<config>/<method>_seed<S>``.

    Every argument is checked before anything is read or written. A finished run with the same
    settings returns its stored results at once (``force=True`` retrains it); an interrupted one
    resumes from its ``last.pt``. A run in ``out`` (or a fused dataset in ``fused_dir``) made
    with other settings is never replaced unless ``overwrite=True``: the refusal says what
    differs. ``config=None`` is the paper's recipe on a GPU and ``small_cpu`` on a CPU.
    """
    return DetectionTask().run(RunRequest.from_options(DetectionOptions, data=data_root, method=fusion, out=out,
                                                       **options))


def prepare_detection_data(data_root: str | Path | None, fusion: str, out: str | Path,
                           **options: Any) -> tuple[Any, Any, dict[str, Any]]:
    """The protocol's first steps alone: read, fuse (cached), split (stored) and export the YOLO layout.

    ``options`` as :func:`run_detection`'s. A fused dataset already in ``fused_dir`` is reused when it
    was made the same way and refused otherwise (another method's output, say); ``overwrite``
    replaces it. Returns the fused dataset, the YOLO layout and a dict of what was reused.
    """
    from fusion_perception.fusion.base import resolve_weights

    task = DetectionTask()
    request = RunRequest.from_options(DetectionOptions, data=data_root, method=fusion, out=out, **options)
    label = check_fusion_method(fusion)
    weights = resolve_weights(fusion, request.weights, data_root)
    plan = task._data_plan(request, Path(out), label, weights, {"split_ratio": DEFAULTS["split_ratio"]})
    plan.source = task.read_source(plan)
    prepared = task.prepare(plan, task.fuse(plan, plan.source))
    return prepared.fused, prepared.yolo, prepared.info


__all__ = ["DetectionOptions", "DetectionTask", "default_out", "prepare_detection_data", "run_detection"]
