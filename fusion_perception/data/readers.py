"""Dataset readers: paired IR/visible folders in the layouts users have, as validated typed records.

The layouts (``layout=`` names; ``"auto"`` detects them) are registered classes, one file each, in
:mod:`fusion_perception.data.layouts`: ``msrs`` (``{train,test}/{ir,vi,Segmentation_labels}``),
``m3fd`` (``{Ir,Vis,Annotation}`` with VOC XML), ``m3fd_tardal`` (``{ir,vi}`` with ``labels/``
YOLO txt and/or ``meta/`` split lists), ``msrs_det`` (``{ir,vi}`` or ``{train,test}/{ir,vi}`` with
YOLO labels per modality, ``[labels/]{infrared,visible,fusion}``, and ``classes.txt``) and ``pairs``
(any two image sub-folders). A layout finds
a root's candidate pairs; this module resolves which layout a root holds (also one wrapper folder
deep), then loads and validates.

In every layout the two modalities are matched by file stem (any image extension, case
insensitive). :func:`load_dataset` validates as it reads: a file without a partner, IR/VI
size mismatch, unreadable or truncated images, XML with an unknown class or a box outside
the image, masks with out-of-range ids or the wrong size, missing masks or annotations:
each raises :class:`~fusion_perception.errors.DatasetError` naming the file and the problem,
or, with ``skip_bad=True``, is left out with a warning and listed in ``PairDataset.skipped``.
"""

from __future__ import annotations

import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from tqdm import tqdm

from fusion_perception.files import is_image_file
from fusion_perception.data.layouts import (
    DatasetLayout,
    PairCandidate,
    find_layout,
    get_layout,
    layout_help,
    layouts_by_detection,
    parse_layout_spec,
)
from fusion_perception.data.layouts.scan import (
    IR_WORDS, SPLITS, VI_WORDS, apply_split_lists, first_word, has_images, no_images, split_dirs, subdirs,
)
from fusion_perception.data.modality_labels import seen_counts, union_boxes
from fusion_perception.data.records import PairDataset, PairRecord, SkippedItem
from fusion_perception.data.validate import check_mask, default_workers, probe_image
from fusion_perception.errors import DatasetError

_PROGRESS_MIN = 500  # pairs from which a progress bar is worth showing


class SkippedItemWarning(UserWarning):
    """Warned once per item that ``skip_bad=True`` leaves out."""


# --------------------------------------------------------------------------- layout resolution
def _found(root: Path) -> str:
    entries = [p for p in sorted(root.iterdir()) if not p.name.startswith(".")]
    if not entries:
        return "the folder is empty"
    dirs = [p.name + "/" for p in entries if p.is_dir()]
    files = [p for p in entries if p.is_file()]
    parts = []
    if dirs:
        parts.append("sub-folders " + ", ".join(dirs[:10]) + (", ..." if len(dirs) > 10 else ""))
    if files:
        parts.append(f"{len(files)} file(s)")
    return "found " + " and ".join(parts)


def _wrapped(root: Path) -> Path | None:
    """The single sub-folder of a wrapper folder (``M3FD/M3FD_Detection/``), else None."""
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    dirs = [p for p in entries if p.is_dir()]
    if len(dirs) == 1 and not any(is_image_file(p) for p in entries):
        return dirs[0]
    return None


def _check_root(root: str | Path) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(root, "dataset folder not found")
    if not root.is_dir():
        raise DatasetError(root, "not a folder; pass the dataset's root folder")
    return root


def _detect_here(root: Path) -> DatasetLayout | None:
    """The first layout, in detection order, that ``root`` itself looks like."""
    return next((layout for layout in layouts_by_detection() if layout.detect(root)), None)


def _resolve(root: str | Path, layout: str = "auto") -> tuple[DatasetLayout, Path]:
    """(layout with its options, the folder that actually holds it), looking one wrapper folder deep.
    ``layout``: a layout spec (:mod:`fusion_perception.data.layouts`), ``auto[:options]`` included."""
    root = _check_root(root)
    name, options = parse_layout_spec(layout)
    wanted = None if name == "auto" else get_layout(layout)
    here = root
    for _ in range(2):
        if wanted is None:
            found = _detect_here(here)
            if found is not None:
                return type(found)(**options), here
        elif wanted.fits(here):
            return wanted, here
        inner = _wrapped(here)
        if inner is None:
            break
        here = inner
    raise _not_recognised(root, wanted)


def _not_recognised(root: Path, wanted: DatasetLayout | None) -> DatasetError:
    """Why ``root`` is not the layout ``wanted`` (None: any layout): what it holds and what was looked for."""
    inner = {d.name: _detect_here(d) for d in subdirs(root).values()}
    inner = {name: lay for name, lay in inner.items() if lay is not None}
    if len(inner) > 1:  # e.g. the synthetic default's m3fd/ + msrs/
        listed = ", ".join(f"{name}/ ({lay.name})" for name, lay in inner.items())
        return DatasetError(root, f"this folder holds several datasets: {listed}; "
                                  "point at one of them")
    found = _found(root)
    if found == "the folder is empty":
        return DatasetError(root, f"the folder is empty; looked for {layout_help()}")
    empty = _empty_modality(root)
    if empty is not None:
        return empty
    what = "no dataset layout recognised" if wanted is None else f"this is not a {wanted.name!r} layout folder"
    looked = layout_help() if wanted is None else wanted.need
    return DatasetError(root, f"{what} ({found}); looked for {looked}")


def _empty_modality(root: Path) -> DatasetError | None:
    """An IR-like or visible-like folder without images (the layout is there, one modality is not)."""
    for here in (root, *split_dirs(root).values()):
        dirs = list(subdirs(here).values())
        ir = [d for d in dirs if first_word(d.name) in IR_WORDS]
        vi = [d for d in dirs if first_word(d.name) in VI_WORDS]
        if len(ir) != 1 or len(vi) != 1:
            continue
        full = [d for d in (ir[0], vi[0]) if has_images(d)]
        if len(full) == 2:
            continue
        if not full:
            return DatasetError(here, f"{ir[0].name}/ and {vi[0].name}/ {no_images(ir[0], vi[0])}")
        empty = vi[0] if full[0] is ir[0] else ir[0]
        n = sum(1 for p in full[0].iterdir() if is_image_file(p) and not p.name.startswith("."))
        return DatasetError(empty, f"{no_images(empty)}, while {full[0].name}/ holds {n}: every image there "
                                   f"needs its partner here (same name)")
    return None


def find_dataset_layout(root: str | Path, layout: str = "auto") -> tuple[DatasetLayout, Path]:
    """The layout of the dataset at ``root`` (detected, or ``layout`` checked) and the folder that
    holds it (``root``, or the one wrapper folder inside it), without reading its pairs."""
    return _resolve(root, layout)


def detect_layout(root: str | Path) -> str:
    """Name of the layout (one of :data:`LAYOUTS`) the folder ``root`` holds.

    Tries the registered layouts by their ``detect_order``: MSRS, then original M3FD, then the
    TarDAL re-layout, then (last) a plain pair folder, also one wrapper folder deep
    (``M3FD/M3FD_Detection/``). Raises :class:`DatasetError` naming the folder, what it holds
    and the layouts looked for.
    """
    return _resolve(root)[0].name


# --------------------------------------------------------------------------- validation
def _check_pair(pair: PairCandidate, mask_classes: int, ignore_index: int | None = None) -> PairRecord | DatasetError:
    """Validate one pair by its headers (and its annotation, or its mask of ids below
    ``mask_classes``); never raises."""
    try:
        ir_size, vi_size = probe_image(pair.ir), probe_image(pair.vi)
        if ir_size != vi_size:
            return DatasetError(pair.ir, f"IR/visible size mismatch: {pair.ir} is "
                                         f"{ir_size[0]}x{ir_size[1]} but {pair.vi} is "
                                         f"{vi_size[0]}x{vi_size[1]}")
        boxes = modality = None
        if pair.read_boxes is not None and pair.modality_annotations:
            modality = {m: pair.read_boxes(p, ir_size) for m, p in pair.modality_annotations.items()}
        if pair.read_boxes is not None and pair.annotation is not None:
            boxes = pair.read_boxes(pair.annotation, ir_size)
        elif modality is not None:  # labelled per modality, no file of its own: the union of the two
            boxes = union_boxes(modality.get("ir", []), modality.get("vi", []))
        if pair.mask is not None:
            check_mask(pair.mask, ir_size, mask_classes, ignore_index)
    except DatasetError as e:
        return e
    except OSError as e:  # permissions, I/O errors: still name the file
        return DatasetError(e.filename or pair.ir, f"cannot read ({e.strerror or e})")
    return PairRecord(name=pair.name, ir_path=pair.ir, vi_path=pair.vi, split=pair.split, boxes=boxes,
                      annotation_path=pair.annotation, mask_path=pair.mask, tags=dict(pair.tags),
                      size=ir_size, condition=pair.condition, modality_boxes=modality)


def _skip(e: DatasetError, skipped: list[SkippedItem]) -> None:
    skipped.append(SkippedItem(e.path, e.problem))
    warnings.warn(f"skipped {e.path}: {e.problem}", SkippedItemWarning, stacklevel=3)


def load_dataset(root: str | Path, layout: str = "auto", *, skip_bad: bool = False,
                 progress: bool | None = None) -> PairDataset:
    """Read and validate a paired dataset into a :class:`PairDataset`.

    Layouts (details in :mod:`fusion_perception.data.layouts`): ``msrs``
    ``{train,test}/{ir,vi,Segmentation_labels}``; ``m3fd`` ``{Ir,Vis,Annotation}`` with VOC XML;
    ``m3fd_tardal`` ``{ir,vi,labels,meta}``; ``pairs`` any two image sub-folders matched by file
    stem (``ir/vi``, ``MRI/CT``, ...); and any layout a plugin registered.
    ``layout="auto"`` detects the layout (:func:`detect_layout`); a layout name forces it; either
    may carry the layout's options as a spec (``auto:label_view=fusion``, ``msrs_det:split_lists=DIR``:
    :mod:`fusion_perception.data.layouts`), and ``PairDataset.layout`` records the spec.
    Every pair is checked from file headers (size, truncation) in a thread pool, with its
    annotation or mask. Without ``skip_bad`` the first problem raises :class:`DatasetError`
    naming the file and the problem; with it, each bad item is warned about
    (:class:`SkippedItemWarning`), left out and listed in ``PairDataset.skipped``.
    ``progress`` shows a tqdm bar (default: only for large datasets).
    """
    found, here = _resolve(root, layout)
    listing = found.list_pairs(here)
    if found.options["split_lists"] is not None:  # a given split in place of the layout's own
        apply_split_lists(found.options["split_lists"], listing)
    skipped: list[SkippedItem] = []
    for e in listing.problems:  # structural problems first: cheap, and they explain later gaps
        if not skip_bad:
            raise e
        _skip(e, skipped)
    if not listing.candidates and not skipped:
        raise DatasetError(here, f"no image pairs found in this {found.name!r} layout folder")
    records: list[PairRecord] = []
    show = len(listing.candidates) >= _PROGRESS_MIN if progress is None else progress
    classes = found.read_classes(here)
    check = partial(_check_pair, mask_classes=len(classes), ignore_index=found.ignore_index)
    ex = ThreadPoolExecutor(max_workers=default_workers())
    try:
        bar = tqdm(ex.map(check, listing.candidates), total=len(listing.candidates), disable=not show,
                   desc=f"checking {here.name}", unit="pair")
        for out in bar:  # map keeps the listing order: the first problem is deterministic
            if isinstance(out, PairRecord):
                records.append(out)
            elif skip_bad:
                _skip(out, skipped)
            else:
                raise out
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
    if not records:
        raise DatasetError(here, f"no usable pairs: all {len(skipped)} item(s) were bad "
                                 f"(first: {skipped[0].path}: {skipped[0].problem})")
    return PairDataset(root=here, layout=found.spec, records=records, classes=classes,
                       modalities=listing.modalities, skipped=skipped)


# --------------------------------------------------------------------------- describe
def _counts(counter: Counter, order: tuple[str, ...] | None = None) -> str:
    keys = list(order) if order else sorted(counter, key=lambda k: (k is None, str(k)))
    return ", ".join(f"{k} {counter[k]}" for k in keys if counter[k] or order)


def describe(ds: PairDataset) -> str:
    """A readable multi-line summary: layout, root, modalities, pairs per split, boxes per
    class (detection), masks and day/night counts (segmentation), image sizes, skipped items."""
    recs = ds.records
    lines = [f"dataset: {ds.root}",
             f"layout: {ds.layout}   modalities: {ds.modalities[0]}/ -> ir_path, "
             f"{ds.modalities[1]}/ -> vi_path",
             f"pairs: {len(recs)}"]
    splits = Counter(r.split or "(no split)" for r in recs)
    if set(splits) != {"(no split)"}:
        lines.append("  per split: " + ", ".join(
            f"{s} {splits[s]}" for s in (*SPLITS, "(no split)") if splits[s]))
    labelled = [r for r in recs if r.boxes is not None]
    masks = sum(r.mask_path is not None for r in recs)
    layout = find_layout(ds.layout)
    if not labelled and not masks and layout is not None and layout.no_labels_note:
        lines.append(layout.no_labels_note)  # a layout with labels, read from a copy without them
    if labelled:
        per_class = Counter(b.label for r in labelled for b in r.boxes)
        lines.append(f"boxes: {sum(per_class.values())} in {len(labelled)} annotated pairs "
                     f"({sum(1 for r in labelled if not r.boxes)} with none)")
        lines.append("  per class: " + _counts(per_class, ds.classes or None))
        other = sorted(set(per_class) - set(ds.classes))
        if other:
            lines.append("  other classes: " + _counts(Counter({k: per_class[k] for k in other})))
    if masks:
        lines.append(f"masks: {masks} of {len(recs)} pairs (class ids 0..{len(ds.classes) - 1}: "
                     f"{', '.join(ds.classes)})")
    per_modality = [r.modality_boxes for r in recs if r.modality_boxes is not None]
    if per_modality:
        n = {m: sum(len(b.get(m, [])) for b in per_modality) for m in ("ir", "vi")}
        seen = seen_counts(per_modality)
        lines.append(f"labels per modality: infrared {n['ir']} boxes, visible {n['vi']}; objects (same class, "
                     f"IoU >= 0.3): IR-only {seen['ir']}, VI-only {seen['vi']}, both {seen['both']}")
    conditions = Counter(r.condition for r in recs if r.condition)
    if conditions:
        lines.append("conditions: " + _counts(conditions))
        for s in SPLITS:
            c = Counter(r.condition for r in recs if r.split == s and r.condition)
            if c:
                lines.append(f"  {s}: " + _counts(c))
    sizes = Counter(r.size for r in recs if r.size is not None)
    if sizes:
        common = sizes.most_common(5)
        text = ", ".join(f"{w}x{h} ({n})" for (w, h), n in common)
        if len(sizes) > len(common):
            text += f" and {len(sizes) - len(common)} more sizes"
        lines.append(f"image sizes (WxH): {text}")
    if ds.skipped:
        lines.append(f"skipped: {len(ds.skipped)} bad item(s)")
        lines.extend(f"  - {s.path}: {s.problem}" for s in ds.skipped)
    else:
        lines.append("skipped: none")
    return "\n".join(lines)
