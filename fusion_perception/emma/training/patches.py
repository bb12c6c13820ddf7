"""Training patches for EMMA and its sensing nets, with pseudo ground truth, cached as npz.

Patches come from a grid with a stride (the public code: 128x128 patches, stride 200) and
a patch is dropped when either modality is low contrast, ``(p90 - p10) / p90 < 0.1``.
The sensing nets learn ``fused -> ir`` and ``fused -> vi`` where "fused" is the output of
other fusion methods (the pseudo ground truth): each method contributes its own samples.

Patch arrays are stored as uint8 (the sources are 8-bit images) in an npz named by a hash
of everything that determines them, so a second run or a resume reuses them.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np
import torch
from mmengine.registry import DATASETS
from torch.utils.data import Dataset
from tqdm import tqdm

from fusion_perception.data.image_io import atomic_write_bytes, read_gray01
from fusion_perception.data.records import PairRecord
from fusion_perception.errors import DatasetError

CACHE_VERSION = 1


def low_contrast(patch: np.ndarray, threshold: float = 0.1) -> bool:
    """The public code's filter: ``(p90 - p10) / p90 < threshold`` (a black patch is low contrast)."""
    p10, p90 = np.percentile(patch, (10, 90))
    if p90 <= 0:
        return True
    return (p90 - p10) / p90 < threshold


def grid_positions(height: int, width: int, patch: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners of the patches of a grid; none when the image is smaller than a patch."""
    if patch <= 0 or stride <= 0:
        raise ValueError(f"patch and stride must be positive, got {patch} and {stride}")
    return [(y, x) for y in range(0, height - patch + 1, stride) for x in range(0, width - patch + 1, stride)]


def training_records(data_root: str | Path | None = None, layout: str = "auto") -> tuple[Path, list[PairRecord]]:
    """The pairs to train on: the ``train`` split where the layout has one, else every pair.

    ``data_root=None`` is the synthetic default's MSRS-layout set (generated once).
    """
    from fusion_perception.data.readers import load_dataset

    if data_root is None:
        from fusion_perception.data.synthetic import ensure_default

        data_root = Path(ensure_default()) / "msrs"
    ds = load_dataset(data_root, layout=layout)
    records = ds.split("train") or list(ds.records)
    if not records:
        raise DatasetError(ds.root, "no image pairs to train on")
    return Path(ds.root), records


def _read_pair(rec: PairRecord) -> tuple[np.ndarray, np.ndarray]:
    ir, vi = read_gray01(rec.ir_path), read_gray01(rec.vi_path)
    if ir.shape != vi.shape:
        raise DatasetError(
            rec.vi_path, f"size {vi.shape[1]}x{vi.shape[0]} differs from its IR image {rec.ir_path} "
            f"({ir.shape[1]}x{ir.shape[0]}); the pair is not registered"
        )
    return ir, vi


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


@dataclass
class PatchArrays:
    """uint8 patch stacks: ``ir``/``vi`` ``(N, P, P)``, ``fused`` ``(M, N, P, P)`` for the M methods."""

    ir: np.ndarray
    vi: np.ndarray
    fused: np.ndarray
    methods: tuple[str, ...]
    names: tuple[str, ...]  # the pair each patch came from
    path: Path | None = None  # the cache file

    def __len__(self) -> int:
        return int(self.ir.shape[0])


PseudoGT = Union[str, Mapping[str, Any]]


def pseudo_gt_method(spec: PseudoGT) -> tuple[str, dict[str, Any]]:
    """A pseudo ground-truth entry: a method spec (``"gff"``, ``"folder:X=/p"``) or, in a config,
    ``dict(method="laplacian", levels=6)`` for a method with parameters."""
    if isinstance(spec, str):
        return spec, {}
    params = dict(spec)
    if "method" not in params:
        raise ValueError(f"pseudo ground-truth entry {params} names no method (dict(method=..., ...))")
    return str(params.pop("method")), params


def pseudo_gt_name(spec: PseudoGT) -> str:
    """``"gff"``, or ``"laplacian(levels=6)"`` for an entry with parameters."""
    name, params = pseudo_gt_method(spec)
    return name + (f"({', '.join(f'{k}={v}' for k, v in sorted(params.items()))})" if params else "")


def _stamp(path: Path) -> tuple[int, int]:
    st = Path(path).stat()
    return st.st_size, st.st_mtime_ns


def _cache_key(root: Path, records: Sequence[PairRecord], **settings) -> str:
    # File sizes and mtimes too: a regenerated or edited dataset must not reuse stale patches.
    desc = {
        "version": CACHE_VERSION,
        "root": str(root.resolve()),
        "pairs": [(r.name, str(r.ir_path), str(r.vi_path), _stamp(r.ir_path), _stamp(r.vi_path)) for r in records],
        **settings,
    }
    return hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def build_patches(
    data_root: str | Path | None = None,
    *,
    patch_size: int = 128,
    stride: int = 200,
    contrast_threshold: float = 0.1,
    pseudo_gt: Sequence[PseudoGT] = (),
    max_patches: int | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    layout: str = "auto",
    fuse_device: str = "cpu",
    progress: bool = True,
) -> PatchArrays:
    """Extract (and cache) the training patches of a dataset and their pseudo-fused versions.

    ``pseudo_gt`` lists fusion method specs for ``build_fuser`` (``"mean"``, ``"gff"``,
    ``"folder:CDDFuse=/results"``...), or ``dict(method=..., **params)`` entries.
    ``max_patches`` keeps a seeded random subset of the
    patches that pass the contrast filter (before any method is run, so only the pairs that
    contribute are fused).
    """
    root, records = training_records(data_root, layout)
    methods = tuple(pseudo_gt_name(m) for m in pseudo_gt)
    key = _cache_key(
        root, records, patch=patch_size, stride=stride, thr=contrast_threshold, methods=methods,
        max_patches=max_patches, seed=seed,
    )
    cache = Path(cache_dir) / f"patches_{key}.npz" if cache_dir is not None else None
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            return PatchArrays(
                ir=z["ir"], vi=z["vi"], fused=z["fused"], methods=tuple(str(m) for m in z["methods"]),
                names=tuple(str(n) for n in z["names"]), path=cache,
            )

    # Pass 1: every grid patch that passes the contrast filter in both modalities.
    candidates: list[tuple[int, int, int]] = []
    for idx, rec in enumerate(tqdm(records, desc="patches", disable=not progress, leave=False)):
        ir, vi = _read_pair(rec)
        for y, x in grid_positions(*ir.shape, patch_size, stride):
            sl = (slice(y, y + patch_size), slice(x, x + patch_size))
            if not (low_contrast(ir[sl], contrast_threshold) or low_contrast(vi[sl], contrast_threshold)):
                candidates.append((idx, y, x))
    if not candidates:
        raise DatasetError(
            root, f"no {patch_size}x{patch_size} patch (stride {stride}) passes the contrast filter "
            f"in {len(records)} pairs; images smaller than a patch or flat"
        )
    if max_patches is not None and len(candidates) > max_patches:
        pick = np.random.default_rng(seed).choice(len(candidates), size=max_patches, replace=False)
        candidates = [candidates[i] for i in sorted(pick)]

    # Pass 2: cut the kept patches, running each pseudo-GT method on the pairs they come from.
    fusers = []
    if methods:
        from fusion_perception.fusion.base import build_fuser

        fusers = [build_fuser(name, device=fuse_device, **params) for name, params in map(pseudo_gt_method, pseudo_gt)]
    by_record: dict[int, list[int]] = {}
    for k, (idx, _, _) in enumerate(candidates):
        by_record.setdefault(idx, []).append(k)
    n = len(candidates)
    ir_p = np.empty((n, patch_size, patch_size), np.uint8)
    vi_p = np.empty_like(ir_p)
    fused_p = np.empty((len(methods), n, patch_size, patch_size), np.uint8)
    desc = "pseudo ground truth" if methods else "cutting patches"
    for idx, ks in tqdm(by_record.items(), desc=desc, disable=not progress, leave=False):
        rec = records[idx]
        ir, vi = _read_pair(rec)
        fused_imgs = []
        if fusers:
            ir_t = torch.from_numpy(ir)[None, None].to(fuse_device)
            vi_t = torch.from_numpy(vi)[None, None].to(fuse_device)
            with torch.no_grad():
                for fuser in fusers:
                    out = fuser.fuse(ir_t, vi_t, [rec.name])
                    fused_imgs.append(out[0, 0].float().clamp(0, 1).cpu().numpy())
        for k in ks:
            _, y, x = candidates[k]
            sl = (slice(y, y + patch_size), slice(x, x + patch_size))
            ir_p[k], vi_p[k] = _u8(ir[sl]), _u8(vi[sl])
            for m, img in enumerate(fused_imgs):
                fused_p[m, k] = _u8(img[sl])
    names = tuple(records[idx].name for idx, _, _ in candidates)
    arrays = PatchArrays(ir=ir_p, vi=vi_p, fused=fused_p, methods=methods, names=names, path=cache)
    if cache is not None:
        buf = io.BytesIO()
        np.savez(buf, ir=ir_p, vi=vi_p, fused=fused_p, methods=np.array(methods, dtype=str),
                 names=np.array(names, dtype=str))
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cache, buf.getvalue())  # concurrent ranks write identical bytes
    return arrays


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).float().div_(255.0).unsqueeze(0)


@DATASETS.register_module()
class EMMAPatchDataset(Dataset):
    """IR/visible patch pairs for the fusion network: items ``{"ir": (1,P,P), "vi": (1,P,P)}``."""

    def __init__(
        self,
        data_root: str | None = None,
        patch_size: int = 128,
        stride: int = 200,
        contrast_threshold: float = 0.1,
        max_patches: int | None = None,
        seed: int = 0,
        cache_dir: str | None = None,
        layout: str = "auto",
    ):
        self.arrays = build_patches(
            data_root, patch_size=patch_size, stride=stride, contrast_threshold=contrast_threshold,
            max_patches=max_patches, seed=seed, cache_dir=cache_dir, layout=layout,
        )

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"ir": _to_tensor(self.arrays.ir[i]), "vi": _to_tensor(self.arrays.vi[i])}


@DATASETS.register_module()
class SensingPatchDataset(Dataset):
    """Pseudo-fused patch -> sensor patch, one sample per (method, patch).

    Items ``{"inputs": fused (1,P,P), "target": ir or vi (1,P,P)}``.
    """

    def __init__(
        self,
        data_root: str | None = None,
        target: str = "ir",
        pseudo_gt: Sequence[PseudoGT] = ("mean", "max", "laplacian"),
        patch_size: int = 128,
        stride: int = 200,
        contrast_threshold: float = 0.1,
        max_patches: int | None = None,
        seed: int = 0,
        cache_dir: str | None = None,
        layout: str = "auto",
        fuse_device: str = "cpu",
    ):
        if target not in ("ir", "vi"):
            raise ValueError(f"target must be 'ir' or 'vi', not {target!r}")
        if not pseudo_gt:
            raise ValueError("the sensing nets need at least one pseudo ground-truth method")
        self.target = target
        self.arrays = build_patches(
            data_root, patch_size=patch_size, stride=stride, contrast_threshold=contrast_threshold,
            pseudo_gt=tuple(pseudo_gt), max_patches=max_patches, seed=seed, cache_dir=cache_dir,
            layout=layout, fuse_device=fuse_device,
        )

    def __len__(self) -> int:
        return len(self.arrays) * len(self.arrays.methods)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        m, k = divmod(i, len(self.arrays))
        tgt = self.arrays.ir if self.target == "ir" else self.arrays.vi
        return {"inputs": _to_tensor(self.arrays.fused[m, k]), "target": _to_tensor(tgt[k])}
