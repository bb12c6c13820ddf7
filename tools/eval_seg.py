#!/usr/bin/env python
"""Re-evaluate a checkpoint of a segmentation run (no training): IoU per class and mIoU on the test split."""

from __future__ import annotations

import argparse
import logging
import os
import sys

# Before torch loads OpenMP: idle threads sleep instead of spinning. On a shared CPU, spinning
# OpenMP threads slowed training here up to tenfold; the cost on an idle machine is small.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from fusion_perception.cli import count, tool_main  # noqa: E402


@tool_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Load a checkpoint of a tools/train_seg.py run, predict the fused test split, and score "
                    "it from one confusion matrix over every test pixel (IoU per class, mIoU; a class absent "
                    "from both prediction and labels has no IoU and is left out of the mean). Writes "
                    "results.json, results.md (a Table 4 row) and MSRS-palette prediction PNGs to "
                    "RUN/eval/<checkpoint name>/ (or --out).")
    ap.add_argument("--run", required=True, metavar="DIR", help="the run directory (holds config.py)")
    ap.add_argument("--checkpoint", default=None, metavar="PATH", help="default: the run's last checkpoint")
    ap.add_argument("--out", default=None, metavar="DIR", help="default: RUN/eval/<checkpoint name>")
    ap.add_argument("--device", default=None, choices=("cpu", "cuda"), help="default: cuda when present")
    ap.add_argument("--num-pred-images", type=count(0), default=None, help="test images drawn as PNGs")
    ap.add_argument("--threads", type=count(1), default=None, help="CPU threads for torch (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from fusion_perception.segmentation.report import table4_header
    from fusion_perception.segmentation.evaluate import evaluate_segmentation

    res = evaluate_segmentation(args.run, args.checkpoint, args.out, device=args.device,
                                num_pred_images=args.num_pred_images)
    print(table4_header(res["classes"]))
    print(res["markdown_row"])
    print(f"{res['num_test_images']} test images; results: {res['results_dir']}/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
