"""``fusion-perception train-seg`` (``tools/train_seg.py``): train DeepLabV3+ on fused MSRS and score
IoU per class and mIoU (the paper's Table 4 protocol)."""

from __future__ import annotations

import argparse

from fusion_perception import cli
from fusion_perception.devices import torch_device

DESCRIPTION = (
    "Fuse an MSRS-layout dataset with one fusion method (cached by manifest), train a "
    "segmentation-models-pytorch DeepLabV3+ on the fused training split through mmengine's "
    "Runner (cross-entropy, SGD with cosine decay, frozen-encoder phase, albumentations "
    "augmentation, checkpoints), then score the test split: IoU per class (the 9 MSRS classes, "
    "unlabelled included) and mIoU from one confusion matrix over every test pixel. Writes "
    "OUT/results.json (last), OUT/results.md (a Table 4 row) and OUT/predictions/*.png. A finished "
    "run with the same settings is not redone. Nothing is ever downloaded."
)
EPILOG = """\
examples:
  python tools/train_seg.py                                    # EMMA, synthetic default, small CPU config
  python tools/train_seg.py --data /data/MSRS --fusion emma --weights emma.pth --device cuda --amp
  torchrun --nproc_per_node 4 tools/train_seg.py --data /data/MSRS --fusion vi --launcher pytorch
  python tools/train_seg.py --data MSRS --fusion folder:CDDFuse=/results/cddfuse
  python tools/train_seg.py --fusion ir --out work_dirs/seg/run1   # again after a kill: continues"""


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = cli.parser(prog, DESCRIPTION, EPILOG, raw=True)
    cli.add_run_inputs(ap, "MSRS root ({train,test}/{ir,vi,Segmentation_labels}); default: the synthetic default's "
                           "msrs set (generated when absent)", "MSRS_ROOT",
                       "segmentation config (configs/seg/*.py, by path or name); default: deeplabv3plus_r50_msrs "
                       "(the paper's recipe) on GPU, small_cpu on CPU")
    cli.add_device(ap, "several processes under torchrun take one id each")
    cli.add_seed(ap, "training seed (default: 0)")
    cli.add_run_outputs(ap, "run directory (default: work_dirs/seg/<config>/<method>_seed<S>)")
    cli.add_resume(ap)
    cli.add_launcher(ap, ("none", "pytorch"))
    cli.add_amp(ap)
    ap.add_argument("--encoder-weights", default=None, metavar="PATH",
                    help="local file with pretrained encoder weights (e.g. torchvision resnet50); default: none")
    cli.add_epochs(ap, "override the number of epochs (cosine schedule and frozen phase scale with it)")
    cli.add_batch_size(ap, "total training batch size")
    cli.add_workers(ap, "data-loader processes")
    cli.add_cfg_options(ap, "model.encoder_name=resnet34 train_dataloader.batch_size=4")
    cli.add_skip_bad(ap)
    cli.add_no_progress(ap)
    cli.add_threads(ap, "CPU threads for torch (default: torch's; 1 is fastest on a busy shared CPU)")
    cli.add_verbose(ap)
    return ap


def run(args: argparse.Namespace) -> int:
    cli.begin(args)
    device = torch_device(args.device)  # checked before the libraries load
    from fusion_perception.console import percent
    from fusion_perception.segmentation.report import table4_header
    from fusion_perception.segmentation.task import run_segmentation

    res = run_segmentation(
        args.data, args.fusion, args.out, config=args.config, seed=args.seed, weights=args.weights,
        device=device, resume=args.resume, launcher=args.launcher, amp=args.amp,
        encoder_weights=args.encoder_weights, fused_dir=args.fused_dir, cfg_options=args.cfg_options,
        epochs=args.epochs, batch=args.batch_size, workers=args.workers, skip_bad=args.skip_bad,
        force=args.force, overwrite=args.overwrite, progress=not args.no_progress, verbose=args.verbose,
    )
    if "markdown_row" in res:  # rank 0
        print(table4_header(res["classes"]))
        print(res["markdown_row"])
        print(f"{res['label']}: mIoU {percent(res['mIoU'])} on {res['num_test_images']} test "
              f"images; results: {res['run_dir']}/results.md; predictions: {res['predictions_dir']}")
        print("next: python tools/compare_methods.py --methods ir,vi,laplacian,emma   (method against method, "
              "both tasks), or python tools/demo.py")
    return 0
