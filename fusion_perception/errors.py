"""Errors the toolkit raises for bad input: each names the file and the problem.

:func:`user_error_message` is the one place where an error a user can cause (a bad file, a full
disk, a denied permission, too little memory, a missing GPU) becomes the one line the tools
print as ``error: <file>: <problem>`` with exit code 2; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import errno
import os
import pickle
import re
import sys
from pathlib import Path
from typing import Iterable

from fusion_perception.registry import PluginImportError


class FusionPerceptionError(Exception):
    """Base class of every error the toolkit raises on purpose."""


class DatasetError(FusionPerceptionError):
    """A dataset file or folder is missing, unreadable or inconsistent.

    ``path`` names the offending file (or folder); ``problem`` says what is wrong.
    """

    def __init__(self, path: str | Path | None, problem: str):
        self.path = Path(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)

    def __reduce__(self):  # picklable, so a worker process can report it to the parent
        return type(self), (self.path, self.problem)


class ImageReadError(DatasetError):
    """An image file cannot be decoded (missing, truncated, not an image)."""


class ConfigError(FusionPerceptionError):
    """A command-line option, method name or config value is invalid."""


class TrainingDiverged(DatasetError):
    """A training's loss became NaN or infinite; ``path`` is the run's folder."""

    @classmethod
    def at(cls, path: str | Path, loss: str, value: float, epoch: int, iteration: int,
           lr: float | None = None) -> "TrainingDiverged":
        """The one line of every training stopped at a non-finite loss (``loss``: its name)."""
        rate = "" if lr is None else f" (learning rate {lr:g})"
        return cls(path, f"training stopped: {loss} is {value} at epoch {epoch}, iteration {iteration}{rate}; "
                         "lower the learning rate or check the loss weights")


class OutputError(DatasetError):
    """An output folder cannot be used: it is a file, cannot be written, or holds other results."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``" (did you mean 'laplacian'?)"`` for the closest of ``known`` to a misspelt ``name``, else ``""``."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ----------------------------------------------------------------------------- input files


def check_input_file(path: str | Path, what: str = "file") -> Path:
    """``path`` as a Path when it is a readable regular file; else a DatasetError that says why
    (not found, a broken symbolic link, a directory, permission denied)."""
    path = Path(path).expanduser()
    problem = file_problem(path)
    if problem is not None:
        if what != "file":
            problem = f"{what} not found" if problem == "file not found" else f"{what}: {problem}"
        raise DatasetError(path, problem)
    return path


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file, or None when it can."""
    if path.is_symlink() and not path.exists():
        return f"broken symbolic link (its target {os.readlink(path)} does not exist)"
    if not path.exists():
        return "file not found"
    if path.is_dir():
        return "is a directory, not a file"
    if not os.access(path, os.R_OK):
        return "permission denied (not readable)"
    return None


# ----------------------------------------------------------------------------- one line per user error

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_OOM_TEXT = ("can't allocate memory", "out of memory", "cannot allocate memory", "insufficient memory",
             "failed to allocate")
_WRITE_FAILED = ("pytorchstreamwriter failed writing", "file write failed")
_NO_GPU_TEXT = ("no nvidia driver", "torch not compiled with cuda", "no cuda gpus are available",
                "cuda driver initialization failed", "invalid cuda 'device=")
_ERRNO_HINTS = {
    errno.ENOSPC: "no space left on the device: free some space and run the same command again "
                  "(finished work is kept)",
    errno.EDQUOT: "disk quota exceeded: free some space and run the same command again (finished work is kept)",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted (immutable or protected location?)",
    errno.EROFS: "read-only file system",
    errno.ENOTDIR: "a part of this path is a file, not a folder",
    errno.EISDIR: "is a directory, not a file",
    errno.EEXIST: "already exists",
    errno.ENOENT: "not found",
    errno.EFBIG: "file too large for this file system (or the file-size limit)",
    errno.EMFILE: "too many open files (raise `ulimit -n`)",
}


# torch's refusal of a file that torch.load(weights_only=True) would not unpickle opens with advice
# to load it with weights_only=False, and its reason ends with advice to allow-list what the file
# asks for: neither is ours to give. The reason in between stays.
_UNSAFE_ADVICE = (
    (re.compile(r"Weights only load failed\..*?WeightsUnpickler error:\s*", re.S),
     "refused by weights_only=True loading: "),
    (re.compile(r"Weights only load failed\.[^\n]*"), "refused by weights_only=True loading"),
    (re.compile(r"[ \t]*(Please use `torch\.serialization\.|Check the documentation of torch\.load)[^\n]*"), ""),
    (re.compile(r"[^.\n]*weights_only[`'\"]?\s*(set to|=)\s*[`'\"]?False[^\n]*"), ""),
)


def without_unsafe_advice(text: str) -> str:
    """``text`` without torch's advice to load a refused checkpoint unsafely (``weights_only=False``,
    or allow-listing the globals it asks for); the unpickler's reason stays."""
    for pattern, replacement in _UNSAFE_ADVICE:
        text = pattern.sub(replacement, text)
    return text


def clean_message(text: object) -> str:
    """First line of a message, ANSI colour codes and advice to unpickle unsafely removed (libraries
    colour their errors; torch advises ``weights_only=False``)."""
    text = without_unsafe_advice(_ANSI.sub("", str(text))).strip()
    return text.splitlines()[0].strip() if text else ""


def is_out_of_memory(exc: BaseException) -> bool:
    """True for an allocation failure of numpy, torch (CPU or CUDA) or OpenCV."""
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, getattr(torch, "OutOfMemoryError", ())):
        return True
    if isinstance(exc, RuntimeError) or type(exc).__name__ == "error":  # torch's CPU allocator, cv2.error
        text = str(exc).lower()
        return any(t in text for t in _OOM_TEXT)
    return False


def memory_limit_note() -> str:
    """``" (this process may use at most 5.7 GB of address space: ulimit -v)"`` where such a limit is set."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    except (ImportError, OSError, ValueError):
        return ""
    if soft == resource.RLIM_INFINITY:
        return ""
    return f" (this process may use at most {soft / 1024**3:.1f} GB of address space, set by ulimit -v)"


def user_error_message(exc: BaseException) -> str | None:
    """The one line (``<file>: <problem>``, without ``error:``) for an error the user can fix,
    or None for anything else (a bug: it keeps its traceback)."""
    if isinstance(exc, (FusionPerceptionError, PluginImportError)):  # the latter: a module named with --import
        return clean_message(str(exc))
    if isinstance(exc, pickle.UnpicklingError):  # a checkpoint a loader did not name: refused all the same
        return f"a file could not be loaded as a checkpoint ({clean_message(exc)})"
    if is_out_of_memory(exc):
        return (f"out of memory ({clean_message(str(exc)) or type(exc).__name__}){memory_limit_note()}; lower "
                "--batch-size (e.g. --batch-size 1), use smaller images, or free memory")
    if isinstance(exc, OSError):
        name = exc.filename if exc.filename is not None else None
        problem = _ERRNO_HINTS.get(exc.errno) or clean_message(exc.strerror or str(exc)) or type(exc).__name__
        return f"{name}: {problem}" if name is not None else problem
    text = str(exc).lower()
    if isinstance(exc, RuntimeError) and any(t in text for t in _WRITE_FAILED):
        return f"writing a file failed ({clean_message(str(exc))}); is the disk full? free some space and run " \
               "the same command again"
    if isinstance(exc, (RuntimeError, AssertionError, ValueError)) and any(t in text for t in _NO_GPU_TEXT):
        return f"--device: no usable CUDA GPU here ({clean_message(str(exc))}); use --device cpu"
    return None
