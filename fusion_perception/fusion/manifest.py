"""The fused dataset's bookkeeping: its manifest, fingerprint, output paths, lock and label copies.

The stage (:mod:`fusion_perception.fusion.stage`) keeps ``out/manifest.json``, the fused dataset's
run record (:mod:`fusion_perception.record`): the fingerprint of the settings that decide the
pixels, one entry per pair (where its fused image goes, its labels, its sources' size and
modification time, and their sha256 once fused) and the counts. This module builds, checks and finishes that manifest, clears an
output made with other settings, holds the folder's lock, copies the labels atomically, and reads a
finished output back (:func:`load_fused_dataset`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from fusion_perception.data.layouts import FUSED_DIR, get_layout
from fusion_perception.data.records import Box, FusedDataset, FusedRecord, PairDataset, PairRecord
from fusion_perception.errors import DatasetError
from fusion_perception.files import atomic_writer, file_sha256
from fusion_perception.fusion.base import Fuser
from fusion_perception.fusion.method import FusionMethod
from fusion_perception.provenance import library_versions
from fusion_perception.record import (
    MANIFEST_FILE, WEIGHTS_SHA256, comparable, describe_changes, folder_lock, jsonable, read_json, refuse_to_replace,
    upgraded, write_json)

MANIFEST = MANIFEST_FILE
MANIFEST_FORMAT = 1
LOCK = ".fuse_dataset.lock"


# ----------------------------------------------------------------------------- fingerprint


def fingerprint(method: FusionMethod, ds: PairDataset, gray_output: bool) -> dict[str, Any]:
    """Everything that determines the pixels: a cached output is reused only when this matches."""
    return jsonable({
        "method": method.name,
        **method.settings(),
        "source_root": str(Path(ds.root).resolve()),
        "source_layout": ds.layout,
        "gray_output": bool(gray_output),
    })


def pixels(fingerprint: dict | None, fuser: Fuser) -> Any:
    """What of a fingerprint decides the pixels: all of it but the fuser's runtime parameters
    (how it computes, not what: e.g. EMMA's memory format), as the device and batch size are
    left out already, and the weights' path where their sha256 is there. Two runs whose ``pixels``
    are equal share their fused images."""
    fingerprint = upgraded(fingerprint)
    if not isinstance(fingerprint, dict) or not isinstance((fingerprint.get("fuser") or {}).get("params"), dict):
        return fingerprint
    params = {k: v for k, v in fingerprint["fuser"]["params"].items() if k not in fuser.runtime_params}
    return comparable({**fingerprint, "fuser": {**fingerprint["fuser"], "params": params}})


# ----------------------------------------------------------------------------- output layout


def fused_rel(ds: PairDataset, rec: PairRecord) -> str:
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


def record_entry(ds: PairDataset, rec: PairRecord, root: Path) -> dict[str, Any]:
    """A pair's manifest entry: its fused image, labels, tags, sources and their stamps."""
    return {
        "name": rec.name,
        "image": fused_rel(ds, rec),
        "split": rec.split,
        "boxes": None if rec.boxes is None else [
            {"label": b.label, "x1": b.x1, "y1": b.y1, "x2": b.x2, "y2": b.y2} for b in rec.boxes
        ],
        "annotation": _label_rel(root, rec.annotation_path, "labels"),
        "mask": _label_rel(root, rec.mask_path, "masks"),
        "tags": dict(rec.tags),
        "condition": rec.condition,
        "source": {"ir": str(rec.ir_path), "vi": str(rec.vi_path)},
        "source_stamp": {"ir": _stamp(rec.ir_path), "vi": _stamp(rec.vi_path)},
    }


def _stamp(path: Path) -> list[int]:
    """``[size, mtime_ns]`` of a source file: a fused image whose sources' stamps changed is stale,
    unless their content is still what it was fused from (:func:`sources_unchanged`)."""
    st = Path(path).stat()
    return [st.st_size, st.st_mtime_ns]


def source_digests(rec: PairRecord) -> dict[str, str] | None:
    """The sha256 of a pair's two source files, kept in its entry when it is fused; ``None`` when one
    cannot be read (the fusing reports that file as the readers do, or skips the pair with
    ``--skip-bad``: the digests are a cache key, never the error)."""
    try:
        return {"ir": file_sha256(rec.ir_path), "vi": file_sha256(rec.vi_path)}
    except OSError:
        return None


def sources_unchanged(before: dict | None, entry: dict, rec: PairRecord) -> bool:
    """Whether a pair's fused image (``before``: its entry in the earlier manifest) still comes
    from these sources (``entry``: their entry now). The stamps decide cheaply; where they differ (a
    dataset copied or provisioned again: same bytes, new times) the content does, when the earlier
    entry kept its digests; a manifest fused before digests were kept cannot tell a copy from an edit."""
    before = before or {}
    if before.get("source_stamp", entry["source_stamp"]) == entry["source_stamp"]:
        return True
    return bool(before.get("source_sha256")) and before["source_sha256"] == source_digests(rec)


def fused_dirs(out: Path) -> list[Path]:
    """The fused image folders under ``out`` (``out/fused``, ``out/<split>/fused``)."""
    return [d for d in [out / FUSED_DIR, *(p / FUSED_DIR for p in out.iterdir() if p.is_dir())] if d.is_dir()]


# ----------------------------------------------------------------------------- preparing the folder


def prepare_output(out: Path, fingerprint: dict, fuser: Fuser, on_mismatch: str) -> dict | None:
    """The earlier run's manifest to resume from, after refusing or clearing a different one."""
    old = read_json(out / MANIFEST, unreadable={})  # unreadable: treated as not matching
    stale = old is not None and pixels(old.get("fingerprint"), fuser) != pixels(fingerprint, fuser)
    orphan = old is None and any(any(d.iterdir()) for d in fused_dirs(out))
    if stale or orphan:
        why = ("fused images but no manifest" if orphan else "a manifest.json that is not a JSON object" if not old
               else describe_changes(pixels(old.get("fingerprint"), fuser) or {}, pixels(fingerprint, fuser)))
        if on_mismatch == "error":
            raise refuse_to_replace(out, "a fused dataset", why)
        remove_outputs(out, old)
    remove_stale_temps(out)
    return None if (stale or orphan) else old


def remove_stale_temps(out: Path) -> int:
    """Temp files (``.name.XXXX.tmp``) of writes a kill interrupted; harmless but untidy."""
    n = 0
    for p in out.rglob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            n += 1
    return n


def remove_outputs(out: Path, old: dict | None) -> None:
    """Remove what an earlier run wrote (its fused folders, label copies, manifest), nothing else."""
    for d in fused_dirs(out):
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


def exclusive(out: Path) -> contextlib.AbstractContextManager[None]:
    """One writer per fused dataset: a second run into the same folder (two seeds of one method in
    a comparison, say) waits for the first and then finds its images written, instead of failing."""
    return folder_lock(out, LOCK, wait=True, what="fuse_dataset run")


# ----------------------------------------------------------------------------- labels


def copy_atomic(src: Path, dst: Path) -> None:
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


def copy_labels(ds: PairDataset, src_root: Path, records: list[PairRecord], entries: dict, out: Path) -> list[str]:
    """Carry annotations and masks over, and the files besides them that the layout names (TarDAL's
    split lists); returns those extra files."""
    for rec in records:
        e = entries[rec.name]
        if rec.annotation_path is not None:
            copy_atomic(Path(rec.annotation_path), out / e["annotation"])
        if rec.mask_path is not None:
            copy_atomic(Path(rec.mask_path), out / e["mask"])
    extra = get_layout(ds.layout).extra_files(src_root)
    for rel in extra:
        copy_atomic(src_root / rel, out / rel)
    return extra


# ----------------------------------------------------------------------------- the manifest


def new_manifest(ds: PairDataset, src_root: Path, method: FusionMethod, fingerprint: dict, records: list[dict], *,
                 todo: int, stale: int, device: Any) -> dict[str, Any]:
    """The manifest of a run that starts: ``records`` are the pairs' entries, ``todo`` of them left
    to fuse, ``stale`` of those because their sources changed."""
    skipped_source = [{"path": str(s.path), "problem": s.problem} for s in ds.skipped]
    return {
        "format": MANIFEST_FORMAT,
        "method": method.spec,
        "label": method.label,
        "fuser": fingerprint["fuser"],
        "params": fingerprint["fuser"].get("params", {}),
        WEIGHTS_SHA256: fingerprint[WEIGHTS_SHA256],
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
        "counts": {"total": len(records), "done": len(records) - todo, "fused": 0,
                   "skipped": len(records) - todo, "stale": stale, "bad": len(skipped_source)},
        "versions": library_versions("torch", "numpy", "cv2"),
        "device": str(device),
        "complete": False,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "extra_files": [],
        "records": records,
    }


def start_output(out: Path, manifest: dict, ds: PairDataset, src_root: Path, records: list[PairRecord],
                 entries: dict, stale: list[PairRecord]) -> list[str]:
    """Remove the stale images, copy the labels and write the unfinished manifest; returns the
    extra files copied besides the labels."""
    for r in stale:
        with contextlib.suppress(FileNotFoundError):
            (out / entries[r.name]["image"]).unlink()
    manifest["extra_files"] = copy_labels(ds, src_root, records, entries, out)
    write_json(out / MANIFEST, manifest, indent=1)
    return manifest["extra_files"]


def finish_manifest(out: Path, manifest: dict, per_rank: list[tuple[int, dict]]) -> None:
    """The one manifest, merged from every rank's work (``(fused, bad)`` each), written complete."""
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


def load_fused_dataset(out: str | Path, *, require_complete: bool = True) -> FusedDataset:
    """Read a ``fuse_dataset`` output back through its manifest (absolute image paths)."""
    out = Path(out).expanduser().resolve()
    path = out / MANIFEST
    if not path.is_file():
        raise DatasetError(path, "no manifest: not a fuse_dataset output (or that run never started)")
    try:
        m = json.loads(path.read_text())
        if not isinstance(m, dict):
            raise TypeError(f"a JSON {type(m).__name__}, not an object")
        records = [
            FusedRecord(
                name=e["name"],
                image_path=out / e["image"],
                split=e.get("split"),
                boxes=None if e.get("boxes") is None else [Box(**b) for b in e["boxes"]],
                mask_path=out / e["mask"] if e.get("mask") else None,
                tags=dict(e.get("tags") or {}),
                condition=e.get("condition"),  # absent from manifests written before conditions
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
