"""``m3fd``: M3FD detection in its original layout, ``ROOT/{Ir,Vis,Annotation}`` with one Pascal VOC
XML per pair (a root holding a single ``M3FD_Detection/`` folder works too: the readers look one
wrapper folder deep).

Class names are normalised to :data:`M3FD_CLASSES` (``person``/``People`` -> ``People``,
``motorbike`` -> ``Motorcycle``, ...). No split (M3FD ships none). Without ``Annotation/`` it is
a fusion-only copy: pairs without boxes.
"""

from __future__ import annotations

from pathlib import Path

from fusion_perception.data.annotations import voc_boxes
from fusion_perception.data.layouts.base import DatasetLayout, PairListing
from fusion_perception.data.layouts.scan import attach_files, pair_candidates, subdirs
from fusion_perception.data.records import M3FD_CLASSES
from fusion_perception.registry import DATASET_LAYOUTS


def annotation_dir(subs: dict[str, Path]) -> Path | None:
    return subs.get("annotation") or subs.get("annotations")


@DATASET_LAYOUTS.register_module(name="m3fd")
class M3FD(DatasetLayout):
    classes = M3FD_CLASSES
    tasks = ("det",)
    detect_order = 20
    description = ("M3FD (Ir/, Vis/, Annotation/ with VOC XML, or one M3FD_Detection/ folder "
                   "holding them)")
    need = "Ir/ and Vis/ (and Annotation/ with VOC XML)"
    no_labels_note = "boxes: none (no annotation folder)"

    def detect(self, root: Path) -> bool:
        subs = subdirs(root)
        # vi/ (rather than Vis/) with annotations is M3FD too; vi/ alone is TarDAL's or plain pairs
        return "ir" in subs and ("vis" in subs or ("vi" in subs and annotation_dir(subs) is not None))

    def fits(self, root: Path) -> bool:
        subs = subdirs(root)
        return "ir" in subs and ("vis" in subs or "vi" in subs)

    def list_pairs(self, root: Path) -> PairListing:
        subs = subdirs(root)
        ir, vi = subs["ir"], subs.get("vis") or subs["vi"]
        listing = PairListing(modalities=(ir.name, vi.name))
        listing.candidates = pair_candidates(ir, vi, listing.problems)
        ann = annotation_dir(subs)
        if ann is None:  # fusion-only copy: pairs without boxes (describe() says so)
            return listing
        listing.candidates = attach_files(listing.candidates, ann, listing.problems, "VOC annotation",
                                          lambda p: p.suffix.lower() == ".xml", ".xml", "annotation",
                                          f"{ir.name}/ and {vi.name}/")
        for c in listing.candidates:
            c.read_boxes = voc_boxes
        return listing
