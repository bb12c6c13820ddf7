"""``fusion-perception eval-seg`` (``tools/eval_seg.py``): re-evaluate a checkpoint of a segmentation
run (no training), IoU per class and mIoU on the test split."""

from __future__ import annotations

import argparse

from fusion_perception import cli
from fusion_perception.devices import torch_device

DESCRIPTION = """\
Load a checkpoint of a tools/train_seg.py run, predict the fused test split, and score it from one
confusion matrix over every test pixel (IoU per class, mIoU; a class absent from both prediction and
labels has no IoU and is left out of the mean). Writes results.json, results.md (a Table 4 row) and
MSRS-palette prediction PNGs to RUN/eval/<checkpoint name>/ (or --out)."""


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = cli.parser(prog, DESCRIPTION)
    cli.add_run(ap, "config.py")
    ap.add_argument("--checkpoint", default=None, metavar="PATH", help="default: the run's last checkpoint")
    cli.add_out(ap, "default: RUN/eval/<checkpoint name>")
    cli.add_device(ap, "several ids: the first")
    ap.add_argument("--num-pred-images", type=cli.count(0), default=None, help="test images drawn as PNGs")
    cli.add_threads(ap)
    cli.add_verbose(ap)
    return ap


def run(args: argparse.Namespace) -> int:
    cli.begin(args)
    from fusion_perception.record import run_lock
    from fusion_perception.segmentation.evaluate import evaluate_segmentation
    from fusion_perception.segmentation.report import table4_header

    with run_lock(args.run):  # not while a training writes there
        res = evaluate_segmentation(args.run, args.checkpoint, args.out, device=torch_device(args.device),
                                    num_pred_images=args.num_pred_images, verbose=args.verbose)
    print(table4_header(res["classes"]))
    print(res["markdown_row"])
    print(f"{res['num_test_images']} test images; results: {res['results_dir']}/results.json")
    return 0
