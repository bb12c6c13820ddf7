"""A fusion method resolved once: what ``--fusion``, ``--weights`` and ``--param`` name, for one dataset.

Every run (``fuse_dataset.py``, ``train_det.py``, ``train_seg.py``, the comparison) resolves its
method here, once, into a :class:`FusionMethod` that every later step receives: the registered
method, its label in tables, the weights file it fuses with and that file's sha256, the folder
of the shared cache its fused images go to, and the fuser itself, built on the CPU (so a missing
or wrong checkpoint stops the run before any work). The method's class decides what is its own:
which weights it takes when none are given (:meth:`Fuser.resolve_weights`, EMMA's default
checkpoint on the synthetic scenes) and the cache label of other weights (:meth:`Fuser.cache_label`).

A process resolves the same request once (:func:`resolve_method` remembers it), so a checkpoint is
read and hashed once per process however many steps use it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from fusion_perception.fusion.base import Fuser, build_fuser, fuser_class, parse_method_spec
from fusion_perception.record import WEIGHTS_SHA256


@dataclass(frozen=True)
class FusionMethod:
    """One fusion method as a run uses it, resolved (:func:`resolve_method`)."""

    spec: str  # as given: "emma", "laplacian", "folder:CDDFuse=/results/CDDFuse"
    name: str  # the registered method: "emma", "folder"
    label: str  # its name in tables and folders: "emma", "CDDFuse"
    weights: Path | None  # the weights it fuses with (None: a method without weights)
    weights_sha256: str | None
    cache_label: str  # its folder in the shared cache: "emma", "emma-official", "emma-1a2b3c4d"
    fuser: Fuser = field(repr=False, compare=False)  # built on the CPU

    def config(self) -> dict[str, Any]:
        """What the fuser computes with (method and parameters): part of every record's settings."""
        return self.fuser.config()

    def settings(self) -> dict[str, Any]:
        """The method's share of a record's settings: its fuser and its weights' hash (the one key)."""
        return {"fuser": self.config(), WEIGHTS_SHA256: self.weights_sha256}

    def on(self, device: str | torch.device) -> Fuser:
        """The fuser, moved to ``device`` (the same object: the network is loaded once)."""
        return self.fuser if self.fuser.device == torch.device(device) else self.fuser.to(device)


_RESOLVED: dict[str, FusionMethod] = {}
_LOCK = threading.Lock()


def resolve_method(spec: str | FusionMethod, weights: str | Path | None = None, data: str | Path | None = None,
                   params: Mapping[str, Any] | None = None) -> FusionMethod:
    """``spec`` (a registered method or ``folder:NAME=PATH``) with ``weights`` and ``params`` for the
    dataset ``data`` (``None``: the synthetic default), resolved and built on the CPU; an unknown
    method, a missing or wrong checkpoint or a bad parameter is a one-line error here. A resolved
    method is returned as it is; a method with weights resolves once per process for the same
    weights (unchanged on disk) and parameters, so its checkpoint is read and hashed once."""
    if isinstance(spec, FusionMethod):
        return spec
    cls = fuser_class(parse_method_spec(spec)[0])
    path = cls.resolve_weights(weights, data)
    if path is None:  # nothing to load: built afresh (a folder method reads its folder as it is now)
        return _build(spec, cls, path, dict(params or {}))
    key = json.dumps([spec, str(path), _stamp(path), dict(params or {})], sort_keys=True, default=str)
    with _LOCK:  # the fuse stage's threads, a comparison's steps: one resolution each
        if key not in _RESOLVED:
            _RESOLVED[key] = _build(spec, cls, path, dict(params or {}))
        return _RESOLVED[key]


def _stamp(path: Path) -> list | None:
    """Size and modification time of the weights (each file of a weights folder): a file replaced
    in place is resolved again."""
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    try:
        return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    except OSError:
        return None  # missing: building the fuser names it


def _build(spec: str, cls: type[Fuser], path: Path | None, params: dict[str, Any]) -> FusionMethod:
    name, extra = parse_method_spec(spec)
    if path is not None:
        params = {**params, "weights": str(path)}
    fuser = build_fuser(spec, "cpu", **params)
    label = extra.get("label", name)
    sha = fuser.checkpoint_sha256()
    return FusionMethod(spec, name, label, path, sha, cls.cache_label(label, path, sha), fuser)


__all__ = ["FusionMethod", "resolve_method"]
