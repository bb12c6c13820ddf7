"""Time the nine fusion-quality metrics: the batched torch version against a scipy/numpy baseline.

Both run in this process on the same prepared images (the RoadScene pairs of
``shared/data/roadscene`` by default, fused with ``mean`` as the reference fixture does), one
after the other; the script prints seconds per pair for each, the speed-up, and the largest
relative deviation between the two per metric. Wall-clock and CPU (process) time are both
reported: on a machine shared with other jobs the CPU-time ratio is the steadier figure.

    .venv/bin/python benchmarks/benchmark_metrics.py [--data DIR] [--fusion mean|max] [--pairs N]

torch runs single-threaded by default (``--threads``), as numpy/scipy do here, so the ratio
compares the implementations, not the thread counts.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from fusion_perception.metrics.fusion_eval import read_gray255
from fusion_perception.metrics.fusion_quality import METRIC_NAMES, compute_fusion_metrics

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_metrics import reference_metrics  # noqa: E402  (a script next to this one)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "roadscene"


def load_pairs(root: Path, fusion: str, limit: int | None) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, IR, VI, fused) float32 arrays on 0..255, prepared as the reference fixture's inputs."""
    ir_dir, vi_dir = root / "ir", root / "vi"
    names = sorted(p.name for p in ir_dir.iterdir() if (vi_dir / p.name).is_file())[:limit]
    out = []
    for n in names:
        a, b = read_gray255(ir_dir / n), read_gray255(vi_dir / n)
        f = np.round((a + b) / 2) if fusion == "mean" else np.maximum(a, b)  # np.round: half to even
        out.append((n, a, b, f.astype(np.float32)))
    return out


def time_it(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with ir/ and vi/ (default: RoadScene)")
    ap.add_argument("--fusion", choices=("mean", "max"), default="mean", help="the fused image scored")
    ap.add_argument("--pairs", type=int, default=None, help="use only the first N pairs")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--device", default="cpu", help="device of the torch version (default cpu)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", module="sklearn")  # "continuous values for label" on float images
    pairs = load_pairs(args.data, args.fusion, args.pairs)
    if not pairs:
        raise SystemExit(f"no pairs under {args.data}")
    dev = torch.device(args.device)
    tensors = [(torch.from_numpy(a)[None].to(dev), torch.from_numpy(b)[None].to(dev), torch.from_numpy(f)[None].to(dev))
               for _, a, b, f in pairs]

    def run_torch() -> list[dict[str, float]]:
        out = []
        for a, b, f in tensors:
            vals = compute_fusion_metrics(a, b, f)
            out.append({k: float(v[0]) for k, v in vals.items()})
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return out

    def run_reference() -> list[dict[str, float]]:
        return [reference_metrics(a, b, f) for _, a, b, f in pairs]

    # One warm-up pair each (imports, oneDNN primitive caches), not timed.
    compute_fusion_metrics(*tensors[0])
    reference_metrics(*pairs[0][1:])

    res: dict[str, list[dict[str, float]]] = {}

    def keep(key, fn):
        def run():
            res[key] = fn()
        return run

    ref_wall, ref_cpu = time_it(keep("ref", run_reference))
    ours_wall, ours_cpu = time_it(keep("torch", run_torch))

    n = len(pairs)
    print(f"{n} pairs from {args.data} ({args.fusion} fusion), all nine metrics, torch threads={args.threads}, "
          f"device={args.device}")
    print(f"{'':24s}{'wall s/pair':>12s}{'CPU s/pair':>12s}")
    print(f"{'scipy/numpy reference':24s}{ref_wall / n:12.4f}{ref_cpu / n:12.4f}")
    print(f"{'torch (this project)':24s}{ours_wall / n:12.4f}{ours_cpu / n:12.4f}")
    print(f"{'speed-up':24s}{ref_wall / ours_wall:11.1f}x{ref_cpu / max(ours_cpu, 1e-9):11.1f}x")
    print("max relative deviation torch vs reference:")
    for m in METRIC_NAMES:
        dev_max = max(abs(t[m] - r[m]) / max(abs(r[m]), 1e-12) for t, r in zip(res["torch"], res["ref"]))
        print(f"  {m:5s} {dev_max:.2e}")


if __name__ == "__main__":
    main()
