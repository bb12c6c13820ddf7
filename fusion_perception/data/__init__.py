"""Paired IR/visible datasets: typed records, readers with validation, image I/O.

``load_dataset(root)`` reads MSRS, M3FD (original and TarDAL layouts) and plain pair
folders (see :mod:`fusion_perception.data.readers` for the layouts); ``describe(ds)``
summarises what it found.
"""

from fusion_perception.data.readers import (
    LAYOUT_HELP,
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
    LAYOUTS,
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
