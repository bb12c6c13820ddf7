"""Compare fusion methods downstream: detection mAP@0.5 and segmentation mIoU, method against method.

Runs the detection (YOLO on M3FD) and segmentation (DeepLabV3+ on MSRS) protocols for every method
and seed, reusing every fused cache and finished run (an interrupted comparison resumes), then
writes the paper's Table 3 / Table 4 layouts with mean ± std over seeds (best bold, second
italic) and each method's difference to a reference method with its 95% interval from a paired
bootstrap over the test images (--reference; † where the interval excludes 0), the fusion-quality
table, bar charts and a qualitative grid under --out.

Examples:
  python tools/compare_methods.py --task both --methods ir,vi,mean,max,laplacian --out outputs/cmp
  python tools/compare_methods.py --task det --methods ir,vi,emma,folder:CDDFuse=/data/cddfuse \\
      --weights emma=EMMA.pth --det-data /data/M3FD --seeds 0,1,2 --device cuda --out outputs/m3fd
"""

from __future__ import annotations

import argparse

from fusion_perception import cli
from fusion_perception.errors import ConfigError, did_you_mean

ALL_TASKS = "both"  # every registered task (fusion_perception.comparison.compare.ALL_TASKS)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    from fusion_perception.registry import TASKS

    # every registered task, those of the --import modules included (imported before this parser)
    tasks = [TASKS.get(name) for name in TASKS.names()]
    p = cli.parser(prog, __doc__, raw=True)
    # any registered task, checked by run() (its error names them all), not by argparse
    p.add_argument("--task", default=ALL_TASKS, metavar="TASK",
                   help=f"det: detection, seg: segmentation, {ALL_TASKS} (default: every registered task), "
                        "or a task an --import module registers")
    cli.add_methods(p)
    for task in tasks:  # --det-data, --seg-data, ...
        p.add_argument(f"--{task.name}-data", dest=f"{task.name}_data", help=task.data_help or
                       f"{task.name} dataset root (default: the synthetic default's {task.synthetic_part} set)")
    cli.add_layout_options(p, "the detection dataset (--det-data)")
    cli.add_seeds(p)
    cli.add_method_weights(p)
    for task in tasks:  # --det-config, --seg-config, ...
        p.add_argument(f"--{task.name}-config", dest=f"{task.name}_config",
                       help=task.config_help or f"{task.name} config (default: the task's own for the device)")
    cli.add_device(p, "several ids: ultralytics' multi-GPU DDP for detection, the first for the rest")
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
    cli.add_paired(p)
    cli.add_no_progress(p)
    cli.add_verbose(p)
    return p


def run(args: argparse.Namespace) -> int:
    cli.begin(args)
    from fusion_perception.registry import TASKS

    if args.task != ALL_TASKS and args.task not in TASKS:
        raise ConfigError(f"--task {args.task}: no such task{did_you_mean(args.task, [*TASKS.names(), ALL_TASKS])}; "
                          f"choose {', '.join(TASKS.names())} or {ALL_TASKS}")
    from fusion_perception.comparison.compare import ComparisonSettings, compare_methods

    settings = ComparisonSettings(
        task=args.task, seeds=args.seeds, weights=args.weights, device=args.device,
        # each task's --<name>-data and --<name>-config (None: its default), by task name
        data={name: getattr(args, f"{name}_data", None) for name in TASKS.names()},
        layouts={"det": cli.layout_spec(args)},  # the label view and split lists are the detection data's
        configs={name: getattr(args, f"{name}_config", None) for name in TASKS.names()},
        samples=args.samples.split(",") if args.samples else None, quality=not args.no_quality,
        jobs=args.jobs, overwrite=args.overwrite, fused_root=args.fused_root, verbose=args.verbose,
        progress=not args.no_progress, reference=args.reference, resamples=args.resamples,
        bootstrap_seed=args.bootstrap_seed,
    )
    result = compare_methods(args.methods, args.out, settings)
    for name, md in result.tables.items():
        print(f"\n## {name}\n\n{md}")
    print("\nTimings: " + ", ".join(f"{k} {v:.0f} s" for k, v in result.timings.items()))
    print(f"Tables and plots under {args.out}/tables and {args.out}/plots; each run's log: "
          f"{args.out}/<task>/<method>/seed<S>/run.log")
    return 0
