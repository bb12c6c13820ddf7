"""``fusion-perception compare-runs`` (``tools/compare_runs.py``): is run A really ahead of run B on
these test images? A paired bootstrap over the test images of two runs, or two sets of seeds."""

from __future__ import annotations

import argparse

from fusion_perception import cli

DESCRIPTION = """\
Compare two finished runs of one task (detection or segmentation) on the headline metric, paired
over their test images: both runs' mAP@0.5 (or mIoU) is recomputed on the same bootstrap resamples
of the test images, and the difference A - B is printed with its 95% percentile interval and a
two-sided p-value. A and B are each a run folder, or a folder of run folders (a comparison's
det/emma, say, with seed0, seed1, ...), or several of them comma-separated: seed s of A is paired
with seed s of B and the resamples of all pairs are pooled.

The interval is over test images, for the trained models at hand: it says whether the gap would
hold on other test images of the same kind, not whether it would hold after training again
(that is the seed spread).

Example:
  python tools/compare_runs.py outputs/demo/det/emma outputs/demo/det/ir"""


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = cli.parser(prog, DESCRIPTION, raw=True)
    p.add_argument("a", metavar="A", help="run folder(s) of A (comma-separated), or a folder of run folders")
    p.add_argument("b", metavar="B", help="the same for B")
    cli.add_paired(p, reference=False)
    p.add_argument("--json", metavar="FILE", default=None, help="also write the numbers as JSON to FILE")
    return p


def run(args: argparse.Namespace) -> int:
    cli.begin(args)
    from pathlib import Path

    from fusion_perception.comparison.paired import BootstrapSettings, compare_runs
    from fusion_perception.errors import ConfigError
    from fusion_perception.outputs import check_output_dir
    from fusion_perception.record import write_json

    if args.resamples < 1:
        raise ConfigError("--resamples must be at least 1 to compare two runs")
    if args.json:
        check_output_dir(Path(args.json).parent, "--json")  # before the work
    result = compare_runs(args.a.split(","), args.b.split(","),
                          BootstrapSettings(resamples=args.resamples, seed=args.bootstrap_seed))
    print("\n".join(result.lines()))
    if args.json:
        write_json(args.json, result.as_dict(), newline=True)
    return 0
