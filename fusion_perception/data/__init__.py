"""Paired IR/visible datasets: typed records, readers with validation, image I/O.

``load_dataset(root)`` reads MSRS (segmentation, and detection with labels per modality), M3FD
(original and TarDAL layouts) and plain pair folders (the layouts, one registered class per file,
are in :mod:`fusion_perception.data.layouts`);
``describe(ds)`` summarises what it found.
"""

from fusion_perception.data.readers import (
    TARDAL_CLASSES,
    SkippedItemWarning,
    canonical_m3fd_class,
    describe,
    detect_layout,
    load_dataset,
    read_voc_xml,
    voc_boxes,
    yolo_boxes,
)
from fusion_perception.data.records import (
    M3FD_CLASSES,
    MSRS_CLASSES,
    Box,
    FusedDataset,
    FusedRecord,
    PairDataset,
    PairRecord,
    SkippedItem,
)

__all__ = [
    "LAYOUTS", "LAYOUT_HELP", "M3FD_CLASSES", "MSRS_CLASSES", "TARDAL_CLASSES",
    "Box", "FusedDataset", "FusedRecord", "PairDataset", "PairRecord", "SkippedItem",
    "SkippedItemWarning", "canonical_m3fd_class", "describe", "detect_layout", "load_dataset",
    "read_voc_xml", "voc_boxes", "yolo_boxes",
]


def __getattr__(name: str) -> object:
    # LAYOUTS and LAYOUT_HELP come from the registered layouts when asked (plugins included)
    if name == "LAYOUTS":
        from fusion_perception.data import records

        return records.LAYOUTS
    if name == "LAYOUT_HELP":
        from fusion_perception.data import readers

        return readers.LAYOUT_HELP
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
