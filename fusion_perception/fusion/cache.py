"""The fused-dataset cache every tool agrees on.

``fuse_dataset.py``, ``train_det.py``, ``train_seg.py`` and ``compare_methods.py`` read and write a
method's fused copy of a dataset in one place, ``work_dirs/fused/<method>/<dataset folder name>``
(relative to the working directory), so a dataset fused once is not fused again by the next tool:
``python tools/fuse_dataset.py`` (EMMA on the synthetic default) writes ``work_dirs/fused/emma/m3fd``
and ``work_dirs/fused/emma/msrs``, which ``train_det.py --fusion emma`` and ``train_seg.py`` reuse.
A cached copy is reused only when its manifest matches (method, parameters, checkpoint, source
files); otherwise the tools refuse to replace it without ``--overwrite`` and say what differs.
``$FUSION_PERCEPTION_FUSED`` moves the cache (the test suite gives each test its own).
A learned method fused with weights other than its default gets its own folder
(:func:`cache_label`: ``emma-official``, ``emma-<sha256 prefix>``), so trying another checkpoint
neither replaces nor collides with the default's images.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "FUSION_PERCEPTION_FUSED"


def cache_root() -> Path:
    """``$FUSION_PERCEPTION_FUSED``, else ``work_dirs/fused`` under the working directory."""
    return Path(os.environ.get(CACHE_ENV) or Path("work_dirs") / "fused")


def cache_label(label: str, weights: str | Path | None = None) -> str:
    """The cache folder name of ``label`` fused with ``weights``.

    ``label`` itself for the default weights (none given, or the toolkit's own checkpoint);
    ``<label>-official`` for the authors' EMMA.pth; ``<label>-<first 8 hex of the weights' sha256>``
    for any other checkpoint (the method's own sha256 where it defines ``weights_sha256``).
    """
    if weights is None:
        return label
    from fusion_perception.emma.weights import DEFAULT_EMMA_WEIGHTS, OFFICIAL, OFFICIAL_EMMA_FILE, emma_cache_dir

    if str(weights) == OFFICIAL:
        return f"{label}-official"
    path = Path(weights).expanduser().resolve()
    if path == DEFAULT_EMMA_WEIGHTS.resolve():
        return label
    if path == (emma_cache_dir() / OFFICIAL_EMMA_FILE).resolve():
        return f"{label}-official"
    digest = weights_sha256(label, path)
    return label if digest is None else f"{label}-{digest[:8]}"


def weights_sha256(method: str, path: str | Path) -> str | None:
    """The sha256 a method records for its weights: its own where it defines one (DIDFuse's two files
    in a folder), else the file's; ``None`` for a missing file (the caller's input check names it)."""
    from fusion_perception.fusion.base import file_sha256
    from fusion_perception.registry import FUSERS

    own = getattr(FUSERS.get(method), "weights_sha256", None)
    if own is not None:
        return own(path)
    return file_sha256(path) if Path(path).is_file() else None


def fused_cache_root(label: str, root: str | Path | None = None) -> Path:
    """``work_dirs/fused/<label>``: where a method's fused datasets go (one sub-folder per dataset)."""
    return Path(root if root is not None else cache_root()) / label


def default_fused_dir(source_root: str | Path, label: str, root: str | Path | None = None) -> Path:
    """``work_dirs/fused/<label>/<source folder name>`` (e.g. ``work_dirs/fused/emma/m3fd``)."""
    return fused_cache_root(label, root) / Path(source_root).resolve().name


__all__ = ["CACHE_ENV", "cache_label", "cache_root", "default_fused_dir", "fused_cache_root", "weights_sha256"]
