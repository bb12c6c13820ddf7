"""The preprocessing stage: fuse a whole paired dataset into a drop-in fused dataset.

``fuse_dataset(source, method, out)`` writes the fused images in the source's layout, with a
``fused`` image folder in place of the two modality folders, copies the labels, and keeps a
manifest (``out/manifest.json``, :mod:`.manifest`) that makes the run resumable and reusable.
The layout says where each fused image goes and which files besides the labels come along
(:mod:`fusion_perception.data.layouts`):

- M3FD  -> ``out/fused/*.png`` + ``out/Annotation/*.xml``
- TarDAL -> ``out/fused``, ``out/labels``, ``out/meta``
- MSRS  -> ``out/{train,test}/fused`` + ``out/{train,test}/Segmentation_labels``
- pairs -> ``out/fused``

Every file is written atomically (temp file + rename), so after a crash or a kill an image
is either whole or absent; a re-run with the same settings (the manifest's "fingerprint")
fuses only what is missing. Decoding and encoding run in thread pools so the device that
fuses (a GPU when asked) is not kept waiting (:mod:`.pipeline`).

This module resolves the source and runs the stage's steps; :mod:`.manifest` keeps the books
(fingerprint, manifest, lock, label copies) and :mod:`.pipeline` moves the pixels.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch

from fusion_perception.data.layouts import find_layout
from fusion_perception.data.records import FusedDataset, PairDataset, PairRecord
from fusion_perception.devices import torch_device
from fusion_perception.errors import ConfigError, DatasetError, FusionPerceptionError
from fusion_perception.fusion.base import Fuser
from fusion_perception.fusion.manifest import (
    MANIFEST,
    exclusive,
    finish_manifest,
    fingerprint,
    load_fused_dataset,
    new_manifest,
    prepare_output,
    record_entry,
    source_digests,
    sources_unchanged,
    start_output,
)
from fusion_perception.fusion.method import FusionMethod, resolve_method
from fusion_perception.fusion.pipeline import Pipeline
from fusion_perception.fusion.ranks import Ranks
from fusion_perception.outputs import check_output_dir
from fusion_perception.record import jsonable
# Sub-datasets of a multi-task root such as the synthetic default (root/m3fd, root/msrs).
DATASET_PARTS: tuple[str, ...] = ("m3fd", "msrs")
# The synthetic default's part for each task (a source-less request for a layout reads the part
# of the first task the layout's labels serve).
_SYNTHETIC_PART = {"det": "m3fd", "seg": "msrs"}


# ----------------------------------------------------------------------------- source


def dataset_parts(root: str | Path) -> list[str]:
    """Sub-datasets (``m3fd``, ``msrs``) of a multi-task root such as the synthetic default."""
    root = Path(root)
    return [p for p in DATASET_PARTS if (root / p).is_dir()]


def is_single_dataset(root: str | Path) -> bool:
    """Whether ``root`` is itself a dataset of a known layout (even one with an m3fd/ or msrs/
    sub-folder, which :func:`dataset_parts` would take for a multi-task root)."""
    from fusion_perception.data.readers import detect_layout

    try:
        detect_layout(root)
        return True
    except FusionPerceptionError:
        return False


def resolve_source(source: str | Path | PairDataset | None, layout: str = "auto",
                   skip_bad: bool = False) -> PairDataset:
    """The paired dataset to fuse: a PairDataset as is, a folder through the readers, or
    (``None``) one part of the synthetic default, chosen by ``layout`` (m3fd or msrs)."""
    if isinstance(source, PairDataset):
        return source
    from fusion_perception.data.readers import load_dataset

    if source is None:
        from fusion_perception.synthetic.dataset import ensure_default

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
    if layout == "auto" and parts and not is_single_dataset(root):
        raise ConfigError(
            f"{root} holds several datasets ({', '.join(parts)}): point at one of them "
            f"(e.g. {root / parts[0]}) or use fuse_default(source=...) to fuse all"
        )
    return load_dataset(root, layout, skip_bad=skip_bad)


# ----------------------------------------------------------------------------- options


@dataclass(frozen=True)
class FuseOptions:
    """How :func:`fuse_dataset` runs: its keyword arguments, one field each (same defaults)."""

    layout: str = "auto"
    device: str | torch.device | None = None  # None: the GPU when there is one (fusion_perception.devices)
    batch_size: int = 4
    weights: str | Path | None = None
    fuser_params: dict[str, Any] | None = None
    gray_output: bool = False
    skip_bad: bool = False
    on_mismatch: str = "error"
    progress: bool = True
    workers: int = 2
    distributed: bool = False

    @classmethod
    def of(cls, options: FuseOptions | None, keywords: dict[str, Any]) -> FuseOptions:
        """``options`` (or the defaults) with ``keywords`` in place of their fields."""
        names = {f.name for f in dataclasses.fields(cls)}
        for key in keywords:
            if key not in names:
                raise TypeError(f"fuse_dataset() got an unexpected keyword argument {key!r}")
        return dataclasses.replace(options or cls(), **keywords)


@dataclass
class _Job:
    """One fuse run, set up: what to fuse with what, where, and how."""

    ds: PairDataset
    src_root: Path
    fuser: Fuser
    method: FusionMethod
    out: Path
    fingerprint: dict
    device: torch.device
    ranks: Ranks
    options: FuseOptions


@dataclass
class _Plan:
    """What a run finds: the pairs, their manifest entries, which are stale and which left to fuse."""

    records: list[PairRecord]
    entries: dict[str, dict]
    stale: list[PairRecord]
    todo: list[PairRecord]


# ----------------------------------------------------------------------------- the stage


def fuse_dataset(source: str | Path | PairDataset | None, method: str | FusionMethod, out: str | Path, *,
                 options: FuseOptions | None = None, **keywords: Any) -> FusedDataset:
    """Fuse every pair of ``source`` with ``method`` into ``out``; resumable; returns the result.

    ``method``: a method spec (``"emma"``, ``"folder:X=PATH"``), resolved here with ``weights`` and
    ``fuser_params``, or a :class:`~fusion_perception.fusion.method.FusionMethod` a run resolved
    already (then ``weights`` and ``fuser_params`` are its own).

    ``source``: a dataset folder (read with ``layout``), a :class:`PairDataset`, or ``None``
    for the synthetic default (``layout`` "m3fd" or "msrs" picks its part).
    The keywords are :class:`FuseOptions`' fields (or pass ``options=``): ``layout="auto"``,
    ``device=None`` (the GPU when there is one), ``batch_size=4``, ``weights=None``, ``fuser_params=None``,
    ``gray_output=False``, ``skip_bad=False``, ``on_mismatch="error"``, ``progress=True``,
    ``workers=2``, ``distributed=False``.
    ``on_mismatch``: what to do when ``out`` holds a fused dataset made with other settings
    (method, parameters, weights, source, gray_output): ``"error"`` or ``"replace"``.
    ``workers``: threads that decode inputs and, separately, encode outputs.
    ``distributed``: this process is one rank of a torchrun job (see :mod:`.ranks`): every rank
    calls this with the same arguments, fuses its share of the pairs (a bare ``cuda`` device is
    the rank's own GPU), and all return the one merged result.
    """
    opts = FuseOptions.of(options, keywords)
    if opts.on_mismatch not in ("error", "replace"):
        raise ConfigError(f"on_mismatch must be 'error' or 'replace', not {opts.on_mismatch!r}")
    if opts.batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, not {opts.batch_size}")
    device = torch.device(torch_device(None if opts.device is None else str(opts.device)))
    ranks = Ranks.join() if opts.distributed else Ranks()
    device = ranks.device(device)
    # the leader alone tries the output folder (the check creates and removes folders) and makes
    # the synthetic default where it is missing; the other ranks take its word
    out = ranks.from_leader(lambda: check_output_dir(out, done=MANIFEST)).resolve()

    method = resolve_method(method, opts.weights, source.root if isinstance(source, PairDataset) else source,
                            opts.fuser_params)
    fuser = method.on(device)
    ds = (ranks.from_leader(lambda: resolve_source(source, opts.layout, opts.skip_bad)) if source is None
          else resolve_source(source, opts.layout, opts.skip_bad))
    src_root = Path(ds.root).resolve()
    if out == src_root or src_root.is_relative_to(out):
        raise ConfigError(f"output folder {out} would hold the source dataset {src_root}; choose another --out")
    job = _Job(ds, src_root, fuser, method, out, fingerprint(method, ds, opts.gray_output),
               device, ranks, dataclasses.replace(opts, workers=max(1, int(opts.workers))))

    if ranks.leader:
        out.mkdir(parents=True, exist_ok=True)
    # The leader holds the folder's lock and prepares it; the other ranks take its word.
    with exclusive(out) if ranks.leader else contextlib.nullcontext():
        old = ranks.from_leader(lambda: prepare_output(out, job.fingerprint, fuser, opts.on_mismatch))
        return _run(job, old)


def _run(job: _Job, old: dict | None) -> FusedDataset:
    """Fuse what ``old`` (the earlier run's manifest) lacks, or reuse a finished output as is."""
    plan = _plan(job, old)
    names = [r.name for r in plan.records]
    if not plan.todo and old and old.get("complete") and _same_entries(old.get("records"), [plan.entries[n] for n in names]):
        fused = load_fused_dataset(job.out)  # a finished cache of exactly this: reuse it untouched
        fused.manifest["counts"] = {**fused.manifest.get("counts", {}), "fused": 0, "stale": 0,
                                    "skipped": len(fused.records)}  # what this run did: nothing
        return fused
    check = getattr(job.fuser, "check_names", None)
    if check is not None and plan.todo:
        check([r.name for r in plan.todo])  # list every missing precomputed result up front

    manifest = new_manifest(job.ds, job.src_root, job.method, job.fingerprint,
                            [plan.entries[n] for n in names], todo=len(plan.todo), stale=len(plan.stale),
                            device=job.device)
    # the leader copies the labels and writes the manifest; images only once it is there
    manifest["extra_files"] = job.ranks.from_leader(lambda: start_output(
        job.out, manifest, job.ds, job.src_root, plan.records, plan.entries, plan.stale))
    share = job.ranks.share(plan.todo)  # this rank's pairs (all of them in a single process)
    per_rank = _fuse_share(job, share, plan.entries, manifest["label"])
    job.ranks.from_leader(lambda: finish_manifest(job.out, manifest, per_rank))
    return load_fused_dataset(job.out)


def _same_entries(recorded: Any, entries: list[dict]) -> bool:
    """Whether a manifest's entries describe these pairs; a field this version adds that says
    nothing about a pair (``None``: no condition) is not a difference, so a cache made by an earlier
    version is kept as it is (its manifest, and what downstream runs fingerprinted of it)."""
    if not isinstance(recorded, list) or len(recorded) != len(entries):
        return False
    return all(isinstance(old, dict) and {k: v for k, v in new.items() if k in old or v is not None} == old
               for old, new in zip(recorded, jsonable(entries)))


def _plan(job: _Job, old: dict | None) -> _Plan:
    """The pairs, their entries, the stale images and the pairs left to fuse (the leader's view)."""
    records = list(job.ds.records)
    names = [r.name for r in records]
    dup = sorted(n for n, k in Counter(names).items() if k > 1)
    if dup:
        raise DatasetError(job.src_root, f"pair names are not unique: {', '.join(dup[:20])}")
    entries = {r.name: record_entry(job.ds, r, job.src_root) for r in records}
    done_before = {e.get("name"): e for e in (old or {}).get("records", []) if isinstance(e, dict)}
    # a fused image whose sources changed since is stale: removed, then fused again (a manifest
    # written before stamps were kept has none to compare: its images are trusted)
    out = job.out
    stale = [r for r in records if (out / entries[r.name]["image"]).is_file()
             and not sources_unchanged(done_before.get(r.name), entries[r.name], r)]
    todo = [r for r in records if r in stale or not _whole(out / entries[r.name]["image"])]
    if job.ranks.world > 1:  # one view of what is left, the leader's
        left = set(job.ranks.from_leader(lambda: [r.name for r in todo]))
        todo = [r for r in records if r.name in left]
    # the sources' content (a copied dataset with the same bytes then keeps its cache): a kept image
    # keeps the digests it was fused from (every rank: the entries decide whether a finished cache is
    # reused as is); an image fused now gets its sources', hashed by the leader, who writes the manifest
    for r in records:
        if (done_before.get(r.name) or {}).get("source_sha256"):
            entries[r.name]["source_sha256"] = done_before[r.name]["source_sha256"]
    if job.ranks.leader:
        for r in todo:
            digests = source_digests(r)
            if digests is not None:
                entries[r.name]["source_sha256"] = digests
            else:
                entries[r.name].pop("source_sha256", None)
    return _Plan(records, entries, stale, todo)


def _whole(path: Path) -> bool:
    """Whether a fused image already there is kept: a file that still decodes (its header and its
    end-of-image marker, the readers' cheap check); a cut or corrupt one is fused again, never
    handed to a detector that would drop it with a line in its log."""
    from fusion_perception.data.validate import probe_image

    try:
        probe_image(path)
    except DatasetError:
        return False
    return True


def _fuse_share(job: _Job, share: list[PairRecord], entries: dict[str, dict], label: str) -> list[tuple]:
    """Fuse this rank's ``share``; every rank's ``(fused, bad)``, or the first rank's failure raised."""
    from tqdm import tqdm

    opts, ranks = job.options, job.ranks
    bar = tqdm(total=len(share), desc=f"fuse {label}{ranks.describe()}", unit="img",
               disable=not opts.progress or not ranks.leader, dynamic_ncols=True, file=sys.stderr)
    pipe = Pipeline(job.fuser, job.device, label, batch_size=opts.batch_size, workers=opts.workers,
                    gray_output=opts.gray_output, skip_bad=opts.skip_bad)
    failure: FusionPerceptionError | None = None  # this rank's, reported to all ranks
    try:
        pipe.run(((r, job.out / entries[r.name]["image"]) for r in share), bar)
    except FusionPerceptionError as e:
        if ranks.world == 1:
            raise
        failure = e
    finally:
        bar.close()
    return ranks.all_gather((pipe.fused, pipe.bad), failure)  # raises any rank's failure on every rank


def fuse_default(method: str | FusionMethod, out: str | Path, *, source: str | Path | None = None,
                 parts: Iterable[str] = DATASET_PARTS, **kwargs: Any) -> dict[str, FusedDataset]:
    """Fuse every part (``m3fd``, ``msrs``) of a multi-task root into ``out/<part>``.

    ``source=None`` is the synthetic default (generated on first use).
    """
    ranks = Ranks.join() if kwargs.get("distributed") else Ranks()
    ranks.from_leader(lambda: check_output_dir(out))
    # a bad method, checkpoint or parameter fails before any data is made
    method = resolve_method(method, kwargs.pop("weights", None), source, kwargs.pop("fuser_params", None))
    if source is None:
        from fusion_perception.synthetic.dataset import ensure_default

        source = ranks.from_leader(lambda: ensure_default("both"))  # made once, by the leader
    root = Path(source)
    present = [p for p in parts if (root / p).is_dir()]
    if not present:
        raise DatasetError(root, f"none of the sub-datasets {', '.join(parts)} found here")
    return {p: fuse_dataset(root / p, method, Path(out) / p, **kwargs) for p in present}


__all__ = ["fuse_dataset", "fuse_default", "resolve_source", "dataset_parts", "is_single_dataset", "FuseOptions"]
