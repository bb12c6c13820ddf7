#!/usr/bin/env python
"""Validate a paired IR/visible dataset and print what it holds."""

from __future__ import annotations

import argparse
import sys
import warnings

from fusion_perception.cli import tool_main
from fusion_perception.data.readers import (
    LAYOUT_HELP, SkippedItemWarning, describe, load_dataset,
)
from fusion_perception.data.records import LAYOUTS
from fusion_perception.errors import FusionPerceptionError


@tool_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Read a paired IR/visible dataset, check every pair (partner image, "
                    "equal sizes, readable and complete files, annotations, masks) and print "
                    f"a summary. Layouts: {LAYOUT_HELP}.",
        epilog="Exit status 0 when the dataset is valid (or --skip-bad left out its bad items), "
               "2 with the file and the problem when it is not.")
    ap.add_argument("--data", required=True, metavar="ROOT", help="the dataset's root folder")
    ap.add_argument("--layout", default="auto", choices=("auto", *LAYOUTS),
                    help="force a layout instead of detecting it (default: auto)")
    ap.add_argument("--skip-bad", action="store_true",
                    help="leave out bad items with a warning and list them, instead of failing")
    args = ap.parse_args(argv)
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SkippedItemWarning)
            ds = load_dataset(args.data, args.layout, skip_bad=args.skip_bad)
    except FusionPerceptionError as e:
        error = e
    else:
        error = None
    for w in caught:  # one plain line per skipped item, not Python's warning format
        print(f"warning: {w.message}", file=sys.stderr)
    if error is not None:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(describe(ds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
