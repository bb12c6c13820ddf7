#!/usr/bin/env python
"""The real-data benchmark, one command: 300 MSRS pairs with labels drawn per modality
(``../shared/data/msrs_det``), the stored split (``benchmarks/msrs_det_split``: 150 / 45 / 105).

1. ``compare_methods`` (the toolkit's comparison, resumable): every method fuses the 300 pairs, a YOLO
   of the chosen CPU config (``configs/det/msrs_det_cpu.py``) trains on each method's train part for
   each seed and is scored on the test part with pycocotools (mAP@0.5 per class, per condition day /
   night); the fusion-quality metrics and the target retention from the human labels (95% intervals,
   overall and per condition) on the test images;
2. Spearman's rank correlation across methods between each fusion metric and mAP@0.5 on these
   images, and on the synthetic demo's tables when given (``--synthetic``: a finished demo's
   ``outputs/demo`` folder, whose tables hold detection mAP@0.5 and segmentation mIoU);
3. the time it took (wall and CPU, this process and its workers), appended to ``OUT/timing.json``
   (one entry per invocation: a re-print or a resume does not replace the figure of the full run).

    python benchmarks/msrs_det_benchmark.py --weights emma=benchmarks/weights/emma_msrs_det.pth
    python benchmarks/msrs_det_benchmark.py --weights emma=...,didfuse=DIR,tardal=tardal.pt   # learned rows too
    python benchmarks/msrs_det_benchmark.py --out outputs/msrs_det_rerun --earlier outputs/msrs_det   # two folders

Run it from the repository root (the fused images go to the shared cache, ``work_dirs/fused``). An
interrupted run resumes with the same command without redoing finished runs.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATA = REPO.parent / "shared" / "data" / "msrs_det"
SPLIT_LISTS = REPO / "benchmarks" / "msrs_det_split"
CONFIG = "msrs_det_cpu"
METHODS = ("ir", "vi", "mean", "max", "laplacian", "dwt", "gff", "emma")


def read_table(folder: Path, stem: str) -> dict | None:
    """A finished benchmark's ``tables/<stem>.json``; ``None`` when it is not there or not readable."""
    from fusion_perception.record import read_json

    return read_json(folder / "tables" / f"{stem}.json")


def merged_table(folders: list[Path], stem: str) -> dict | None:
    """``tables/<stem>.json`` of several benchmark outputs, method by method, the first folder's row
    where several have the method (det: method -> row; the others keep their rows under ``methods``)."""
    tables = [t for t in (read_table(f, stem) for f in folders) if t is not None]
    if not tables:
        return None
    merged = dict(tables[0])
    key = None if stem == "det" else "methods"
    rows = dict(merged if key is None else merged[key])
    for table in tables[1:]:
        for method, row in (table if key is None else table[key]).items():
            rows.setdefault(method, row)
    return rows if key is None else {**merged, key: rows}


def correlations(out: Path, synthetic: Path | None, earlier: list[Path] = ()) -> str:
    """The metric-mAP rank correlations, real and synthetic, as Markdown (also ``tables/metric_correlation.*``).
    ``earlier``: finished benchmark outputs whose other methods join the real columns."""
    from fusion_perception.comparison.metric_correlation import (
        markdown_table, method_scores, rank_correlations, table_column)

    folders = [out, *earlier]
    columns = {}
    real = method_scores(merged_table(folders, "fusion_quality"), merged_table(folders, "target_retention"))
    det = merged_table(folders, "det")
    for heading, column in (("real mAP@0.5", "mAP@0.5"), ("real mAP@0.5 night", "mAP@0.5 night"),
                            ("real mAP@0.5 day", "mAP@0.5 day")):
        columns[heading] = rank_correlations(real, table_column(det, column))
    if synthetic is not None:
        scores = method_scores(read_table(synthetic, "fusion_quality"), read_table(synthetic, "target_retention"))
        columns["synthetic mAP@0.5"] = rank_correlations(scores, table_column(read_table(synthetic, "det"), "mAP@0.5"))
        seg = read_table(synthetic, "seg")
        if seg is not None:
            columns["synthetic mIoU"] = rank_correlations(scores, table_column(seg, "mIoU"))
    md = markdown_table(columns)
    (out / "tables" / "metric_correlation.md").write_text(md + "\n")
    (out / "tables" / "metric_correlation.json").write_text(json.dumps(
        {h: {m: vars(c) for m, c in col.items()} for h, col in columns.items()}, indent=1))
    return md


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default=",".join(METHODS), help="methods (those given --weights are added)")
    p.add_argument("--weights", default="", help="METHOD=PATH,... (emma: the real-data checkpoint)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--config", default=CONFIG, help=f"detection config (default {CONFIG}, chosen on the val part)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--synthetic", type=Path, default=None, help="a finished demo's output folder (its tables/)")
    p.add_argument("--earlier", type=Path, action="append", default=[],
                   help="a finished benchmark output (--out) whose other methods join the correlation table "
                        "(this run's rows win); repeatable")
    p.add_argument("--out", type=Path, default=REPO / "outputs" / "msrs_det")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    for folder in a.earlier:  # a mistyped folder would join nothing, silently
        if read_table(folder, "det") is None:
            p.error(f"--earlier {folder}: no finished benchmark there ({folder / 'tables' / 'det.json'} not found)")
    from fusion_perception.comparison.compare import compare_methods

    weights = dict(item.split("=", 1) for item in a.weights.split(",") if "=" in item)
    methods = [m for m in a.methods.split(",") if m] + [m for m in weights if m not in a.methods.split(",")]
    t0, cpu0 = time.perf_counter(), _cpu()
    result = compare_methods(methods, a.out, task="det", det_data=a.data,
                             det_layout=f"msrs_det:split_lists={SPLIT_LISTS}", det_config=a.config,
                             seeds=[int(s) for s in a.seeds.split(",")], weights=weights or None, jobs=a.jobs,
                             progress=not a.no_progress)
    md = correlations(a.out, a.synthetic, a.earlier)
    timing = {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(_cpu() - cpu0, 1),
              **{k: round(v, 1) for k, v in result.timings.items()}, "methods": methods, "seeds": a.seeds}
    record_timing(a.out, timing)
    for name in ("det", "fusion_quality"):
        print(result.tables[name], end="\n\n")
    print(md + "\n")
    print(f"time: {timing['wall_s'] / 60:.1f} min wall, {timing['cpu_s'] / 60:.1f} min CPU "
          f"(fusion {timing.get('fusion', 0):.0f} s, training {timing.get('training', 0):.0f} s, "
          f"scoring {timing.get('scoring', 0):.0f} s); tables in {a.out / 'tables'}")
    return 0


def record_timing(out: Path, timing: dict) -> list[dict]:
    """Append this invocation's times to ``out/timing.json`` (``{"runs": [...]}``, oldest first, each
    with the time it finished): a later run that only re-prints the finished tables, or resumes a few
    runs, adds its own entry instead of replacing the figure of the run that did the work."""
    from datetime import datetime, timezone

    from fusion_perception.record import read_json, write_json

    earlier = read_json(out / "timing.json") or {}
    runs = earlier["runs"] if isinstance(earlier.get("runs"), list) else [earlier] if earlier else []
    # (a file without "runs" is the one-run file of an earlier version: kept as the first entry)
    runs.append({**timing, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    write_json(out / "timing.json", {"runs": runs}, indent=1)
    return runs


def _cpu() -> float:
    """CPU seconds of this process and of its finished workers."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


if __name__ == "__main__":
    sys.exit(main())
