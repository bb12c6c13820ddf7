"""Train EMMA's U-Fuser (step 3 of the method) through the frozen sensing nets, with mmengine.

Loss: L(A_i(f), i) + a1 L(A_v(f), v) + a2 L(f_t, F(A_i(f_t), A_v(f_t))), f_t the
equivariant batch (shifts, rotations, flips) of f. Exports OUT/emma_fuser.pth, which
tools/fuse_dataset.py --fusion emma --weights reads.

Examples:
  python tools/train_sensing.py --out work_dirs/sensing
  python tools/train_emma.py --sensing-dir work_dirs/sensing --out work_dirs/emma
  python tools/train_emma.py --sensing-dir work_dirs/sensing --out work_dirs/emma_noeq --no-equivariance
  python tools/train_emma.py --config paper --data /data/MSRS --sensing-ir Ai.pth --sensing-vi Av.pth --amp
"""

from __future__ import annotations

import argparse
import shlex

from fusion_perception import cli
from fusion_perception.console import command_line


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = cli.parser(prog, __doc__, raw=True)
    cli.add_config(p, "mmengine config file, or a name in configs/emma/ (small_cpu, paper)", "small_cpu")
    cli.add_data(p, "training pairs: MSRS (its train split) or any ir/vi pair folder "
                    "(default: the synthetic default set)")
    cli.add_layout(p, "--data (--split-lists: train on its train part only)")
    p.add_argument("--sensing-dir", default=None, help="--out of tools/train_sensing.py "
                                                       "(holds sensing_ir.pth and sensing_vi.pth)")
    p.add_argument("--sensing-ir", default=None, help="A_i checkpoint (official Ai.pth or trained here)")
    p.add_argument("--sensing-vi", default=None, help="A_v checkpoint (official Av.pth or trained here)")
    cli.add_out(p, "checkpoints, logs, patch cache and emma_fuser.pth (default: work_dirs/emma_<config>)")
    p.add_argument("--no-equivariance", action="store_true",
                   help="ablation: drop the a2 term from the optimisation (it is still logged as loss_eq)")
    p.add_argument("--a1", type=float, default=None, help="weight of the visible term (config default 1.0)")
    p.add_argument("--a2", type=float, default=None, help="weight of the equivariance term (config default 0.1)")
    cli.add_patch_training_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    from fusion_perception.emma.training.runner import train_emma

    out = train_emma(args.config, data_root=args.data, layout=cli.layout_spec(args), sensing_dir=args.sensing_dir,
                     sensing_ir=args.sensing_ir, sensing_vi=args.sensing_vi, work_dir=args.out,
                     loss=dict(equivariance=not args.no_equivariance, a1=args.a1, a2=args.a2), resume=args.resume, launcher=args.launcher, amp=args.amp,
                     epochs=args.epochs, max_patches=args.max_patches, cfg_options=args.cfg_options,
                     overwrite=args.overwrite, verbose=args.verbose, progress=not args.no_progress)
    print(f"EMMA fuser: {out}")
    print(f"next: {command_line('fuse_dataset', '--fusion', 'emma', '--weights', out)}   (or --weights "
          f"{shlex.quote(str(out))} in train_det.py, train_seg.py, compare_methods.py --weights emma=...)")
    return 0
