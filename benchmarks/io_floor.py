#!/usr/bin/env python
"""The I/O floor of the fuse stage, as a process: decode every pair, encode one image per pair,
fuse nothing.

The baseline of ``benchmarks/benchmark_stage.py``. It reads a list of pairs (one ``IR<TAB>VI``
path pair per line, as the stage's reader found them), decodes both images of each pair with the
stage's decoder call (``cv2.imdecode`` of the file's bytes, unchanged depth and channels) on
``--workers`` threads, and writes the visible image -- the size and channel count a fused image
has -- as PNG with the stage's encoder call (``cv2.imencode``) on ``--workers`` other threads,
while decoding goes on. Only OpenCV and numpy are imported: what any fusion stage must at least
spend on these files.

    python benchmarks/io_floor.py --pairs pairs.tsv --out DIR [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np


def decode(path: str) -> np.ndarray:
    img = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise SystemExit(f"io_floor: cannot decode {path}")
    return img


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=Path, required=True, help="text file: IR<TAB>VI per line")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--workers", type=int, default=2, help="decoding threads and, separately, encoding threads")
    args = ap.parse_args(argv)
    pairs = [line.split("\t") for line in args.pairs.read_text().splitlines() if line.strip()]
    args.out.mkdir(parents=True, exist_ok=True)

    def read_pair(pair: list[str]) -> np.ndarray:
        ir, vi = decode(pair[0]), decode(pair[1])
        if ir.shape[:2] != vi.shape[:2]:
            raise SystemExit(f"io_floor: {pair[1]} and {pair[0]} differ in size")
        return vi

    def write(i: int, img: np.ndarray) -> None:
        ok, buf = cv2.imencode(".png", img)
        if not ok:
            raise SystemExit("io_floor: PNG encoding failed")
        (args.out / f"{i:06d}.png").write_bytes(buf.tobytes())

    with ThreadPoolExecutor(args.workers) as decoders, ThreadPoolExecutor(args.workers) as encoders:
        writes = [encoders.submit(write, i, img) for i, img in enumerate(decoders.map(read_pair, pairs))]
        for w in writes:
            w.result()
    return 0


if __name__ == "__main__":
    sys.exit(main())
