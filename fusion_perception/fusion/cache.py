"""The fused-dataset cache every tool agrees on.

``fuse_dataset.py``, ``train_det.py``, ``train_seg.py`` and ``compare_methods.py`` read and write a
method's fused copy of a dataset in one place, ``work_dirs/fused/<method>/<dataset folder name>``
(relative to the working directory), so a dataset fused once is not fused again by the next tool:
``python tools/fuse_dataset.py`` (EMMA on the synthetic default) writes ``work_dirs/fused/emma/m3fd``
and ``work_dirs/fused/emma/msrs``, which ``train_det.py --fusion emma`` and ``train_seg.py`` reuse.
A cached copy is reused only when its manifest matches (method, parameters, checkpoint, source
files); otherwise the tools refuse to replace it without ``--overwrite`` and say what differs.
``$FUSION_PERCEPTION_FUSED`` moves the cache (the test suite gives each test its own).
A learned method fused with weights other than its default gets its own folder, named by the
method (:attr:`FusionMethod.cache_label <fusion_perception.fusion.method.FusionMethod>`:
``emma-official``, ``emma-<sha256 prefix>``), so trying another checkpoint neither replaces nor
collides with the default's images.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from fusion_perception.record import MANIFEST_FILE, read_json

CACHE_ENV = "FUSION_PERCEPTION_FUSED"


def cache_root() -> Path:
    """``$FUSION_PERCEPTION_FUSED``, else ``work_dirs/fused`` under the working directory."""
    return Path(os.environ.get(CACHE_ENV) or Path("work_dirs") / "fused")


def fused_cache_root(label: str, root: str | Path | None = None) -> Path:
    """``work_dirs/fused/<label>``: where a method's fused datasets go (one sub-folder per dataset)."""
    from fusion_perception.outputs import path_segment

    return Path(root if root is not None else cache_root()) / path_segment(label, "method name")


def default_fused_dir(source_root: str | Path, label: str, root: str | Path | None = None) -> Path:
    """``work_dirs/fused/<label>/<source folder name>`` (e.g. ``work_dirs/fused/emma/m3fd``); when that
    folder holds the fused copy of another dataset of the same name (two datasets called ``msrs``),
    ``<source folder name>-<first 8 hex of the sha256 of its path>``, so neither replaces the other."""
    source = Path(source_root).expanduser().resolve()
    folder = fused_cache_root(label, root) / source.name
    recorded = read_json(folder / MANIFEST_FILE, unreadable={}) or {}
    made_from = (recorded.get("source") or {}).get("root") if isinstance(recorded, dict) else None
    if made_from is None or Path(made_from).resolve() == source:
        return folder
    return folder.with_name(f"{source.name}-{hashlib.sha256(str(source).encode()).hexdigest()[:8]}")


__all__ = ["CACHE_ENV", "cache_root", "default_fused_dir", "fused_cache_root"]
