"""Scoring a trained detector: predict one split at a low confidence threshold, score with pycocotools.

:func:`evaluate_run` is the run's last step and ``tools/eval_det.py``'s whole job: it reads the
run's ``run.json`` (no training), writes ``eval/<split>/{ground_truth,predictions}.json``, the
predictions picture and, for the test split, ``results.md`` and ``results.json`` (last).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from fusion_perception.files import atomic_write_text
from fusion_perception.detection.data import SPLITS, clean_boxes, image_size, read_names
from fusion_perception.devices import resolve_device, torch_device
from fusion_perception.errors import ConfigError, DatasetError, OutputError
from fusion_perception.metrics.detection import (
    Detection,
    ImageEntry,
    coco_detections,
    coco_ground_truth,
    evaluate_coco,
    evaluate_groups,
)

if TYPE_CHECKING:
    from fusion_perception.metrics.detection_resampling import DetectionScores

_LOG = logging.getLogger(__name__)
Boxes = list[tuple[int, float, float, float, float, float]]  # (class, score, x1, y1, x2, y2) per box


def predict_images(
    weights: str | Path, images: Sequence[Path], *, imgsz: int, device: str = "cpu",
    conf: float = 0.001, iou: float = 0.7, max_det: int = 300, batch: int = 8,
) -> list[Boxes]:
    """Per image, ``(class, score, x1, y1, x2, y2)`` in the image's pixel coordinates."""
    from fusion_perception.detection.model import ultralytics_offline

    ultralytics_offline()
    from ultralytics import YOLO

    model = YOLO(str(weights), task="detect")
    out: list[Boxes] = []
    dev = torch_device(device)
    dev = "cpu" if dev == "cpu" else dev.split(":")[-1]
    for start in range(0, len(images), batch):
        chunk = [str(p) for p in images[start:start + batch]]
        for res in model.predict(chunk, imgsz=imgsz, conf=conf, iou=iou, max_det=max_det, device=dev,
                                 batch=len(chunk), verbose=False, save=False, stream=True):
            out.append(result_boxes(res))
    return out


def result_boxes(result: Any) -> Boxes:
    """``(class, score, x1, y1, x2, y2)`` per box of one ultralytics ``Results`` (pixel corners)."""
    b = result.boxes
    xyxy = b.xyxy.cpu().numpy().tolist()
    cls = b.cls.cpu().numpy().astype(int).tolist()
    score = b.conf.cpu().numpy().tolist()
    return [(c, s, *box) for c, s, box in zip(cls, score, xyxy)]


def to_detections(entries: Sequence[ImageEntry], preds: Sequence[Boxes]) -> list[Detection]:
    """The boxes :func:`predict_images` returns, per image in the order of ``entries``, as detections."""
    return [Detection(e.image_id, c, s, x1, y1, x2, y2) for e, p in zip(entries, preds) for (c, s, x1, y1, x2, y2) in p]


def evaluate_run(run_dir: str | Path, split: str = "test", *, device: str | None = None,
                 write_results: bool | None = None) -> dict[str, Any]:
    """Score a trained run on ``split`` (no training); ``results.json`` is (re)written for the test split."""
    from fusion_perception.detection.report import draw_predictions, results_record, write_run_results

    run_dir = Path(run_dir)
    run, weights = _trained_run(run_dir, split)
    device = resolve_device(device)
    write_results = (split == "test") if write_results is None else write_results
    t0 = time.time()
    fused = _same_data(run_dir, run)
    entries, paths, conditions = _ground_truth(run, split, fused)
    cfg, classes = run["config"], tuple(run["classes"])
    ev = cfg["eval_args"]
    preds = predict_images(weights, paths, imgsz=int(cfg["imgsz"]), device=device, conf=ev["conf"],
                           iou=ev["iou"], max_det=int(ev["max_det"]), batch=int(ev.get("batch", 8)))
    gt = coco_ground_truth(entries, classes)
    dt = coco_detections(to_detections(entries, preds))
    metrics = evaluate_coco(gt, dt, classes)
    groups = {e.image_id: c for e, c in zip(entries, conditions) if c}
    if groups:  # the pairs' capture conditions (day / night): the tables' per-condition columns
        metrics["by_condition"] = evaluate_groups(gt, dt, classes, groups)

    eval_dir = run_dir / "eval" / split
    eval_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(eval_dir / "ground_truth.json", json.dumps(gt))
    atomic_write_text(eval_dir / "predictions.json", json.dumps(dt))
    vis_path = draw_predictions(run_dir, split, run, paths, preds, entries)
    files = {"weights": weights, "ground_truth": eval_dir / "ground_truth.json",
             "predictions": eval_dir / "predictions.json", "visualisation": vis_path}
    times = {**run.get("times_s", {}), "eval": round(time.time() - t0, 2)}
    results = results_record(run_dir, run, split, metrics, device, files, times)
    write_run_results(run_dir, results, eval_dir if not write_results else None)
    _LOG.info("%s %s: mAP@0.5 %.1f, mAP@0.5:0.95 %.1f", run["label"], split, 100 * results["mAP50"],
              100 * results["mAP50_95"])
    return results


def _trained_run(run_dir: Path, split: str) -> tuple[dict[str, Any], Path]:
    """The run's settings (``run.json``) and its trained weights (best.pt, else last.pt)."""
    run_file = run_dir / "run.json"
    if not run_file.is_file():
        raise DatasetError(run_dir, "not a detection run directory (run.json missing)")
    run = json.loads(run_file.read_text())
    if "request" in run:  # written before the run record was shared: its settings under the shared names
        run = {**run, "settings": run["request"], "data_settings": run.get("settings"), "data_key": run.get("settings_key")}
    if split not in SPLITS:
        raise ConfigError(f"split {split!r}: one of {', '.join(SPLITS)}")
    weights = run_dir / "train" / "weights" / "best.pt"
    if not weights.is_file():
        weights = run_dir / "train" / "weights" / "last.pt"
    if not weights.is_file():
        raise DatasetError(run_dir / "train" / "weights", "no trained weights (best.pt/last.pt); train first")
    from fusion_perception.detection.model import check_yolo_weights

    return run, check_yolo_weights(weights, "the run's weights")  # refused in one line, like any YOLO file given


def _same_data(run_dir: Path, run: dict[str, Any]) -> Any:
    """The run's fused dataset, once it is known to be the data the model was trained on (the
    fused images, their labels and the split, as the run recorded them); refused otherwise."""
    from fusion_perception.detection.data import fused_fingerprint, read_split, split_digest
    from fusion_perception.fusion.manifest import load_fused_dataset
    from fusion_perception.record import describe_changes

    fused = load_fused_dataset(run["fused_dir"])
    trained = run.get("data_settings") or {}
    if trained.get("fused") is not None:
        split = read_split(run["split_dir"])
        now = {"fused": fused_fingerprint(fused), "split": split_digest(split) if split else None}
        before = {key: trained.get(key) for key in now}
        if now != before:
            raise OutputError(run_dir, f"its model was trained on other data ({describe_changes(before, now)}: the "
                                       "fused images, their labels or the split changed since); train it again "
                                       "with tools/train_det.py --overwrite, or score it on the data it knew")
    return fused


def _ground_truth(run: dict[str, Any], split: str,
                  fused: Any) -> tuple[list[ImageEntry], list[Path], list[str | None]]:
    """The split's images (in the split file's order) with their boxes clipped to the image, and
    each pair's condition (``None`` where the dataset has none)."""
    split_names = read_names(Path(run["split_dir"]) / f"{split}.txt")
    classes = tuple(run["classes"])
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
    return entries, paths, [by_name[n].condition for n in split_names]


def image_scores(result: dict[str, Any]) -> "DetectionScores":
    """A scored run's per-image matching (its stored ``ground_truth.json`` and ``predictions.json``),
    checked against the run's mAP@0.5: what the paired bootstrap of a comparison resamples."""
    from fusion_perception.metrics.bootstrap import whole_split
    from fusion_perception.metrics.detection_resampling import DetectionScores

    files = result.get("files") or {}
    for key in ("ground_truth", "predictions"):
        if not files.get(key) or not Path(files[key]).is_file():
            raise DatasetError(Path(files.get(key) or result.get("run_dir", ".")),
                               f"the run's {key.replace('_', ' ')} file is missing (tools/eval_det.py --run RUN writes it)")
    scores = DetectionScores.from_files(files["ground_truth"], files["predictions"])
    whole = float(scores.resampled(whole_split(len(scores.images)))[0])
    if abs(whole - float(result["mAP50"])) > 1e-6:
        raise DatasetError(Path(files["predictions"]), f"scores mAP@0.5 {100 * whole:.2f}, the run's results "
                                                       f"{100 * float(result['mAP50']):.2f} (evaluated again since?)")
    return scores


__all__ = ["evaluate_run", "image_scores", "predict_images", "result_boxes", "to_detections"]
