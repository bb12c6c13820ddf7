#!/usr/bin/env python
"""EMMA inference speed: ``tools/fuse_dataset.py --method emma`` against the public code's
execution, each run as a process, start-up included; and the GPU settings table.

Default (the headline): both fuse the RoadScene pairs (``shared/data/roadscene``, sizes not
divisible by 32, mixed gray/colour) with the same weights, each as a process:

* this project: ``python tools/fuse_dataset.py --data RS --method emma --weights W --out DIR``
  (one pass per image, the optimised attention path, channels_last, decoding and encoding on
  threads beside the network);
* the baseline: ``python tests/reference/reference_emma.py`` (the authors' test script step for step:
  four overlapping corner crops where a side is not divisible by 32, the op-for-op reference
  network, fp32, batch 1, no overlap of I/O and compute).

Both get ``OMP_WAIT_POLICY=PASSIVE`` so that neither is hurt by spinning OpenMP threads on a
busy machine. Printed: wall and CPU seconds of each (median of ``--runs``), pairs/s, the ratio,
and how far the two sets of output files are apart (luminance, 8-bit levels, inside the
largest 32-multiple crop less a margin; the crops and one pass differ slightly by design, and
per-image min-max magnifies any difference on random-init weights -- use ``--weights`` with a
trained checkpoint for a meaningful figure). Without ``--weights`` a random-init U-Fuser is
written to a temporary checkpoint (``--seed``): any weights time the same.

``--profile`` adds where our time goes per pair, in process: decode, colour conversion,
padding, network, min-max, recombination, quantisation, encode.

``--network`` is the in-process comparison of the network paths alone on preloaded tensors
(one pass vs the public four crops on the same weights), with the largest difference of the
raw network outputs away from the borders and seams: the numerical check.

``--settings`` (implied by ``--device cuda``) times the fuser's execution settings at
``--size`` (default 1024x768, M3FD's): batch 1 fp32 NCHW (the baseline), then channels_last,
bf16, batching and torch.compile, and prints pairs/s and the ratio to the baseline.

    python benchmarks/benchmark_fusion.py                       # RoadScene, process vs process
    python benchmarks/benchmark_fusion.py --profile
    python benchmarks/benchmark_fusion.py --device cuda         # settings table + processes on the GPU
    python benchmarks/benchmark_fusion.py --network --quick     # numerical check, in process
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# As the tools do: idle OpenMP threads sleep rather than spin (set before torch loads).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from processes import REPO, repo_env, run_process  # noqa: E402  (a module next to this script)
sys.path.insert(0, str(REPO))  # this repository's package, in this process too

DEFAULT_ROADSCENE = REPO.parent / "shared" / "data" / "roadscene"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _random_weights(path: Path, seed: int) -> Path:
    from fusion_perception.emma.ufuser import UFuser
    from fusion_perception.emma.checkpoint import save_official_state_dict

    torch.manual_seed(seed)
    return save_official_state_dict(UFuser(), path)


def _output_difference(ours: Path, ref: Path, margin: int) -> tuple[float, float]:
    """(max, mean) |Y_ours - Y_ref| in 8-bit levels inside the largest 32-multiple crop less ``margin``."""
    import cv2

    worst, means = 0.0, []
    for p in sorted(ref.iterdir()):
        a = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2YCrCb)[..., 0].astype(np.float32)
        b = cv2.cvtColor(cv2.imread(str(ours / p.name)), cv2.COLOR_BGR2YCrCb)[..., 0].astype(np.float32)
        h1, w1 = a.shape[0] - a.shape[0] % 32, a.shape[1] - a.shape[1] % 32
        d = np.abs(a - b)[margin:h1 - margin, margin:w1 - margin]
        if d.size:  # images smaller than two margins have no such region
            worst, means = max(worst, float(d.max())), means + [float(d.mean())]
    return worst, float(np.mean(means)) if means else float("nan")


def processes(args: argparse.Namespace, weights: Path, work: Path) -> None:
    rs = args.roadscene
    n = len([p for p in (rs / "ir").iterdir() if (rs / "vi" / p.name).is_file()])
    env = repo_env(OMP_WAIT_POLICY="PASSIVE")
    py = sys.executable
    ref_cmd = [py, str(REPO / "tests" / "reference" / "reference_emma.py"), "--data", str(rs), "--weights", str(weights),
               "--out", str(work / "reference"), "--device", args.device]

    def ours_cmd(i: int) -> list[str]:  # a fresh output folder each run: nothing to resume
        return [py, str(REPO / "tools" / "fuse_dataset.py"), "--data", str(rs), "--method", "emma",
                "--weights", str(weights), "--out", str(work / f"ours{i}"), "--device", args.device, "--quiet"]

    print(f"{n} RoadScene pairs from {rs}; {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.2f} at start; device {args.device}")
    run_process([py, "-c", "import torch, cv2"], env)  # warm the file cache, untimed
    ours_t = [run_process(ours_cmd(0), env)]
    ref_t = [run_process(ref_cmd, env)]
    ours_t += [run_process(ours_cmd(i), env) for i in range(1, args.runs)]
    ow, oc = statistics.median(w for w, _ in ours_t), statistics.median(c for _, c in ours_t)
    rw, rc = ref_t[0]
    print(f"{'command (a process each, start-up included)':<46s} {'wall s':>8s} {'CPU s':>8s} {'pairs/s':>8s}")
    print(f"{'tools/fuse_dataset.py --method emma':<46s} {ow:8.2f} {oc:8.2f} {n / ow:8.2f}   runs: "
          + ", ".join(f"{w:.2f}" for w, _ in ours_t))
    print(f"{'tests/reference/reference_emma.py (public style)':<46s} {rw:8.2f} {rc:8.2f} {n / rw:8.2f}")
    print(f"speed-up: {rw / ow:.2f}x wall clock, {rc / oc:.2f}x CPU time")
    worst, mean = _output_difference(work / "ours0" / "fused", work / "reference", args.margin)
    print(f"output files, |Y ours - Y public| inside a {args.margin}px margin of the 32-multiple crop: "
          f"max {worst:.0f}, mean {mean:.3f} levels (8-bit)")


def profile(args: argparse.Namespace, weights: Path, work: Path) -> None:
    """Our path's steps per pair, in process, the way the stage runs them (batch 1 on RoadScene)."""
    from fusion_perception.data.image_io import read_image, write_image
    from fusion_perception.fusion.base import rgb_to_ycrcb, ycrcb_to_rgb
    from fusion_perception.fusion.base import build_fuser
    from fusion_perception.emma.fuser import pad_to_multiple
    from fusion_perception.filters import minmax_per_image
    from fusion_perception.fusion.pipeline import _colour_input, _gray_input, _to_device01

    device = torch.device(args.device)
    fuser = build_fuser("emma", device, weights=str(weights))
    net = fuser._net
    names = sorted(p.name for p in (args.roadscene / "vi").iterdir())
    steps: dict[str, float] = {}

    def timed(step: str, fn):
        _sync(device)
        t = time.perf_counter()
        out = fn()
        _sync(device)
        steps[step] = steps.get(step, 0.0) + time.perf_counter() - t
        return out

    out_dir = work / "profile"
    with torch.inference_mode():
        for i, name in enumerate(names):
            if i == 1:
                steps.clear()  # the first pair warms oneDNN's kernels
            ir_img = timed("decode", lambda: read_image(args.roadscene / "ir" / name))
            vi_img = timed("decode", lambda: read_image(args.roadscene / "vi" / name))
            ir = timed("to float", lambda: _to_device01([_gray_input(ir_img)], device))
            vi = timed("to float", lambda: _to_device01([_colour_input(vi_img) if vi_img.ndim == 3
                                                         else _gray_input(vi_img)], device))
            ycc = timed("colour conversion", lambda: rgb_to_ycrcb(vi) if vi.shape[1] == 3 else vi)
            h, w = ir.shape[-2:]
            x = timed("padding", lambda: pad_to_multiple(torch.cat((ir, ycc[:, :1]), 1)).contiguous(
                memory_format=torch.channels_last))
            y = timed("network", lambda: net(x[:, :1], x[:, 1:]))
            y = timed("min-max", lambda: minmax_per_image(y[..., :h, :w].float()))
            rgb = timed("recombination", lambda: ycrcb_to_rgb(torch.cat((y, ycc[:, 1:]), 1)) if vi.shape[1] == 3 else y)
            u8 = timed("quantisation", lambda: rgb.clamp(0, 1).mul_(255).round_().to(torch.uint8)
                       .permute(0, 2, 3, 1).cpu().numpy()[0])
            timed("encode", lambda: write_image(out_dir / f"{Path(name).stem}.png", u8[..., 0] if u8.shape[-1] == 1 else u8))
    n = len(names) - 1
    total = sum(steps.values())
    print(f"profile: our steps per pair, in process, batch 1, {len(names)} RoadScene pairs (first one untimed)")
    for step, t in steps.items():
        print(f"  {step:<20s} {t / n * 1e3:9.2f} ms  {100 * t / total:5.1f} %")
    print(f"  {'all':<20s} {total / n * 1e3:9.2f} ms")


def settings(args: argparse.Namespace, weights: Path) -> None:
    """pairs/s of the fuser's execution settings at --size, in process, on --device."""
    from fusion_perception.emma.fuser import fuse_one_pass
    from fusion_perception.emma.checkpoint import load_official_checkpoint

    device = torch.device(args.device)
    w, h = (int(v) for v in args.size.lower().split("x"))
    bs = args.batch_size
    table = [("batch 1, fp32, NCHW (baseline)", 1, None, False, False),
             ("batch 1, fp32, channels_last", 1, None, True, False),
             (f"batch {bs}, fp32, channels_last", bs, None, True, False)]
    if device.type == "cuda":
        table += [(f"batch {bs}, bf16, channels_last", bs, torch.bfloat16, True, False),
                  (f"batch {bs}, bf16, channels_last, compile", bs, torch.bfloat16, True, True)]
    elif args.compile:
        table += [(f"batch {bs}, fp32, channels_last, compile", bs, None, True, True)]
    print(f"EMMA U-Fuser at {w}x{h} on {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"{args.pairs} pairs per setting after warm-up; network + padding + min-max on device tensors")
    print(f"{'setting':<44s} {'pairs/s':>9s} {'x baseline':>10s}")
    base = None
    gen = torch.Generator().manual_seed(args.seed + 1)
    for label, b, amp, cl, comp in table:
        model = load_official_checkpoint(weights, kind="ufuser").to(device).eval()
        if cl:
            model.to(memory_format=torch.channels_last)
        net = torch.compile(model) if comp else model
        ir = torch.rand(b, 1, h, w, generator=gen).to(device)
        vi = torch.rand(b, 1, h, w, generator=gen).to(device)
        with torch.inference_mode():
            t0 = time.perf_counter()
            for _ in range(2):  # warm-up: kernels, autotuning, compilation
                fuse_one_pass(net, ir, vi, amp=amp, channels_last=cl)
            _sync(device)
            warm = time.perf_counter() - t0
            reps = max(1, args.pairs // b)
            t0 = time.perf_counter()
            for _ in range(reps):
                fuse_one_pass(net, ir, vi, amp=amp, channels_last=cl)
            _sync(device)
            pps = reps * b / (time.perf_counter() - t0)
        base = base or pps
        print(f"{label:<44s} {pps:9.2f} {pps / base:9.2f}x" + (f"   (warm-up {warm:.1f} s)" if comp else ""), flush=True)
        del model, net, ir, vi
        if device.type == "cuda":
            torch.cuda.empty_cache()


def network(args: argparse.Namespace, weights: Path) -> None:
    """In process: the network paths alone, public four crops vs one pass, on preloaded tensors."""
    from fusion_perception.data.image_io import read_gray01
    from fusion_perception.emma.fuser import fuse_one_pass, public_four_crop_fuse
    from fusion_perception.filters import minmax_per_image
    from fusion_perception.emma.ufuser import UFuser
    from fusion_perception.emma.checkpoint import load_official_checkpoint

    device = torch.device(args.device)
    ours = load_official_checkpoint(weights, kind="ufuser").to(device).eval().to(memory_format=torch.channels_last)
    baseline = UFuser(ours.channels, heads=ours.heads, fast=False)
    baseline.load_state_dict(ours.state_dict())
    baseline.to(device).eval()
    limit = 10 if args.quick else None
    pairs = [(torch.as_tensor(read_gray01(args.roadscene / "ir" / p.name))[None, None],
              torch.as_tensor(read_gray01(p))[None, None]) for p in sorted((args.roadscene / "vi").iterdir())[:limit]]
    t_base = t_ours = 0.0
    d_raw = d_norm = 0.0
    with torch.inference_mode():
        public_four_crop_fuse(baseline, pairs[0][0].to(device), pairs[0][1].to(device))  # warm-up
        fuse_one_pass(ours, pairs[0][0].to(device), pairs[0][1].to(device), channels_last=True)
        for k, (ir, vi) in enumerate(pairs):
            ir, vi = ir.to(device), vi.to(device)
            order = ("base", "ours") if k % 2 == 0 else ("ours", "base")  # neither always runs first
            for who in order:
                _sync(device)
                t = time.perf_counter()
                if who == "base":
                    raw_b = public_four_crop_fuse(baseline, ir, vi, normalize="none")
                else:
                    raw_o = fuse_one_pass(ours, ir, vi, normalize="none", channels_last=True)
                _sync(device)
                if who == "base":
                    t_base += time.perf_counter() - t
                else:
                    t_ours += time.perf_counter() - t
            h, w = ir.shape[-2:]
            m = args.margin
            ys, xs = slice(m, h - h % 32 - m), slice(m, w - w % 32 - m)
            d_raw = max(d_raw, float((raw_b - raw_o)[..., ys, xs].abs().max()))
            d_norm = max(d_norm, float((minmax_per_image(raw_b) - minmax_per_image(raw_o))[..., ys, xs].abs().max()))
    n = len(pairs)
    print(f"in process, network paths on {n} RoadScene pairs: public four crops {n / t_base:.2f} pairs/s, one pass "
          f"{n / t_ours:.2f} pairs/s, {t_base / t_ours:.2f}x; max |difference| inside a {args.margin}px margin: "
          f"raw {d_raw:.2e}, after min-max {d_norm:.2e}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--weights", type=Path, help="EMMA.pth or a checkpoint trained here (default: random init)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random-init weights (default 0)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    ap.add_argument("--roadscene", type=Path, default=DEFAULT_ROADSCENE, help="RoadScene pair folder (ir/, vi/)")
    ap.add_argument("--runs", type=int, default=2, help="runs of fuse_dataset.py (median reported; default 2)")
    ap.add_argument("--margin", type=int, default=16, help="pixels left out at borders and crop seams (16)")
    ap.add_argument("--profile", action="store_true", help="also print our per-pair steps, in process")
    ap.add_argument("--network", action="store_true", help="only the in-process network comparison")
    ap.add_argument("--settings", action="store_true", help="the execution-settings table (implied by cuda)")
    ap.add_argument("--size", default="1024x768", help="WxH of the settings table (default 1024x768)")
    ap.add_argument("--batch-size", type=int, default=8, help="batch of the batched settings (default 8)")
    ap.add_argument("--pairs", type=int, default=64, help="pairs timed per setting (default 64)")
    ap.add_argument("--compile", action="store_true", help="include torch.compile in the CPU settings table")
    ap.add_argument("--quick", action="store_true", help="--network on 10 pairs")
    args = ap.parse_args(argv)
    try:
        device = torch.device(args.device)
    except RuntimeError:
        print(f"benchmark_fusion: error: {args.device!r} is not a torch device", file=sys.stderr)
        return 2
    if device.type == "cuda" and not torch.cuda.is_available():
        print("benchmark_fusion: error: --device cuda asked for, but torch sees no CUDA GPU here", file=sys.stderr)
        return 2
    roadscene = (args.roadscene / "vi").is_dir()
    if not roadscene and (args.network or not (args.settings or device.type == "cuda")):
        print(f"benchmark_fusion: error: no RoadScene pairs at {args.roadscene} (--roadscene)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench_fusion_") as tmp:
        work = Path(tmp)
        weights = args.weights or _random_weights(work / "emma_random.pth", args.seed)
        if args.network:
            network(args, weights)
            return 0
        if args.settings or device.type == "cuda":
            settings(args, weights)
            if args.settings:
                return 0
            if not roadscene:
                print(f"no RoadScene pairs at {args.roadscene}: the process comparison is skipped")
                return 0
        processes(args, weights, work)
        if args.profile:
            profile(args, weights, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
