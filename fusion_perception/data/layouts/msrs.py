"""``msrs``: MSRS segmentation, ``ROOT/{train,test}/{ir,vi,Segmentation_labels}`` (a ``val/`` split
is read too).

Label PNGs hold class ids ``0..8`` (:data:`MSRS_CLASSES`). Names ending in ``D``/``N`` get the
condition ``"day"``/``"night"``. Records have ``split`` and ``mask_path``; a fused copy keeps
the splits (``{train,test}/fused``). Without ``Segmentation_labels/`` it is a fusion-only copy.
"""

from __future__ import annotations

from pathlib import Path

from fusion_perception.data.layouts.base import DatasetLayout, PairListing
from fusion_perception.data.layouts.scan import (
    attach_files, condition_from_name, pair_candidates, split_dirs, subdirs,
)
from fusion_perception.data.records import MSRS_CLASSES
from fusion_perception.files import is_image_file
from fusion_perception.errors import DatasetError
from fusion_perception.registry import DATASET_LAYOUTS


# The MSRS / MFNet colour map (class id -> RGB), as the dataset's own visualisations use it.
MSRS_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),  # unlabelled
    (64, 0, 128),  # car
    (64, 64, 0),  # person
    (0, 128, 192),  # bike
    (0, 0, 192),  # curve
    (128, 128, 0),  # car_stop
    (64, 64, 128),  # guardrail
    (192, 128, 128),  # color_cone
    (192, 64, 0),  # bump
)


@DATASET_LAYOUTS.register_module(name="msrs")
class MSRS(DatasetLayout):
    classes = MSRS_CLASSES
    palette = MSRS_PALETTE
    tasks = ("seg",)
    fused_by_split = True
    detect_order = 10
    description = "MSRS (train/ and/or test/ holding ir/, vi/, Segmentation_labels/)"
    need = "train/ and/or test/ holding ir/, vi/ and Segmentation_labels/"
    no_labels_note = "masks: none (no Segmentation_labels folder)"

    def detect(self, root: Path) -> bool:
        return any({"ir", "vi"} <= subdirs(d).keys() for d in split_dirs(root).values())

    def list_pairs(self, root: Path) -> PairListing:
        listing = PairListing()
        for split, folder in split_dirs(root).items():
            subs = subdirs(folder)
            missing = [m for m in ("ir", "vi") if m not in subs]
            if missing:
                listing.problems.append(DatasetError(folder, f"split folder has no {' or '.join(missing)}/ "
                                                             "sub-folder; its pairs cannot be read"))
                continue
            candidates = pair_candidates(subs["ir"], subs["vi"], listing.problems, split)
            labels = subs.get("segmentation_labels")
            if labels is not None:  # without it: a fusion-only copy, records have mask_path None
                candidates = attach_files(candidates, labels, listing.problems, "segmentation mask",
                                          is_image_file, ".png", "mask", f"{split}/ir/ and {split}/vi/")
            for c in candidates:
                c.condition = condition_from_name(c.name)
            listing.candidates += candidates
        return listing
