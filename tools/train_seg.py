#!/usr/bin/env python
"""Train DeepLabV3+ on fused MSRS and score IoU per class and mIoU (the paper's Table 4 protocol)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

# Before torch loads OpenMP: idle threads sleep instead of spinning. On a shared CPU, spinning
# OpenMP threads slowed training here up to tenfold; the cost on an idle machine is small.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from fusion_perception.cli import add_cfg_options, add_fusion_weights, add_verbose, count, tool_main  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description="Fuse an MSRS-layout dataset with one fusion method (cached by manifest), train a "
                    "segmentation-models-pytorch DeepLabV3+ on the fused training split through mmengine's "
                    "Runner (cross-entropy, SGD with cosine decay, frozen-encoder phase, albumentations "
                    "augmentation, checkpoints), then score the test split: IoU per class (the 9 MSRS classes, "
                    "unlabelled included) and mIoU from one confusion matrix over every test pixel. Writes "
                    "OUT/results.json (last), OUT/results.md (a Table 4 row) and OUT/predictions/*.png. A finished "
                    "run with the same settings is not redone. Nothing is ever downloaded.",
        epilog="examples:\n"
               "  python tools/train_seg.py                                    # EMMA, synthetic default, small CPU config\n"
               "  python tools/train_seg.py --data /data/MSRS --fusion emma --weights emma.pth --device cuda --amp\n"
               "  torchrun --nproc_per_node 4 tools/train_seg.py --data /data/MSRS --fusion vi --launcher pytorch\n"
               "  python tools/train_seg.py --data MSRS --fusion folder:CDDFuse=/results/cddfuse\n"
               "  python tools/train_seg.py --fusion ir --out work_dirs/seg/run1   # again after a kill: continues",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", metavar="MSRS_ROOT", default=None,
                    help="MSRS root ({train,test}/{ir,vi,Segmentation_labels}); default: the synthetic "
                         "default's msrs set (generated when absent)")
    ap.add_argument("--fusion", default="emma", metavar="METHOD",
                    help="a registered fusion method (ir, vi, mean, max, laplacian, dwt, gff, emma, ...) or "
                         "folder:NAME=PATH for precomputed fused images (default: emma)")
    add_fusion_weights(ap)
    ap.add_argument("--config", default=None, metavar="FILE|NAME",
                    help="segmentation config (configs/seg/*.py, by path or name); default: "
                         "deeplabv3plus_r50_msrs (the paper's recipe) on GPU, small_cpu on CPU")
    ap.add_argument("--device", default=None, choices=("cpu", "cuda"), help="default: cuda when present")
    ap.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    ap.add_argument("--out", default=None, metavar="DIR",
                    help="run directory (default: work_dirs/seg/<config>/<method>_seed<S>)")
    ap.add_argument("--fused-dir", default=None, metavar="DIR",
                    help="fused dataset to use or write (default: the shared cache "
                         "work_dirs/fused/<method>/<dataset>, where tools/fuse_dataset.py writes)")
    ap.add_argument("--resume", action="store_true",
                    help="continue an interrupted run from its last checkpoint (implied: the same command "
                         "resumes an interrupted run with the same settings)")
    ap.add_argument("--launcher", default="none", choices=("none", "pytorch"),
                    help="pytorch: DDP, start with torchrun (GPUs only)")
    ap.add_argument("--amp", action="store_true", help="mixed precision (GPU only)")
    ap.add_argument("--encoder-weights", default=None, metavar="PATH",
                    help="local file with pretrained encoder weights (e.g. torchvision resnet50); default: none")
    ap.add_argument("--epochs", type=int, default=None,
                    help="override the number of epochs (cosine schedule and frozen phase scale with it)")
    ap.add_argument("--batch", type=int, default=None, help="total training batch size")
    ap.add_argument("--workers", type=count(0), default=None, help="data-loader processes")
    add_cfg_options(ap, "model.encoder_name=resnet34 train_dataloader.batch_size=4")
    ap.add_argument("--skip-bad", action="store_true", help="leave out bad pairs with a warning instead of failing")
    ap.add_argument("--force", action="store_true", help="retrain even when a finished run matches")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace a run in --out (or a fused dataset in --fused-dir) made with other settings "
                         "(default: refuse and say what differs)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.add_argument("--threads", type=count(1), default=None,
                    help="CPU threads for torch (default: torch's; 1 is fastest on a busy shared CPU)")
    add_verbose(ap)
    return ap


@tool_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from fusion_perception.segmentation.report import table4_header
    from fusion_perception.segmentation.task import run_segmentation

    res = run_segmentation(
        args.data, args.fusion, args.out, config=args.config, seed=args.seed, weights=args.weights,
        device=args.device, resume=args.resume, launcher=args.launcher, amp=args.amp,
        encoder_weights=args.encoder_weights, fused_dir=args.fused_dir, cfg_options=args.cfg_options,
        epochs=args.epochs, batch=args.batch, workers=args.workers, skip_bad=args.skip_bad,
        force=args.force, overwrite=args.overwrite, progress=not args.no_progress, verbose=args.verbose,
    )
    if "markdown_row" in res:  # rank 0
        print(table4_header(res["classes"]))
        print(res["markdown_row"])
        print(f"{res['label']}: mIoU {100 * (res['mIoU'] or float('nan')):.1f} on {res['num_test_images']} test "
              f"images; results: {res['run_dir']}/results.md; predictions: {res['predictions_dir']}")
        print("next: python tools/compare_methods.py --methods ir,vi,laplacian,emma   (method against method, "
              "both tasks), or python tools/demo.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
