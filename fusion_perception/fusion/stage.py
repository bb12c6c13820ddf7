"""The preprocessing stage: fuse a whole paired dataset into a drop-in fused dataset.

``fuse_dataset(source, method, out)`` writes the fused images in the source's layout, with a
``fused`` image folder in place of the two modality folders, copies the labels, and keeps a
manifest (``out/manifest.json``, read and written with the run cache's helpers,
:mod:`fusion_perception.runs`) that makes the run resumable and reusable. The layout says where
each fused image goes and which files besides the labels come along
(:mod:`fusion_perception.data.layouts`):

- M3FD  -> ``out/fused/*.png`` + ``out/Annotation/*.xml``
- TarDAL -> ``out/fused``, ``out/labels``, ``out/meta``
- MSRS  -> ``out/{train,test}/fused`` + ``out/{train,test}/Segmentation_labels``
- pairs -> ``out/fused``

Every file is written atomically (temp file + rename), so after a crash or a kill an image
is either whole or absent; a re-run with the same settings (the manifest's "fingerprint")
fuses only what is missing. Decoding and encoding run in thread pools so the device that
fuses (a GPU when asked) is not kept waiting.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import time
import warnings
from collections import Counter, defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from fusion_perception.data.image_io import (
    atomic_writer,
    is_gray,
    luminance01,
    read_image,
    to_float01,
    write_image,
)
from fusion_perception.data.layouts import FUSED_DIR, find_layout, get_layout
from fusion_perception.data.records import Box, FusedDataset, FusedRecord, PairDataset, PairRecord, SkippedItem
from fusion_perception.devices import check_device
from fusion_perception.errors import (
    ConfigError,
    DatasetError,
    FusionPerceptionError,
    is_out_of_memory,
    memory_limit_note,
)
from fusion_perception.fusion.base import (
    Fuser,
    build_fuser,
    fuse_with_colour,
    method_label,
    parse_method_spec,
    resolve_weights,
)
from fusion_perception.fusion.ranks import Ranks
from fusion_perception.outputs import check_output_dir, describe_changes, refuse_to_replace
from fusion_perception.provenance import library_versions
from fusion_perception.runs import jsonable, read_json, write_json

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
_LOCK = ".fuse_dataset.lock"
_LOG = logging.getLogger(__name__)
# Sub-datasets of a multi-task root such as the synthetic default (root/m3fd, root/msrs).
DATASET_PARTS: tuple[str, ...] = ("m3fd", "msrs")
# The synthetic default's part for each task (a source-less request for a layout reads the part
# of the first task the layout's labels serve).
_SYNTHETIC_PART = {"det": "m3fd", "seg": "msrs"}


# ----------------------------------------------------------------------------- source and fingerprint


def dataset_parts(root: str | Path) -> list[str]:
    """Sub-datasets (``m3fd``, ``msrs``) of a multi-task root such as the synthetic default."""
    root = Path(root)
    return [p for p in DATASET_PARTS if (root / p).is_dir()]


def resolve_source(source: str | Path | PairDataset | None, layout: str = "auto",
                   skip_bad: bool = False) -> PairDataset:
    """The paired dataset to fuse: a PairDataset as is, a folder through the readers, or
    (``None``) one part of the synthetic default, chosen by ``layout`` (m3fd or msrs)."""
    if isinstance(source, PairDataset):
        return source
    from fusion_perception.data.readers import load_dataset

    if source is None:
        from fusion_perception.data.synthetic import ensure_default

        asked = find_layout(layout) if layout != "auto" else None
        task = next((t for t in (asked.tasks if asked else ()) if t in _SYNTHETIC_PART), None)
        if task is None:
            raise ConfigError(
                "the synthetic default holds two datasets (m3fd for detection, msrs for segmentation): "
                "pass layout='m3fd' or layout='msrs', or use fuse_default() to fuse both"
            )
        root = ensure_default(task)
        return load_dataset(root / _SYNTHETIC_PART[task], "auto", skip_bad=skip_bad)
    root = Path(source).expanduser()
    if not root.is_dir():
        raise DatasetError(root, "dataset folder not found")
    parts = dataset_parts(root)
    if layout == "auto" and parts and not _is_dataset(root):
        raise ConfigError(
            f"{root} holds several datasets ({', '.join(parts)}): point at one of them "
            f"(e.g. {root / parts[0]}) or use fuse_default(source=...) to fuse all"
        )
    return load_dataset(root, layout, skip_bad=skip_bad)


def _is_dataset(root: Path) -> bool:
    from fusion_perception.data.readers import detect_layout

    try:
        detect_layout(root)
        return True
    except FusionPerceptionError:
        return False


def _fingerprint(fuser: Fuser, method: str, ds: PairDataset, gray_output: bool) -> dict[str, Any]:
    """Everything that determines the pixels: a cached output is reused only when this matches."""
    name, _ = parse_method_spec(method)
    return jsonable({
        "method": name,
        "fuser": fuser.config(),
        "checkpoint_sha256": fuser.checkpoint_sha256(),
        "source_root": str(Path(ds.root).resolve()),
        "source_layout": ds.layout,
        "gray_output": bool(gray_output),
    })


# What the fingerprint's keys are called in a refusal ("method laplacian → gff, weights 3f2a… → 9c1e…").
_FINGERPRINT_WORDS = {"method": "method", "checkpoint_sha256": "weights", "source_root": "source",
                      "source_layout": "layout", "gray_output": "gray output", "fuser.method": "",
                      "fuser.label": "label"}


def _pixels(fingerprint: dict | None, fuser: Fuser) -> Any:
    """What of a fingerprint decides the pixels: all of it but the fuser's runtime parameters
    (how it computes, not what: e.g. EMMA's memory format), as the device and batch size are
    left out already. Two runs whose ``_pixels`` are equal share their fused images."""
    if not isinstance(fingerprint, dict) or not isinstance((fingerprint.get("fuser") or {}).get("params"), dict):
        return fingerprint
    params = {k: v for k, v in fingerprint["fuser"]["params"].items() if k not in fuser.runtime_params}
    return {**fingerprint, "fuser": {**fingerprint["fuser"], "params": params}}


# ----------------------------------------------------------------------------- output layout


def _fused_rel(ds: PairDataset, rec: PairRecord) -> str:
    """Where a record's fused image goes, relative to ``out``: the source layout says."""
    return get_layout(ds.layout).fused_path(rec)


def _label_rel(ds_root: Path, path: Path | None, fallback_dir: str) -> str | None:
    """A label file keeps its place relative to the dataset root (Annotation/x.xml stays so)."""
    if path is None:
        return None
    try:
        return Path(path).resolve().relative_to(ds_root).as_posix()
    except ValueError:
        return f"{fallback_dir}/{Path(path).name}"


def _copy_atomic(src: Path, dst: Path) -> None:
    """Copy (keeping the modification time) via a temp file and rename; an up-to-date copy is left alone."""
    try:
        s, d = src.stat(), dst.stat()
        if s.st_size == d.st_size and int(s.st_mtime) == int(d.st_mtime):
            return
    except FileNotFoundError:
        pass
    if not src.is_file():
        raise DatasetError(src, "label file not found")
    st = src.stat()
    with open(src, "rb") as fin, atomic_writer(dst) as fout:
        shutil.copyfileobj(fin, fout)
        fout.flush()
        os.utime(fout.fileno(), ns=(st.st_atime_ns, st.st_mtime_ns))  # the up-to-date check above


def _record_entry(ds: PairDataset, rec: PairRecord, root: Path) -> dict[str, Any]:
    return {
        "name": rec.name,
        "image": _fused_rel(ds, rec),
        "split": rec.split,
        "boxes": None if rec.boxes is None else [
            {"label": b.label, "x1": b.x1, "y1": b.y1, "x2": b.x2, "y2": b.y2} for b in rec.boxes
        ],
        "annotation": _label_rel(root, rec.annotation_path, "labels"),
        "mask": _label_rel(root, rec.mask_path, "masks"),
        "tags": dict(rec.tags),
        "source": {"ir": str(rec.ir_path), "vi": str(rec.vi_path)},
        "source_stamp": {"ir": _stamp(rec.ir_path), "vi": _stamp(rec.vi_path)},
    }


def _stamp(path: Path) -> list[int]:
    """``[size, mtime_ns]`` of a source file: a fused image whose sources' stamps changed is stale."""
    st = Path(path).stat()
    return [st.st_size, st.st_mtime_ns]


def _fused_dirs(out: Path) -> list[Path]:
    return [d for d in [out / FUSED_DIR, *(p / FUSED_DIR for p in out.iterdir() if p.is_dir())] if d.is_dir()]


def _remove_stale_temps(out: Path) -> int:
    """Temp files (``.name.XXXX.tmp``) of writes a kill interrupted; harmless but untidy."""
    n = 0
    for p in out.rglob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            n += 1
    return n


def _remove_outputs(out: Path, old: dict | None) -> None:
    """Remove what an earlier run wrote (its fused folders, label copies, manifest), nothing else."""
    for d in _fused_dirs(out):
        shutil.rmtree(d)
    for rec in (old or {}).get("records", []):
        for key in ("annotation", "mask"):
            if rec.get(key):
                with contextlib.suppress(FileNotFoundError):
                    (out / rec[key]).unlink()
    for rel in (old or {}).get("extra_files", []):
        with contextlib.suppress(FileNotFoundError):
            (out / rel).unlink()
    with contextlib.suppress(FileNotFoundError):
        (out / MANIFEST).unlink()
    for d in sorted((p for p in out.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            d.rmdir()  # only empty ones


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """One writer per output folder (an advisory lock the OS drops when the process dies).

    A second run into the same folder (two seeds of one method in a comparison, say) waits for the
    first and then finds its images written, instead of failing.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    path = out / _LOCK
    while True:
        f = open(path, "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            _LOG.info("%s: another fuse_dataset run is writing there; waiting for it", out)
            fcntl.flock(f, fcntl.LOCK_EX)
        # The holder deletes the lock file on release: a lock on a deleted file guards nothing.
        try:
            if os.fstat(f.fileno()).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        f.close()
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # still held: nobody else can be using it
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


# ----------------------------------------------------------------------------- decode / fuse / encode


@dataclass
class _Pair:
    rec: PairRecord
    path: Path  # output file
    ir: np.ndarray  # (1, H, W): uint8 (scaled to [0, 1] on the device), or float32 in [0, 1]
    vi: np.ndarray  # (1 or 3, H, W), likewise


def _decode(rec: PairRecord, path: Path) -> _Pair:
    ir_img = read_image(rec.ir_path)
    vi_img = read_image(rec.vi_path)
    if ir_img.shape[:2] != vi_img.shape[:2]:
        raise DatasetError(
            rec.vi_path,
            f"visible image is {vi_img.shape[1]}x{vi_img.shape[0]} but its IR image {rec.ir_path} is "
            f"{ir_img.shape[1]}x{ir_img.shape[0]} (the pair must be registered)",
        )
    return _Pair(rec, path, _gray_input(ir_img), _gray_input(vi_img) if is_gray(vi_img) else _colour_input(vi_img))


def _gray_input(img: np.ndarray) -> np.ndarray:
    """``(1, H, W)`` luminance: 8-bit stays 8-bit (a quarter of the bytes to batch and move; the
    division by 255 happens on the device, to the same float32 values), anything else float32."""
    if img.dtype == np.uint8 and (img.ndim == 2 or is_gray(img)):
        return np.ascontiguousarray(img if img.ndim == 2 else img[..., 0])[None]
    return np.ascontiguousarray(luminance01(img), dtype=np.float32)[None]


def _colour_input(img: np.ndarray) -> np.ndarray:
    """``(3, H, W)`` RGB: uint8 as is, 16-bit scaled to float32 in [0, 1]."""
    x = img if img.dtype == np.uint8 else to_float01(img)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def _prefetch(pool: ThreadPoolExecutor, fn, items: Iterable, depth: int) -> Iterator[tuple[Any, Future]]:
    """Submit ``fn(*item)`` ahead, at most ``depth`` in flight; yield (item, future) in order."""
    it = iter(items)
    queue: deque = deque((x, pool.submit(fn, *x)) for x in islice(it, depth))
    while queue:
        item, fut = queue.popleft()
        nxt = next(it, None)
        if nxt is not None:
            queue.append((nxt, pool.submit(fn, *nxt)))
        yield item, fut


def _batches(pairs: Iterable[_Pair], batch_size: int, max_pending: int) -> Iterator[list[_Pair]]:
    """Group decoded pairs into batches of one size and colour-ness, keeping few pending."""
    buckets: dict[tuple, list[_Pair]] = defaultdict(list)
    pending = 0
    for p in pairs:
        key = (p.ir.shape[-2:], p.vi.shape[0], p.ir.dtype, p.vi.dtype)
        buckets[key].append(p)
        pending += 1
        if len(buckets[key]) >= batch_size:
            pending -= len(buckets[key])
            yield buckets.pop(key)
        elif pending > max_pending:  # many sizes: flush the fullest bucket rather than hoard images
            key = max(buckets, key=lambda k: len(buckets[k]))
            pending -= len(buckets[key])
            yield buckets.pop(key)
    for key in list(buckets):
        yield buckets.pop(key)


def _to_device01(arrays: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """Stack one batch's arrays and move them to ``device`` as float32 in [0, 1]."""
    x = torch.from_numpy(np.stack(arrays))
    x = x.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else x.to(device)
    return x.to(torch.float32).div_(255.0) if x.dtype == torch.uint8 else x


def _fuse_batch(fuser: Fuser, batch: list[_Pair], device: torch.device, gray_output: bool) -> np.ndarray:
    """Fuse one batch on ``device``; returns uint8 ``(B, H, W, C)`` on the host."""
    ir = _to_device01([p.ir for p in batch], device)
    vi = _to_device01([p.vi for p in batch], device)
    names = [p.rec.name for p in batch]
    fused = fuse_with_colour(fuser, ir, vi, names, gray_output)
    b, _, h, w = ir.shape
    if fused.ndim != 4 or fused.shape[0] != b or fused.shape[1] not in (1, 3) or tuple(fused.shape[-2:]) != (h, w):
        raise RuntimeError(f"method {fuser.name!r} returned shape {tuple(fused.shape)} "
                           f"for a batch of {tuple(ir.shape)}")
    # one reduction instead of an elementwise isfinite: a NaN or inf anywhere makes the sum so
    if not torch.isfinite(fused.sum()):
        raise RuntimeError(f"method {fuser.name!r} produced NaN/inf for {', '.join(names)}")
    # quantise on the device: a quarter of the bytes to copy back; in place, the result is ours
    u8 = fused.float().clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
    return u8.permute(0, 2, 3, 1).cpu().numpy()


@contextlib.contextmanager
def _compute_threads(device: torch.device, workers: int) -> Iterator[None]:
    """On the CPU, leave cores to the decode/encode threads: torch's intra-op threads spin-wait
    when a core they need is busy, which costs far more than one thread fewer."""
    before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(max(1, min(before, (os.cpu_count() or 1) - workers)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _write(path: Path, img: np.ndarray) -> None:
    write_image(path, img[..., 0] if img.shape[-1] == 1 else img)


# ----------------------------------------------------------------------------- the stage


def fuse_dataset(
    source: str | Path | PairDataset | None,
    method: str,
    out: str | Path,
    *,
    layout: str = "auto",
    device: str | torch.device = "cpu",
    batch_size: int = 4,
    weights: str | Path | None = None,
    fuser_params: dict[str, Any] | None = None,
    gray_output: bool = False,
    skip_bad: bool = False,
    on_mismatch: str = "error",
    progress: bool = True,
    workers: int = 2,
    distributed: bool = False,
) -> FusedDataset:
    """Fuse every pair of ``source`` with ``method`` into ``out``; resumable; returns the result.

    ``source``: a dataset folder (read with ``layout``), a :class:`PairDataset`, or ``None``
    for the synthetic default (``layout`` "m3fd" or "msrs" picks its part).
    ``on_mismatch``: what to do when ``out`` holds a fused dataset made with other settings
    (method, parameters, weights, source, gray_output): ``"error"`` or ``"replace"``.
    ``workers``: threads that decode inputs and, separately, encode outputs.
    ``distributed``: this process is one rank of a torchrun job (see :mod:`.ranks`): every rank
    calls this with the same arguments, fuses its share of the pairs (a bare ``cuda`` device is
    the rank's own GPU), and all return the one merged result.
    """
    if on_mismatch not in ("error", "replace"):
        raise ConfigError(f"on_mismatch must be 'error' or 'replace', not {on_mismatch!r}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, not {batch_size}")
    device = torch.device(check_device(device if isinstance(device, str) else str(device)))
    ranks = Ranks.join() if distributed else Ranks()
    device = ranks.device(device)
    # the leader alone tries the output folder (the check creates and removes folders) and makes
    # the synthetic default where it is missing; the other ranks take its word
    out = ranks.from_leader(lambda: check_output_dir(out)).resolve()

    params = dict(fuser_params or {})
    weights = resolve_weights(method, weights, source.root if isinstance(source, PairDataset) else source)
    if weights is not None:
        params["weights"] = str(weights)
    fuser = build_fuser(method, device, **params)
    ds = (ranks.from_leader(lambda: resolve_source(source, layout, skip_bad)) if source is None
          else resolve_source(source, layout, skip_bad))
    src_root = Path(ds.root).resolve()
    if out == src_root or src_root.is_relative_to(out):
        raise ConfigError(f"output folder {out} would hold the source dataset {src_root}; choose another --out")
    fingerprint = _fingerprint(fuser, method, ds, gray_output)

    def prepare() -> dict | None:
        """The earlier run's manifest to resume from, after refusing or clearing a different one."""
        old = read_json(out / MANIFEST, unreadable={})  # unreadable: treated as not matching
        stale = old is not None and _pixels(old.get("fingerprint"), fuser) != _pixels(fingerprint, fuser)
        orphan = old is None and any(any(d.iterdir()) for d in _fused_dirs(out))
        if stale or orphan:
            why = (describe_changes(_pixels(old.get("fingerprint"), fuser) or {}, _pixels(fingerprint, fuser),
                                    _FINGERPRINT_WORDS) if stale
                   else "fused images but no manifest")
            if on_mismatch == "error":
                raise refuse_to_replace(out, "a fused dataset", why)
            _remove_outputs(out, old)
        _remove_stale_temps(out)
        return None if (stale or orphan) else old

    if ranks.leader:
        out.mkdir(parents=True, exist_ok=True)
    # The leader holds the folder's lock and prepares it; the other ranks take its word.
    with _exclusive(out) if ranks.leader else contextlib.nullcontext():
        old = ranks.from_leader(prepare)
        return _run(ds, src_root, fuser, method, out, fingerprint, old,
                    device=device, batch_size=batch_size, gray_output=gray_output, skip_bad=skip_bad,
                    progress=progress, workers=max(1, int(workers)), ranks=ranks)


def _run(ds: PairDataset, src_root: Path, fuser: Fuser, method: str, out: Path, fingerprint: dict,
         old: dict | None, *,
         device: torch.device, batch_size: int, gray_output: bool, skip_bad: bool, progress: bool,
         workers: int, ranks: Ranks) -> FusedDataset:
    from tqdm import tqdm

    records = list(ds.records)
    names = [r.name for r in records]
    dup = sorted(n for n, k in Counter(names).items() if k > 1)
    if dup:
        raise DatasetError(src_root, f"pair names are not unique: {', '.join(dup[:20])}")
    entries = {r.name: _record_entry(ds, r, src_root) for r in records}
    done_before = {e.get("name"): e for e in (old or {}).get("records", []) if isinstance(e, dict)}
    # a fused image whose sources changed since (size or mtime) is stale: removed, then fused again
    # (a manifest written before stamps were kept has none to compare: its images are trusted)
    stale = [r for r in records if (out / entries[r.name]["image"]).is_file()
             and (done_before.get(r.name) or {}).get("source_stamp", entries[r.name]["source_stamp"])
             != entries[r.name]["source_stamp"]]
    todo = [r for r in records if r in stale or not (out / entries[r.name]["image"]).is_file()]
    if ranks.world > 1:  # one view of what is left, the leader's
        left = set(ranks.from_leader(lambda: [r.name for r in todo]))
        todo = [r for r in records if r.name in left]
    if not todo and old and old.get("complete") and old.get("records") == jsonable([entries[n] for n in names]):
        fused = load_fused_dataset(out)  # a finished cache of exactly this: reuse it untouched
        fused.manifest["counts"] = {**fused.manifest.get("counts", {}), "fused": 0, "stale": 0,
                                    "skipped": len(fused.records)}  # what this run did: nothing
        return fused
    check = getattr(fuser, "check_names", None)
    if check is not None and todo:
        check([r.name for r in todo])  # list every missing precomputed result up front

    skipped_source = [{"path": str(s.path), "problem": s.problem} for s in ds.skipped]
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "method": method,
        "label": method_label(method),
        "fuser": fingerprint["fuser"],
        "params": fingerprint["fuser"].get("params", {}),
        "checkpoint_sha256": fingerprint["checkpoint_sha256"],
        "gray_output": fingerprint["gray_output"],
        "fingerprint": fingerprint,
        "source": {
            "root": str(src_root),
            "layout": ds.layout,
            "modalities": list(ds.modalities),
            "pairs": len(records) + len(ds.skipped),
            "classes": list(ds.classes),
            "skipped": skipped_source,
        },
        "counts": {"total": len(records), "done": len(records) - len(todo), "fused": 0,
                   "skipped": len(records) - len(todo), "stale": len(stale), "bad": len(skipped_source)},
        "versions": library_versions("torch", "numpy", "cv2"),
        "device": str(device),
        "complete": False,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "extra_files": [],
        "records": [entries[n] for n in names],
    }

    def start() -> list[str]:
        for r in stale:
            with contextlib.suppress(FileNotFoundError):
                (out / entries[r.name]["image"]).unlink()
        manifest["extra_files"] = _copy_labels(ds, src_root, records, entries, out)
        write_json(out / MANIFEST, manifest, indent=1)
        return manifest["extra_files"]

    # the leader copies the labels and writes the manifest; images only once it is there
    manifest["extra_files"] = ranks.from_leader(start)
    share = ranks.share(todo)  # this rank's pairs (all of them in a single process)

    bar = tqdm(total=len(share), desc=f"fuse {manifest['label']}{ranks.describe()}", unit="img",
               disable=not progress or not ranks.leader, dynamic_ncols=True, file=sys.stderr)
    bad: dict[str, SkippedItem] = {}  # pairs that fail to decode, under skip_bad
    fused = 0
    failure: FusionPerceptionError | None = None  # this rank's, reported to all ranks
    decode_pool = ThreadPoolExecutor(workers, thread_name_prefix="fuse-decode")
    write_pool = ThreadPoolExecutor(workers, thread_name_prefix="fuse-encode")
    writes: deque[Future] = deque()
    try:
        def decoded() -> Iterator[_Pair]:
            jobs = ((r, out / entries[r.name]["image"]) for r in share)
            for (rec, _), fut in _prefetch(decode_pool, _decode, jobs, depth=2 * batch_size + 2 * workers):
                try:
                    yield fut.result()
                except DatasetError as e:
                    if not skip_bad:
                        raise
                    bad[rec.name] = SkippedItem(e.path or rec.ir_path, e.problem)
                    warnings.warn(f"skipped {e.path}: {e.problem}", UserWarning, stacklevel=2)
                    bar.update(1)

        def drain(limit: int) -> None:
            nonlocal fused
            while writes and (len(writes) > limit or writes[0].done()):
                writes.popleft().result()  # re-raises a failed write
                fused += 1
                bar.update(1)

        with torch.inference_mode(), _compute_threads(device, workers):
            for batch in _batches(decoded(), batch_size, max_pending=4 * batch_size):
                try:
                    images = _fuse_batch(fuser, batch, device, gray_output)
                except Exception as e:  # noqa: BLE001 - only an allocation failure is turned into advice
                    if not is_out_of_memory(e):
                        raise
                    raise _out_of_memory(batch, manifest["label"], device) from None
                for pair, img in zip(batch, images):
                    writes.append(write_pool.submit(_write, pair.path, img))
                drain(limit=4 * batch_size)
        drain(limit=0)
    except FusionPerceptionError as e:
        if ranks.world == 1:
            raise
        failure = e
    finally:
        decode_pool.shutdown(wait=True, cancel_futures=True)
        write_pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    per_rank = ranks.all_gather((fused, bad), failure)  # raises any rank's failure on every rank

    def finish() -> None:  # the one manifest, merged from every rank's work
        bad = {name: item for _, rank_bad in per_rank for name, item in rank_bad.items()}
        if bad:
            manifest["records"] = [e for e in manifest["records"] if e["name"] not in bad]
            manifest["source"]["skipped"] += [{"path": str(b.path), "problem": b.problem} for b in bad.values()]
        missing = [e["name"] for e in manifest["records"] if not (out / e["image"]).is_file()]
        if missing:
            raise DatasetError(out, f"{len(missing)} fused images were not written: {', '.join(missing[:20])}")
        manifest["counts"].update(total=len(manifest["records"]), done=len(manifest["records"]),
                                  fused=sum(n for n, _ in per_rank), bad=len(manifest["source"]["skipped"]))
        manifest["complete"] = True
        manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        write_json(out / MANIFEST, manifest, indent=1)

    ranks.from_leader(finish)
    return load_fused_dataset(out)


def _out_of_memory(batch: list[_Pair], label: str, device: torch.device) -> DatasetError:
    h, w = batch[0].ir.shape[-2:]
    what = f"{len(batch)} {w}x{h} pairs at once" if len(batch) > 1 else f"this {w}x{h} pair"
    advice = ("run the same command with --batch-size 1 (finished images are kept)" if len(batch) > 1
              else "free memory, or fuse on a machine with more")
    return DatasetError(batch[0].rec.ir_path, f"out of memory fusing {what} with {label} on {device}"
                                              f"{memory_limit_note()}; {advice}")


def _copy_labels(ds: PairDataset, src_root: Path, records: list[PairRecord], entries: dict, out: Path) -> list[str]:
    """Carry annotations and masks over, and the files besides them that the layout names (TarDAL's
    split lists); returns those extra files."""
    for rec in records:
        e = entries[rec.name]
        if rec.annotation_path is not None:
            _copy_atomic(Path(rec.annotation_path), out / e["annotation"])
        if rec.mask_path is not None:
            _copy_atomic(Path(rec.mask_path), out / e["mask"])
    extra = get_layout(ds.layout).extra_files(src_root)
    for rel in extra:
        _copy_atomic(src_root / rel, out / rel)
    return extra


def load_fused_dataset(out: str | Path, *, require_complete: bool = True) -> FusedDataset:
    """Read a ``fuse_dataset`` output back through its manifest (absolute image paths)."""
    out = Path(out).expanduser().resolve()
    path = out / MANIFEST
    if not path.is_file():
        raise DatasetError(path, "no manifest: not a fuse_dataset output (or that run never started)")
    try:
        m = json.loads(path.read_text())
        records = [
            FusedRecord(
                name=e["name"],
                image_path=out / e["image"],
                split=e.get("split"),
                boxes=None if e.get("boxes") is None else [Box(**b) for b in e["boxes"]],
                mask_path=out / e["mask"] if e.get("mask") else None,
                tags=dict(e.get("tags") or {}),
            )
            for e in m["records"]
        ]
        fused = FusedDataset(
            root=out, method=m["method"], label=m["label"], source_layout=m["source"]["layout"],
            records=records, classes=tuple(m["source"].get("classes") or ()), manifest=m,
        )
    except (ValueError, KeyError, TypeError) as e:
        raise DatasetError(path, f"manifest is not readable ({type(e).__name__}: {e})") from None
    if require_complete and not m.get("complete"):
        raise DatasetError(out, "the fuse run that writes here has not finished: re-run it with the same "
                                "arguments to complete it (finished images are kept)")
    if require_complete:
        missing = [r.name for r in records if not r.image_path.is_file()]
        if missing:
            raise DatasetError(out, f"{len(missing)} fused images are missing: {', '.join(missing[:20])}")
    return fused


def fuse_default(method: str, out: str | Path, *, source: str | Path | None = None,
                 parts: Iterable[str] = DATASET_PARTS, **kwargs: Any) -> dict[str, FusedDataset]:
    """Fuse every part (``m3fd``, ``msrs``) of a multi-task root into ``out/<part>``.

    ``source=None`` is the synthetic default (generated on first use).
    """
    ranks = Ranks.join() if kwargs.get("distributed") else Ranks()
    ranks.from_leader(lambda: check_output_dir(out))
    weights = resolve_weights(method, kwargs.get("weights"), source)
    build_fuser(method, "cpu", **({"weights": weights} if weights else {}),
                **(kwargs.get("fuser_params") or {}))  # a bad method or parameter fails before any data is made
    if source is None:
        from fusion_perception.data.synthetic import ensure_default

        source = ranks.from_leader(lambda: ensure_default("both"))  # made once, by the leader
    root = Path(source)
    present = [p for p in parts if (root / p).is_dir()]
    if not present:
        raise DatasetError(root, f"none of the sub-datasets {', '.join(parts)} found here")
    return {p: fuse_dataset(root / p, method, Path(out) / p, **kwargs) for p in present}


__all__ = ["fuse_dataset", "load_fused_dataset", "fuse_default", "resolve_source", "dataset_parts"]
