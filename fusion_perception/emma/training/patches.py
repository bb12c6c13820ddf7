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

from fusion_perception.config_files import config_keys
from fusion_perception.data.image_io import read_gray01
from fusion_perception.files import atomic_write_bytes
from fusion_perception.data.records import PairRecord
from fusion_perception.errors import ConfigError, DatasetError

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
        from fusion_perception.synthetic.dataset import ensure_default

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


def with_weights(pseudo_gt: Sequence[PseudoGT], weights: Mapping[str, str]) -> list[PseudoGT]:
    """The entries with ``weights[name]`` given to the methods it names (``--weights``), whether the
    list came from ``--pseudo-gt`` or from the config; a name that is not in the list is an error."""
    names = [pseudo_gt_method(entry)[0] for entry in pseudo_gt]
    unknown = sorted(set(weights) - set(names))
    if unknown:
        listed = ", ".join(map(pseudo_gt_name, pseudo_gt))
        raise ConfigError(f"--weights given for methods not in the pseudo ground truth ({listed}): "
                          f"{', '.join(unknown)}")
    return [{"method": name, **pseudo_gt_method(entry)[1], "weights": weights[name]} if name in weights else entry
            for name, entry in zip(names, pseudo_gt)]


def pseudo_gt_methods(pseudo_gt: Sequence[PseudoGT]) -> list[Any]:
    """Every pseudo ground-truth method resolved once (fusion.method: its weights read and hashed
    once), so that an unknown name, a missing results folder or a missing or wrong checkpoint
    stops a training before any work."""
    from fusion_perception.fusion.method import resolve_method

    methods = []
    for name, params in map(pseudo_gt_method, pseudo_gt):
        params = dict(params)
        weights = params.pop("weights", None)
        methods.append(resolve_method(name, weights, None, params))
    return methods


def pseudo_gt_name(spec: PseudoGT) -> str:
    """``"gff"``, or ``"laplacian(levels=6)"`` for an entry with parameters."""
    name, params = pseudo_gt_method(spec)
    return name + (f"({', '.join(f'{k}={v}' for k, v in sorted(params.items()))})" if params else "")


def _weights_key(pseudo_gt: Sequence[PseudoGT]) -> dict[str, list]:
    """The learned methods' weights by content (other weights at the same path make other patches)."""
    digests = [m.weights_sha256 for m in pseudo_gt_methods(pseudo_gt) if m.weights_sha256]
    return {"weights_sha256": digests} if digests else {}  # none: the key of a cache made before weights counted


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


@dataclass(frozen=True)
class PatchOptions:
    """Which patches to cut and where to keep them: the patch datasets' config keys
    (``train_dataloader.dataset.patch_size`` and so on), checked by name here."""

    patch_size: int = 128
    stride: int = 200
    contrast_threshold: float = 0.1
    max_patches: int | None = None  # a seeded random subset of the patches that pass the filter
    seed: int = 0
    cache_dir: str | Path | None = None
    layout: str = "auto"
    fuse_device: str = "cpu"  # where the pseudo ground-truth methods run

    def __post_init__(self) -> None:
        # the sensing U-Net halves a patch four times and the U-Fuser three: another size fails
        # inside the network, a traceback of concatenated tensors
        if isinstance(self.patch_size, bool) or not isinstance(self.patch_size, int) or self.patch_size < 16 \
                or self.patch_size % 16:
            raise ConfigError(f"patch_size must be a multiple of 16 (the sensing U-Net halves it four times), "
                              f"not {self.patch_size!r}")
        if isinstance(self.stride, bool) or not isinstance(self.stride, int) or self.stride < 1:
            raise ConfigError(f"stride must be a positive integer, not {self.stride!r}")


def build_patches(data_root: str | Path | None = None, pseudo_gt: Sequence[PseudoGT] = (),
                  options: PatchOptions = PatchOptions(), progress: bool = True) -> PatchArrays:
    """Extract (and cache) the training patches of a dataset and their pseudo-fused versions.

    ``pseudo_gt`` lists fusion method specs for ``build_fuser`` (``"mean"``, ``"gff"``,
    ``"folder:CDDFuse=/results"``...), or ``dict(method=..., **params)`` entries.
    ``options.max_patches`` keeps a seeded random subset of the patches that pass the contrast
    filter (before any method is run, so only the pairs that contribute are fused).
    """
    o = options
    root, records = training_records(data_root, o.layout)
    methods = tuple(pseudo_gt_name(m) for m in pseudo_gt)
    key = _cache_key(
        root, records, patch=o.patch_size, stride=o.stride, thr=o.contrast_threshold, methods=methods,
        max_patches=o.max_patches, seed=o.seed, **_weights_key(pseudo_gt),
    )
    cache = Path(o.cache_dir) / f"patches_{key}.npz" if o.cache_dir is not None else None
    if cache is not None and cache.is_file():
        return _read_cache(cache)
    candidates = _patch_candidates(root, records, o, progress)
    fusers = []
    if methods:
        fusers = [m.on(o.fuse_device) for m in pseudo_gt_methods(pseudo_gt)]
    ir_p, vi_p, fused_p = _cut_patches(records, candidates, o, fusers, progress)
    names = tuple(records[idx].name for idx, _, _ in candidates)
    arrays = PatchArrays(ir=ir_p, vi=vi_p, fused=fused_p, methods=methods, names=names, path=cache)
    if cache is not None:
        _write_cache(cache, arrays)
    return arrays


def _patch_candidates(root: Path, records: Sequence[PairRecord], o: PatchOptions,
                      progress: bool) -> list[tuple[int, int, int]]:
    """Pass 1: ``(record index, y, x)`` of every grid patch that passes the contrast filter in both
    modalities, or the seeded subset of ``max_patches`` of them."""
    candidates: list[tuple[int, int, int]] = []
    for idx, rec in enumerate(tqdm(records, desc="patches", disable=not progress, leave=False)):
        ir, vi = _read_pair(rec)
        for y, x in grid_positions(*ir.shape, o.patch_size, o.stride):
            sl = (slice(y, y + o.patch_size), slice(x, x + o.patch_size))
            if not (low_contrast(ir[sl], o.contrast_threshold) or low_contrast(vi[sl], o.contrast_threshold)):
                candidates.append((idx, y, x))
    if not candidates:
        raise DatasetError(
            root, f"no {o.patch_size}x{o.patch_size} patch (stride {o.stride}) passes the contrast filter "
            f"in {len(records)} pairs; images smaller than a patch or flat"
        )
    if o.max_patches is not None and len(candidates) > o.max_patches:
        pick = np.random.default_rng(o.seed).choice(len(candidates), size=o.max_patches, replace=False)
        candidates = [candidates[i] for i in sorted(pick)]
    return candidates


def _cut_patches(records: Sequence[PairRecord], candidates: Sequence[tuple[int, int, int]], o: PatchOptions,
                 fusers: Sequence[Any], progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pass 2: cut the kept patches, running each pseudo ground-truth fuser once on each pair they
    come from. Returns uint8 ``ir``, ``vi`` ``(N, P, P)`` and ``fused`` ``(M, N, P, P)``."""
    by_record: dict[int, list[int]] = {}
    for k, (idx, _, _) in enumerate(candidates):
        by_record.setdefault(idx, []).append(k)
    n, size = len(candidates), o.patch_size
    ir_p = np.empty((n, size, size), np.uint8)
    vi_p = np.empty_like(ir_p)
    fused_p = np.empty((len(fusers), n, size, size), np.uint8)
    desc = "pseudo ground truth" if fusers else "cutting patches"
    for idx, ks in tqdm(by_record.items(), desc=desc, disable=not progress, leave=False):
        rec = records[idx]
        ir, vi = _read_pair(rec)
        fused_imgs = []
        if fusers:
            ir_t = torch.from_numpy(ir)[None, None].to(o.fuse_device)
            vi_t = torch.from_numpy(vi)[None, None].to(o.fuse_device)
            with torch.no_grad():
                for fuser in fusers:
                    out = fuser.fuse(ir_t, vi_t, [rec.name])
                    fused_imgs.append(out[0, 0].float().clamp(0, 1).cpu().numpy())
        for k in ks:
            _, y, x = candidates[k]
            sl = (slice(y, y + size), slice(x, x + size))
            ir_p[k], vi_p[k] = _u8(ir[sl]), _u8(vi[sl])
            for m, img in enumerate(fused_imgs):
                fused_p[m, k] = _u8(img[sl])
    return ir_p, vi_p, fused_p


def _read_cache(cache: Path) -> PatchArrays:
    with np.load(cache, allow_pickle=False) as z:
        return PatchArrays(
            ir=z["ir"], vi=z["vi"], fused=z["fused"], methods=tuple(str(m) for m in z["methods"]),
            names=tuple(str(n) for n in z["names"]), path=cache,
        )


def _write_cache(cache: Path, arrays: PatchArrays) -> None:
    buf = io.BytesIO()
    np.savez(buf, ir=arrays.ir, vi=arrays.vi, fused=arrays.fused, methods=np.array(arrays.methods, dtype=str),
             names=np.array(arrays.names, dtype=str))
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(cache, buf.getvalue())  # concurrent ranks write identical bytes


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).float().div_(255.0).unsqueeze(0)


@DATASETS.register_module()
class EMMAPatchDataset(Dataset):
    """IR/visible patch pairs for the fusion network: items ``{"ir": (1,P,P), "vi": (1,P,P)}``."""

    def __init__(self, data_root: str | None = None, **options: Any):
        # options: the config's patch keys (patch_size, stride, max_patches, ...: PatchOptions)
        self.arrays = build_patches(data_root, options=config_keys(PatchOptions, options, "EMMAPatchDataset"))

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"ir": _to_tensor(self.arrays.ir[i]), "vi": _to_tensor(self.arrays.vi[i])}


@DATASETS.register_module()
class SensingPatchDataset(Dataset):
    """Pseudo-fused patch -> sensor patch, one sample per (method, patch).

    Items ``{"inputs": fused (1,P,P), "target": ir or vi (1,P,P)}``.
    """

    def __init__(self, data_root: str | None = None, target: str = "ir",
                 pseudo_gt: Sequence[PseudoGT] = ("mean", "max", "laplacian"), **options: Any):
        if target not in ("ir", "vi"):
            raise ValueError(f"target must be 'ir' or 'vi', not {target!r}")
        if not pseudo_gt:
            raise ValueError("the sensing nets need at least one pseudo ground-truth method")
        self.target = target
        # options: the config's patch keys (patch_size, stride, max_patches, ...: PatchOptions)
        self.arrays = build_patches(data_root, tuple(pseudo_gt), config_keys(PatchOptions, options, "SensingPatchDataset"))

    def __len__(self) -> int:
        return len(self.arrays) * len(self.arrays.methods)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        m, k = divmod(i, len(self.arrays))
        tgt = self.arrays.ir if self.target == "ir" else self.arrays.vi
        return {"inputs": _to_tensor(self.arrays.fused[m, k]), "target": _to_tensor(tgt[k])}
