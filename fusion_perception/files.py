"""Files: written atomically (a temp file in the same folder, renamed over the target at the end,
so that an interrupted write leaves the old file or none, never a truncated one, with the
permissions the user's umask gives new files: every file the toolkit writes goes through here),
hashed, and told apart as images by their names."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator


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


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """The sha256 of a file's content, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def is_image_file(path: str | Path) -> bool:
    """Whether ``path`` names an image file the toolkit reads (by its suffix)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


__all__ = ["IMAGE_EXTENSIONS", "is_image_file", "file_sha256", "atomic_write_bytes", "atomic_write_text", "atomic_writer", "new_file_mode"]


def replace_dir(src: Path, dst: Path) -> None:
    """Move a finished folder into place; an existing one is moved aside first, then deleted."""
    old = None
    if dst.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old-", dir=dst.parent))
        os.replace(dst, old / dst.name)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
