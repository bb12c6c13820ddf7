"""The pipeline's main job on the built-in synthetic default (about 11 minutes on a 2-core CPU).

Generates the synthetic IR/visible scenes, fuses them with EMMA (the toolkit's checkpoint; --train-emma
trains one), the classical methods, IR and VI, trains a small YOLO detector and a small DeepLabV3+
segmenter on each method's fused images (and DIDFuse, TarDAL or SeAFusion when --weights gives their
authors' weights), and prints the detection (mAP@0.5), segmentation (mIoU) and
fusion-quality tables (target retention included), each method with its difference to the better
single modality (--reference) and the 95% interval of a paired bootstrap over the test images. On a
CPU, as many runs train at once as there are cores (up to 4), one thread each. The terminal shows a
line per stage and a progress bar; each run's library output is in its run.log (--verbose shows it).
Everything is cached: re-running resumes or only re-prints.
"""

from __future__ import annotations

import argparse

from fusion_perception import cli

TITLES = {"det": "Detection on synthetic M3FD (YOLO, AP@0.5 %)",
          "seg": "Segmentation on synthetic MSRS (DeepLabV3+, IoU %)",
          "fusion_quality": "Fusion quality (test images)"}


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    from fusion_perception.comparison.demo import DEMO_METHODS

    p = cli.parser(prog, __doc__, raw=True)
    cli.add_out(p, "output folder (default: outputs/demo)", "outputs/demo")
    cli.add_methods(p, ",".join(DEMO_METHODS))
    cli.add_device(p, "several ids: ultralytics' multi-GPU DDP for detection, the first for the rest")
    cli.add_seeds(p)
    p.add_argument("--train-emma", action="store_true",
                   help="train EMMA here (sensing nets, then the U-Fuser; the recipe of the toolkit's checkpoint, "
                        "about 35 minutes on 2 cores) instead of using the committed checkpoint")
    cli.add_method_weights(p)  # the learned fusers' rows appear when their weights are given
    cli.add_overwrite(p, "runs in --out")
    cli.add_paired(p)
    cli.add_no_progress(p)
    cli.add_verbose(p)
    return p


def run(args: argparse.Namespace) -> int:
    cli.begin(args)
    from fusion_perception.comparison.demo import run_demo

    result = run_demo(args.out, args.methods.split(","), args.device, seeds=args.seeds, overwrite=args.overwrite,
                      train_emma=args.train_emma, verbose=args.verbose, progress=not args.no_progress,
                      weights=args.weights,
                      reference=args.reference, resamples=args.resamples, bootstrap_seed=args.bootstrap_seed)
    for key, md in result.tables.items():
        print(f"\n## {TITLES.get(key, key)}\n\n{md}")
    print("\nTimings: " + ", ".join(f"{k} {v:.0f} s" for k, v in result.timings.items()))
    print(f"Tables: {args.out}/tables   Plots (bar charts, qualitative grid): {args.out}/plots")
    return 0
