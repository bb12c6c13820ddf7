#!/usr/bin/env python
"""EMMA fusion of a pair folder the public test script's way, run as a process.

The baseline of ``benchmarks/benchmark_fusion.py``: the execution of the authors' ``test.py``
(MMIF-EMMA), step for step. For each file of ``ir/`` (directory order sorted): read IR as gray
and the visible image's Y (``cv2.imread`` -> float32 -> ``BGR2GRAY`` / ``BGR2YCrCb``, / 255) and
its 8-bit Cr/Cb; fuse with the U-Fuser in its op-for-op reference form (``fast=False``), fp32,
batch 1, sizes not divisible by 32 as four overlapping corner crops; min-max per image; truncate
to 8 bits; recombine with Cr/Cb (``YCrCb2BGR``); write PNG. No batching, no overlap of I/O with
compute, torch's default threads.

    python tests/reference/reference_emma.py --data ../shared/data/roadscene --weights EMMA.pth --out OUT
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this repository's package
from fusion_perception.emma.fuser import public_four_crop_fuse  # noqa: E402
from fusion_perception.emma.checkpoint import load_official_checkpoint  # noqa: E402
from fusion_perception.emma.ufuser import UFuser  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="pair folder with ir/ and vi/")
    ap.add_argument("--weights", required=True, help="EMMA.pth or a U-Fuser checkpoint trained here")
    ap.add_argument("--out", type=Path, required=True, help="output folder of the fused PNGs")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    trained = load_official_checkpoint(args.weights, kind="ufuser")
    model = UFuser(trained.channels, heads=trained.heads, fast=False)  # the public code's operations
    model.load_state_dict(trained.state_dict())
    model.to(device).eval()
    args.out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        for name in sorted(os.listdir(args.data / "ir")):
            ir_bgr = cv2.imread(str(args.data / "ir" / name)).astype(np.float32)
            vi_bgr = cv2.imread(str(args.data / "vi" / name))
            data_ir = cv2.cvtColor(ir_bgr, cv2.COLOR_BGR2GRAY)[None, None] / 255.0
            data_vi = cv2.split(cv2.cvtColor(vi_bgr.astype(np.float32), cv2.COLOR_BGR2YCrCb))[0][None, None] / 255.0
            _, vi_cr, vi_cb = cv2.split(cv2.cvtColor(vi_bgr, cv2.COLOR_BGR2YCrCb))
            ir_t = torch.FloatTensor(data_ir).to(device)
            vi_t = torch.FloatTensor(data_vi).to(device)
            fused = public_four_crop_fuse(model, ir_t, vi_t)  # four crops where needed, min-max
            fi = np.squeeze((fused * 255).cpu().numpy()).astype(np.uint8)
            bgr = cv2.cvtColor(np.dstack((fi, vi_cr, vi_cb)), cv2.COLOR_YCrCb2BGR)
            cv2.imwrite(str(args.out / f"{Path(name).stem}.png"), bgr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
