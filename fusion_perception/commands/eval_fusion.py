"""``fusion-perception eval-fusion`` (``tools/eval_fusion.py``): score fused images with the nine
fusion-quality metrics, method against method."""

from __future__ import annotations

import argparse

from fusion_perception import cli
from fusion_perception.devices import torch_device

DESCRIPTION = (
    "Compute EN, SD, SF, AG, MI, SCD, VIF, Qabf and SSIM (the EMMA paper's Table 1 "
    "metrics, defined as in shared/fixtures/README.md) of each method's fused images "
    "against their IR/visible source pairs. Fused files are matched to pairs by file stem, "
    "any image extension; colour images are scored on their BGR2GRAY luminance. Writes "
    "per-image values and the mean per method to OUT/fusion_metrics.{md,csv,json} and "
    "prints the table of means."
)
EPILOG = (
    "Examples: eval_fusion.py --fused work/fused/gff --fused CDDFuse=results/cddfuse "
    "--source data/RoadScene --out work/eval;  eval_fusion.py --fused work/fused/emma "
    "--out work/eval (source taken from the fuse stage's manifest).  A fused folder may be a "
    "fuse_dataset output (images under fused/ or */fused/, named by its manifest's label) or "
    "a plain folder of images (named after the folder). Exit status 2 with a one-line "
    "message on bad input, e.g. a folder that lacks some images (they are listed)."
)
TARGETS_HELP = (
    "target retention (the contrast kept of objects only one modality shows), where the "
    "source has boxes: 'auto' (labels drawn per modality where the dataset has them, as msrs_det, "
    "else the annotations' visibility tags where present, else the contrast rule), 'labels' (IR-only: "
    "labelled in infrared with no same-class visible box at IoU >= 0.3; VI-only the reverse), 'tags', "
    "'contrast' (IR-only: c(ir) >= 0.05 and c(vi) <= 0.03 on the sources; VI-only the reverse), 'off', "
    "or a CSV file image,x1,y1,x2,y2,source[,label] (default: auto). Reported overall and per "
    "condition (day / night) where the pairs have one"
)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = cli.parser(prog, DESCRIPTION, EPILOG)
    ap.add_argument("--fused", action="append", required=True, metavar="[NAME=]DIR",
                    help="a method's fused images; repeat for several methods")
    ap.add_argument("--source", metavar="ROOT",
                    help="the paired source dataset (any layout the readers know; default: the source "
                         "recorded in a fused folder's manifest.json)")
    cli.add_out(ap, "where the tables are written", required=True)
    cli.add_layout(ap)
    ap.add_argument("--split", metavar="NAME", help="score only this split's pairs (e.g. test)")
    ap.add_argument("--metrics", default=None, metavar="LIST",
                    help="comma-separated subset of the nine metrics above, e.g. EN,Qabf (default: all nine)")
    cli.add_device(ap, "several ids: the first")
    cli.add_workers(ap, "pairs read and scored at once, each on its own thread with one torch thread "
                        "(default: one per CPU core)", 1)
    ap.add_argument("--targets", default="auto", metavar="RULE|CSV", help=TARGETS_HELP)
    ap.add_argument("--target-classes", metavar="LIST", help="only these object classes, e.g. People,Car")
    ap.add_argument("--target-contrast", metavar="SHOWN,HIDDEN",
                    help="thresholds of the contrast rule (default 0.05,0.03: local contrast on [0, 1] luminance)")
    cli.add_no_progress(ap)
    cli.add_overwrite(ap, "tables in --out")
    return ap


def run(args: argparse.Namespace) -> int:
    from fusion_perception.metrics.fusion_eval import (
        evaluate_fused_folders,
        evaluate_target_retention,
        markdown_table,
        write_retention_tables,
    )
    from fusion_perception.metrics.retention_targets import TargetRule

    rule = None if args.targets == "off" else TargetRule.parse(args.targets, args.target_classes, args.target_contrast)
    progress = not args.no_progress
    result = evaluate_fused_folders(
        args.fused, args.source, layout=cli.layout_spec(args), split=args.split, device=torch_device(args.device),
        metrics=args.metrics, progress=progress, workers=args.workers, out=args.out, overwrite=args.overwrite,
    )
    retention = None
    if rule is not None:
        retention = evaluate_target_retention(args.fused, args.source, layout=cli.layout_spec(args), split=args.split,
                                              rule=rule, progress=progress)
    retention_table = write_retention_tables(retention, args.out) if retention else None
    print(markdown_table(result))
    if retention_table:
        print(retention_table)
    print(f"tables written to {args.out}/fusion_metrics.{{md,csv,json}}"
          + (f" and {args.out}/target_retention.{{md,csv,json}}" if retention_table else ""))
    return 0
