"""Loading checkpoints with ``torch.load(weights_only=True)``: the one allow-list for mmengine's,
and what a refused file is, in words (:func:`why_unreadable`).

mmengine's checkpoints (EMMA's trainings, the segmenter's) hold a few plain data objects
beside the tensors: its message hub's ``HistoryBuffer`` (the logged scalars) and the numpy
arrays and scalars inside it and in the runtime info. ``weights_only=True`` refuses every
class it does not know; :func:`allow_mmengine_checkpoints` allows exactly these, for the
duration of a block, and leaves torch's safe default in force everywhere else.
"""

from __future__ import annotations

import contextlib
import pickle
import re
from pathlib import Path
from typing import Any, Iterator

import torch

from fusion_perception.errors import clean_message


def checkpoint_safe_globals() -> list[Any]:
    """The non-tensor globals an mmengine checkpoint refers to, and nothing else.

    Found by saving checkpoints and asking ``torch.serialization.get_unsafe_globals_in_checkpoint``:
    ``HistoryBuffer``, numpy's ``_reconstruct``, ``scalar``, ``ndarray``, ``dtype``, the scalar and
    dtype classes of the values logged (numpy >= 1.25 pickles a dtype by its class), and
    ``builtins.getattr``, which pickle uses to store ``HistoryBuffer.min``/``max``/``mean``/
    ``current``. ``getattr`` itself would let a file reach any attribute of the allowed classes,
    so the name is bound to :func:`_history_buffer_method`, which returns only those methods.
    Optimiser and scheduler states are plain containers of tensors and numbers.
    """
    import numpy as np
    from mmengine.logging import HistoryBuffer

    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray  # numpy 2 / 1
    kinds = ("float64", "int64", "float32", "int32", "bool")
    return [HistoryBuffer, multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype,
            *(type(np.dtype(t)) for t in kinds), *(np.dtype(t).type for t in kinds),
            (_history_buffer_method, "builtins.getattr")]


def _history_buffer_method(obj: Any, name: str) -> Any:
    """``getattr`` restricted to the statistics methods of mmengine's ``HistoryBuffer``."""
    from mmengine.logging import HistoryBuffer

    if obj is HistoryBuffer and not name.startswith("_") and callable(getattr(HistoryBuffer, name, None)):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f"checkpoint asks for getattr({obj!r}, {name!r}); only HistoryBuffer "
                                 "statistics methods are allowed")


@contextlib.contextmanager
def allow_mmengine_checkpoints() -> Iterator[None]:
    """Within the block, ``torch.load`` (still ``weights_only=True``) accepts mmengine checkpoints."""
    with torch.serialization.safe_globals(checkpoint_safe_globals()):
        yield


def drop_cut_checkpoints(work_dir: str | Path) -> list[Path]:
    """Before a run resumes in ``work_dir``: the checkpoints a crash cut short are removed (a torch
    checkpoint is a zip archive, whose directory is written last: a cut file has none), and
    mmengine's ``last_checkpoint`` marker then names the newest whole one, or goes. Returns what
    was removed (the run resumes from the checkpoint before, or starts again)."""
    import zipfile

    work_dir = Path(work_dir)
    cut = [p for p in sorted(work_dir.glob("*.pth")) if not zipfile.is_zipfile(p)]
    for path in cut:
        path.unlink(missing_ok=True)
    marker = work_dir / "last_checkpoint"
    if cut and marker.is_file():
        whole = sorted(work_dir.glob("*.pth"), key=lambda p: p.stat().st_mtime)
        if whole:
            marker.write_text(str(whole[-1]))
        else:
            marker.unlink()
    return cut
def why_unreadable(path: str | Path, error: Exception, what: str, advice: str) -> str:
    """What a file that ``torch.load(weights_only=True)`` refused is, in one plain line, for a
    caller that expected ``what`` (e.g. "EMMA weights") and tells the user ``advice``."""
    try:  # the classes the file would need: a checkpoint of another kind names itself here
        objects = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - not a torch zip archive at all
        objects = []
    if not objects:  # a legacy (non-zip) pickle names the first class it needs in the refusal
        match = re.search(r"unsupported (?:global: )?GLOBAL (\S+)", str(error), re.IGNORECASE)
        objects = [match.group(1)] if match else []
    if objects:
        kind = ("an ultralytics YOLO checkpoint" if any(o.startswith("ultralytics.") for o in objects)
                else "a pickled Python object")
        shown = ", ".join(objects[:3]) + (", ..." if len(objects) > 3 else "")
        return (f"is {kind}, not {what} (it holds {shown}, which loading with weights_only=True "
                f"refuses); {advice}")
    # torch's refusal opens with advice to load with weights_only=False, which is not ours to give:
    # the unpickler's own reason follows it
    text = str(error).split("WeightsUnpickler error:", 1)[-1]
    reasons = [line for line in text.splitlines() if line.strip() and "weights_only" not in line]
    detail = clean_message(reasons[0]) if reasons else ""
    return (f"not a PyTorch weights file readable with weights_only=True "
            f"({type(error).__name__}{': ' + detail if detail else ''}); {advice}")
