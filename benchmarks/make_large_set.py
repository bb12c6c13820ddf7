#!/usr/bin/env python
"""An M3FD-layout set of many pairs for throughput runs, made fast: ``--unique`` synthetic scenes
from the project's generator, repeated by hard links up to ``--count`` pairs.

The fuse stage reads, fuses and writes every pair as its own files, so the repetition changes
nothing it does; only generating thousands of distinct 1024x768 scenes (minutes) is saved.

    python benchmarks/make_large_set.py --out /tmp/m3fd4200 --count 4200 --size 1024x768
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this repository's package
from fusion_perception.synthetic.dataset import generate  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="output root (the set is OUT/m3fd)")
    ap.add_argument("--count", type=int, default=4200, help="pairs (default 4200, M3FD's)")
    ap.add_argument("--unique", type=int, default=64, help="distinct generated scenes (default 64)")
    ap.add_argument("--size", default="1024x768", help="WxH (default 1024x768, M3FD's)")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    root = args.out / "m3fd"
    if root.exists():
        shutil.rmtree(root)
    generate(args.out, task="det", count=min(args.unique, args.count), size=(w, h), seed=0)
    names = sorted(p.stem for p in (root / "Ir").iterdir())
    for i in range(len(names), args.count):
        src = names[i % len(names)]
        for sub, ext in (("Ir", ".png"), ("Vis", ".png"), ("Annotation", ".xml")):
            os.link(root / sub / f"{src}{ext}", root / sub / f"{i:05d}{ext}")
    print(f"{args.count} pairs ({len(names)} distinct scenes) at {w}x{h} in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
