"""Image reading and writing for fusion: 8/16-bit IR, gray-as-3-channel, colour VI, YCrCb.

Arrays are numpy ``HxW`` (gray) or ``HxWx3`` in **RGB** order. Tensor colour conversions
are batched ``(..., 3, H, W)`` functions in [0, 1] that run on any device.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

import cv2
import numpy as np
import torch

from fusion_perception.errors import ImageReadError, file_problem

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# ITU-R BT.601, the coefficients OpenCV's YCrCb conversion (and the fusion literature) uses.
_KR, _KG, _KB = 0.299, 0.587, 0.114


def is_image_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


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
    return (_KR * x[..., 0] + _KG * x[..., 1] + _KB * x[..., 2]).astype(np.float32)


def read_gray01(path: str | Path) -> np.ndarray:
    """Read a file and return its float32 luminance in [0, 1] (the fusion networks' input)."""
    return luminance01(read_image(path))


def to_uint8(x01: np.ndarray | torch.Tensor) -> np.ndarray:
    """Round a [0, 1] image to 8 bits (tensor ``(C,H,W)`` becomes ``HxWxC``)."""
    if isinstance(x01, torch.Tensor):
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


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    """The process's umask, read without changing it (Linux), else by setting and restoring it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The permission bits a plain ``open(path, "w")`` would give a new file (0o666 less the umask)."""
    return 0o666 & ~_umask()


def _named(e: OSError, path: Path) -> OSError:
    """The same error, naming ``path`` when it names no file (a full disk reports none)."""
    return e if e.filename is not None else type(e)(e.errno, e.strerror, str(path))


@contextlib.contextmanager
def atomic_writer(path: str | Path, *, sync: bool = False) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` only once the block ends without error.

    It is a temp file in the same folder, renamed over ``path`` at the end (an interrupted write
    leaves the old file or none, never a truncated one, and no temp file), with the permissions
    the user's umask gives new files. ``sync`` flushes it to disk before the rename. An OSError
    names ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _named(e, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), new_file_mode())  # mkstemp makes 0600 files
            yield f
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise _named(e, path) from None
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write bytes to ``path`` atomically (:func:`atomic_writer`)."""
    with atomic_writer(path) as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


# ---------------------------------------------------------------- tensor colour conversions
def rgb_to_ycrcb(rgb: torch.Tensor) -> torch.Tensor:
    """``(..., 3, H, W)`` RGB in [0, 1] to YCrCb (OpenCV's convention, chroma offset 0.5)."""
    r, g, b = rgb.unbind(-3)
    out = torch.empty_like(rgb, memory_format=torch.contiguous_format)
    y, cr, cb = out.unbind(-3)
    # Written into one output, operation for operation ``y = KR r + KG g + KB b``,
    # ``cr = (r - y) 0.713 + 0.5``, ``cb = (b - y) 0.564 + 0.5`` (the same roundings), no stack.
    torch.mul(r, _KR, out=y).add_(g * _KG).add_(b * _KB)
    torch.sub(r, y, out=cr).mul_(0.713).add_(0.5)
    torch.sub(b, y, out=cb).mul_(0.564).add_(0.5)
    return out


def ycrcb_to_rgb(ycrcb: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycrcb`; the result is clamped to [0, 1]."""
    y, cr, cb = ycrcb.unbind(-3)
    cr, cb = cr - 0.5, cb - 0.5
    out = torch.empty_like(ycrcb, memory_format=torch.contiguous_format)
    r, g, b = out.unbind(-3)
    # r = y + 1.403 cr, g = y - 0.714 cr - 0.344 cb, b = y + 1.773 cb (centred chroma), in place
    torch.add(y, cr * 1.403, out=r)
    torch.sub(y, cr * 0.714, out=g).sub_(cb * 0.344)
    torch.add(y, cb * 1.773, out=b)
    return out.clamp_(0.0, 1.0)
