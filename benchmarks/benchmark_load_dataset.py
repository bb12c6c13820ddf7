#!/usr/bin/env python
"""How much header probing saves: load_dataset (headers + end markers, threaded) against the
naive baseline of decoding every image fully, on an M3FD-sized layout written to a temp dir.

Prints both times and the ratio baseline / load_dataset (higher is better).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from fusion_perception.data.image_io import read_image
from fusion_perception.data.readers import load_dataset


def write_m3fd(root: Path, count: int, size: tuple[int, int]) -> None:
    w, h = size
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(count):
        # smooth gradients + mild noise: compresses like a real photo, not like white noise
        base = ((xx * (i % 7 + 1) + yy * 3) % 256).astype(np.float32)
        ir = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
        vi = np.dstack([ir, np.roll(ir, 5, 1), np.roll(ir, 9, 0)])
        name = f"{i:05d}"
        for folder, img in (("Ir", np.dstack([ir] * 3)), ("Vis", vi)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / folder / f"{name}.png"), img)
        (root / "Annotation").mkdir(exist_ok=True)
        (root / "Annotation" / f"{name}.xml").write_text(
            f"<annotation><size><width>{w}</width><height>{h}</height></size><object>"
            "<name>People</name><bndbox><xmin>10</xmin><ymin>20</ymin><xmax>60</xmax>"
            "<ymax>140</ymax></bndbox></object></annotation>")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=100, help="pairs (default 100)")
    ap.add_argument("--size", default="1024x768", help="WxH (default M3FD's 1024x768)")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "M3FD_Detection"
        write_m3fd(root, args.count, size)
        t0 = time.perf_counter()
        ds = load_dataset(root, progress=False)
        t_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        for r in ds.records:  # the baseline: decode every image to learn its size
            a, b = read_image(r.ir_path), read_image(r.vi_path)
            assert a.shape[:2] == b.shape[:2]
        t_full = time.perf_counter() - t0
    print(f"pairs: {len(ds)} at {size[0]}x{size[1]}")
    print(f"load_dataset (headers, threaded): {t_load:.3f} s ({1e3 * t_load / len(ds):.2f} ms/pair)")
    print(f"baseline full decode:             {t_full:.3f} s ({1e3 * t_full / len(ds):.2f} ms/pair)")
    print(f"speed-up: {t_full / t_load:.1f}x")


if __name__ == "__main__":
    main()
