#!/usr/bin/env python
"""Compare fusion methods downstream: detection mAP@0.5 and segmentation mIoU, method against method.

Runs the detection (YOLO on M3FD) and segmentation (DeepLabV3+ on MSRS) protocols for every method
and seed, reusing every fused cache and finished run (an interrupted comparison resumes), then
writes the paper's Table 3 / Table 4 layouts with mean ± std over seeds (best bold, second
italic), the fusion-quality table, bar charts and a qualitative grid under --out.

Examples:
  python tools/compare_methods.py --task both --methods ir,vi,mean,max,laplacian --out outputs/cmp
  python tools/compare_methods.py --task det --methods ir,vi,emma,folder:CDDFuse=/data/cddfuse \\
      --weights emma=EMMA.pth --det-data /data/M3FD --seeds 0,1,2 --device cuda --out outputs/m3fd
"""

from __future__ import annotations

import argparse
import logging
import sys

from fusion_perception.cli import add_verbose, count, parse_seeds, tool_main
from fusion_perception.benchmark.compare import compare_methods


@tool_main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=("det", "seg", "both"), default="both")
    p.add_argument("--methods", required=True,
                   help="comma-separated fusion methods: registered names (ir, vi, mean, max, laplacian, dwt, "
                        "gff, emma) and folder:NAME=PATH for another method's precomputed results")
    p.add_argument("--det-data", help="M3FD root (default: the synthetic default's m3fd set)")
    p.add_argument("--seg-data", help="MSRS root (default: the synthetic default's msrs set)")
    p.add_argument("--seeds", default="0", help="comma-separated training seeds (default: 0)")
    p.add_argument("--weights", action="append", default=[], metavar="METHOD=PATH",
                   help="fusion checkpoint of a method, e.g. emma=EMMA.pth or emma=official (repeatable; default for emma on the synthetic data: the toolkit's own checkpoint)")
    p.add_argument("--det-config", help="detection config (default: paper recipe on GPU, small CPU config on CPU)")
    p.add_argument("--seg-config", help="segmentation config (same defaults)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, or GPU ids such as 0 or 0,1,2,3")
    p.add_argument("--samples", help="comma-separated sample names for the qualitative grid")
    p.add_argument("--jobs", type=count(1), default=1,
                   help="fusions and runs at once, each in its own process with cores/JOBS threads; "
                        "2 on a 2-core CPU halves the time of the small configs (default: 1)")
    p.add_argument("--no-quality", action="store_true", help="skip the fusion-quality metrics table")
    p.add_argument("--out", default="outputs/compare", help="output folder (default: outputs/compare)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace runs and fused caches made with other settings (default: refuse)")
    p.add_argument("--fused-root", default=None, metavar="DIR",
                   help="where fused datasets are cached (default: work_dirs/fused, shared with fuse_dataset.py, "
                        "train_det.py and train_seg.py)")
    add_verbose(p)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    bad = [w for w in a.weights if "=" not in w]
    if bad:
        p.error(f"--weights expects METHOD=PATH, got {bad[0]!r}")
    seeds = parse_seeds(p, a.seeds)
    result = compare_methods(
        a.methods, a.out, task=a.task, det_data=a.det_data, seg_data=a.seg_data, seeds=seeds,
        weights=dict(w.split("=", 1) for w in a.weights), det_config=a.det_config, seg_config=a.seg_config,
        device=a.device, samples=a.samples.split(",") if a.samples else None, quality=not a.no_quality,
        jobs=a.jobs, overwrite=a.overwrite, fused_root=a.fused_root, verbose=a.verbose,
    )
    for name, md in result.tables.items():
        print(f"\n## {name}\n\n{md}")
    print("\nTimings: " + ", ".join(f"{k} {v:.0f} s" for k, v in result.timings.items()))
    print(f"Tables and plots under {a.out}/tables and {a.out}/plots; each run's log: {a.out}/<task>/<method>/seed<S>/run.log")
    return 0


if __name__ == "__main__":
    sys.exit(main())
