#!/usr/bin/env python
"""DIDFuse, TarDAL and SeAFusion speed: ``tools/fuse_dataset.py --fusion X --weights W`` against the
authors' execution style (``tests/reference/reference_learned.py``), each run as a process, start-up
included.

Both fuse the RoadScene pairs (``shared/data/roadscene``, 50 pairs, sizes not divisible by 8) with
the same weights:

* this project: ``python tools/fuse_dataset.py --data RS --fusion X --weights W --out DIR`` (decoding
  and encoding on threads beside the network, channels_last where it is faster, DIDFuse's l1-norm
  weights computed once per feature instead of as a 64x64-channel convolution);
* the baseline: the authors' test script step for step (one pair at a time, their readers and
  writers, the network in their module form, fp32, no overlap of I/O and compute).

Both get ``OMP_WAIT_POLICY=PASSIVE``. Printed per method: wall and CPU seconds of each (median of
``--runs`` for ours), pairs/s, the ratio, and how far the two sets of output files are apart (max
gray-level difference and how many values differ). Weights: ``--weights-dir`` (default
``shared/weights``: ``seafusion.pth``, ``tardal.pt``, DIDFuse's two ``.pkl``); where absent, random
weights of the same networks are written to a temporary folder (any weights time the same).

    python benchmarks/benchmark_learned.py                          # all three
    python benchmarks/benchmark_learned.py --methods tardal --runs 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the tools do (set before torch loads)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from processes import REPO, repo_env, run_process  # noqa: E402  (a module next to this script)
sys.path.insert(0, str(REPO))  # this repository's package, in this process too

DEFAULT_ROADSCENE = REPO.parent / "shared" / "data" / "roadscene"
DEFAULT_WEIGHTS = REPO.parent / "shared" / "weights"
METHODS = ("seafusion", "tardal", "didfuse")
FILES = {"seafusion": "seafusion.pth", "tardal": "tardal.pt"}


def _weights(method: str, folder: Path, work: Path) -> tuple[str, str]:
    """(ours, the reference's) weights argument of ``method``: the authors' files in ``folder``, else random."""
    from fusion_perception.fusion.didfuse import DIDFuseNet, didfuse_files
    from fusion_perception.fusion.seafusion import SeAFusionNet
    from fusion_perception.fusion.tardal import TarDALGenerator

    if method == "didfuse":
        try:
            enc, dec = didfuse_files(folder)
        except Exception:  # noqa: BLE001 - no authors' files here: random ones
            net, folder = DIDFuseNet(), work / "didfuse"
            folder.mkdir()
            enc, dec = folder / "encoder.pkl", folder / "decoder.pkl"
            torch.save({"weight": net.encoder.state_dict()}, enc)
            torch.save({"weight": net.decoder.state_dict()}, dec)
        return str(folder), f"{enc},{dec}"
    path = folder / FILES[method]
    if not path.is_file():
        path = work / FILES[method]
        torch.save((SeAFusionNet() if method == "seafusion" else TarDALGenerator()).state_dict(), path)
    return str(path), str(path)


def _output_difference(ours: Path, ref: Path) -> tuple[int, int, int]:
    """(max |ours - reference| in gray levels, values that differ, values) over every output file."""
    worst = differ = total = 0
    for p in sorted(ref.iterdir()):
        a, b = cv2.imread(str(ours / p.name)).astype(int), cv2.imread(str(p)).astype(int)
        d = np.abs(a - b)
        worst, differ, total = max(worst, int(d.max())), differ + int((d > 0).sum()), total + d.size
    return worst, differ, total


def bench(method: str, args: argparse.Namespace, work: Path) -> None:
    rs = args.roadscene
    n = len([p for p in (rs / "ir").iterdir() if (rs / "vi" / p.name).is_file()])
    ours_w, ref_w = _weights(method, args.weights_dir, work)
    env = repo_env(OMP_WAIT_POLICY="PASSIVE")
    py = sys.executable
    ref_cmd = [py, REPO / "tests" / "reference" / "reference_learned.py", "--method", method, "--data", rs,
               "--weights", ref_w, "--out", work / f"{method}_reference", "--device", args.device]

    def ours_cmd(i: int) -> list:  # a fresh output folder each run: nothing to resume
        return [py, REPO / "tools" / "fuse_dataset.py", "--data", rs, "--fusion", method, "--weights", ours_w,
                "--out", work / f"{method}_ours{i}", "--device", args.device, "--no-progress"]

    ours_t = [run_process(ours_cmd(0), env)]
    ref_w_t, ref_c_t = run_process(ref_cmd, env)
    ours_t += [run_process(ours_cmd(i), env) for i in range(1, args.runs)]
    ow, oc = statistics.median(w for w, _ in ours_t), statistics.median(c for _, c in ours_t)
    worst, differ, total = _output_difference(work / f"{method}_ours0" / "fused", work / f"{method}_reference")
    print(f"{'fuse_dataset.py --fusion ' + method:<40s} {ow:8.2f} {oc:8.2f} {n / ow:8.2f}   runs: "
          + ", ".join(f"{w:.2f}" for w, _ in ours_t))
    print(f"{'reference_learned.py --method ' + method:<40s} {ref_w_t:8.2f} {ref_c_t:8.2f} {n / ref_w_t:8.2f}")
    print(f"{method}: {ref_w_t / ow:.2f}x wall clock, {ref_c_t / oc:.2f}x CPU time; outputs: max {worst} gray "
          f"level(s) apart, {differ} of {total} values differ", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated (default: all three)")
    ap.add_argument("--weights-dir", type=Path, default=DEFAULT_WEIGHTS,
                    help="folder of the authors' weights (default: shared/weights; random weights where absent)")
    ap.add_argument("--roadscene", type=Path, default=DEFAULT_ROADSCENE, help="RoadScene pair folder (ir/, vi/)")
    ap.add_argument("--runs", type=int, default=2, help="runs of fuse_dataset.py (median reported; default 2)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    args = ap.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods or any(m not in METHODS for m in methods):
        print(f"benchmark_learned: error: --methods takes {', '.join(METHODS)}", file=sys.stderr)
        return 2
    if not (args.roadscene / "vi").is_dir():
        print(f"benchmark_learned: error: no RoadScene pairs at {args.roadscene} (--roadscene)", file=sys.stderr)
        return 2
    print(f"RoadScene pairs from {args.roadscene}; {os.cpu_count()} CPU cores, load average "
          f"{os.getloadavg()[0]:.2f} at start; device {args.device}")
    print(f"{'command (a process each, start-up included)':<40s} {'wall s':>8s} {'CPU s':>8s} {'pairs/s':>8s}")
    run_process([sys.executable, "-c", "import torch, cv2"], repo_env())  # warm the file cache, untimed
    with tempfile.TemporaryDirectory(prefix="bench_learned_") as tmp:
        for method in methods:
            bench(method, args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
