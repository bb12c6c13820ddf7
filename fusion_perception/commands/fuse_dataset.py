"""``fusion-perception fuse`` (``tools/fuse_dataset.py``): fuse a paired IR/visible dataset with one
fusion method, the preprocessing stage."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from fusion_perception import cli
from fusion_perception.console import command_line
from fusion_perception.devices import torch_device

DESCRIPTION = (
    "Fuse every IR/visible pair of a dataset with one method and write a drop-in "
    "fused dataset: the source's layout with a fused/ image folder in place of the two "
    "modality folders (M3FD: fused/ + Annotation/; TarDAL: fused/, labels/, meta/; "
    "MSRS: {train,test}/fused + Segmentation_labels/; pairs: fused/), labels copied, "
    "and OUT/manifest.json (method, parameters, checkpoint sha256, source, counts, "
    "library versions). Re-running the same command resumes: finished images are kept."
)
EPILOG = (
    "Methods: ir, vi, mean, max, laplacian, dwt, gff, emma (the toolkit's checkpoint on the synthetic data; "
    "--weights PATH or official elsewhere), didfuse, tardal, seafusion (the authors' networks: --weights "
    "their weights, never shipped; didfuse: the folder holding its encoder and decoder .pkl), or "
    "folder:NAME=PATH for another method's precomputed results (files matched by stem). "
    "Parameters (--param): laplacian levels=4; dwt wavelet=db2 levels=3; gff r1=45 eps1=0.3 "
    "r2=7 eps2=1e-6 avg_size=31 gauss_radius=5 gauss_sigma=5 (Li et al. 2013); emma normalize, amp, "
    "channels_last, compile; didfuse rule=l1_norm|sum. "
    "Examples: fuse_dataset.py  (EMMA with the toolkit's checkpoint on the synthetic default, both "
    "datasets, into work_dirs/fused/emma/{m3fd,msrs}, where train_det.py --fusion emma and train_seg.py "
    "find them);  fuse_dataset.py --fusion gff;  fuse_dataset.py --data M3FD_Detection --fusion emma "
    "--weights official --device cuda.  Several processes or GPUs: torchrun --nproc_per_node 4 "
    "tools/fuse_dataset.py ... --device cuda (each rank fuses its share of the pairs on its own GPU, "
    "one manifest; several nodes need --data and --out on a filesystem all of them see).  "
    "Exit status 2 with a one-line message on bad input."
)


def _param(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)  # numbers, true/false, lists
    except ValueError:
        return key, value  # plain strings such as a wavelet name


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = cli.parser(prog, DESCRIPTION, EPILOG)
    cli.add_data(ap, "the dataset's root folder (default: the synthetic default, whose m3fd and msrs "
                     "parts are fused into OUT/m3fd and OUT/msrs; generated on first use)")
    cli.add_fusion(ap)
    cli.add_out(ap, "output folder of the fused dataset (default: the cache the other tools read, "
                    "work_dirs/fused/<method>/<dataset folder name>)")
    cli.add_layout(ap)
    cli.add_device(ap, "several processes under torchrun take one id each")
    cli.add_batch_size(ap, "pairs fused at once (same-size images are batched; default 4)", 4, cli.count(1))
    cli.add_fusion_weights(ap)
    ap.add_argument("--param", type=_param, action="append", default=[], metavar="KEY=VALUE",
                    help="method parameter, repeatable (e.g. --param levels=5, --param wavelet=haar)")
    ap.add_argument("--gray", action="store_true",
                    help="write gray fused images even where the visible image is colour")
    cli.add_skip_bad(ap)
    cli.add_overwrite(ap, "an existing output")
    cli.add_workers(ap, "threads decoding inputs and, separately, encoding outputs (default 2)", 1, 2)
    cli.add_no_progress(ap)
    return ap


def run(args: argparse.Namespace) -> int:
    from fusion_perception.fusion.cache import default_fused_dir, fused_cache_root
    from fusion_perception.fusion.method import resolve_method
    from fusion_perception.fusion.ranks import launched_by_torchrun
    from fusion_perception.fusion.stage import dataset_parts, fuse_dataset, fuse_default, is_single_dataset

    kwargs = dict(layout=cli.layout_spec(args), device=torch_device(args.device), batch_size=args.batch_size,
                  gray_output=args.gray, skip_bad=args.skip_bad, on_mismatch="replace" if args.overwrite else "error",
                  progress=not args.no_progress, workers=args.workers, distributed=launched_by_torchrun())
    cli.begin(args, log_lines=False)
    method = resolve_method(args.fusion, args.weights, args.data, dict(args.param))  # the one resolution
    if args.data is None or (args.layout == "auto" and dataset_parts(args.data)
                             and not is_single_dataset(args.data)):
        results = fuse_default(method, args.out or fused_cache_root(method.cache_label), source=args.data, **kwargs)
    else:
        out = args.out or default_fused_dir(args.data, method.cache_label)
        results = {"": fuse_dataset(args.data, method, out, **kwargs)}
    if kwargs["distributed"] and os.environ.get("RANK") != "0":
        return 0  # the leader reports for all ranks
    _report(args, results)
    return 0


def _report(args: argparse.Namespace, results: dict) -> None:
    """What was fused, and the next command for each part."""
    from fusion_perception.data.layouts import find_layout

    for fused in results.values():
        c = fused.manifest["counts"]
        print(f"{fused.label}: {c['total']} fused images in {fused.root} ({c['fused']} new, {c['skipped']} kept"
              + (f"; {c['stale']} re-fused because their source changed" if c.get("stale") else "")
              + (f", {c['bad']} bad pairs left out" if c["bad"] else "") + ")")
    print("another method: --fusion NAME (ir, vi, mean, max, laplacian, dwt, gff, emma, didfuse, tardal, seafusion, "
          "folder:NAME=PATH)")
    nxt = []
    for part, fused in results.items():
        data = () if args.data is None else ("--data", Path(args.data) / part if part else args.data)
        tasks = getattr(find_layout(fused.source_layout), "tasks", ())  # the tasks its labels serve
        tool = next((f"train_{t}" for t in tasks if t in ("det", "seg")), None)  # tools/train_det.py, ...
        if tool:
            fused_dir = () if args.out is None else ("--fused-dir", fused.root)
            weights = () if args.weights is None else ("--weights", args.weights)
            read_as = [w for flag, value in (("--label-view", args.label_view), ("--split-lists", args.split_lists))
                       if value for w in (flag, value)]
            nxt.append(command_line(tool, "--fusion", args.fusion, *weights, *data, *read_as, *fused_dir,
                                    imports=args.imports))
        else:
            nxt.append(command_line("eval_fusion", "--fused", fused.root, "--out", fused.root / "eval"))
    print("next: " + "   then: ".join(nxt) + "   (they reuse these fused images)")

