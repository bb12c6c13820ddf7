"""What a dataset layout is: the interface every layout file implements, and what its listing returns.

A layout knows its folders and nothing else: whether a root looks like it (:meth:`DatasetLayout.detect`),
which candidate pairs it holds, with their splits, annotations or masks (:meth:`DatasetLayout.list_pairs`),
its classes, and where a pair's fused image goes in a fused copy (:meth:`DatasetLayout.fused_path`).
Reading the files and validating them is the readers' job (:mod:`fusion_perception.data.readers`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from fusion_perception.data.records import Box, PairRecord
from fusion_perception.errors import ConfigError, DatasetError

FUSED_DIR = "fused"  # the image folder a fused copy has in place of the two modality folders

# Reads a pair's annotation file into boxes, checked against the image size (width, height).
BoxReader = Callable[[Path, tuple[int, int]], list[Box]]


@dataclass
class PairCandidate:
    """A pair found by listing, not yet validated (the readers check it and make a PairRecord)."""

    name: str  # file stem, unique within the dataset
    ir: Path
    vi: Path
    split: str | None = None
    annotation: Path | None = None
    read_boxes: BoxReader | None = None  # how the annotation file is read (None: no boxes)
    mask: Path | None = None
    tags: dict[str, str] = field(default_factory=dict)
    condition: str | None = None  # e.g. "day" | "night" (MSRS names end in D or N)
    # Labels drawn on each modality separately ({"ir": file, "vi": file}), read with read_boxes;
    # without ``annotation`` the pair's boxes are their union (data.modality_labels)
    modality_annotations: dict[str, Path] = field(default_factory=dict)


@dataclass
class PairListing:
    """What listing a root found: candidate pairs, structural problems, and the modality folders."""

    candidates: list[PairCandidate] = field(default_factory=list)
    problems: list[DatasetError] = field(default_factory=list)
    modalities: tuple[str, str] = ("ir", "vi")  # folder names that became ir_path and vi_path


def spread_palette(count: int) -> tuple[tuple[int, int, int], ...]:
    """``count`` distinct RGB colours: black for id 0 (usually the background), then hues spread
    around the colour wheel at two brightness levels."""
    import colorsys

    colours = [(0, 0, 0)]
    for i in range(1, count):
        r, g, b = colorsys.hsv_to_rgb(((i - 1) * 0.618034) % 1.0, 0.75, 0.9 if i % 2 else 0.6)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return tuple(colours[:count])


class DatasetLayout:
    """Base class of a dataset layout; a layout is one registered subclass in one file::

        @DATASET_LAYOUTS.register_module(name="mylayout")  # its ``name`` becomes "mylayout"
        class MyLayout(DatasetLayout):
            description = "my layout (a/, b/ and list.txt)"
            need = "a/, b/ and list.txt"
            def detect(self, root): ...
            def list_pairs(self, root): ...
    """

    name: str = "layout"  # set to the registered name by ``DATASET_LAYOUTS.register_module``
    classes: tuple[str, ...] = ()  # class names of its labels; masks hold ids 0..len-1 (see read_classes)
    # the mask value of the pixels its masks leave unlabelled, scored on no class (segmentation);
    # None: its masks hold class ids only (the segmenter pads with its config's ignore index)
    ignore_index: int | None = None
    palette: tuple[tuple[int, int, int], ...] | None = None  # RGB per mask id for pictures (None: a generated one)
    # Downstream tasks its labels serve ("det": boxes, "seg": masks); () for fusion only.
    tasks: tuple[str, ...] = ()
    # Automatic detection tries layouts from the lowest order up: the specific ones first, the
    # catch-all plain pair folder (90) last.
    detect_order: int = 50
    description: str = ""  # one phrase of the "looked for ..." list: what a root of this layout holds
    need: str = ""  # what a folder needs to be read as this layout when it is asked for by name
    no_labels_note: str | None = None  # the summary's line when no pair has labels (describe())
    fused_by_split: bool = False  # a fused copy keeps the source's split folders: <split>/fused/ (MSRS's)
    modality_labels: bool = False  # its pairs carry labels drawn on each modality (PairRecord.modality_boxes)
    # Options a layout takes, with their defaults (None: unset), and the values some allow. Every
    # layout takes ``split_lists``: a folder of train.txt / val.txt / test.txt naming the pairs of
    # each split, in place of the layout's own split (applied by the readers).
    option_defaults: dict[str, str | None] = {"split_lists": None}
    option_choices: dict[str, tuple[str, ...]] = {}

    def __init__(self, **options: str | None):
        for key, value in options.items():
            if key not in self.option_defaults:
                known = ", ".join(self.option_defaults)
                raise ConfigError(f"the {self.name!r} layout takes no {key!r} option (its options: {known})")
            choices = self.option_choices.get(key)
            if value is not None and choices and value not in choices:
                raise ConfigError(f"{key} of the {self.name!r} layout must be one of {', '.join(choices)}, "
                                  f"not {value!r}")
        self.options = {**self.option_defaults, **{k: v for k, v in options.items() if v is not None}}
        if self.options["split_lists"] is not None:  # one spelling of a folder: the spec names the data
            self.options["split_lists"] = str(Path(self.options["split_lists"]).expanduser().resolve())

    @property
    def spec(self) -> str:
        """The layout's name with its options that differ from the defaults, ``name:key=value,...``:
        what a dataset records as its layout (and a fused copy's fingerprint holds). ``split_lists``
        is left out: the records carry their split (a fused copy's manifest each pair's), and a
        copy fused before is as good with another split."""
        changed = [f"{k}={v}" for k, v in self.options.items()
                   if v != self.option_defaults[k] and k != "split_lists"]
        return self.name + (":" + ",".join(changed) if changed else "")

    def detect(self, root: Path) -> bool:
        """Whether ``root`` itself (not a sub-folder) looks like this layout, for automatic detection."""
        raise NotImplementedError

    def read_classes(self, root: Path) -> tuple[str, ...]:
        """The class names of the dataset at ``root``, in id order: :attr:`classes`, or what the
        dataset's own files say for a layout that keeps its classes in a file."""
        return self.classes

    def colours(self, classes: tuple[str, ...]) -> tuple[tuple[int, int, int], ...]:
        """The RGB colour of each class id in pictures: :attr:`palette`, else evenly spread hues."""
        if self.palette is not None and len(self.palette) >= len(classes):
            return tuple(self.palette[:len(classes)])
        return spread_palette(len(classes))

    def fits(self, root: Path) -> bool:
        """Whether ``root`` holds what this layout needs when it is asked for by name (default:
        :meth:`detect`; a layout may accept more than it would detect, e.g. without labels)."""
        return self.detect(root)

    def list_pairs(self, root: Path) -> PairListing:
        """The candidate pairs under ``root`` (with splits, annotations, masks and tags) and every
        structural problem found (a file without its partner, an orphan label, ...); never raises
        for a problem of one pair."""
        raise NotImplementedError

    def fused_path(self, record: PairRecord) -> str:
        """Where ``record``'s fused image goes in a fused copy, relative to its root: ``fused/``
        or ``<folder>/fused/`` (the fuse stage clears and scans those two depths)."""
        folder = Path(record.ir_path).parent.parent.name.lower()  # ROOT/<split>/ir/NAME: the pair's split folder
        if self.fused_by_split and folder in ("train", "val", "test"):  # not moved by a split given as lists
            return f"{folder}/{FUSED_DIR}/{record.name}.png"
        return f"{FUSED_DIR}/{record.name}.png"

    def extra_files(self, root: Path) -> list[str]:
        """Files besides the labels that a fused copy carries over (relative to ``root``, e.g. split lists)."""
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}(spec={self.spec!r})"
