#!/usr/bin/env python
"""The reference evaluator, run as a process: the published evaluation scripts' way.

The baseline of ``benchmarks/benchmark_metrics.py``. It does what the CDDFuse/EMMA evaluation
scripts do, with the scipy/numpy metrics of ``reference_metrics.py`` (their formulas): for each
method folder, for each source pair, read IR, VI and the fused image (``cv2.imread`` -> float32
-> ``COLOR_BGR2GRAY`` -> round, as the reference values were prepared), compute the nine
metrics one image at a time, and print the mean per method. It imports nothing of this project.

    python tests/reference/reference_eval.py --source ../shared/data/roadscene \\
        --fused mean=work/fused/mean --fused max=work/fused/max [--out values.json]

``--source`` is a plain pair folder (``ir/`` and ``vi/`` with matching names); a fused image is
found by the pair's file stem with any image extension.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_metrics import METRIC_NAMES, reference_metrics  # noqa: E402  (a script next to this one)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def image_read_gray(path: Path) -> np.ndarray:
    img = cv2.imread(str(path))
    if img is None:
        raise SystemExit(f"reference_eval: cannot read {path}")
    return np.round(cv2.cvtColor(img.astype(np.float32), cv2.COLOR_BGR2GRAY))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", type=Path, required=True, help="pair folder with ir/ and vi/")
    ap.add_argument("--fused", action="append", required=True, metavar="NAME=DIR", help="a method's fused images")
    ap.add_argument("--out", type=Path, help="write {method: {image: {metric: value}}} as JSON")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", module="sklearn")  # "continuous values for label" on float images

    names = sorted(p.name for p in (args.source / "ir").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    values: dict[str, dict[str, dict[str, float]]] = {}
    for spec in args.fused:
        method, _, folder = spec.partition("=")
        fused_dir = Path(folder)
        by_stem = {p.stem: p for p in fused_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
        rows = values.setdefault(method, {})
        for name in names:
            ir = image_read_gray(args.source / "ir" / name)
            vi = image_read_gray(args.source / "vi" / name)
            fused = image_read_gray(by_stem[Path(name).stem])
            rows[Path(name).stem] = reference_metrics(ir, vi, fused)
        means = {m: float(np.mean([r[m] for r in rows.values()])) for m in METRIC_NAMES}
        print(f"{method}: " + " ".join(f"{m} {v:.4f}" for m, v in means.items()), flush=True)
    if args.out:
        args.out.write_text(json.dumps(values, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
