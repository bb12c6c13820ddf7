"""A picture of a detector's predictions: boxes with class names, drawn with OpenCV (no font files)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from fusion_perception.data.image_io import read_image, to_uint8, write_image
from fusion_perception.data.records import Box

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
