"""``fusion-perception eval-det`` (``tools/eval_det.py``): re-evaluate a trained detection run (no
training), pycocotools mAP on its stored split."""

from __future__ import annotations

import argparse

from fusion_perception import cli

DESCRIPTION = """\
Predict with a finished tools/train_det.py run's best.pt on one split (low confidence threshold),
score with pycocotools (mAP@0.5, mAP@0.5:0.95, AP@0.5 per class) and write the results:
RUN/results.json, results.md and predictions.png for the test split, RUN/eval/<split>/results.json
otherwise."""


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = cli.parser(prog, DESCRIPTION)
    cli.add_run(ap, "run.json")
    ap.add_argument("--split", default="test", choices=("train", "val", "test"), help="default: test")
    cli.add_device(ap, "several ids: the first")
    return ap


def run(args: argparse.Namespace) -> int:
    cli.begin(args)
    from fusion_perception.record import run_lock
    from fusion_perception.detection.evaluate import evaluate_run
    from fusion_perception.detection.report import table3_header

    with run_lock(args.run):  # not while a training writes there
        res = evaluate_run(args.run, args.split, device=args.device)
    print(table3_header(res["classes"]))
    print(res["markdown_row"])
    print(f"mAP@0.5:0.95 {100 * res['mAP50_95']:.1f} on {res['split']} ({res['num_images']} images)")
    return 0
