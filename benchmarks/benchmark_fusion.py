#!/usr/bin/env python
"""EMMA inference speed: this implementation against the public code's execution style.

Both run in this process on the same inputs and the same weights, interleaved pair by
pair so that load from other processes hits both alike:

* baseline -- the public test script's way: one pair at a time, fp32, the network's
  op-for-op reference path (``UFuser(fast=False)``), four overlapping corner crops of
  ``floor(side/32)*32`` when a side is not divisible by 32, per-image min-max;
* ours -- the ``emma`` fuser's way: one forward pass per image (reflect-pad to a multiple
  of 8, crop back), the optimised attention path, optional channels_last / AMP /
  torch.compile / batching of same-size pairs, per-image min-max.

Timed: network + padding/cropping + normalisation on preloaded tensors (no file I/O).
Printed per workload: pairs/s of each, the ratio, and the largest difference between the
two outputs away from the image border and from the baseline's crop seams (the region
``[m, H1-m) x [m, W1-m)`` with ``H1, W1`` the sides rounded down to 32 and ``m`` the margin):
``raw`` compares the network outputs (sigmoid, before min-max) -- the numerical check;
``minmax`` compares the saved images. The U-Fuser's channel attention pools over the
whole image, so the crops change the output slightly everywhere, and per-image min-max
takes its extremes anywhere, borders included: with random-init weights the output spans
only a few hundredths, so min-max magnifies any border difference some 40x. Use
``--weights`` with a trained checkpoint for a meaningful ``minmax`` figure.

Examples::

    python benchmarks/benchmark_fusion.py                 # 640x480, 1024x768, 50 RoadScene pairs
    python benchmarks/benchmark_fusion.py --quick         # fewer pairs, a minute or two
    python benchmarks/benchmark_fusion.py --device cuda --amp bf16 --channels-last --batch-size 8
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from fusion_perception.fusion.emma import AMP_MODES, fuse_one_pass, minmax_per_image, public_four_crop_fuse
from fusion_perception.models import UFuser, load_official_checkpoint

DEFAULT_ROADSCENE = Path(__file__).resolve().parents[2] / "shared" / "data" / "roadscene"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _load_roadscene(root: Path, limit: int) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    from fusion_perception.data.image_io import read_gray01

    pairs = []
    for vi_path in sorted((root / "vi").iterdir())[:limit]:
        ir_path = root / "ir" / vi_path.name
        ir = torch.as_tensor(read_gray01(ir_path), dtype=torch.float32)[None, None]
        vi = torch.as_tensor(read_gray01(vi_path), dtype=torch.float32)[None, None]
        pairs.append((vi_path.stem, ir, vi))
    return pairs


def _interior(h: int, w: int, margin: int) -> tuple[slice, slice]:
    h1, w1 = h - h % 32, w - w % 32
    return slice(margin, h1 - margin), slice(margin, w1 - margin)


def run_workload(name: str, pairs: list[tuple[torch.Tensor, torch.Tensor]], baseline: UFuser, ours: torch.nn.Module,
                 args: argparse.Namespace, device: torch.device) -> dict:
    """Time both styles on ``pairs`` (list of (ir, vi) ``(1,1,H,W)`` on CPU); return figures."""
    amp = AMP_MODES[args.amp]
    t_base, t_ours = 0.0, 0.0
    d_raw, d_norm = 0.0, 0.0
    # Ours batches consecutive same-size pairs (synthetic sizes); RoadScene sizes all differ.
    groups: list[list[int]] = []
    for i, (ir, _) in enumerate(pairs):
        if groups and len(groups[-1]) < args.batch_size and pairs[groups[-1][0]][0].shape == ir.shape:
            groups[-1].append(i)
        else:
            groups.append([i])
    with torch.inference_mode():
        # Warm-up (allocator, oneDNN kernels, compile) on the first size, untimed.
        ir0, vi0 = pairs[0][0].to(device), pairs[0][1].to(device)
        public_four_crop_fuse(baseline, ir0, vi0, normalize="none")
        g0 = groups[0]
        ours_in = (torch.cat([pairs[i][0] for i in g0]).to(device), torch.cat([pairs[i][1] for i in g0]).to(device))
        for _ in range(2 if args.compile else 1):
            fuse_one_pass(ours, *ours_in, normalize="none", amp=amp, channels_last=args.channels_last)
        _sync(device)
        for gi, g in enumerate(tqdm(groups, desc=name, unit="batch", leave=False, file=sys.stderr)):
            ir_b = torch.cat([pairs[i][0] for i in g])
            vi_b = torch.cat([pairs[i][1] for i in g])
            outs_base = []

            def base_run() -> float:
                _sync(device)
                t = time.perf_counter()
                for i in g:
                    raw = public_four_crop_fuse(baseline, pairs[i][0].to(device), pairs[i][1].to(device), normalize="none")
                    outs_base.append((raw, minmax_per_image(raw)))
                _sync(device)
                return time.perf_counter() - t

            def ours_run() -> tuple[float, torch.Tensor, torch.Tensor]:
                _sync(device)
                t = time.perf_counter()
                raw = fuse_one_pass(ours, ir_b.to(device), vi_b.to(device), normalize="none", amp=amp,
                                    channels_last=args.channels_last)
                norm = minmax_per_image(raw)
                _sync(device)
                return time.perf_counter() - t, raw, norm

            if gi % 2 == 0:  # alternate the order: neither side always runs on a "cooler" machine
                t_base += base_run()
                dt, raw_o, norm_o = ours_run()
            else:
                dt, raw_o, norm_o = ours_run()
                t_base += base_run()
            t_ours += dt
            for j, (raw_b, norm_b) in enumerate(outs_base):
                h, w = raw_b.shape[-2:]
                ys, xs = _interior(h, w, args.margin)
                d_raw = max(d_raw, (raw_b[..., ys, xs] - raw_o[j:j + 1, :, ys, xs]).abs().max().item())
                d_norm = max(d_norm, (norm_b[..., ys, xs] - norm_o[j:j + 1, :, ys, xs]).abs().max().item())
    n = len(pairs)
    r = {"name": name, "pairs": n, "base_pps": n / t_base, "ours_pps": n / t_ours,
         "ratio": t_base / t_ours, "diff_raw": d_raw, "diff_minmax": d_norm}
    print(f"{name:<24} {n:>5} {r['base_pps']:>12.3f} {r['ours_pps']:>12.3f} {r['ratio']:>7.2f}x "
          f"{d_raw:>10.2e} {d_norm:>10.2e}", flush=True)
    return r


def _parse_sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        w, h = item.lower().split("x")
        out.append((int(w), int(h)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--weights", help="EMMA.pth or a checkpoint trained here (default: random init, --seed)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random-init weights (default 0)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    ap.add_argument("--amp", default=None, choices=("bf16", "fp16"), help="autocast for ours (CUDA only)")
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                    help="channels_last memory format for ours (default: on; faster with oneDNN and cuDNN)")
    ap.add_argument("--compile", action="store_true", help="torch.compile ours")
    ap.add_argument("--batch-size", type=int, default=1, help="same-size pairs per forward pass for ours (default 1)")
    ap.add_argument("--sizes", default="640x480,1024x768", help="synthetic WxH workloads (default 640x480,1024x768)")
    ap.add_argument("--pairs-per-size", type=int, default=2, help="random pairs per synthetic size (default 2)")
    ap.add_argument("--roadscene", type=Path, default=DEFAULT_ROADSCENE, help="RoadScene pairs folder (ir/, vi/)")
    ap.add_argument("--roadscene-pairs", type=int, default=50, help="how many RoadScene pairs (default 50; 0 skips)")
    ap.add_argument("--margin", type=int, default=16, help="pixels ignored at the border and the crop seams (16)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    ap.add_argument("--quick", action="store_true", help="2 pairs per size, 10 RoadScene pairs")
    args = ap.parse_args(argv)
    if args.quick:
        args.pairs_per_size = min(args.pairs_per_size, 2)
        args.roadscene_pairs = min(args.roadscene_pairs, 10)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    if args.weights:
        ours = load_official_checkpoint(args.weights, kind="ufuser")
    else:
        torch.manual_seed(args.seed)
        ours = UFuser()
    baseline = UFuser(ours.channels, heads=ours.heads, fast=False)
    baseline.load_state_dict(ours.state_dict())
    baseline.to(device).eval()
    ours.to(device).eval()
    if args.channels_last:
        ours.to(memory_format=torch.channels_last)
    net = torch.compile(ours) if args.compile else ours

    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"weights {args.weights or f'random init (seed {args.seed})'}, widths {ours.channels}")
    print(f"ours: one pass, fast attention, channels_last={args.channels_last}, amp={args.amp}, "
          f"compile={args.compile}, batch={args.batch_size};  baseline: public style (4 crops, fp32, batch 1)")
    print(f"{'workload':<24} {'pairs':>5} {'base pair/s':>12} {'ours pair/s':>12} {'ratio':>8} "
          f"{'diff raw':>10} {'diff minmax':>10}   (diffs: max |a-b| inside a {args.margin}px margin)")
    results = []
    gen = torch.Generator().manual_seed(args.seed + 1)
    for w, h in _parse_sizes(args.sizes):
        pairs = [(torch.rand(1, 1, h, w, generator=gen), torch.rand(1, 1, h, w, generator=gen))
                 for _ in range(args.pairs_per_size)]
        results.append(run_workload(f"random {w}x{h}", pairs, baseline, net, args, device))
    if args.roadscene_pairs > 0:
        if (args.roadscene / "vi").is_dir():
            rs = _load_roadscene(args.roadscene, args.roadscene_pairs)
            results.append(run_workload(f"RoadScene ({len(rs)} pairs)", [(a, b) for _, a, b in rs],
                                        baseline, net, args, device))
        else:
            print(f"RoadScene not found at {args.roadscene}; skipped", file=sys.stderr)
    if results:
        print(f"geometric-mean ratio {statistics.geometric_mean([r['ratio'] for r in results]):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
