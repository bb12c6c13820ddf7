"""Cheap per-file checks the dataset readers run: image size from the header, truncation, masks.

Reading the full pixels of 4,200 M3FD pairs only to learn their sizes takes minutes, so
:func:`probe_image` reads the header (PIL parses only that) plus the file's last bytes
(the PNG/JPEG end marker) and, for formats without an end marker, compares the data
extents the header declares with the file size.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fusion_perception.errors import DatasetError, ImageReadError, file_problem
from fusion_perception.data.image_io import looks_truncated, read_image

try:  # Pillow comes with torchvision and matplotlib; without it every probe decodes fully.
    from PIL import Image
except ImportError:  # pragma: no cover - Pillow is always installed alongside torchvision
    Image = None


def _declared_end(im: "Image.Image") -> int:
    """The byte offset where the image data the header declares ends (0 if unknown)."""
    end = 0
    if im.format == "TIFF":
        tags = getattr(im, "tag_v2", {})
        for off_tag, count_tag in ((273, 279), (324, 325)):  # strips, tiles
            offsets, counts = tags.get(off_tag), tags.get(count_tag)
            if offsets is None or counts is None:
                continue
            offsets = offsets if isinstance(offsets, (tuple, list)) else (offsets,)
            counts = counts if isinstance(counts, (tuple, list)) else (counts,)
            end = max([end] + [int(o) + int(c) for o, c in zip(offsets, counts)])
    elif im.format in ("BMP", "DIB"):
        for tile in im.tile:
            # raw tiles: args = (rawmode, stride, orientation); rows * stride bytes follow offset
            args = tile.args if hasattr(tile, "args") else tile[3]
            offset = tile.offset if hasattr(tile, "offset") else tile[2]
            codec = tile.codec_name if hasattr(tile, "codec_name") else tile[0]
            if codec == "raw" and isinstance(args, tuple) and len(args) >= 2 and args[1]:
                end = max(end, int(offset) + abs(int(args[1])) * im.size[1])
    return end


def probe_image(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image from its header, after checking it is complete.

    Raises :class:`ImageReadError` naming the file when it is missing, empty, truncated
    or not an image. Falls back to a full decode where the header cannot be parsed.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ImageReadError(path, file_problem(path) or e.strerror or "cannot be read") from None
    if size == 0:
        raise ImageReadError(path, "file is empty")
    with open(path, "rb") as f:
        head = f.read(16)
        f.seek(max(0, size - 64))
        tail = f.read(64)
    if looks_truncated(head, tail):
        raise ImageReadError(path, "file is truncated (no end-of-image marker)")
    if Image is not None:
        # No warnings.catch_warnings() here: this runs in worker threads and that context
        # manager swaps the process-wide filters, clobbering the caller's (not thread-safe).
        try:
            with Image.open(path) as im:
                w, h = im.size
                end = _declared_end(im)
        except Exception:  # not parseable by PIL (or a decompression-bomb guard): decode it
            pass
        else:
            if end > size:
                raise ImageReadError(
                    path, f"file is truncated ({size} bytes, the header declares {end})")
            if w > 0 and h > 0:
                return int(w), int(h)
    img = read_image(path)
    return int(img.shape[1]), int(img.shape[0])


def check_mask(path: str | Path, image_size: tuple[int, int], num_classes: int, ignore_index: int | None = None) -> None:
    """Check a segmentation label PNG: single channel, same size as the pair, ids in range (the
    class ids, and the dataset's ``ignore_index`` for pixels no class is scored on).

    ``image_size`` is the pair's ``(width, height)``. Raises :class:`DatasetError` naming
    the file, or :class:`ImageReadError` when it cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "segmentation mask missing (expected this file)")
    mask = read_image(path)
    if mask.ndim == 3:
        if not (np.array_equal(mask[..., 0], mask[..., 1])
                and np.array_equal(mask[..., 1], mask[..., 2])):
            raise DatasetError(
                path, "mask is a colour image; expected one channel of class ids "
                f"0..{num_classes - 1} (a colour visualisation instead of the label file?)")
        mask = mask[..., 0]
    h, w = mask.shape
    if (w, h) != tuple(image_size):
        raise DatasetError(
            path, f"mask size {w}x{h} differs from the image size {image_size[0]}x{image_size[1]}")
    if int(mask.max()) >= num_classes:
        ids = np.unique(mask)
        bad = [int(i) for i in ids if i >= num_classes and i != ignore_index]
    else:
        bad = []
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (", ..." if len(bad) > 10 else "")
        raise DatasetError(
            path, f"mask holds class ids out of range 0..{num_classes - 1}: {shown}")


def default_workers() -> int:
    """Threads for header probing: I/O bound, so a few more than the cores."""
    return max(2, min(8, 2 * (os.cpu_count() or 1)))
