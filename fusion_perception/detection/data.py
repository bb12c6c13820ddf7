"""Detection data: the source with boxes, its reproducible split, ultralytics' YOLO layout.

- :func:`load_detection_source`: the M3FD (or TarDAL) dataset, refused when it has no boxes;
- :func:`make_split` / :func:`load_or_make_split`: an 8:1:1 train/val/test split that depends
  only on the sample names and the seed, written to ``split_dir/{train,val,test}.txt`` (one
  name per line) and reused when present, so every fusion method is trained and scored on the
  same images. A dataset that brings its own split (TarDAL's ``meta/``, MSRS's train/test, split
  lists given with ``--split-lists``) keeps it; where it has no val part, val is a seeded share of train.
- :func:`export_yolo`: ``images/{split}/`` (hard links to the fused images, else symlinks,
  else copies), ``labels/{split}/*.txt`` (class cx cy w h, normalised), and ``dataset.yaml``
  with the class names in M3FD order. Skipped when its fingerprint says it is up to date.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from fusion_perception.files import atomic_write_text
from fusion_perception.data.records import Box, FusedDataset, FusedRecord, PairDataset
from fusion_perception.errors import DatasetError
from fusion_perception.record import fingerprint

_LOG = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
DEFAULT_RATIO: tuple[float, float, float] = (8.0, 1.0, 1.0)


# --------------------------------------------------------------------------- source


def load_detection_source(data_root: str | Path | None, *, skip_bad: bool = False, layout: str = "auto") -> PairDataset:
    """Read the source dataset (``layout``: a layout spec, e.g. ``auto:label_view=fusion``) and make
    sure it is a detection dataset (M3FD, TarDAL or MSRS detection, with boxes)."""
    from fusion_perception.data.layouts import get_layout
    from fusion_perception.data.readers import load_dataset

    if data_root is None:
        from fusion_perception.synthetic.dataset import ensure_default

        data_root = Path(ensure_default("det")) / "m3fd"
    ds = load_dataset(data_root, layout, skip_bad=skip_bad)
    if "det" not in get_layout(ds.layout).tasks:  # the layout says whether its labels are boxes
        raise DatasetError(
            ds.root,
            f"no detection annotations: this is a {ds.layout!r} dataset; detection needs the M3FD layout "
            "(Ir/, Vis/, Annotation/*.xml), the TarDAL one (ir/, vi/, labels/*.txt, meta/) or MSRS detection "
            "(ir/, vi/, labels/{infrared,visible}/*.txt, classes.txt)",
        )
    if not ds.records:
        raise DatasetError(ds.root, "the dataset has no image pairs")
    for rec in ds.records:
        if rec.boxes is None:
            raise DatasetError(rec.annotation_path or rec.ir_path, "no annotation for this pair")
    return ds


# --------------------------------------------------------------------------- split


def make_split(
    names: Iterable[str], seed: int = 0, ratio: Sequence[float] = DEFAULT_RATIO, *,
    strata: Mapping[str, str | None] | None = None, block: int = 1,
) -> dict[str, list[str]]:
    """A random train/val/test split of ``names`` by ``ratio``; depends only on the names and seed.

    Each of val and test gets at least one sample once there are three or more. ``strata`` (name ->
    group, e.g. its condition day / night): each group is split by ``ratio`` on its own, so every
    part keeps the groups' shares. ``block``: runs of this many consecutive names (in sorted order,
    i.e. neighbouring frames of a sequence) go to a part together, except where a part's count cuts one.
    """
    if strata is None:
        return _split_group(sorted(set(names)), seed, ratio, block)
    groups: dict[str, list[str]] = {}
    for name in sorted(set(names)):
        groups.setdefault(str(strata.get(name)), []).append(name)
    parts = [_split_group(group, seed, ratio, block) for _, group in sorted(groups.items())]
    return {s: sorted(n for part in parts for n in part[s]) for s in SPLITS}


def _split_group(ordered: list[str], seed: int, ratio: Sequence[float], block: int) -> dict[str, list[str]]:
    n = len(ordered)
    blocks = [ordered[i:i + max(1, block)] for i in range(0, n, max(1, block))]
    perm = np.random.default_rng(seed).permutation(len(blocks))
    total = float(sum(ratio))
    n_val = int(round(n * ratio[1] / total))
    n_test = int(round(n * ratio[2] / total))
    if n >= 3:
        n_val, n_test = max(1, n_val), max(1, n_test)
    n_train = n - n_val - n_test
    picked = [name for i in perm for name in blocks[i]]
    return {
        "train": sorted(picked[:n_train]),
        "val": sorted(picked[n_train:n_train + n_val]),
        "test": sorted(picked[n_train + n_val:]),
    }


def _part_of(names: list[str], share: float, seed: int) -> tuple[list[str], list[str]]:
    """``(rest, part)``: a seeded ``share`` of ``names`` (at least one) and the others."""
    perm = np.random.default_rng(seed).permutation(len(names))
    part = {names[i] for i in perm[:max(1, int(round(len(names) * share)))]}
    return sorted(set(names) - part), sorted(part)


def read_split(split_dir: str | Path) -> dict[str, list[str]] | None:
    """The split stored in ``split_dir`` (``None`` when any of the three files is missing)."""
    split_dir = Path(split_dir)
    files = {s: split_dir / f"{s}.txt" for s in SPLITS}
    if not all(f.is_file() for f in files.values()):
        return None
    return {s: read_names(f) for s, f in files.items()}


def read_names(path: Path) -> list[str]:
    """The sample names of one split file."""
    if not path.is_file():
        raise DatasetError(path, "split file missing")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def write_split(split_dir: str | Path, split: dict[str, list[str]]) -> None:
    split_dir = Path(split_dir)
    split_dir.mkdir(parents=True, exist_ok=True)
    for s in SPLITS:
        atomic_write_text(split_dir / f"{s}.txt", "".join(f"{n}\n" for n in split[s]))


def split_digest(split: dict[str, list[str]]) -> str:
    return fingerprint({s: split[s] for s in SPLITS})


def load_or_make_split(
    fused: FusedDataset, split_dir: str | Path, seed: int = 0, ratio: Sequence[float] = DEFAULT_RATIO
) -> tuple[dict[str, list[str]], bool]:
    """The split for ``fused``: reused from ``split_dir`` when stored there, else made and stored.

    Returns ``(split, reused)``. A dataset whose records all carry a split (TarDAL meta files,
    MSRS's train/test, ``--split-lists``) keeps its own (val a seeded share of train where it has
    none). A stored split must cover every sample; names it lists that the dataset no
    longer has (e.g. dropped under ``skip_bad``) are left out with a warning.
    """
    split_dir = Path(split_dir)
    names = [r.name for r in fused.records]
    stored = read_split(split_dir)
    if stored is not None:
        known = set(names)
        listed = {n for s in SPLITS for n in stored[s]}
        missing = sorted(known - listed)
        if missing:
            raise DatasetError(
                split_dir,
                f"stored split does not cover {len(missing)} sample(s) of the dataset (e.g. {missing[:3]}); "
                "delete the folder or pass another split directory to make a new split",
            )
        gone = sorted(listed - known)
        if gone:
            _LOG.warning("split %s lists %d sample(s) not in the dataset; leaving them out", split_dir, len(gone))
        _LOG.info("reusing split %s", split_dir)
        return {s: [n for n in stored[s] if n in known] for s in SPLITS}, True

    own = {r.split for r in fused.records}
    if own <= set(SPLITS) and None not in own:
        split = {s: sorted(r.name for r in fused.records if r.split == s) for s in SPLITS}
        if not split["test"]:  # a dataset with train/val only: score on val
            split["test"] = list(split["val"])
        if not split["val"] and len(split["train"]) > 1:  # train/test only (MSRS): val a seeded part of train
            split["train"], split["val"] = _part_of(split["train"], ratio[1] / (ratio[0] + ratio[1]), seed)
        _LOG.info("using the dataset's own split (%s)", ", ".join(f"{s} {len(split[s])}" for s in SPLITS))
    else:
        split = make_split(names, seed, ratio)
        _LOG.info("new %s split by seed %d (%s)", ":".join(f"{r:g}" for r in ratio), seed,
                  ", ".join(f"{s} {len(split[s])}" for s in SPLITS))
    write_split(split_dir, split)
    return split, False


# --------------------------------------------------------------------------- boxes


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the image header only (fast for thousands of files)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError) as exc:
        raise DatasetError(path, f"cannot read the image size ({exc})") from exc


def clean_boxes(record: FusedRecord, width: int, height: int, classes: Sequence[str]) -> list[Box]:
    """The record's boxes clipped to the image, degenerate ones dropped; unknown class -> DatasetError."""
    if record.boxes is None:
        raise DatasetError(record.image_path, "no annotation for this image (a detection dataset needs boxes)")
    out = []
    for b in record.boxes:
        if b.label not in classes:
            raise DatasetError(record.image_path, f"box class {b.label!r} is not one of {list(classes)}")
        x1, x2 = sorted((min(max(b.x1, 0.0), width), min(max(b.x2, 0.0), width)))
        y1, y2 = sorted((min(max(b.y1, 0.0), height), min(max(b.y2, 0.0), height)))
        if x2 - x1 >= 1.0 and y2 - y1 >= 1.0:
            out.append(Box(b.label, x1, y1, x2, y2))
    return out


def yolo_label_lines(boxes: Sequence[Box], width: int, height: int, classes: Sequence[str]) -> str:
    index = {c: i for i, c in enumerate(classes)}
    lines = []
    for b in boxes:
        cx, cy = (b.x1 + b.x2) / 2.0 / width, (b.y1 + b.y2) / 2.0 / height
        w, h = (b.x2 - b.x1) / width, (b.y2 - b.y1) / height
        lines.append(f"{index[b.label]} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
    return "".join(lines)


# --------------------------------------------------------------------------- YOLO layout


@dataclass
class YoloDataset:
    """What :func:`export_yolo` wrote."""

    root: Path
    yaml_path: Path
    classes: tuple[str, ...]
    split: dict[str, list[str]]
    images: dict[str, Path]  # sample name -> image path inside the layout
    reused: bool


def _link(src: Path, dst: Path) -> None:
    """Hard link, else symlink, else copy (different file systems, no link support)."""
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        os.link(src, dst)
        return
    except OSError:
        pass
    try:
        dst.symlink_to(src)
        return
    except OSError:
        shutil.copy2(src, dst)


def fused_fingerprint(fused: FusedDataset) -> str:
    """Identity of a fused dataset's content: its method and the stat of every fused image.

    A re-fused cache (e.g. after a new fusion checkpoint) rewrites the images, which changes
    their mtimes and so this fingerprint.
    """
    h = hashlib.sha256()
    m = fused.manifest or {}
    # the stage's own fingerprint: method, fuser parameters, checkpoint sha256, source
    h.update(json.dumps({"method": fused.method, "fingerprint": m.get("fingerprint")},
                        sort_keys=True, default=str).encode())
    for r in sorted(fused.records, key=lambda r: r.name):
        try:
            st = Path(r.image_path).stat()
        except OSError as exc:
            raise DatasetError(r.image_path, f"fused image missing ({exc.strerror})") from exc
        boxes = [(b.label, round(b.x1, 2), round(b.y1, 2), round(b.x2, 2), round(b.y2, 2)) for b in (r.boxes or [])]
        h.update(json.dumps([r.name, str(r.image_path), st.st_size, st.st_mtime_ns, boxes]).encode())
    return h.hexdigest()


def export_yolo(
    fused: FusedDataset, split: dict[str, list[str]], out: str | Path, classes: Sequence[str]
) -> YoloDataset:
    """Write the YOLO layout of ``fused`` under ``out`` (reused when its fingerprint matches)."""
    out = Path(out)
    classes = tuple(classes)
    by_name = {r.name: r for r in fused.records}
    stamp_path = out / "export.json"
    key = hashlib.sha256(
        (fused_fingerprint(fused) + split_digest(split) + json.dumps(classes)).encode()
    ).hexdigest()
    images = {n: out / "images" / s / f"{n}{Path(by_name[n].image_path).suffix.lower()}"
              for s in SPLITS for n in split[s]}
    yaml_path = out / "dataset.yaml"
    if stamp_path.is_file() and yaml_path.is_file():
        try:
            stamp = json.loads(stamp_path.read_text())
        except (OSError, json.JSONDecodeError):
            stamp = {}
        if stamp.get("fingerprint") == key and all(p.exists() for p in images.values()):
            _LOG.info("reusing YOLO layout %s", out)
            return YoloDataset(out, yaml_path, classes, split, images, True)

    for sub in ("images", "labels"):
        shutil.rmtree(out / sub, ignore_errors=True)
    for s in SPLITS:
        (out / "images" / s).mkdir(parents=True, exist_ok=True)
        (out / "labels" / s).mkdir(parents=True, exist_ok=True)
    for s in SPLITS:
        for n in split[s]:
            rec = by_name[n]
            w, h = image_size(rec.image_path)
            boxes = clean_boxes(rec, w, h, classes)
            _link(Path(rec.image_path), images[n])
            (out / "labels" / s / f"{n}.txt").write_text(yolo_label_lines(boxes, w, h, classes))
    names = "\n".join(f"  {i}: {c}" for i, c in enumerate(classes))
    atomic_write_text(
        yaml_path,
        f"# written by fusion_perception (fused with {fused.label})\n"
        f"path: {out.resolve()}\ntrain: images/train\nval: images/val\ntest: images/test\n"
        f"nc: {len(classes)}\nnames:\n{names}\n",
    )
    atomic_write_text(stamp_path, json.dumps({"fingerprint": key, "counts": {s: len(split[s]) for s in SPLITS}}))
    _LOG.info("wrote YOLO layout %s (%s)", out, ", ".join(f"{s} {len(split[s])}" for s in SPLITS))
    return YoloDataset(out, yaml_path, classes, split, images, False)
