#!/usr/bin/env python
"""Train a YOLO detector on fused M3FD and score it with pycocotools (the paper's Table 3 protocol)."""

from __future__ import annotations

import argparse
import logging
import sys

from fusion_perception.cli import add_fusion_weights, add_verbose, tool_main


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description="Fuse an M3FD-layout dataset with one fusion method (cached), split it 8:1:1 by seed\n"
                    "(split files reused), train ultralytics YOLO on the fused images (offline; CPU, one GPU\n"
                    "or DDP), then score the test split with pycocotools: mAP@0.5, mAP@0.5:0.95 and AP@0.5\n"
                    "per class. Writes OUT/results.json (last), OUT/results.md (a Table 3 row) and\n"
                    "OUT/predictions.png. A finished run with the same settings is not redone; an\n"
                    "interrupted training resumes from its last.pt (the same command again). A run made with\n"
                    "other settings is never replaced without --overwrite.",
        epilog="examples:\n"
               "  python tools/train_det.py --fusion emma                          # synthetic default, CPU: small_cpu\n"
               "  python tools/train_det.py --data /data/M3FD_Detection --fusion emma --weights emma.pth "
               "--device 0,1,2,3\n"
               "  python tools/train_det.py --data M3FD --fusion folder:CDDFuse=/results/cddfuse --device 0",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", metavar="M3FD_ROOT", default=None,
                    help="M3FD (Ir/, Vis/, Annotation/) or TarDAL (ir/, vi/, labels/, meta/) root; "
                         "default: the synthetic default's m3fd set (generated when absent)")
    ap.add_argument("--fusion", default="emma", metavar="METHOD",
                    help="a registered fusion method (ir, vi, mean, max, laplacian, dwt, gff, emma, ...) "
                         "or folder:NAME=PATH for precomputed fused images (default: emma)")
    add_fusion_weights(ap)
    ap.add_argument("--config", default=None, metavar="FILE|NAME",
                    help="detection config (configs/det/*.py, by path or name); default: yolov5s_m3fd, "
                         "the paper's recipe, on a GPU, and small_cpu (a quick run) on the CPU")
    ap.add_argument("--model", default=None, help="model YAML (ultralytics' packaged cfgs such as yolov5s.yaml, "
                                                  "yolov8n.yaml, or a local file) or a local .pt")
    ap.add_argument("--det-weights", default=None, metavar="PT",
                    help="local YOLO weights to start from (never downloaded)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None, help="total batch size (split across GPUs under DDP)")
    ap.add_argument("--imgsz", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None, help="data-loader workers")
    ap.add_argument("--device", default="cpu", help="cpu, 0, or 0,1,2,3 for multi-GPU DDP (default: cpu)")
    ap.add_argument("--seed", type=int, default=0, help="split and training seed (default: 0)")
    ap.add_argument("--out", default=None, metavar="DIR",
                    help="run directory (default: work_dirs/det/<config>/<method>_seed<S>)")
    ap.add_argument("--fused-dir", default=None, metavar="DIR",
                    help="fused dataset to use or write (default: the shared cache "
                         "work_dirs/fused/<method>/<dataset>, where tools/fuse_dataset.py writes)")
    ap.add_argument("--split-dir", default=None, metavar="DIR",
                    help="split files to use/share (default: OUT/splits/seed<S>)")
    ap.add_argument("--skip-bad", action="store_true", help="leave out bad pairs with a warning instead of failing")
    ap.add_argument("--force", action="store_true", help="retrain even when a finished run matches")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace a run in --out (or a fused dataset in --fused-dir) made with other settings "
                         "(default: refuse and say what differs)")
    add_verbose(ap)
    return ap


@tool_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from fusion_perception.detection.task import run_detection
    from fusion_perception.detection.report import table3_header

    res = run_detection(
        args.data, args.fusion, args.out, config=args.config, seed=args.seed, weights=args.weights,
        det_weights=args.det_weights, model=args.model, epochs=args.epochs, batch=args.batch,
        imgsz=args.imgsz, workers=args.workers, device=args.device, fused_dir=args.fused_dir,
        split_dir=args.split_dir, skip_bad=args.skip_bad, force=args.force, overwrite=args.overwrite,
        verbose=args.verbose,
    )
    print(table3_header())
    print(res["markdown_row"])
    print(f"{res['label']}: mAP@0.5 {100 * res['mAP50']:.1f}, mAP@0.5:0.95 {100 * res['mAP50_95']:.1f} on "
          f"{res['num_images']} test images; results: {res['run_dir']}/results.md; "
          f"predictions: {res['files']['visualisation']}")
    data = "" if args.data is None else " --data MSRS_ROOT"
    print(f"next: python tools/train_seg.py --fusion {args.fusion}{data}   (segmentation), or "
          f"python tools/train_det.py --fusion laplacian (another method)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
