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
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusion_perception.detection.config import CPU_CONFIG, DEFAULT_CONFIG, DEFAULTS, RESULT_KEYS
from fusion_perception.record import MANIFEST_FILE, RESULTS_FILE
from fusion_perception.registry import TASKS
from fusion_perception.runs import RunPlan, RunRequest, Task

_LOG = logging.getLogger(__name__)


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


@dataclass
class PreparedDetection:
    fused: Any  # FusedDataset
    yolo: Any  # YoloDataset
    info: dict[str, Any]


@TASKS.register_module(name="det")
class DetectionTask(Task):
    """Detection: YOLO on the fused images, mAP@0.5 (the paper's Table 3)."""

    noun = "detection"
    title = "Detection (YOLO)"
    metric = "mAP@0.5"
    plot_stem = "map50"
    options_type = DetectionOptions
    synthetic_default, synthetic_part = "det", "m3fd"
    gpu_ids = True  # ultralytics' own device string: "0,1" trains with DDP
    cpu_config_note = "detection on the CPU: configs/det/small_cpu.py (the paper's recipe: --det-config yolov5s_m3fd)"
    data_help = "M3FD root (default: the synthetic default's m3fd set)"
    config_help = "detection config (default: paper recipe on GPU, small CPU config on CPU)"
    run_files = ("predictions.png",)
    run_dirs = ("train", "eval")
    run_patterns = ("predictions_*.png",)

    def plan(self, request: RunRequest) -> DetectionPlan:
        from fusion_perception.detection.config import default_config, load_config
        from fusion_perception.detection.model import check_yolo_weights
        from fusion_perception.devices import resolve_device, torch_device
        from fusion_perception.fusion.method import resolve_method
        from fusion_perception.outputs import check_output_dir

        opts = request.options
        method = resolve_method(request.method, request.weights, request.data)
        device = resolve_device(request.device)
        chosen = request.config is None
        cfg = load_config(default_config(device) if chosen else request.config, model=opts.model,
                          epochs=opts.epochs, batch=opts.batch, imgsz=opts.imgsz, workers=opts.workers)
        det_weights = check_yolo_weights(opts.det_weights) if opts.det_weights is not None else None
        out = check_output_dir(request.out if request.out is not None
                               else default_out(method.label, request.seed, cfg["config_name"]), done=RESULTS_FILE)
        for option, folder, done in (("--fused-dir", request.fused_dir, MANIFEST_FILE),
                                     ("--split-dir", opts.split_dir, "test.txt")):
            if folder is not None:
                check_output_dir(folder, option, done=done)
        split_dir = Path(opts.split_dir) if opts.split_dir is not None else out / "splits" / f"seed{request.seed}"
        return DetectionPlan(request, out, method, _settings(request, cfg, method, det_weights), device=device,
                             fuse_device=torch_device(device), log_file=out / "run.log", cfg=cfg, chosen=chosen,
                             det_weights=det_weights, split_dir=split_dir)

    def has_work(self, out: Path) -> bool:
        return any((out / "train" / "weights").glob("*.pt"))

    def announce(self, plan: DetectionPlan) -> None:
        from fusion_perception.console import stage

        cfg = plan.cfg
        if plan.request.progress and plan.chosen and cfg["config_name"] == CPU_CONFIG:
            stage(f"detection config: {CPU_CONFIG} on the CPU ({Path(str(cfg['model'])).name}, {cfg['epochs']} epochs "
                  f"at {cfg['imgsz']} px); the paper's recipe: --config {DEFAULT_CONFIG} (for GPUs)")
        super().announce(plan)

    def read_source(self, plan: DetectionPlan) -> Any:
        from fusion_perception.detection.data import load_detection_source

        return load_detection_source(plan.request.data, skip_bad=plan.request.skip_bad, layout=plan.request.layout)

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

        split, split_reused = load_or_make_split(fused, plan.split_dir, plan.request.seed, plan.cfg["split_ratio"])
        yolo = export_yolo(fused, split, plan.out / "yolo", tuple(fused.classes))
        source = plan.source
        info = {"fused_dir": str(plan.fused_dir.resolve()), "split_dir": str(plan.split_dir.resolve()),
                "fused_reused": plan.fused_reused, "split_reused": split_reused, "yolo_reused": yolo.reused,
                "source_root": str(Path(source.root).resolve()), "source_layout": source.layout}
        return PreparedDetection(fused, yolo, info)

    def data_settings(self, plan: DetectionPlan, prepared: PreparedDetection) -> dict[str, Any]:
        """What the trained model depends on once the data is known: the fused images and the split."""
        from fusion_perception.detection.data import fused_fingerprint, split_digest

        from fusion_perception.record import jsonable

        settings = plan.settings
        return jsonable({"method": settings["method"], "seed": settings["seed"],
                         "config": {k: plan.cfg[k] for k in RESULT_KEYS},
                         **{k: settings[k] for k in ("model_sha256", "det_weights_sha256")},
                         "fused": fused_fingerprint(prepared.fused), "split": split_digest(prepared.yolo.split)})

    def record_info(self, plan: DetectionPlan, prepared: PreparedDetection) -> dict[str, Any]:
        """What eval_det.py reads back: the recipe, the classes, the data's folders."""
        weights, det_weights = plan.weights, plan.det_weights
        return {**super().record_info(plan, prepared), "config": plan.cfg, "classes": list(prepared.yolo.classes),
                "device": plan.device,
                "fusion_weights": str(Path(weights).resolve()) if weights else None,
                "det_weights": str(Path(det_weights).resolve()) if det_weights else None,
                "dataset_yaml": str(prepared.yolo.yaml_path.resolve()), **prepared.info}

    def train(self, plan: DetectionPlan, prepared: PreparedDetection) -> None:
        import time

        from fusion_perception.detection.train import train_yolo, training_state

        request, out = plan.request, plan.out
        state = training_state(out / "train" / "weights")
        if state == "done":
            _LOG.info("training already finished in %s; evaluating only", out / "train")
            return
        t0 = time.time()
        train_yolo(prepared.yolo, out, plan.cfg, seed=request.seed, device=plan.device,
                   det_weights=plan.det_weights, resume=state == "partial", progress=request.progress)
        plan.times["train"] = round(time.time() - t0, 2)

    def evaluate(self, plan: DetectionPlan, prepared: PreparedDetection) -> dict[str, Any]:
        from fusion_perception.console import stage
        from fusion_perception.detection.evaluate import evaluate_run

        results = evaluate_run(plan.out, "test", device=plan.device)
        if plan.request.progress:
            stage(f"test: {results['num_images']} images, mAP@0.5 {100 * results['mAP50']:.1f}")
        return results

    def comparison_options(self, out: Path, seed: int) -> dict[str, Any]:
        return {"split_dir": out / self.name / "splits" / f"seed{seed}"}  # every method: the same split

    def table_columns(self, results: list[dict[str, Any]]) -> tuple[str, ...]:
        """The classes alphabetically (the paper's Table 3 order), mAP@0.5 per condition of the
        pairs where the dataset has conditions (``mAP@0.5 day``, ``mAP@0.5 night``), then mAP@0.5."""
        from fusion_perception.detection.report import table_classes

        classes = next((r.get("classes") or list(r.get("per_class_AP50") or ()) for r in results), ())
        conditions = sorted({c for r in results for c in r.get("by_condition") or ()})
        return (*table_classes(classes), *(f"{self.metric} {c}" for c in conditions), self.metric)

    def table_values(self, result: dict[str, Any]) -> dict[str, float]:
        by_condition = {f"{self.metric} {c}": m["mAP50"] for c, m in (result.get("by_condition") or {}).items()}
        values = {**result["per_class_AP50"], **by_condition, self.metric: result["mAP50"]}
        return {c: math.nan if values.get(c) is None else float(values[c]) for c in self.table_columns([result])}

    def image_scores(self, result: dict[str, Any]) -> Any:
        from fusion_perception.detection.evaluate import image_scores

        return image_scores(result)


def default_out(label: str, seed: int, config_name: str = DEFAULT_CONFIG) -> Path:
    """``work_dirs/det/<config>/<method>_seed<S>``: runs of other configs do not share a folder."""
    return Path("work_dirs") / "det" / config_name / f"{label}_seed{seed}"


def _settings(request: RunRequest, cfg: dict[str, Any], method: Any, det_weights: Path | None) -> dict[str, Any]:
    """What a run is, known before anything is fused: compared with a run already in the folder."""
    from fusion_perception.files import file_sha256
    from fusion_perception.record import jsonable

    source = None if request.data is None else str(Path(request.data).expanduser().resolve())
    return jsonable({
        "method": request.method,
        "seed": int(request.seed),
        "config_name": cfg["config_name"],
        "config": {k: cfg[k] for k in RESULT_KEYS},
        "model_sha256": file_sha256(cfg["model"]) if Path(cfg["model"]).is_file() else cfg["model"],
        **method.settings(),
        "det_weights_sha256": file_sha256(det_weights) if det_weights else None,
        "source_root": source,
    })


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
    task = DetectionTask()
    request = RunRequest.from_options(DetectionOptions, data=data_root, method=fusion, out=out, **options)
    plan = task.plan(request)
    plan.cfg = {**plan.cfg, "split_ratio": DEFAULTS["split_ratio"]}
    plan.source = task.read_source(plan)
    prepared = task.prepare(plan, task.fuse(plan, plan.source))
    return prepared.fused, prepared.yolo, prepared.info


__all__ = ["DetectionOptions", "DetectionTask", "default_out", "prepare_detection_data", "run_detection"]
