"""``m3fd_tardal``: TarDAL's re-layout of M3FD, ``ROOT/{ir,vi}`` plus ``labels/`` (YOLO txt:
``class cx cy w h`` normalised, class ids in TarDAL's order :data:`TARDAL_CLASSES`) and/or
``meta/{train,val,pred}.txt`` (image names; ``pred`` becomes split ``"test"``).

A fused copy carries ``meta/`` over, so that it keeps the splits.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from fusion_perception.data.annotations import TARDAL_CLASSES, yolo_boxes
from fusion_perception.data.layouts.base import DatasetLayout, PairListing
from fusion_perception.data.layouts.scan import attach_files, pair_candidates, read_split_lists, subdirs
from fusion_perception.files import is_image_file
from fusion_perception.data.records import M3FD_CLASSES
from fusion_perception.registry import DATASET_LAYOUTS

# The split lists TarDAL writes, and the split each one means.
_SPLIT_LISTS = (("train.txt", "train"), ("val.txt", "val"), ("test.txt", "test"), ("pred.txt", "test"))


@DATASET_LAYOUTS.register_module(name="m3fd_tardal")
class TarDALM3FD(DatasetLayout):
    classes = M3FD_CLASSES  # the labels' ids are TarDAL's order; the boxes carry M3FD's names
    tasks = ("det",)
    detect_order = 30
    description = "TarDAL M3FD (ir/, vi/ with labels/ YOLO txt and/or meta/{train,val,pred}.txt)"
    need = "ir/ and vi/ (with labels/ and/or meta/)"
    no_labels_note = "boxes: none (no annotation folder)"

    def detect(self, root: Path) -> bool:
        subs = subdirs(root)
        return {"ir", "vi"} <= subs.keys() and ("labels" in subs or "meta" in subs)

    def fits(self, root: Path) -> bool:
        return {"ir", "vi"} <= subdirs(root).keys()

    def list_pairs(self, root: Path) -> PairListing:
        subs = subdirs(root)
        ir, vi = subs["ir"], subs["vi"]
        listing = PairListing(modalities=(ir.name, vi.name))
        listing.candidates = pair_candidates(ir, vi, listing.problems)
        if "labels" in subs:
            listing.candidates = attach_files(listing.candidates, subs["labels"], listing.problems,
                                              "YOLO label file", lambda p: p.suffix.lower() == ".txt", ".txt",
                                              "annotation", f"{ir.name}/ and {vi.name}/")
            for c in listing.candidates:
                c.read_boxes = partial(yolo_boxes, classes=TARDAL_CLASSES)
        if "meta" in subs:  # without it, every record keeps split=None
            known = {p.stem for d in (ir, vi) for p in d.iterdir() if is_image_file(p)}
            conflicted = read_split_lists(subs["meta"], listing, known, f"{ir.name}/ and {vi.name}/", _SPLIT_LISTS)
            listing.candidates = [c for c in listing.candidates if c.name not in conflicted]
        return listing

    def extra_files(self, root: Path) -> list[str]:
        meta = root / "meta"
        if not meta.is_dir():
            return []
        return [f"meta/{f.name}" for f in sorted(meta.iterdir()) if f.is_file() and not f.name.startswith(".")]
