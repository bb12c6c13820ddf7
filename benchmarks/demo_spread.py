#!/usr/bin/env python
"""How much the demo's figures move with the machine: its runs trained again as on another processor.

Short CPU trainings amplify floating-point differences: another processor runs other kernels (AVX2
instead of AVX-512 and AMX, say), which sum in another order, and ten epochs later the models
differ. This script emulates such a second machine on this one: the demo's runs (its data, fused
images and detection splits, nothing else changed) are trained and scored again with PyTorch's,
oneDNN's and MKL's instruction sets capped at ``--isa`` (``ATEN_CPU_CAPABILITY``,
``ONEDNN_MAX_CPU_ISA``, ``MKL_ENABLE_INSTRUCTIONS``; two runs at once, one thread each, as the
demo), and both tables' headline figures and paired differences to the reference are printed side
by side. A claim that holds in both columns does not hinge on the machine.

    python tools/demo.py                          # first: the demo itself (outputs/demo)
    python benchmarks/demo_spread.py              # then its runs again as on an AVX2 processor
    python benchmarks/demo_spread.py --methods ir,vi,laplacian,emma --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ISA = {"avx2": ("avx2", "AVX2", "AVX2"), "default": ("default", "SSE41", "SSE4_2")}  # torch, oneDNN, MKL names


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demo", default="outputs/demo", help="the demo's output folder (default outputs/demo)")
    p.add_argument("--out", default="outputs/demo_spread", help="where the runs go (default outputs/demo_spread)")
    p.add_argument("--isa", choices=sorted(ISA), default="avx2", help="the instruction sets to cap at (default avx2)")
    p.add_argument("--methods", default="ir,vi,mean,max,laplacian,dwt,gff,emma")
    p.add_argument("--seeds", default="0")
    a = p.parse_args(argv)
    demo, out, seeds, methods = Path(a.demo), Path(a.out), [int(s) for s in a.seeds.split(",")], a.methods.split(",")
    missing = [f"{t}/{m}/seed{s}" for t in ("det", "seg") for m in methods for s in seeds
               if not (demo / t / m / f"seed{s}" / "results.json").is_file()]
    if missing:
        sys.exit(f"{demo}: no finished demo runs {', '.join(missing[:3])}...; run python tools/demo.py --seeds "
                 f"{a.seeds} first")
    # before torch loads, here and in the spawned workers (they inherit the environment)
    for var, value in zip(("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS"), ISA[a.isa]):
        os.environ[var] = value
    sys.path.insert(0, str(REPO))
    import torch

    from fusion_perception.comparison.compare import ComparisonSettings, compare_methods
    from fusion_perception.comparison.demo import DEMO_CONFIGS, demo_data
    from fusion_perception.emma.weights import DEFAULT_EMMA_WEIGHTS
    from fusion_perception.runs import get_task

    data = demo_data(out, seeds, data_root=demo / "data")  # the demo's scenes, the splits written here
    compare_methods(methods, out, ComparisonSettings(
        task="both", data=data, configs=DEMO_CONFIGS, seeds=seeds, weights={"emma": str(DEFAULT_EMMA_WEIGHTS)},
        fused_root=demo / "fused", jobs=min(4, os.cpu_count() or 1), quality=False))
    print(f"\nthe demo's runs against the same runs with the instruction sets capped at {a.isa} "
          f"(torch here: {torch.backends.cpu.get_cpu_capability()}); seeds {a.seeds}")
    for task in (get_task("det"), get_task("seg")):
        first, column = _table(demo, task, methods, seeds)
        second, again = _table(out, task, methods, seeds, column.reference if column else None)
        print(f"\n| {task.name}: method | {task.metric}, demo | {a.isa} | change | Δ, demo | Δ, {a.isa} |"
              "\n|---|---:|---:|---:|---|---|")
        for label in methods:
            x, y = first[label][task.metric].mean, second[label][task.metric].mean
            print(f"| {label} | {100 * x:.1f} | {100 * y:.1f} | {100 * (y - x):+.1f} | "
                  f"{_delta(column, label)} | {_delta(again, label)} |")
    return 0


def _table(folder: Path, task, methods: list[str], seeds: list[int], reference: str | None = None):
    """A folder's runs of ``task`` as the comparison tables them: means by method and the paired column."""
    from fusion_perception.comparison.paired import BootstrapSettings, paired_column, pooled_means
    from fusion_perception.comparison.tables import aggregate
    from fusion_perception.runs import read_results

    results = [read_results(folder / task.name / m / f"seed{s}") for m in methods for s in seeds]
    table = aggregate(results, task.columns)
    return table, paired_column(task, results, pooled_means(table, task.metric), BootstrapSettings(reference))


def _delta(column, label: str) -> str:
    from fusion_perception.comparison.paired import difference_cell

    if column is None:
        return "–"
    return "reference" if label == column.reference else difference_cell(column.differences.get(label))


if __name__ == "__main__":
    sys.exit(main())
