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

from fusion_perception import cli
from fusion_perception.errors import ConfigError

ALL_TASKS = "both"  # every registered task (fusion_perception.comparison.compare.ALL_TASKS)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = cli.parser(prog, __doc__, raw=True)
    # any registered task: checked once the --import modules (which may register more) are loaded
    p.add_argument("--task", default=ALL_TASKS, metavar="TASK",
                   help=f"det: detection, seg: segmentation, {ALL_TASKS} (default: every registered task), "
                        "or a task an --import module registers")
    cli.add_methods(p)
    p.add_argument("--det-data", help="M3FD root (default: the synthetic default's m3fd set)")
    p.add_argument("--seg-data", help="MSRS root (default: the synthetic default's msrs set)")
    cli.add_seeds(p)
    cli.add_method_weights(p)
    p.add_argument("--det-config", help="detection config (default: paper recipe on GPU, small CPU config on CPU)")
    p.add_argument("--seg-config", help="segmentation config (same defaults)")
    cli.add_device(p, "cpu", "several ids: ultralytics' multi-GPU DDP for detection, the first for the rest "
                             "(default: cpu)")
    p.add_argument("--samples", help="comma-separated sample names for the qualitative grid")
    p.add_argument("--jobs", type=cli.count(1), default=1,
                   help="fusions and runs at once, each in its own process with cores/JOBS threads; "
                        "2 on a 2-core CPU halves the time of the small configs (default: 1)")
    p.add_argument("--no-quality", action="store_true", help="skip the fusion-quality metrics table")
    cli.add_out(p, "output folder (default: outputs/compare)", "outputs/compare")
    cli.add_overwrite(p, "runs and fused caches")
    p.add_argument("--fused-root", default=None, metavar="DIR",
                   help="where fused datasets are cached (default: work_dirs/fused, shared with fuse_dataset.py, "
                        "train_det.py and train_seg.py)")
    cli.add_verbose(p)
    return p


def run(args: argparse.Namespace) -> int:
    cli.begin(args)
    from fusion_perception.registry import TASKS

    if args.task != ALL_TASKS and args.task not in TASKS:
        raise ConfigError(f"--task {args.task}: no such task; choose {', '.join(TASKS.names())} or {ALL_TASKS}")
    from fusion_perception.comparison.compare import compare_methods

    result = compare_methods(
        args.methods, args.out, task=args.task, det_data=args.det_data, seg_data=args.seg_data, seeds=args.seeds,
        weights=args.weights, det_config=args.det_config, seg_config=args.seg_config, device=args.device,
        samples=args.samples.split(",") if args.samples else None, quality=not args.no_quality,
        jobs=args.jobs, overwrite=args.overwrite, fused_root=args.fused_root, verbose=args.verbose,
    )
    for name, md in result.tables.items():
        print(f"\n## {name}\n\n{md}")
    print("\nTimings: " + ", ".join(f"{k} {v:.0f} s" for k, v in result.timings.items()))
    print(f"Tables and plots under {args.out}/tables and {args.out}/plots; each run's log: "
          f"{args.out}/<task>/<method>/seed<S>/run.log")
    return 0
