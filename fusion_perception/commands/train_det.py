"""``fusion-perception train-det`` (``tools/train_det.py``): train a YOLO detector on fused M3FD and
score it with pycocotools (the paper's Table 3 protocol)."""

from __future__ import annotations

import argparse

from fusion_perception import cli
from fusion_perception.console import command_line

DESCRIPTION = """\
Fuse a detection dataset (M3FD, TarDAL or MSRS detection) with one fusion method
(cached), split it 8:1:1 by seed unless it brings its own split (split files reused),
train ultralytics YOLO on the fused images (offline; CPU, one GPU or DDP), then score
the test split with pycocotools: mAP@0.5, mAP@0.5:0.95 and AP@0.5 per class. Writes
OUT/results.json (last), OUT/results.md (a Table 3 row) and OUT/predictions.png. A
finished run with the same settings is not redone; an interrupted training resumes from
its last.pt (the same command again). A run made with other settings is never replaced
without --overwrite."""
EPILOG = """\
examples:
  python tools/train_det.py --fusion emma                          # synthetic default, CPU: small_cpu
  python tools/train_det.py --data /data/M3FD_Detection --fusion emma --weights emma.pth --device 0,1,2,3
  python tools/train_det.py --data M3FD --fusion folder:CDDFuse=/results/cddfuse --device 0
  python tools/train_det.py --data ../shared/data/msrs_det --fusion laplacian --split-lists benchmarks/msrs_det_split"""


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = cli.parser(prog, DESCRIPTION, EPILOG, raw=True)
    cli.add_run_inputs(ap, "M3FD (Ir/, Vis/, Annotation/), TarDAL (ir/, vi/, labels/, meta/) or MSRS detection "
                           "(ir/, vi/, labels/{infrared,visible}/, classes.txt) root; default: the "
                           "synthetic default's m3fd set (generated when absent)", "M3FD_ROOT",
                       "detection config (configs/det/*.py, by path or name); default: yolov5s_m3fd, the paper's "
                       "recipe, on a GPU, and small_cpu (a quick run) on the CPU")
    cli.add_layout(ap)
    ap.add_argument("--model", default=None, help="model YAML (ultralytics' packaged cfgs such as yolov5s.yaml, "
                                                  "yolov8n.yaml, or a local file) or a local .pt")
    ap.add_argument("--det-weights", default=None, metavar="PT",
                    help="local YOLO weights to start from (never downloaded)")
    cli.add_epochs(ap, "override the config's epoch count")
    cli.add_batch_size(ap, "total training batch size (split across GPUs under DDP)")
    ap.add_argument("--imgsz", type=int, default=None)
    cli.add_workers(ap, "data-loader workers", least=None)
    cli.add_device(ap, "several ids: ultralytics' multi-GPU DDP")
    cli.add_seed(ap, "split and training seed (default: 0)")
    cli.add_run_outputs(ap, "run directory (default: work_dirs/det/<config>/<method>_seed<S>)")
    ap.add_argument("--split-dir", default=None, metavar="DIR",
                    help="split files to use/share (default: OUT/splits/seed<S>)")
    cli.add_skip_bad(ap)
    cli.add_no_progress(ap)
    cli.add_verbose(ap)
    return ap


def run(args: argparse.Namespace) -> int:
    cli.begin(args)
    from fusion_perception.detection.report import table3_header
    from fusion_perception.detection.task import run_detection

    res = run_detection(
        args.data, args.fusion, args.out, layout=cli.layout_spec(args), config=args.config, seed=args.seed,
        weights=args.weights, det_weights=args.det_weights, model=args.model, epochs=args.epochs, batch=args.batch_size,
        imgsz=args.imgsz, workers=args.workers, device=args.device, fused_dir=args.fused_dir,
        split_dir=args.split_dir, skip_bad=args.skip_bad, force=args.force, overwrite=args.overwrite,
        progress=not args.no_progress, verbose=args.verbose,
    )
    print(table3_header(res["classes"]))
    print(res["markdown_row"])
    print(f"{res['label']}: mAP@0.5 {100 * res['mAP50']:.1f}, mAP@0.5:0.95 {100 * res['mAP50_95']:.1f} on "
          f"{res['num_images']} test images; results: {res['run_dir']}/results.md; "
          f"predictions: {res['files']['visualisation']}")
    data = () if args.data is None else ("--data", "MSRS_ROOT")
    print(f"next: {command_line('train_seg', '--fusion', args.fusion, *data, imports=args.imports)}   "
          f"(segmentation), or python tools/train_det.py --fusion laplacian (another method)")
    return 0
