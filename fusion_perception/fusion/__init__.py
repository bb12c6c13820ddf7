"""Fusion methods (a registry of fusers) and the preprocessing stage that fuses whole datasets."""

from fusion_perception.fusion.base import (
    FUSERS,
    Fuser,
    build_fuser,
    fuse_with_colour,
    method_label,
    parse_method_spec,
    registered_methods,
)
from fusion_perception.fusion.classical import CLASSICAL_METHODS  # registers ir, vi, mean, max, laplacian, dwt, gff
from fusion_perception.fusion.folder import FolderFuser  # registers folder
from fusion_perception.fusion.stage import fuse_dataset, fuse_default, load_fused_dataset

__all__ = [
    "FUSERS", "Fuser", "build_fuser", "fuse_with_colour", "method_label", "parse_method_spec", "registered_methods",
    "CLASSICAL_METHODS", "FolderFuser", "fuse_dataset", "fuse_default", "load_fused_dataset",
]
