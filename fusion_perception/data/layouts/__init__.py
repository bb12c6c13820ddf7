"""Dataset layouts on disk, one registered class per file: ``pairs``, ``m3fd``, ``m3fd_tardal`` (in
``tardal.py``), ``msrs`` and ``msrs_det``. Each says whether a root looks like it, lists its pairs (with splits
and labels), names its classes and says where a pair's fused image goes.

A new layout is one file with one ``@DATASET_LAYOUTS.register_module(name=...)`` class (see
:class:`DatasetLayout`); the tools load a file outside the package with ``--import MODULE``.
Everything else (the readers, the fuse stage, the downstream tasks) asks the layout object
through the functions below rather than branching on its name.

A layout is named by its *spec*, ``name`` or ``name:key=value,...`` with the options it is read
with (``msrs_det:label_view=fusion``; ``auto:...`` detects the layout and gives it the options).
A dataset records its layout's spec (``PairDataset.layout``; ``split_lists`` left out, the records
carry their split), so a fused copy's fingerprint and manifest say which labels it carries; the
tools make the spec from ``--layout``, ``--label-view`` and ``--split-lists``
(:func:`fusion_perception.cli.layout_spec`).
"""

from __future__ import annotations

import re

from fusion_perception.data.layouts.base import FUSED_DIR, DatasetLayout, PairCandidate, PairListing
from fusion_perception.errors import ConfigError, did_you_mean
from fusion_perception.registry import DATASET_LAYOUTS


def layout_names() -> tuple[str, ...]:
    """Every registered layout's name, the built-in ones first (``pairs, m3fd, m3fd_tardal, msrs, msrs_det``)."""
    return tuple(DATASET_LAYOUTS.names())


def parse_layout_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"name:key=value,key=value"`` -> ``("name", {key: value})`` (a value may hold commas only
    where no ``key=`` follows them)."""
    name, _, rest = spec.partition(":")
    options: dict[str, str] = {}
    for item in re.split(r",(?=[A-Za-z_]+=)", rest) if rest else ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"layout {spec!r}: options are key=value, not {item!r}")
        options[key.strip()] = value
    return name.strip(), options


def layout_spec(name: str, **options: str | None) -> str:
    """The spec of layout ``name`` (or ``auto``) with the options that are set (None: left out)."""
    given = [f"{k}={v}" for k, v in options.items() if v is not None]
    return name + (":" + ",".join(given) if given else "")


def merge_layout_spec(asked: str, default: str) -> str:
    """The layout a reader uses: the one ``asked`` for where it names one, else ``default`` (a task's
    own, e.g. ``msrs``) with the options ``asked`` gives (``auto:split_lists=DIR`` -> ``msrs:split_lists=DIR``)."""
    name, options = parse_layout_spec(asked)
    if name != "auto":
        return asked
    base, base_options = parse_layout_spec(default)
    return layout_spec(base, **{**base_options, **options})


def find_layout(spec: str) -> DatasetLayout | None:
    """The layout a spec names (registered name and options), or None for an unknown name."""
    name, options = parse_layout_spec(spec)
    cls = DATASET_LAYOUTS.get(name)
    return None if cls is None else cls(**options)


def get_layout(spec: str) -> DatasetLayout:
    """The layout a spec names; an unknown name is a :class:`ConfigError` listing the known ones."""
    layout = find_layout(spec)
    if layout is None:
        name = parse_layout_spec(spec)[0]
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
           "layout_help", "layout_names", "layout_spec", "layouts_by_detection", "merge_layout_spec",
           "parse_layout_spec"]
