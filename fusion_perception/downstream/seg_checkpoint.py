"""Load mmengine checkpoints under torch >= 2.6 ``weights_only=True`` without disabling it.

mmengine 0.10 calls ``torch.load`` without ``weights_only``, so torch's safe unpickler refuses
the non-tensor objects an mmengine checkpoint holds: the message hub's ``HistoryBuffer`` (numpy
arrays inside) and, inside its pickled state, ``getattr(HistoryBuffer, "min")``-style references
to its statistics methods. :func:`mmengine_safe_globals` allows exactly those types for the duration of a block;
``getattr`` is replaced by :func:`_history_buffer_getattr`, which only fetches the statistics
methods of a ``HistoryBuffer`` and refuses anything else.
"""

from __future__ import annotations

import contextlib
import pickle
from typing import Any, Iterator

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

__all__ = ["mmengine_safe_globals", "MMENGINE_SAFE_GLOBALS"]


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` restricted to ``HistoryBuffer``'s statistics methods: pickle stores the functions
    in a buffer's ``_statistics_methods`` as ``getattr(HistoryBuffer, "min")``."""
    allowed = set(getattr(HistoryBuffer, "_statistics_methods", {}) or {}) | {"min", "max", "current", "mean"}
    if (obj is HistoryBuffer or isinstance(obj, HistoryBuffer)) and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(f"checkpoint asks for getattr({type(obj).__name__}, {name!r}); refused")


def _numpy_globals() -> list[Any]:
    mod = getattr(np, "_core", None) or np.core  # numpy 2 moved multiarray under _core
    out: list[Any] = [np.ndarray, np.dtype, mod.multiarray._reconstruct, mod.multiarray.scalar]
    # numpy >= 1.25 pickles dtypes through their classes in numpy.dtypes
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        out += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return out


MMENGINE_SAFE_GLOBALS: list[Any] = [HistoryBuffer, *_numpy_globals(), (_history_buffer_getattr, "builtins.getattr")]


@contextlib.contextmanager
def mmengine_safe_globals() -> Iterator[None]:
    """Within the block, ``torch.load(weights_only=True)`` accepts mmengine checkpoints."""
    with torch.serialization.safe_globals(MMENGINE_SAFE_GLOBALS):
        yield
