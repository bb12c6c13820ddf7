#!/usr/bin/env python
"""Re-evaluate a trained detection run (no training): pycocotools mAP on its stored split."""

from __future__ import annotations

import argparse
import logging
import sys

from fusion_perception.cli import tool_main


@tool_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Predict with a finished tools/train_det.py run's best.pt on one split (low confidence "
                    "threshold), score with pycocotools (mAP@0.5, mAP@0.5:0.95, AP@0.5 per class) and write "
                    "the results: RUN/results.json, results.md and predictions.png for the test split, "
                    "RUN/eval/<split>/results.json otherwise.")
    ap.add_argument("--run", required=True, metavar="DIR", help="the run directory (holds run.json)")
    ap.add_argument("--split", default="test", choices=("train", "val", "test"), help="default: test")
    ap.add_argument("--device", default=None, help="cpu or a GPU id (default: the run's device)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from fusion_perception.detection.evaluate import evaluate_run
    from fusion_perception.detection.report import table3_header

    res = evaluate_run(args.run, args.split, device=args.device)
    print(table3_header())
    print(res["markdown_row"])
    print(f"mAP@0.5:0.95 {100 * res['mAP50_95']:.1f} on {res['split']} ({res['num_images']} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
