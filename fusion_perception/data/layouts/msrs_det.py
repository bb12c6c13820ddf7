"""``msrs_det``: MSRS pairs with box labels drawn separately on the infrared and on the visible image
(the MSRS-detection-label release), in either arrangement:

- as published for the benchmark (``../shared/data/msrs_det``): ``ROOT/{ir,vi}/NAME.png``,
  ``ROOT/labels/{infrared,visible,fusion}/NAME.txt`` and ``ROOT/classes.txt``; no split;
- as a user downloads it: MSRS's ``ROOT/{train,test}/{ir,vi}/NAME.png`` with the label release
  unpacked into the same root, beside ``train/`` and ``test/``: ``ROOT/{infrared,visible,fusion}/
  {train,test}/NAME.txt`` and ``ROOT/classes.txt`` (or all of that inside ``ROOT/labels/``). The
  records keep MSRS's train/test split.

Labels are YOLO text, ``class cx cy w h`` normalised (any spaces between the fields; an empty file
is a pair without objects of these classes); the class names are ``classes.txt``'s. Each pair
carries its per-modality boxes (``PairRecord.modality_boxes``, what target retention reads) and,
as its ``boxes``, the view the option ``label_view`` (``--label-view``) chooses: ``union`` by
default (every object either camera shows, once: :mod:`fusion_perception.data.modality_labels`),
``infrared``, ``visible``, or ``fusion``, the release's labels drawn on one fused image (not the
default: that image came from one fusion method, whose look the labels then favour). A name
ending in ``D``/``N`` gives the condition ``day``/``night``. MSRS's segmentation layout
(``msrs``) reads the same download when asked for with ``--layout msrs``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from fusion_perception.data.annotations import read_class_list, yolo_boxes
from fusion_perception.data.layouts.base import DatasetLayout, PairCandidate, PairListing
from fusion_perception.data.layouts.scan import (
    attach_files, condition_from_name, pair_candidates, split_dirs, subdirs,
)
from fusion_perception.errors import DatasetError
from fusion_perception.registry import DATASET_LAYOUTS

LABEL_VIEWS: tuple[str, ...] = ("union", "fusion", "infrared", "visible")
CLASS_LIST = "classes.txt"
_MODALITY_FOLDERS = {"ir": "infrared", "vi": "visible"}  # the release's folder of each modality's labels


def label_root(root: Path) -> Path:
    """Where the label release is: ``ROOT/labels`` when it holds it, else ``ROOT`` itself."""
    inner = subdirs(root).get("labels")
    return inner if inner is not None and {"infrared", "visible"} <= subdirs(inner).keys() else root


def image_folders(root: Path) -> list[tuple[str | None, Path]]:
    """``[(split, folder holding ir/ and vi/)]``: the root itself, else its split folders."""
    if {"ir", "vi"} <= subdirs(root).keys():
        return [(None, root)]
    return [(split, d) for split, d in split_dirs(root).items() if {"ir", "vi"} <= subdirs(d).keys()]


def _is_label(p: Path) -> bool:
    return p.suffix.lower() == ".txt"


@DATASET_LAYOUTS.register_module(name="msrs_det")
class MSRSDetection(DatasetLayout):
    tasks = ("det",)
    detect_order = 5  # before msrs (the same download's train/ and test/) and TarDAL's ir/ + vi/ + labels/
    modality_labels = True
    fused_by_split = True
    description = ("MSRS detection (ir/ + vi/, or train/ + test/ holding them, with per-modality labels "
                   "[labels/]{infrared,visible}/ and classes.txt)")
    need = "ir/ and vi/ (or train/ and test/ holding them) with [labels/]infrared/, [labels/]visible/ and classes.txt"
    option_defaults = {**DatasetLayout.option_defaults, "label_view": "union"}
    option_choices = {"label_view": LABEL_VIEWS}

    def detect(self, root: Path) -> bool:
        return {"infrared", "visible"} <= subdirs(label_root(root)).keys() and bool(image_folders(root))

    def read_classes(self, root: Path) -> tuple[str, ...]:
        """The label release's ``classes.txt`` (one ``ID NAME`` a line), never a list in code."""
        labels = label_root(root)
        found = next((p for p in (labels / CLASS_LIST, root / CLASS_LIST) if p.is_file()), None)
        if found is None:
            raise DatasetError(labels / CLASS_LIST, "class list missing (the label release's classes.txt: "
                                                    "one 'ID NAME' a line)")
        return read_class_list(found)

    def list_pairs(self, root: Path) -> PairListing:
        listing = PairListing()
        labels = label_root(root)
        try:
            classes = self.read_classes(root)
        except DatasetError as e:
            listing.problems.append(e)
            return listing
        read = partial(yolo_boxes, classes=classes)
        for split, folder in image_folders(root):
            candidates = pair_candidates(folder / "ir", folder / "vi", listing.problems, split)
            partners = f"{folder.name}/ir/ and {folder.name}/vi/" if split else "ir/ and vi/"
            candidates = self._attach_labels(candidates, labels, split, partners, listing.problems)
            for c in candidates:
                c.read_boxes, c.condition = read, condition_from_name(c.name)
            listing.candidates += candidates
        return listing

    def _attach_labels(self, candidates: list[PairCandidate], labels: Path, split: str | None, partners: str,
                       problems: list[DatasetError]) -> list[PairCandidate]:
        """Each pair's label file of each modality, and of the view when it is a single folder."""
        view = self.options["label_view"]
        folders = {**_MODALITY_FOLDERS, **({} if view == "union" else {"view": view})}
        complete = {c.name for c in candidates}  # the pairs that have every label file
        for key, name in folders.items():
            folder = labels / name / split if split else labels / name
            if not folder.is_dir():
                problems.append(DatasetError(folder, f"label folder missing: the {name} labels"
                                                     + (f" of the {split} split" if split else "")))
                return []

            def put(c: PairCandidate, f: Path, key: str = key) -> None:
                if key == "view":
                    c.annotation = f
                else:
                    c.modality_annotations[key] = f

            # each folder against every pair: a pair without one file is one problem, not an orphan elsewhere
            complete &= {c.name for c in attach_files(candidates, folder, problems, f"{name} label file", _is_label,
                                                      ".txt", put, partners)}
        return [c for c in candidates if c.name in complete]
