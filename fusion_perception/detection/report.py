"""Detection results as the paper shows them: the Table 3 row, ``results.json``, the predictions picture.

- :func:`table3_header` / :func:`table3_row`: per-class AP@0.5 and mAP@0.5 in percent;
- :func:`results_record` / :func:`write_run_results`: a run's results, ``results.json`` last;
- :func:`draw_detections` / :func:`draw_predictions_grid`: boxes with class names, drawn with
  OpenCV (no font files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from fusion_perception.data.image_io import read_image, to_uint8, write_image
from fusion_perception.files import atomic_write_text
from fusion_perception.data.records import Box


def table_classes(classes: Sequence[str]) -> tuple[str, ...]:
    """The dataset's classes in the order of the paper's Table 3: alphabetical (M3FD's class ids
    are in another order)."""
    return tuple(sorted(classes))


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100.0 * x:.1f}"


def table3_header(classes: Sequence[str]) -> str:
    """The paper's Table 3 header (per-class AP@0.5 and mAP@0.5, in percent) for ``classes``."""
    cols = ["Method", *table_classes(classes), "mAP@0.5"]
    return "| " + " | ".join(cols) + " |\n|" + "|".join("---" for _ in cols) + "|"


def table3_row(label: str, results: dict[str, Any], classes: Sequence[str]) -> str:
    """One Markdown row of Table 3 from a results dict (fractions -> percent, 1 decimal)."""
    per = results.get("per_class_AP50", {})
    cells = [label, *(_pct(per.get(c)) for c in table_classes(classes)), _pct(results.get("mAP50"))]
    return "| " + " | ".join(cells) + " |"


def fusion_line(label: str, count: int, fused_dir: Path, reused: bool) -> str:
    """The run's line about its fused images (``fuse emma: 200 images reused from ...``)."""
    return f"fuse {label}: {count} images {'reused from' if reused else 'written to'} {fused_dir}"


# --------------------------------------------------------------------------- results.json


def results_record(run_dir: Path, run: Mapping[str, Any], split: str, metrics: Mapping[str, Any], device: str,
                   files: Mapping[str, Path], times: Mapping[str, float]) -> dict[str, Any]:
    """A run's results on ``split``: the scores, the recipe and settings, where its files are."""
    from fusion_perception.provenance import library_versions

    cfg = run["config"]
    return {
        "task": "det",
        "method": run["method"],
        "label": run["label"],
        "seed": run["seed"],
        "split": split,
        "mAP50": metrics["mAP50"],
        "mAP50_95": metrics["mAP50_95"],
        "per_class_AP50": metrics["per_class_AP50"],
        "per_class_AP50_95": metrics["per_class_AP50_95"],
        "classes": list(run["classes"]),
        "num_images": metrics["num_images"],
        "num_instances": metrics["num_instances"],
        "num_detections": metrics["num_detections"],
        # per condition of the pairs (day / night), where the dataset has conditions
        "by_condition": {c: {k: m[k] for k in ("mAP50", "mAP50_95", "per_class_AP50", "num_images", "num_instances")}
                         for c, m in (metrics.get("by_condition") or {}).items()},
        "markdown_row": table3_row(run["label"], dict(metrics), run["classes"]),
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
        "settings": run.get("settings"),
        "data_settings": run.get("data_settings"),
        "data_key": run.get("data_key"),
        "run_dir": str(run_dir.resolve()),
        "files": {
            **{key: str(Path(path).resolve()) for key, path in files.items()},
            "dataset_yaml": run["dataset_yaml"],
            "fused_dir": run["fused_dir"],
            "split_dir": run["split_dir"],
        },
        "times_s": dict(times),
        "versions": library_versions("ultralytics", "torch", "pycocotools"),
    }


def write_run_results(run_dir: Path, results: Mapping[str, Any], eval_dir: Path | None = None) -> None:
    """The test split's results as the run's (``results.md``, then ``results.json`` last: the run is
    finished); another split's into ``eval_dir/results.json`` only."""
    import json

    from fusion_perception.record import write_results

    if eval_dir is not None:
        atomic_write_text(eval_dir / "results.json", json.dumps(results, indent=2))
        return
    write_results(run_dir, results, table3_header(results["classes"]) + "\n" + results["markdown_row"] + "\n")


def draw_predictions(run_dir: Path, split: str, run: Mapping[str, Any], images: Sequence[Path],
                     predictions: Sequence[Sequence[tuple]], entries: Sequence[Any]) -> Path:
    """``predictions.png`` (``predictions_<split>.png`` for another split): the first few images
    with their ground truth and the predictions above the config's confidence."""
    from fusion_perception.detection.config import DEFAULTS

    path = run_dir / ("predictions.png" if split == "test" else f"predictions_{split}.png")
    vis = run["config"].get("vis", DEFAULTS["vis"])
    n = int(vis["num_images"])
    draw_predictions_grid(images[:n], predictions[:n], tuple(run["classes"]), path, conf=float(vis["conf"]),
                          ground_truth=[e.boxes for e in entries[:n]])
    return path


# --------------------------------------------------------------------------- pictures

# One distinct colour per class (RGB), enough for M3FD's six.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 56, 56), (50, 205, 50), (255, 157, 0), (0, 148, 255), (200, 0, 255), (255, 230, 0),
    (0, 255, 200), (255, 110, 180), (140, 90, 60), (160, 160, 255),
)


def _as_rgb8(img: np.ndarray) -> np.ndarray:
    if img.dtype != np.uint8:
        img = to_uint8(img.astype(np.float32) / max(float(img.max()), 1.0))
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img)


def draw_detections(
    image: np.ndarray,
    detections: Sequence[tuple[int, float, float, float, float, float]],
    classes: Sequence[str],
    *,
    conf: float = 0.25,
    ground_truth: Sequence[Box] | None = None,
) -> np.ndarray:
    """``image`` (RGB or gray) with ground truth (thin white) and predictions >= ``conf`` (coloured, labelled)."""
    out = _as_rgb8(image).copy()
    scale = max(out.shape[:2]) / 640.0
    thick = max(1, int(round(2 * scale)))
    font_scale = max(0.35, 0.5 * scale)
    for b in ground_truth or ():
        cv2.rectangle(out, (int(b.x1), int(b.y1)), (int(b.x2), int(b.y2)), (255, 255, 255), 1, cv2.LINE_AA)
    for c, s, x1, y1, x2, y2 in sorted(detections, key=lambda d: d[1]):
        if s < conf:
            continue
        color = PALETTE[c % len(PALETTE)]
        p1, p2 = (int(x1), int(y1)), (int(x2), int(y2))
        cv2.rectangle(out, p1, p2, color, thick, cv2.LINE_AA)
        text = f"{classes[c] if c < len(classes) else c} {s:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        ty = p1[1] - 2 if p1[1] - th - base - 2 >= 0 else p1[1] + th + 2  # inside the box at the top edge
        tx = max(0, min(p1[0], out.shape[1] - tw - 3))  # keep the label inside the image
        cv2.rectangle(out, (tx, ty - th - base + 1), (tx + tw + 2, ty + base - 1), color, -1)
        cv2.putText(out, text, (tx + 1, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def draw_predictions_grid(
    images: Sequence[str | Path],
    predictions: Sequence[Sequence[tuple[int, float, float, float, float, float]]],
    classes: Sequence[str],
    out: str | Path,
    *,
    conf: float = 0.25,
    ground_truth: Sequence[Sequence[Box]] | None = None,
    columns: int = 2,
    tile_width: int = 640,
) -> Path | None:
    """Draw each image's predictions and tile them into one PNG at ``out``; ``None`` when there are no images."""
    tiles = []
    for i, (path, dets) in enumerate(zip(images, predictions)):
        gt = ground_truth[i] if ground_truth is not None else None
        tile = draw_detections(read_image(path), dets, classes, conf=conf, ground_truth=gt)
        h, w = tile.shape[:2]
        tile = cv2.resize(tile, (tile_width, max(1, round(h * tile_width / w))), interpolation=cv2.INTER_AREA)
        caption = f"{Path(path).stem}  white: ground truth, colour: predictions >= {conf:g}"
        cv2.putText(tile, caption, (6, tile.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1,
                    cv2.LINE_AA)
        tiles.append(tile)
    if not tiles:
        return None
    tile_h = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, tile_h - t.shape[0]), (0, 0), (0, 0))) for t in tiles]
    columns = max(1, min(columns, len(tiles)))
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[r:r + columns], axis=1) for r in range(0, len(tiles), columns)]
    return write_image(out, np.concatenate(rows, axis=0))
