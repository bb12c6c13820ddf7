"""Train EMMA's pseudo-sensing nets A_i and A_v (step 2 of the method) with mmengine.

The inputs are fused images from other fusion methods (the pseudo ground truth), the
targets the IR and visible patches. Exports OUT/sensing_ir.pth and sensing_vi.pth
(official Ai.pth/Av.pth format) for tools/train_emma.py --sensing-dir.

Examples:
  python tools/train_sensing.py                                   # small CPU config, synthetic data
  python tools/train_sensing.py --config configs/sensing/paper.py --data /data/MSRS \\
      --pseudo-gt mean,max,laplacian,dwt,gff,folder:CDDFuse=/results/cddfuse --amp
  python tools/train_sensing.py --config paper --data /data/MSRS --pseudo-gt didfuse,tardal \\
      --weights didfuse=/weights/didfuse,tardal=/weights/tardal.pt      # the public code's way
  torchrun --nproc_per_node 4 tools/train_sensing.py --config paper --launcher pytorch --data /data/MSRS
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fusion_perception import cli, cli_plugins
from fusion_perception.console import command_line


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = cli.parser(prog, __doc__, raw=True)
    cli.add_config(p, "mmengine config file, or a name in configs/sensing/ (small_cpu, paper)",
                   "small_cpu")
    cli.add_data(p, "training pairs: MSRS (its train split), TarDAL M3FD, or any ir/vi pair folder "
                    "(default: the synthetic default set)")
    cli.add_layout(p, "--data (--split-lists: train on its train part only)")
    p.add_argument("--pseudo-gt", default=None,
                   help="comma-separated fusion methods giving the pseudo ground truth, e.g. "
                        "mean,max,laplacian,folder:CDDFuse=/results or didfuse,tardal (default: the config's "
                        "list; a learned method in either takes its authors' weights from --weights)")
    cli.add_method_weights(p)
    cli_plugins.add_import(p)
    p.add_argument("--target", choices=("ir", "vi", "both"), default="both", help="which net(s) to train")
    cli.add_out(p, "checkpoints, logs, patch cache and exports (default: work_dirs/sensing_<config>)")
    cli.add_patch_training_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    cli.begin(args, log_lines=False)
    from fusion_perception.emma.training.runner import train_sensing

    pseudo_gt = None if args.pseudo_gt is None else [m.strip() for m in args.pseudo_gt.split(",") if m.strip()]
    out = train_sensing(args.config, data_root=args.data, layout=cli.layout_spec(args), pseudo_gt=pseudo_gt,
                        weights=args.weights, target=args.target, work_dir=args.out, resume=args.resume,
                        launcher=args.launcher, amp=args.amp,
                        epochs=args.epochs, max_patches=args.max_patches, cfg_options=args.cfg_options,
                        overwrite=args.overwrite, verbose=args.verbose, progress=not args.no_progress)
    for tgt, path in out.items():
        print(f"sensing net {tgt}: {path}")
    sensing_dir = Path(out["ir"] if "ir" in out else out["vi"]).parent
    print(f"next: {command_line('train_emma', '--sensing-dir', sensing_dir)}")
    return 0

