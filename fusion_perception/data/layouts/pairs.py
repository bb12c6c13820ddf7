"""``pairs``: any folder with exactly two image sub-folders (``ir/`` + ``vi/``, ``IR/`` + ``VI/``,
``infrared/`` + ``visible/``, ``MRI/`` + ``CT/``, ...), matched by file stem.

The infrared-like folder becomes ``ir_path``; other names are taken in sorted order
(``PairDataset.modalities`` says which is which). No split, no labels.
"""

from __future__ import annotations

from pathlib import Path

from fusion_perception.data.layouts.base import DatasetLayout, PairListing
from fusion_perception.data.layouts.scan import (
    IR_WORDS, VI_WORDS, first_word, image_dirs, modality_order, pair_candidates,
)
from fusion_perception.registry import DATASET_LAYOUTS


def pair_dirs(root: Path) -> tuple[Path, Path] | None:
    """The two image folders of ``root`` (infrared-like first), or None when it has not exactly two."""
    dirs = image_dirs(root)
    if len(dirs) > 2:  # e.g. ir/, vi/ and a fused/ output: take the ir-like and vi-like ones
        ir = [d for d in dirs if first_word(d.name) in IR_WORDS]
        vi = [d for d in dirs if first_word(d.name) in VI_WORDS]
        dirs = ir + vi if len(ir) == 1 and len(vi) == 1 else dirs
    if len(dirs) != 2:
        return None
    a, b = sorted(dirs, key=modality_order)
    return a, b


@DATASET_LAYOUTS.register_module(name="pairs")
class PairFolders(DatasetLayout):
    detect_order = 90  # the catch-all: any two image folders, so tried after every other layout
    description = "a pair folder (exactly two image sub-folders such as ir/ + vi/ or MRI/ + CT/)"
    need = "exactly two image sub-folders such as ir/ + vi/ or MRI/ + CT/"

    def detect(self, root: Path) -> bool:
        return pair_dirs(root) is not None

    def list_pairs(self, root: Path) -> PairListing:
        listing = PairListing()
        a, b = pair_dirs(root)
        listing.modalities = (a.name, b.name)
        listing.candidates = pair_candidates(a, b, listing.problems)
        return listing
