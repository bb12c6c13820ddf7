"""Dataset layouts on disk, one registered class per file: ``pairs``, ``m3fd``, ``m3fd_tardal`` (in
``tardal.py``) and ``msrs``. Each says whether a root looks like it, lists its pairs (with splits
and labels), names its classes and says where a pair's fused image goes.

A new layout is one file with one ``@DATASET_LAYOUTS.register_module(name=...)`` class (see
:class:`DatasetLayout`); the tools load a file outside the package with ``--import MODULE``.
Everything else (the readers, the fuse stage, the downstream tasks) asks the layout object
through the functions below rather than branching on its name.
"""

from __future__ import annotations

from fusion_perception.data.layouts.base import FUSED_DIR, DatasetLayout, PairCandidate, PairListing
from fusion_perception.errors import ConfigError, did_you_mean
from fusion_perception.registry import DATASET_LAYOUTS


def layout_names() -> tuple[str, ...]:
    """Every registered layout's name, the built-in ones first (``pairs, m3fd, m3fd_tardal, msrs``)."""
    return tuple(DATASET_LAYOUTS.names())


def find_layout(name: str) -> DatasetLayout | None:
    """The layout registered as ``name``, or None."""
    cls = DATASET_LAYOUTS.get(name)
    return None if cls is None else cls()


def get_layout(name: str) -> DatasetLayout:
    """The layout registered as ``name``; an unknown name is a :class:`ConfigError` listing the known ones."""
    layout = find_layout(name)
    if layout is None:
        raise ConfigError(f"unknown layout {name!r}{did_you_mean(name, layout_names())}; choose auto or one of "
                          f"{', '.join(layout_names())}")
    return layout


def layouts_by_detection() -> list[DatasetLayout]:
    """Every layout in the order automatic detection tries them (``detect_order``, then name order)."""
    layouts = [DATASET_LAYOUTS.get(name)() for name in layout_names()]
    return sorted(layouts, key=lambda layout: layout.detect_order)


def layout_help() -> str:
    """What automatic detection looks for, one phrase per layout, for "looked for ..." messages."""
    phrases = [layout.description for layout in layouts_by_detection()]
    return ", ".join(phrases[:-1]) + ", or " + phrases[-1] if len(phrases) > 1 else "".join(phrases)


__all__ = ["FUSED_DIR", "DatasetLayout", "PairCandidate", "PairListing", "find_layout", "get_layout",
           "layout_help", "layout_names", "layouts_by_detection"]
