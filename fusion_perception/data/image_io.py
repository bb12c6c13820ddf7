"""Image reading and writing for fusion: 8/16-bit IR, gray-as-3-channel, colour VI.

Arrays are numpy ``HxW`` (gray) or ``HxWx3`` in **RGB** order. (The batched tensor colour
conversions are in :mod:`fusion_perception.filters`; which files are images, in
:mod:`fusion_perception.files`.)
"""

from __future__ import annotations

from pathlib import Path

import sys

import cv2
import numpy as np

from fusion_perception.errors import ImageReadError, file_problem
from fusion_perception.files import atomic_write_bytes

# ITU-R BT.601, the luminance coefficients OpenCV's YCrCb conversion (and the fusion literature) uses.
BT601: tuple[float, float, float] = (0.299, 0.587, 0.114)

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


def looks_truncated(head: bytes, tail: bytes) -> bool:
    """Cheap end-of-stream check from a file's first and last bytes (16 and 64 are enough).

    Decoders often return half an image for a cut file, so PNG and JPEG are checked for
    their end marker. The format is told by the magic number, not the suffix, because
    files are often misnamed (a JPEG saved as ``.png``). Formats without an end marker
    (TIFF, BMP) return False here; their decoders fail on a cut file instead.
    """
    tail = tail[-64:]
    if head.startswith(_PNG_MAGIC):
        return b"IEND" not in tail
    if head.startswith(_JPEG_MAGIC):
        # In entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so
        # FF D9 in the tail is the end-of-image marker even if some padding follows it.
        return b"\xff\xd9" not in tail
    return False


def decode_image_file(path: str | Path, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    """``cv2.imdecode`` of a file with ``flags``, as OpenCV returns it (BGR order).

    Raises :class:`ImageReadError` naming the file when it is missing, empty, truncated or
    not an image.
    """
    path = Path(path)
    problem = file_problem(path)
    if problem is not None:
        raise ImageReadError(path, problem)
    data = path.read_bytes()
    if not data:
        raise ImageReadError(path, "file is empty")
    if looks_truncated(data[:16], data[-64:]):
        raise ImageReadError(path, "file is truncated (no end-of-image marker)")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is None or img.size == 0:
        raise ImageReadError(path, "cannot be decoded as an image")
    return img


def read_image(path: str | Path) -> np.ndarray:
    """Read an image, keeping its bit depth: ``uint8``/``uint16``, ``HxW`` or ``HxWx3`` RGB.

    Raises :class:`ImageReadError` naming the file when it is missing, empty, truncated or
    not an image. An alpha channel is dropped.
    """
    img = decode_image_file(path, cv2.IMREAD_UNCHANGED)
    if img.dtype not in (np.uint8, np.uint16):
        if img.dtype in (np.float32, np.float64):
            img = np.clip(img, 0.0, 1.0 if img.max() <= 1.0 else 65535.0)
            img = (img * 65535.0).astype(np.uint16) if img.max() <= 1.0 else img.astype(np.uint16)
        else:
            raise ImageReadError(path, f"unsupported pixel type {img.dtype}")
    if img.ndim == 3:
        if img.shape[2] == 1:
            img = img[:, :, 0]
        elif img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
        elif img.shape[2] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        else:
            raise ImageReadError(path, f"unsupported channel count {img.shape[2]}")
    return np.ascontiguousarray(img)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file, reading the whole file (validation, not a hot path)."""
    img = read_image(path)
    return img.shape[1], img.shape[0]


def is_gray(img: np.ndarray) -> bool:
    """True for a single-channel image or a 3-channel one whose channels are equal."""
    if img.ndim == 2:
        return True
    return bool(np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2]))


def to_float01(img: np.ndarray, uint16_mode: str = "minmax") -> np.ndarray:
    """Scale an image to float32 in [0, 1].

    8-bit divides by 255. 16-bit thermal frames hold raw counts in a narrow band of the
    0..65535 range, so by default (``uint16_mode="minmax"``) they are stretched per image;
    ``"full"`` divides by 65535 instead.
    """
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if img.dtype == np.uint16:
        x = img.astype(np.float32)
        if uint16_mode == "full":
            return x / 65535.0
        if uint16_mode != "minmax":
            raise ValueError(f"uint16_mode must be 'minmax' or 'full', not {uint16_mode!r}")
        lo, hi = float(x.min()), float(x.max())
        return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    return np.clip(img.astype(np.float32), 0.0, 1.0)


def luminance01(img: np.ndarray) -> np.ndarray:
    """Float32 ``HxW`` luminance in [0, 1]: the image itself when gray, else BT.601 Y."""
    x = to_float01(img)
    if x.ndim == 2:
        return x
    if is_gray(img):
        return np.ascontiguousarray(x[..., 0])
    kr, kg, kb = BT601
    return (kr * x[..., 0] + kg * x[..., 1] + kb * x[..., 2]).astype(np.float32)


def read_gray01(path: str | Path) -> np.ndarray:
    """Read a file and return its float32 luminance in [0, 1] (the fusion networks' input)."""
    return luminance01(read_image(path))


def to_uint8(x01: np.ndarray) -> np.ndarray:
    """Round a [0, 1] image to 8 bits (tensor ``(C,H,W)`` becomes ``HxWxC``)."""
    torch = sys.modules.get("torch")  # a tensor can only come from a process that loaded torch
    if torch is not None and isinstance(x01, torch.Tensor):
        x01 = x01.detach().float().cpu()
        if x01.ndim == 3:
            x01 = x01.permute(1, 2, 0)
            if x01.shape[2] == 1:
                x01 = x01[..., 0]
        x01 = x01.numpy()
    return np.clip(np.rint(x01 * 255.0), 0, 255).astype(np.uint8)


def write_image(path: str | Path, img: np.ndarray) -> Path:
    """Write ``HxW`` or ``HxWx3`` RGB atomically: a temp file in the same folder, then rename.

    An interrupted write leaves either the old file or none, never a truncated one.
    """
    path = Path(path)
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
    ok, buf = cv2.imencode(path.suffix.lower() or ".png", bgr)
    if not ok:
        raise ValueError(f"{path}: cannot encode an image with this extension")
    atomic_write_bytes(path, buf.tobytes())
    return path
