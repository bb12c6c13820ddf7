#!/usr/bin/env python
"""The fusion-quality metrics as users meet them: ``tools/eval_fusion.py`` against the reference
evaluator, each run as a process, start-up included.

Both score the same fused folders (the RoadScene pairs of ``shared/data/roadscene``, fused with
``mean`` and ``max`` as the reference fixture defines them, written as 8-bit PNG) against the same
source pairs, all nine metrics:

* this project: ``python tools/eval_fusion.py --fused mean=DIR --fused max=DIR --source SRC``;
* the baseline: ``python tests/reference/reference_eval.py`` (the published evaluation scripts' way:
  scipy/numpy, one image at a time, see ``reference_metrics.py``).

Each command is timed from launch to exit (wall clock, and the CPU time of the process and its
threads); the project's command runs ``--runs`` times (median reported), the baseline
``--baseline-runs`` times, interleaved. The script then checks that both produced the same values
(largest relative deviation per metric) and prints the speed-up. ``--profile`` adds where the
time goes: start-up imports of each side, decoding, and each metric per pair in process.

    python benchmarks/benchmark_metrics.py                  # 50 pairs x 2 methods, ~1.5 min idle
    python benchmarks/benchmark_metrics.py --pairs 25 --profile

On a machine shared with other jobs the wall-clock ratio moves with their load; the CPU-time
ratio is the steadier figure, the wall-clock one what a user waits for.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from processes import REPO, repo_env, run_process  # noqa: E402  (a module next to this script)
sys.path.insert(0, str(REPO))  # this repository's package, in this process too
REFERENCE = REPO / "tests" / "reference"  # the published scripts' way, which the tests check against
sys.path.insert(0, str(REFERENCE))

DEFAULT_DATA = REPO.parent / "shared" / "data" / "roadscene"
METHODS = ("mean", "max")


def prepare(data: Path, pairs: int | None, work: Path) -> tuple[Path, dict[str, Path]]:
    """A source folder of the first ``pairs`` pairs (links) and the mean/max fused folders (PNG)."""
    names = sorted(p.name for p in (data / "ir").iterdir() if (data / "vi" / p.name).is_file())[:pairs]
    src = work / "src"
    fused = {m: work / "fused" / m for m in METHODS}
    for d in (src / "ir", src / "vi", *fused.values()):
        d.mkdir(parents=True)
    for n in names:
        for mod in ("ir", "vi"):
            (src / mod / n).symlink_to((data / mod / n).resolve())
        a, b = (np.round(cv2.cvtColor(cv2.imread(str(data / mod / n)).astype(np.float32), cv2.COLOR_BGR2GRAY))
                for mod in ("ir", "vi"))
        stem = Path(n).stem
        cv2.imwrite(str(fused["mean"] / f"{stem}.png"), np.round((a + b) / 2).astype(np.uint8))  # half to even
        cv2.imwrite(str(fused["max"] / f"{stem}.png"), np.maximum(a, b).astype(np.uint8))
    return src, fused


def compare_values(ours_json: Path, ref_json: Path) -> dict[str, float]:
    ours = json.loads(ours_json.read_text())["methods"]
    ref = json.loads(ref_json.read_text())
    worst: dict[str, float] = {}
    for method, rows in ref.items():
        for image, vals in rows.items():
            for m, v in vals.items():
                got = ours[method]["per_image"][image][m]
                worst[m] = max(worst.get(m, 0.0), abs(got - v) / max(abs(v), 1e-12))
    return worst


def profile(src: Path, fused: dict[str, Path], env: dict[str, str]) -> None:
    """Where the time goes: start-up imports, decoding, each metric (per pair, in process)."""
    import torch

    from reference_metrics import METRIC_NAMES, reference_metrics

    from fusion_perception.metrics.fused_folders import read_gray255
    from fusion_perception.metrics.fusion_quality import compute_fusion_metrics

    py = sys.executable
    for label, code in (("start-up: python + eval_fusion's imports", "import fusion_perception.metrics.fusion_eval"),
                        ("start-up: python + reference imports",
                         "import cv2, scipy.signal, sklearn.metrics, skimage.metrics")):
        walls = [run_process([py, "-c", code], env)[0] for _ in range(3)]
        print(f"  {label:<44s} {min(walls):7.3f} s")
    names = sorted(p.name for p in (src / "ir").iterdir())
    t0 = time.perf_counter()
    data = [(read_gray255(src / "ir" / n), read_gray255(src / "vi" / n),
             [read_gray255(fused[m] / f"{Path(n).stem}.png") for m in METHODS]) for n in names]
    decode = (time.perf_counter() - t0) / len(names)
    print(f"  {'decode (IR, VI, 2 fused), per pair':<44s} {decode * 1e3:7.2f} ms")
    torch.set_num_threads(1)
    ours = dict.fromkeys(METRIC_NAMES, 0.0)
    ref = dict.fromkeys(METRIC_NAMES, 0.0)
    for a, b, fs in data:
        ta, tb, tf = torch.from_numpy(a)[None], torch.from_numpy(b)[None], torch.from_numpy(np.stack(fs))
        for m in METRIC_NAMES:
            t = time.process_time()
            compute_fusion_metrics(ta, tb, tf, (m,))
            ours[m] += time.process_time() - t
            t = time.process_time()
            for f in fs:
                reference_metrics(a, b, f, (m,))
            ref[m] += time.process_time() - t
    n = len(data)
    print(f"  per pair (2 methods), CPU ms, one thread:  {'this project':>12s} {'reference':>12s}")
    for m in METRIC_NAMES:
        print(f"    {m:<40s} {ours[m] / n * 1e3:12.2f} {ref[m] / n * 1e3:12.2f}")
    print(f"    {'all nine':<40s} {sum(ours.values()) / n * 1e3:12.2f} {sum(ref.values()) / n * 1e3:12.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="pair folder with ir/ and vi/ (default: RoadScene)")
    ap.add_argument("--pairs", type=int, default=None, help="use only the first N pairs (default: all)")
    ap.add_argument("--runs", type=int, default=3, help="runs of eval_fusion.py (median reported; default 3)")
    ap.add_argument("--baseline-runs", type=int, default=1, help="runs of the reference evaluator (default 1)")
    ap.add_argument("--workers", type=int, default=None, help="eval_fusion.py --workers (default: its own)")
    ap.add_argument("--profile", action="store_true", help="also print start-up, decode and per-metric times")
    args = ap.parse_args(argv)
    if not (args.data / "ir").is_dir():
        sys.exit(f"no pair folder at {args.data} (ir/, vi/)")

    env = repo_env()
    with tempfile.TemporaryDirectory(prefix="bench_metrics_") as tmp:
        work = Path(tmp)
        src, fused = prepare(args.data, args.pairs, work)
        n = len(list((src / "ir").iterdir()))
        fused_args = [a for m, d in fused.items() for a in ("--fused", f"{m}={d}")]
        ours_cmd = [sys.executable, str(REPO / "tools" / "eval_fusion.py"), *fused_args, "--source", str(src),
                    "--out", str(work / "ours"), "--quiet"]
        if args.workers:
            ours_cmd += ["--workers", str(args.workers)]
        ref_cmd = [sys.executable, str(REFERENCE / "reference_eval.py"), "--source", str(src), *fused_args,
                   "--out", str(work / "reference.json")]
        print(f"{n} pairs x {len(METHODS)} methods ({', '.join(METHODS)}) from {args.data}, all nine metrics; "
              f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f} at start")
        # warm the file cache (libraries, images) for both sides, untimed
        run_process([sys.executable, "-c", "import torch, cv2, scipy.signal, sklearn.metrics, skimage.metrics"], env)
        ours_t: list[tuple[float, float]] = []
        ref_t: list[tuple[float, float]] = []
        order = ["ours"] + ["ref", "ours"] * max(args.baseline_runs, args.runs)
        for who in order:
            if who == "ours" and len(ours_t) < args.runs:
                ours_t.append(run_process(ours_cmd, env))
            elif who == "ref" and len(ref_t) < args.baseline_runs:
                ref_t.append(run_process(ref_cmd, env))
        worst = compare_values(work / "ours" / "fusion_metrics.json", work / "reference.json")
        ow, oc = statistics.median(w for w, _ in ours_t), statistics.median(c for _, c in ours_t)
        rw, rc = statistics.median(w for w, _ in ref_t), statistics.median(c for _, c in ref_t)
        print(f"{'command (a process each, start-up included)':<46s} {'wall s':>8s} {'CPU s':>8s}")
        print(f"{'tools/eval_fusion.py (this project)':<46s} {ow:8.2f} {oc:8.2f}   runs: "
              + ", ".join(f"{w:.2f}" for w, _ in ours_t))
        print(f"{'tests/reference/reference_eval.py (baseline)':<46s} {rw:8.2f} {rc:8.2f}   runs: "
              + ", ".join(f"{w:.2f}" for w, _ in ref_t))
        print(f"speed-up: {rw / ow:.1f}x wall clock, {rc / oc:.1f}x CPU time")
        print("largest relative deviation from the reference values: "
              + ", ".join(f"{m} {e:.1e}" for m, e in worst.items()))
        if args.profile:
            print("profile:")
            profile(src, fused, env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
