#!/usr/bin/env python
"""The pipeline's main job on the built-in synthetic default (about 5 minutes on a 2-core CPU).

Generates the synthetic IR/visible scenes, fuses them with EMMA (the toolkit's checkpoint; --train-emma
trains one), the classical methods, IR and VI, trains a small YOLO detector and a small DeepLabV3+
segmenter on each method's fused images, and prints the detection (mAP@0.5), segmentation (mIoU) and
fusion-quality tables (target retention included). On a CPU, as many runs train at once as there are
cores (up to 4), one thread each. The terminal shows a line per stage and a progress bar; each run's
library output is in its run.log (--verbose shows it). Everything is cached: re-running resumes or
only re-prints.
"""

from __future__ import annotations

import argparse
import logging
import sys

from fusion_perception.cli import add_verbose, parse_seeds, tool_main
from fusion_perception.benchmark.demo import DEMO_METHODS, run_demo


@tool_main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    p.add_argument("--methods", default=",".join(DEMO_METHODS), help="comma-separated fusion methods")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--seeds", default="0", help="comma-separated training seeds (default: 0)")
    p.add_argument("--train-emma", action="store_true",
                   help="train EMMA here (sensing nets, then the U-Fuser; the recipe of the toolkit's checkpoint, "
                        "about 35 minutes on 2 cores) instead of using the committed checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace runs in --out made with other settings, e.g. by an older version (default: refuse)")
    add_verbose(p)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = run_demo(a.out, a.methods.split(","), a.device, seeds=parse_seeds(p, a.seeds), overwrite=a.overwrite,
                      train_emma=a.train_emma, verbose=a.verbose)
    titles = {"det": "Detection on synthetic M3FD (YOLO, AP@0.5 %)",
              "seg": "Segmentation on synthetic MSRS (DeepLabV3+, IoU %)",
              "fusion_quality": "Fusion quality (test images)"}
    for key, md in result.tables.items():
        print(f"\n## {titles.get(key, key)}\n\n{md}")
    print("\nTimings: " + ", ".join(f"{k} {v:.0f} s" for k, v in result.timings.items()))
    print(f"Tables: {a.out}/tables   Plots (bar charts, qualitative grid): {a.out}/plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
