"""Typed records that the dataset readers return and every later stage consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Canonical class lists, in the order the datasets (and the paper's tables) use.
M3FD_CLASSES: tuple[str, ...] = ("People", "Car", "Bus", "Motorcycle", "Lamp", "Truck")
MSRS_CLASSES: tuple[str, ...] = (
    "unlabelled", "car", "person", "bike", "curve", "car_stop", "guardrail", "color_cone", "bump",
)


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel coordinates (VOC convention: x1, y1, x2, y2)."""

    label: str  # class name, one of the dataset's classes
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass
class PairRecord:
    """One registered IR/visible pair and whatever labels come with it."""

    name: str  # file stem, unique within the dataset
    ir_path: Path
    vi_path: Path
    split: str | None = None  # "train" | "val" | "test" | None where the layout has no split
    boxes: list[Box] | None = None  # detection layouts; None where there is no annotation
    annotation_path: Path | None = None  # the VOC XML / YOLO txt the boxes came from
    mask_path: Path | None = None  # segmentation layouts: label PNG with class ids
    tags: dict[str, str] = field(default_factory=dict)  # whatever else a layout knows of the pair
    size: tuple[int, int] | None = None  # (width, height) the reader validated, shared by IR and VI
    condition: str | None = None  # the capture condition the tables break results down by, e.g. "day"|"night"
    # labels drawn on each modality separately ({"ir": [...], "vi": [...]}), where the layout has them
    modality_boxes: dict[str, list[Box]] | None = None


@dataclass
class SkippedItem:
    """What a reader left out under ``skip_bad`` and why."""

    path: Path
    problem: str


@dataclass
class PairDataset:
    """A whole paired dataset as one reader saw it."""

    root: Path
    layout: str  # the spec of the layout it was read as: a name of LAYOUTS with its options, if any
    records: list[PairRecord]
    classes: tuple[str, ...] = ()
    modalities: tuple[str, str] = ("ir", "vi")  # the sub-folder names the pairs came from
    skipped: list[SkippedItem] = field(default_factory=list)

    def split(self, name: str) -> list[PairRecord]:
        return [r for r in self.records if r.split == name]

    def __len__(self) -> int:
        return len(self.records)


@dataclass
class FusedRecord:
    """One fused image of a fused dataset, with the labels carried over from its pair."""

    name: str
    image_path: Path
    split: str | None = None
    boxes: list[Box] | None = None
    mask_path: Path | None = None
    tags: dict[str, str] = field(default_factory=dict)
    condition: str | None = None  # carried over from the pair (PairRecord.condition)


@dataclass
class FusedDataset:
    """The output of the preprocessing stage (``fuse_dataset``), read back from its manifest."""

    root: Path
    method: str  # the method spec it was fused with, e.g. "emma" or "folder:CDDFuse=/p"
    label: str  # the name in tables, e.g. "emma" or "CDDFuse"
    source_layout: str  # layout spec of the source dataset (a name of LAYOUTS, with its options)
    records: list[FusedRecord]
    classes: tuple[str, ...] = ()
    manifest: dict = field(default_factory=dict)

    def split(self, name: str) -> list[FusedRecord]:
        return [r for r in self.records if r.split == name]

    def __len__(self) -> int:
        return len(self.records)
