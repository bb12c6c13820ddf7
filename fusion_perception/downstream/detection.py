"""The detection protocol: fuse M3FD, train a YOLO detector on the fused images, score it with pycocotools.

One call, :func:`run_detection`, does the whole protocol for one fusion method and seed:

1. read the source dataset (M3FD original or TarDAL layout; anything without boxes is refused);
2. fuse it with the method (``fuse_dataset``; its cache is reused when the manifest matches and
   recomputed when it is stale, e.g. after a new fusion checkpoint);
3. split 8:1:1 by seed (split files stored and reused) and write the YOLO layout;
4. train ultralytics YOLO from a model YAML (or local weights), offline, single GPU, multi-GPU
   DDP (``device="0,1,2,3"``) or CPU; an interrupted training resumes from ``last.pt``;
5. predict on the test split at a low confidence threshold, score with pycocotools, write
   ``results.json`` (last, atomically), ``results.md`` (a Table 3 row) and ``predictions.png``.

A finished run with the same settings is not redone: its ``results.json`` is returned.

Run directory layout (``out``)::

    run.json                  settings of the run (what eval_det.py reads)
    (fused images: the shared cache work_dirs/fused/<label>/<dataset>, unless ``fused_dir`` is given)
    splits/seed<S>/           train/val/test name lists (unless ``split_dir`` is given)
    yolo/                     YOLO layout + dataset.yaml
    train/weights/{best,last}.pt
    eval/<split>/{ground_truth,predictions}.json
    predictions.png, results.md, results.json
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

from fusion_perception.console import chatter_to, stage
from fusion_perception.console import progress as progress_bar
from fusion_perception.data.image_io import atomic_write_text
from fusion_perception.data.records import M3FD_CLASSES, FusedDataset
from fusion_perception.downstream.det_data import (
    SPLITS,
    YoloDataset,
    clean_boxes,
    export_yolo,
    fused_fingerprint,
    image_size,
    load_or_make_split,
    split_digest,
)
from fusion_perception.devices import check_device
from fusion_perception.errors import ConfigError, DatasetError, check_input_file, clean_message
from fusion_perception.fusion.base import (
    file_sha256,
    method_label,
    parse_method_spec,
    registered_methods,
    resolve_weights,
)
from fusion_perception.metrics.detection import (
    Detection,
    ImageEntry,
    coco_detections,
    coco_ground_truth,
    evaluate_coco,
    table3_header,
    table3_row,
)
from fusion_perception.outputs import check_output_dir, describe_changes, refuse_to_replace
from fusion_perception.provenance import library_versions

_LOG = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "configs" / "det"
DEFAULT_CONFIG = "yolov5s_m3fd"

# The paper's recipe; a config file overrides any of these keys.
DEFAULTS: dict[str, Any] = {
    "model": "yolov5s.yaml",
    "epochs": 400,
    "batch": 8,
    "imgsz": 640,
    "optimizer": "SGD",
    "lr0": 1e-2,
    "workers": 8,
    "split_ratio": (8, 1, 1),
    "train_args": {},  # passed to ultralytics' train() as they are (mosaic, close_mosaic, ...)
    "eval_args": {"conf": 0.001, "iou": 0.7, "max_det": 300, "batch": 8},
    "vis": {"num_images": 4, "conf": 0.25},
}

# Keys whose change makes a finished run stale (device and workers only change speed).
_RESULT_KEYS = ("model", "epochs", "batch", "imgsz", "optimizer", "lr0", "split_ratio", "train_args", "eval_args")


# --------------------------------------------------------------------------- configuration


def resolve_config_path(config: str | Path | None) -> Path | None:
    """A config given by path, or by name in ``configs/det`` (``"small_cpu"``); ``None`` -> the paper recipe."""
    if config is None:
        config = DEFAULT_CONFIG
    path = Path(config)
    if path.is_file():
        return path.resolve()
    for candidate in (CONFIG_DIR / f"{config}", CONFIG_DIR / f"{config}.py"):
        if candidate.is_file():
            return candidate.resolve()
    if str(config) == DEFAULT_CONFIG:
        return None  # configs/ not shipped (non-editable install): the built-in defaults are the recipe
    raise ConfigError(f"detection config {str(config)!r} not found (a file, or one of {available_configs()})")


def available_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.py")) if CONFIG_DIR.is_dir() else []


def load_config(config: str | Path | dict | None = None, **overrides: Any) -> dict[str, Any]:
    """The run's settings: :data:`DEFAULTS`, then the config file, then non-``None`` ``overrides``."""
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULTS.items()}
    source = None
    if isinstance(config, dict):
        loaded = config
    else:
        source = resolve_config_path(config)
        loaded = {}
        if source is not None:
            from fusion_perception.config_files import read_config

            loaded = read_config(source).to_dict()
    for key, value in loaded.items():
        if key in ("train_args", "eval_args", "vis") and isinstance(value, dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    for key, value in overrides.items():
        if value is not None:
            cfg[key] = value
    _check_numbers(cfg)
    cfg["split_ratio"] = tuple(float(x) for x in cfg["split_ratio"])
    cfg["model"] = _resolve_model(str(cfg["model"]), source.parent if source else None)
    cfg["config_file"] = str(source) if source else None
    cfg["config_name"] = "custom" if isinstance(config, dict) else (source.stem if source else DEFAULT_CONFIG)
    return cfg


def _check_numbers(cfg: dict[str, Any]) -> None:
    """The run's numbers, checked before any data is read (the option names are the tools')."""
    rules = (("epochs", 1, "--epochs"), ("imgsz", 32, "--imgsz"), ("workers", 0, "--workers"))
    for key, least, option in rules:
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"{option} (config key {key!r}) must be an integer of at least {least}, not {value!r}")
    batch = cfg["batch"]
    if isinstance(batch, bool) or not isinstance(batch, int) or (batch < 1 and batch != -1):
        raise ConfigError(f"--batch (config key 'batch') must be a positive integer (or -1 for ultralytics' "
                          f"AutoBatch), not {batch!r}")
    if not isinstance(cfg["lr0"], (int, float)) or cfg["lr0"] <= 0:
        raise ConfigError(f"config key 'lr0' must be a positive number, not {cfg['lr0']!r}")
    ratio = cfg["split_ratio"]
    if len(ratio) != 3 or any(not isinstance(x, (int, float)) or x < 0 for x in ratio) or sum(ratio) <= 0:
        raise ConfigError(f"config key 'split_ratio' must be three non-negative numbers (train, val, test), "
                          f"not {ratio!r}")


def _resolve_model(model: str, config_dir: Path | None) -> str:
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
    _ultralytics()
    from ultralytics.nn.tasks import yaml_model_load

    try:
        yaml_model_load(model)  # resolves ultralytics' packaged cfgs (yolov5s.yaml -> v5/yolov5.yaml, scale s)
    except (FileNotFoundError, OSError) as exc:
        raise ConfigError(f"model YAML {model!r} not found locally or among ultralytics' packaged cfgs") from exc
    return model


def check_fusion_method(spec: str) -> tuple[str, str]:
    """``(method name, label)`` for a method spec; unknown names -> ConfigError listing the registered ones."""
    name, _ = parse_method_spec(spec)
    known = registered_methods()
    if name not in known:
        raise ConfigError(
            f"unknown fusion method {name!r}; registered methods: {', '.join(known)} "
            "(or folder:NAME=PATH for precomputed results)"
        )
    return name, method_label(spec)


def check_yolo_weights(path: str | Path, option: str = "--det-weights") -> Path:
    """A local ultralytics checkpoint, checked by loading it safely (nothing in it runs); a
    DatasetError naming the file otherwise (not found, not a ``.pt``, not a YOLO checkpoint)."""
    path = check_input_file(path, f"{option} file")
    if path.suffix.lower() != ".pt":
        raise DatasetError(path, f"{option}: ultralytics reads YOLO weights from .pt files, not "
                                 f"{path.suffix or 'a file without suffix'} (EMMA weights go to --weights)")
    _ultralytics()
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


def _ultralytics():
    from fusion_perception.downstream.det_offline import ultralytics_offline

    return ultralytics_offline()


def torch_device(device: str | int | None) -> str:
    """The fusion/inference device for an ultralytics device string (``"0,1"`` -> ``"cuda:0"``)."""
    d = "cpu" if device is None else str(device).strip().lower()
    if d in ("", "cpu", "mps") or d.startswith("cuda"):
        return d or "cpu"
    return f"cuda:{d.split(',')[0]}"


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


# --------------------------------------------------------------------------- data


def load_detection_source(data_root: str | Path | None, *, skip_bad: bool = False):
    """Read the source dataset and make sure it is a detection dataset (M3FD / TarDAL with boxes)."""
    from fusion_perception.data.layouts import get_layout
    from fusion_perception.data.readers import load_dataset

    if data_root is None:
        from fusion_perception.data.synthetic import ensure_default

        data_root = Path(ensure_default("det")) / "m3fd"
    ds = load_dataset(data_root, skip_bad=skip_bad)
    if "det" not in get_layout(ds.layout).tasks:  # the layout says whether its labels are boxes
        raise DatasetError(
            ds.root,
            f"no detection annotations: this is a {ds.layout!r} dataset; detection needs the M3FD layout "
            "(Ir/, Vis/, Annotation/*.xml) or the TarDAL one (ir/, vi/, labels/*.txt, meta/)",
        )
    if not ds.records:
        raise DatasetError(ds.root, "the dataset has no image pairs")
    for rec in ds.records:
        if rec.boxes is None:
            raise DatasetError(rec.annotation_path or rec.ir_path, "no annotation for this pair")
    return ds


def prepare_detection_data(
    data_root: str | Path | None,
    fusion: str,
    out: str | Path,
    *,
    seed: int = 0,
    weights: str | Path | None = None,
    device: str = "cpu",
    fused_dir: str | Path | None = None,
    split_dir: str | Path | None = None,
    split_ratio: Sequence[float] = (8, 1, 1),
    fuse_batch_size: int = 4,
    skip_bad: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> tuple[FusedDataset, YoloDataset, dict[str, Any]]:
    """Steps 1–3: read, fuse (cached), split (stored) and export the YOLO layout.

    A fused dataset already in ``fused_dir`` is reused when it was made the same way and
    refused otherwise (another method's output, say); ``overwrite`` replaces it.
    Returns the fused dataset, the YOLO layout and a dict of what was reused.
    """
    from fusion_perception.fusion.stage import fuse_dataset

    from fusion_perception.fusion.cache import cache_label, default_fused_dir

    _, label = check_fusion_method(fusion)
    out = Path(out)
    split_dir = Path(split_dir) if split_dir is not None else out / "splits" / f"seed{seed}"
    weights = resolve_weights(fusion, weights, data_root)
    if weights is not None:
        check_input_file(weights, "fusion checkpoint")
    source = load_detection_source(data_root, skip_bad=skip_bad)
    fused_dir = Path(fused_dir) if fused_dir is not None else default_fused_dir(source.root,
                                                                                  cache_label(label, weights))
    before = _manifest_stamp(fused_dir)
    t0 = time.time()
    fused = fuse_dataset(
        source, fusion, fused_dir, device=torch_device(device), batch_size=fuse_batch_size,
        weights=str(weights) if weights is not None else None, skip_bad=skip_bad,
        on_mismatch="replace" if overwrite else "error", progress=progress,
    )
    fused_reused = before is not None and before == _manifest_stamp(fused_dir)
    _LOG.info("%s fused cache %s (%.1fs)", "reused" if fused_reused else "wrote", fused_dir, time.time() - t0)
    if progress:
        stage(f"fuse {label}: {len(fused)} images {'reused from' if fused_reused else 'written to'} {fused_dir}")

    classes = tuple(fused.classes) or M3FD_CLASSES
    split, split_reused = load_or_make_split(fused, split_dir, seed, split_ratio)
    yolo = export_yolo(fused, split, out / "yolo", classes)
    info = {"fused_dir": str(fused_dir.resolve()), "split_dir": str(split_dir.resolve()),
            "fused_reused": fused_reused, "split_reused": split_reused, "yolo_reused": yolo.reused,
            "source_root": str(Path(source.root).resolve()), "source_layout": source.layout}
    return fused, yolo, info


def _manifest_stamp(fused_dir: Path) -> tuple[int, int] | None:
    m = fused_dir / "manifest.json"
    try:
        st = m.stat()
        return st.st_mtime_ns, st.st_size
    except OSError:
        return None


# --------------------------------------------------------------------------- training


def train_yolo(
    yolo: YoloDataset,
    run_dir: str | Path,
    cfg: dict[str, Any],
    *,
    seed: int = 0,
    device: str = "cpu",
    det_weights: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> Path:
    """Train ultralytics YOLO on the exported layout; returns ``run_dir/train/weights/best.pt``.

    ``progress``: a bar over the epochs on the terminal (ultralytics' own per-batch bars go
    wherever stdout goes: the run's log under :func:`~fusion_perception.console.chatter_to`)."""
    _ultralytics()
    from ultralytics import YOLO

    from fusion_perception.downstream.det_trainer import OfflineDetectionTrainer

    run_dir = Path(run_dir)
    weights_dir = run_dir / "train" / "weights"
    on_cpu = torch_device(device) == "cpu"
    bar = progress_bar(total=int(cfg["epochs"]), desc="train YOLO", unit="epoch", disable=not progress)

    def on_start(trainer) -> None:
        bar.reset(total=max(0, trainer.epochs - trainer.start_epoch))  # fewer when resuming

    def on_epoch_end(trainer) -> None:
        bar.update(1)
        loss = getattr(trainer, "tloss", None)  # the epoch's mean training losses (box, cls, dfl)
        values = loss.values() if isinstance(loss, dict) else [loss] if loss is not None else []
        total = sum(float(v.sum()) if hasattr(v, "sum") else float(v) for v in values)
        if values:
            bar.set_postfix_str(f"loss {total:.3f}", refresh=False)

    if resume and (weights_dir / "last.pt").is_file():
        _LOG.info("resuming training from %s", weights_dir / "last.pt")
        model = YOLO(str(weights_dir / "last.pt"))
        model.add_callback("on_train_start", on_start)
        model.add_callback("on_train_epoch_end", on_epoch_end)
        with bar:
            model.train(resume=True, trainer=OfflineDetectionTrainer, device=device, workers=cfg["workers"],
                        plots=False)
    else:
        shutil.rmtree(run_dir / "train", ignore_errors=True)
        model = YOLO(cfg["model"], task="detect")
        args = {
            "data": str(yolo.yaml_path),
            "epochs": int(cfg["epochs"]),
            "batch": int(cfg["batch"]),
            "imgsz": int(cfg["imgsz"]),
            "optimizer": cfg["optimizer"],
            "lr0": float(cfg["lr0"]),
            "workers": int(cfg["workers"]),
            "device": device,
            "seed": int(seed),
            "deterministic": True,
            "project": str(run_dir.resolve()),
            "name": "train",
            "exist_ok": True,
            "plots": False,  # plots need fonts and time; our own predictions.png is drawn with cv2
            "amp": not on_cpu,
            "pretrained": str(det_weights) if det_weights else False,
            "verbose": True,
            **cfg["train_args"],
        }
        model.add_callback("on_train_start", on_start)
        model.add_callback("on_train_epoch_end", on_epoch_end)
        with bar:
            model.train(trainer=OfflineDetectionTrainer, **args)
    best = weights_dir / "best.pt"
    if not best.is_file():
        best = weights_dir / "last.pt"
    if not best.is_file():
        raise RuntimeError(f"training finished without a checkpoint in {weights_dir}")
    return best


def training_state(weights_dir: str | Path) -> str:
    """``"done"`` (ultralytics strips the optimizer from last.pt at the end), ``"partial"`` (resumable) or ``"none"``."""
    last = Path(weights_dir) / "last.pt"
    if not last.is_file():
        return "none"
    _ultralytics()
    from ultralytics.nn.tasks import torch_safe_load

    try:
        ckpt, _ = torch_safe_load(str(last), safe_only=True)
    except Exception as exc:  # noqa: BLE001 - cut by a crash, or refused by safe loading: start over
        _LOG.warning("cannot read %s (%s); training from scratch", last, exc)
        return "none"
    if not isinstance(ckpt, dict):
        return "none"
    if ckpt.get("epoch", -1) >= 0 and ckpt.get("optimizer") is not None:
        return "partial"
    return "done"


# --------------------------------------------------------------------------- evaluation


def predict_images(
    weights: str | Path, images: Sequence[Path], *, imgsz: int, device: str = "cpu",
    conf: float = 0.001, iou: float = 0.7, max_det: int = 300, batch: int = 8,
) -> list[list[tuple[int, float, float, float, float, float]]]:
    """Per image, ``(class, score, x1, y1, x2, y2)`` in the image's pixel coordinates."""
    _ultralytics()
    from ultralytics import YOLO

    model = YOLO(str(weights), task="detect")
    out: list[list[tuple[int, float, float, float, float, float]]] = []
    dev = torch_device(device)
    dev = "cpu" if dev == "cpu" else dev.split(":")[-1]
    for start in range(0, len(images), batch):
        chunk = [str(p) for p in images[start:start + batch]]
        for res in model.predict(chunk, imgsz=imgsz, conf=conf, iou=iou, max_det=max_det, device=dev,
                                 batch=len(chunk), verbose=False, save=False, stream=True):
            out.append(result_boxes(res))
    return out


def result_boxes(result: Any) -> list[tuple[int, float, float, float, float, float]]:
    """``(class, score, x1, y1, x2, y2)`` per box of one ultralytics ``Results`` (pixel corners)."""
    b = result.boxes
    xyxy = b.xyxy.cpu().numpy().tolist()
    cls = b.cls.cpu().numpy().astype(int).tolist()
    score = b.conf.cpu().numpy().tolist()
    return [(c, s, *box) for c, s, box in zip(cls, score, xyxy)]


def to_detections(entries: Sequence[ImageEntry],
                  preds: Sequence[Sequence[tuple[int, float, float, float, float, float]]]) -> list[Detection]:
    """The boxes :func:`predict_images` returns, per image in the order of ``entries``, as detections."""
    return [Detection(e.image_id, c, s, x1, y1, x2, y2) for e, p in zip(entries, preds) for (c, s, x1, y1, x2, y2) in p]


def evaluate_run(run_dir: str | Path, split: str = "test", *, device: str | None = None,
                 write_results: bool | None = None) -> dict[str, Any]:
    """Score a trained run on ``split`` (no training); ``results.json`` is (re)written for the test split."""
    from fusion_perception.fusion.stage import load_fused_dataset

    run_dir = Path(run_dir)
    run_file = run_dir / "run.json"
    if not run_file.is_file():
        raise DatasetError(run_dir, "not a detection run directory (run.json missing)")
    run = json.loads(run_file.read_text())
    if split not in SPLITS:
        raise ConfigError(f"split {split!r}: one of {', '.join(SPLITS)}")
    weights = run_dir / "train" / "weights" / "best.pt"
    if not weights.is_file():
        weights = run_dir / "train" / "weights" / "last.pt"
    if not weights.is_file():
        raise DatasetError(run_dir / "train" / "weights", "no trained weights (best.pt/last.pt); train first")
    fused = load_fused_dataset(run["fused_dir"])
    split_names = _read_names(Path(run["split_dir"]) / f"{split}.txt")
    classes = tuple(run["classes"])
    cfg = run["config"]
    device = check_device(device or run.get("device", "cpu"))
    write_results = (split == "test") if write_results is None else write_results

    t0 = time.time()
    by_name = {r.name: r for r in fused.records}
    missing = [n for n in split_names if n not in by_name]
    if missing:
        raise DatasetError(run["fused_dir"], f"fused dataset lacks {len(missing)} {split} sample(s), e.g. {missing[:3]}")
    entries, paths = [], []
    for i, name in enumerate(split_names, start=1):
        rec = by_name[name]
        w, h = image_size(rec.image_path)
        entries.append(ImageEntry(i, Path(rec.image_path).name, w, h, clean_boxes(rec, w, h, classes)))
        paths.append(Path(rec.image_path))
    ev = cfg["eval_args"]
    preds = predict_images(weights, paths, imgsz=int(cfg["imgsz"]), device=device, conf=ev["conf"],
                           iou=ev["iou"], max_det=int(ev["max_det"]), batch=int(ev.get("batch", 8)))
    detections = to_detections(entries, preds)
    gt = coco_ground_truth(entries, classes)
    dt = coco_detections(detections)
    metrics = evaluate_coco(gt, dt, classes)

    eval_dir = run_dir / "eval" / split
    eval_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(eval_dir / "ground_truth.json", json.dumps(gt))
    atomic_write_text(eval_dir / "predictions.json", json.dumps(dt))
    vis_path = run_dir / ("predictions.png" if split == "test" else f"predictions_{split}.png")
    vis = cfg.get("vis", DEFAULTS["vis"])
    from fusion_perception.downstream.det_visualize import draw_predictions_grid

    draw_predictions_grid(paths[: int(vis["num_images"])], preds[: int(vis["num_images"])], classes, vis_path,
                          conf=float(vis["conf"]), ground_truth=[e.boxes for e in entries[: int(vis["num_images"])]])

    results = {
        "task": "det",
        "method": run["method"],
        "label": run["label"],
        "seed": run["seed"],
        "split": split,
        "mAP50": metrics["mAP50"],
        "mAP50_95": metrics["mAP50_95"],
        "per_class_AP50": metrics["per_class_AP50"],
        "per_class_AP50_95": metrics["per_class_AP50_95"],
        "classes": list(classes),
        "num_images": metrics["num_images"],
        "num_instances": metrics["num_instances"],
        "num_detections": metrics["num_detections"],
        "markdown_row": table3_row(run["label"], metrics),
        "model": cfg["model"],
        "epochs": cfg["epochs"],
        "batch": cfg["batch"],
        "imgsz": cfg["imgsz"],
        "optimizer": cfg["optimizer"],
        "lr0": cfg["lr0"],
        "config_file": cfg.get("config_file"),
        "device": device,
        "fusion_weights": run.get("fusion_weights"),
        "det_weights": run.get("det_weights"),
        "settings_key": run["settings_key"],
        "request": run.get("request"),
        "settings": run.get("settings"),
        "run_dir": str(run_dir.resolve()),
        "files": {
            "weights": str(weights.resolve()),
            "ground_truth": str((eval_dir / "ground_truth.json").resolve()),
            "predictions": str((eval_dir / "predictions.json").resolve()),
            "visualisation": str(vis_path.resolve()),
            "dataset_yaml": run["dataset_yaml"],
            "fused_dir": run["fused_dir"],
            "split_dir": run["split_dir"],
        },
        "times_s": {**run.get("times_s", {}), "eval": round(time.time() - t0, 2)},
        "versions": library_versions("ultralytics", "torch", "pycocotools"),
    }
    if write_results:
        atomic_write_text(run_dir / "results.md", table3_header() + "\n" + results["markdown_row"] + "\n")
        atomic_write_text(run_dir / "results.json", json.dumps(results, indent=2))  # last: marks the run finished
    else:
        atomic_write_text(eval_dir / "results.json", json.dumps(results, indent=2))
    _LOG.info("%s %s: mAP@0.5 %.1f, mAP@0.5:0.95 %.1f", run["label"], split, 100 * results["mAP50"],
              100 * results["mAP50_95"])
    return results


def _read_names(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetError(path, "split file missing")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


# --------------------------------------------------------------------------- the protocol


CPU_CONFIG = "small_cpu"


def default_config(device: str | int | None) -> str:
    """The paper's recipe on GPUs; on a CPU the small config (the paper's 400 epochs of YOLOv5s at
    640 px would take days there)."""
    return CPU_CONFIG if torch_device(device) == "cpu" else DEFAULT_CONFIG


def default_out(label: str, seed: int, config_name: str = DEFAULT_CONFIG) -> Path:
    """``work_dirs/det/<config>/<method>_seed<S>``: runs of other configs do not share a folder."""
    return Path("work_dirs") / "det" / config_name / f"{label}_seed{seed}"


# What a run's settings are called in a refusal ("epochs 10 → 2, config small_cpu → yolov5s_m3fd").
_WORDS = {"config_name": "config", "config.epochs": "epochs", "config.batch": "batch", "config.imgsz": "imgsz",
          "config.model": "model", "config.lr0": "lr0", "config.optimizer": "optimizer", "method": "method",
          "seed": "seed", "fusion_weights_sha256": "fusion weights", "det_weights_sha256": "detector weights",
          "source_root": "data", "fused": "fused images", "split": "split", "model_sha256": "model file"}
# Files of a finished or started run (``--overwrite`` removes them, nothing else).
_RUN_FILES = ("results.json", "results.md", "predictions.png", "run.json")
_RUN_DIRS = ("train", "eval")


def _run_request(fusion: str, seed: int, cfg: dict[str, Any], fuser_cfg: dict, fusion_sha: str | None,
                 det_weights: str | Path | None, source: str | None) -> dict[str, Any]:
    """What a run is, known before anything is fused: compared with a run already in the folder."""
    return json.loads(json.dumps({
        "method": fusion,
        "seed": int(seed),
        "config_name": cfg["config_name"],
        "config": {k: cfg[k] for k in _RESULT_KEYS},
        "model_sha256": file_sha256(cfg["model"]) if Path(cfg["model"]).is_file() else cfg["model"],
        "fuser": fuser_cfg,
        "fusion_weights_sha256": fusion_sha,
        "det_weights_sha256": file_sha256(det_weights) if det_weights else None,
        "source_root": source,
    }, default=str))


def _existing_run(out: Path) -> dict[str, Any] | None:
    """The settings of the run in ``out`` (finished or started), or None when there is none."""
    stored: dict[str, Any] = {}
    for name in ("results.json", "run.json"):
        try:
            stored = json.loads((out / name).read_text())
            break
        except (OSError, ValueError):
            continue
    weights = [p for p in (out / "train" / "weights").glob("*.pt")] if (out / "train").is_dir() else []
    if not stored and not weights:
        return None
    if "request" in stored:
        return stored
    # a run written before requests were stored: compare what it recorded
    cfg = stored.get("config") or {}
    return {**stored, "request": {"method": stored.get("method"), "seed": stored.get("seed"),
                                  "config": {k: cfg.get(k) for k in _RESULT_KEYS if k in cfg}}}


def _differences(stored: dict[str, Any], request: dict[str, Any], settings: dict[str, Any] | None = None) -> str | None:
    """None when the run in a folder is this run; else what differs, in words."""
    old = stored.get("request") or {}
    new = {k: v for k, v in request.items() if k in old} if "fuser" not in old else request
    if old != new:
        return describe_changes(old, new, _WORDS)
    if settings is not None and stored.get("settings_key") not in (None, _sha(settings)):
        before = stored.get("settings") or {}
        if before:
            return describe_changes({k: before.get(k) for k in ("fused", "split")},
                                    {k: settings[k] for k in ("fused", "split")}, _WORDS) + \
                " (the fused images or the split changed since it trained, e.g. edited sources)"
        return "the fused images or the split changed since it trained"
    return None


def _clear_run(out: Path) -> None:
    """Remove what a run wrote into ``out`` (results, training, evaluation), not the caches."""
    for name in _RUN_FILES:
        (out / name).unlink(missing_ok=True)
    for p in out.glob("predictions_*.png"):
        p.unlink(missing_ok=True)
    for name in _RUN_DIRS:
        shutil.rmtree(out / name, ignore_errors=True)


def run_detection(
    data_root: str | Path | None = None,
    fusion: str = "vi",
    out: str | Path | None = None,
    *,
    config: str | Path | dict | None = None,
    seed: int = 0,
    weights: str | Path | None = None,
    det_weights: str | Path | None = None,
    model: str | None = None,
    epochs: int | None = None,
    batch: int | None = None,
    imgsz: int | None = None,
    workers: int | None = None,
    device: str = "cpu",
    fused_dir: str | Path | None = None,
    split_dir: str | Path | None = None,
    skip_bad: bool = False,
    force: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    verbose: bool = False,
) -> dict[str, Any]:
    """Fuse, split, train and evaluate one detection run; returns the results dict (``results.json``).

    ``data_root=None`` uses the synthetic default's M3FD set. ``weights`` is the fusion checkpoint
    (EMMA); ``det_weights`` optional local YOLO weights to start from. ``out`` defaults to
    ``work_dirs/det/<config>/<method>_seed<S>``.

    Every argument is checked before anything is read or written. A finished run with the same
    settings returns its stored results at once (``force=True`` retrains it); an interrupted one
    resumes from its ``last.pt``. A run in ``out`` (or a fused dataset in ``fused_dir``) made
    with other settings is never replaced unless ``overwrite=True``: the refusal says what
    differs. ``config=None`` is the paper's recipe on a GPU and ``small_cpu`` on a CPU.

    The terminal shows a line per stage and a progress bar (``progress``); the libraries' output
    goes to ``out/run.log`` unless ``verbose``. The fused images go to the shared cache
    (:func:`~fusion_perception.fusion.cache.default_fused_dir`) unless ``fused_dir`` is given.
    """
    from fusion_perception.fusion.base import build_fuser

    # 1. the arguments, before anything is read or written
    _, label = check_fusion_method(fusion)
    chosen = config is None
    if chosen:
        config = default_config(device)
    cfg = load_config(config, model=model, epochs=epochs, batch=batch, imgsz=imgsz, workers=workers)
    check_device(device)
    if det_weights is not None:
        det_weights = check_yolo_weights(det_weights)
    weights = resolve_weights(fusion, weights, data_root)
    fuser = build_fuser(fusion, "cpu", **({"weights": weights} if weights is not None else {}))
    out = check_output_dir(out if out is not None else default_out(label, seed, cfg["config_name"]))
    for option, folder in (("--fused-dir", fused_dir), ("--split-dir", split_dir)):
        if folder is not None:
            check_output_dir(folder, option)
    source = None if data_root is None else str(Path(data_root).expanduser().resolve())
    request = _run_request(fusion, seed, cfg, fuser.config(), fuser.checkpoint_sha256(), det_weights, source)
    del fuser

    # 2. a run already there with other settings is refused before any work
    stored = _existing_run(out)
    if stored is not None and not overwrite:
        why = _differences(stored, request)
        if why is not None:
            raise refuse_to_replace(out, "a detection run", why)
    out.mkdir(parents=True, exist_ok=True)
    if progress:
        if chosen and config == CPU_CONFIG:
            stage(f"detection config: {CPU_CONFIG} on the CPU ({Path(str(cfg['model'])).name}, {cfg['epochs']} epochs "
                  f"at {cfg['imgsz']} px); the paper's recipe: --config {DEFAULT_CONFIG} (for GPUs)")
        stage(f"det {label} seed {seed} -> {out}" + ("" if verbose else f" (log: {out / 'run.log'})"))
    with chatter_to(out / "run.log", verbose):
        return _run_detection(out, stored, request, cfg, label, fusion, data_root, seed=seed, weights=weights,
                              det_weights=det_weights, device=device, fused_dir=fused_dir, split_dir=split_dir,
                              skip_bad=skip_bad, force=force, overwrite=overwrite, progress=progress)


def _run_detection(out: Path, stored: dict | None, request: dict, cfg: dict, label: str, fusion: str,
                   data_root: str | Path | None, *, seed: int, weights: str | None, det_weights: str | Path | None,
                   device: str, fused_dir: str | Path | None, split_dir: str | Path | None, skip_bad: bool,
                   force: bool, overwrite: bool, progress: bool) -> dict[str, Any]:
    """:func:`run_detection` once its arguments are checked: fuse, split, train, score."""
    times: dict[str, float] = {}

    t0 = time.time()
    fused, yolo, info = prepare_detection_data(
        data_root, fusion, out, seed=seed, weights=weights, device=device, fused_dir=fused_dir,
        split_dir=split_dir, split_ratio=cfg["split_ratio"], skip_bad=skip_bad, overwrite=overwrite,
        progress=progress,
    )
    times["prepare"] = round(time.time() - t0, 2)

    settings = {
        "method": fusion,
        "seed": int(seed),
        "config": {k: cfg[k] for k in _RESULT_KEYS},
        "model_sha256": request["model_sha256"],
        "det_weights_sha256": request["det_weights_sha256"],
        "fused": fused_fingerprint(fused),
        "split": split_digest(yolo.split),
    }
    key = _sha(settings)
    if stored is not None and not overwrite:
        why = _differences(stored, request, settings)
        if why is not None:  # same command, other data: the stored run is not this one any more
            raise refuse_to_replace(out, "a detection run", why)
        if not force and stored.get("settings_key") == key and (out / "results.json").is_file():
            _LOG.info("run %s already finished with these settings; returning its results", out)
            if progress:
                stage("finished earlier with the same settings: its results are reused (--force retrains)")
            return json.loads((out / "results.json").read_text())
    if overwrite or force:
        _clear_run(out)  # asked for: the old run goes, right before the new one trains
    else:
        (out / "results.json").unlink(missing_ok=True)  # an unfinished run's: must not mark it finished

    run = {
        "task": "det",
        "method": fusion,
        "label": label,
        "seed": int(seed),
        "request": request,
        "settings_key": key,
        "settings": settings,
        "config": cfg,
        "classes": list(yolo.classes),
        "device": device,
        "fusion_weights": str(Path(weights).resolve()) if weights else None,
        "det_weights": str(Path(det_weights).resolve()) if det_weights else None,
        "dataset_yaml": str(yolo.yaml_path.resolve()),
        **info,
        "times_s": times,
    }
    state = training_state(out / "train" / "weights")
    atomic_write_text(out / "run.json", json.dumps(run, indent=2, default=str))

    if state == "done":
        _LOG.info("training already finished in %s; evaluating only", out / "train")
    else:
        t0 = time.time()
        train_yolo(yolo, out, cfg, seed=seed, device=device, det_weights=det_weights, resume=state == "partial",
                   progress=progress)
        times["train"] = round(time.time() - t0, 2)
        run["times_s"] = times
        atomic_write_text(out / "run.json", json.dumps(run, indent=2, default=str))
    results = evaluate_run(out, "test", device=device)
    if progress:
        stage(f"test: {results['num_images']} images, mAP@0.5 {100 * results['mAP50']:.1f}")
    return results
