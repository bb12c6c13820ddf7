"""``fusion-perception describe`` (``tools/describe_dataset.py``): validate a paired IR/visible
dataset and print what it holds."""

from __future__ import annotations

import argparse

from fusion_perception import cli
from fusion_perception.console import warnings_as_lines


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    from fusion_perception.data.layouts import layout_help

    ap = argparse.ArgumentParser(
        prog=prog,
        description="Read a paired IR/visible dataset, check every pair (partner image, "
                    "equal sizes, readable and complete files, annotations, masks) and print "
                    f"a summary. Layouts: {layout_help()}.",
        epilog="Exit status 0 when the dataset is valid (or --skip-bad left out its bad items), "
               "2 with the file and the problem when it is not.")
    cli.add_data(ap, "the dataset's root folder", required=True)
    cli.add_layout(ap)
    cli.add_skip_bad(ap)
    return ap


def run(args: argparse.Namespace) -> int:
    from fusion_perception.data.readers import SkippedItemWarning, describe, load_dataset

    with warnings_as_lines(SkippedItemWarning):  # one plain line per skipped item
        ds = load_dataset(args.data, cli.layout_spec(args), skip_bad=args.skip_bad)
    print(describe(ds))
    return 0
