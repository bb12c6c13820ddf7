#!/usr/bin/env python
"""Peak memory of ``tools/fuse_dataset.py`` per method on large pairs, as users run it.

Writes ``--pairs`` synthetic pairs of ``--size`` (IR gray, visible colour, PNG) to a temporary
folder, then runs the fuse command once per method as its own process and reports that
process's peak resident memory (``ru_maxrss``), wall time and exit status. ``--limit-as KB``
runs each command under that address-space limit (``ulimit -v``): a method must then finish or
stop with its one-line error (printed here).

  python benchmarks/peak_memory_fusion.py --size 5000x4000 --pairs 2
  python benchmarks/peak_memory_fusion.py --methods gff --limit-as 6000000
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METHODS = ("ir", "vi", "mean", "max", "laplacian", "dwt", "gff")


def make_pairs(root: Path, count: int, width: int, height: int) -> None:
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    (root / "ir").mkdir(parents=True)
    (root / "vi").mkdir()
    for i in range(count):
        base = cv2.resize(rng.random((40, 50)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
        ir = np.clip(base * 200 + rng.normal(0, 8, (height, width)), 0, 255).astype(np.uint8)
        vi = np.stack([base * 150 + 50, (1 - base) * 180, base * 90 + 60], -1) + rng.normal(0, 8, (height, width, 3))
        cv2.imwrite(str(root / "ir" / f"p{i}.png"), ir)
        cv2.imwrite(str(root / "vi" / f"p{i}.png"), np.clip(vi, 0, 255).astype(np.uint8))


def run(method: str, data: Path, out: Path, limit_as: int | None, extra: list[str]) -> tuple[int, float, float, str]:
    """(exit status, peak RSS in GB, wall seconds, last stderr line) of one fuse command."""

    def limit() -> None:
        if limit_as:
            resource.setrlimit(resource.RLIMIT_AS, (limit_as * 1024, limit_as * 1024))

    cmd = [sys.executable, str(REPO / "tools" / "fuse_dataset.py"), "--data", str(data), "--method", method,
           "--out", str(out), "--quiet", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, preexec_fn=limit)
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    return proc.returncode, usage.ru_maxrss / 1024**2, wall, lines[-1] if lines else ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="5000x4000", help="WIDTHxHEIGHT of each pair (default 5000x4000)")
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--limit-as", type=int, default=None, metavar="KB", help="address-space limit, as ulimit -v")
    ap.add_argument("--batch-size", type=int, default=None, help="passed to the fuse command (default: its own)")
    a = ap.parse_args()
    width, height = (int(v) for v in a.size.lower().split("x"))
    extra = ["--batch-size", str(a.batch_size)] if a.batch_size else []
    with tempfile.TemporaryDirectory(prefix="peak_memory_") as tmp:
        data = Path(tmp) / "pairs"
        make_pairs(data, a.pairs, width, height)
        print(f"{a.pairs} pairs of {width}x{height}" + (f", address space limited to {a.limit_as} KB" if a.limit_as
                                                         else "") + f"; {os.cpu_count()} CPUs")
        print("| method | exit | peak RSS (GB) | wall (s) | last stderr line |\n|---|---:|---:|---:|---|")
        for method in a.methods.split(","):
            rc, peak, wall, last = run(method, data, Path(tmp) / f"out_{method}", a.limit_as, extra)
            print(f"| {method} | {rc} | {peak:.2f} | {wall:.1f} | {last[:160] if rc else ''} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
