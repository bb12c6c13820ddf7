#!/usr/bin/env python
"""Start-up as users meet it: each command as a process, this tree against another one.

Every command pays the package's imports before it does anything; a command should import what
it uses when it uses it. This times, as processes (start-up included), in this repository and in
a baseline tree (``--baseline DIR``: a checkout of an earlier commit, e.g. made with
``git worktree add --detach /tmp/base <commit>``), alternating the two:

* ``--help`` of the everyday tools (``fuse_dataset.py``, ``train_det.py``, ``train_seg.py``) and of
  ``eval_fusion.py`` and ``compare_methods.py``;
* a small ``eval_fusion.py``: the nine metrics of one method (``max``) on ``--pairs`` real
  RoadScene pairs (``shared/data/roadscene``), fused beforehand by ``fuse_dataset.py``.

Wall clock, median of ``--runs``; the CPU time of the process beside it. On a machine shared with
other jobs the figures move with their load: compare the two trees of one run of this script.

    python benchmarks/benchmark_startup.py --baseline /tmp/base
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from processes import REPO, run_process

HELP_TOOLS = ("fuse_dataset", "train_det", "train_seg", "eval_fusion", "compare_methods")


def _env(tree: Path) -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(tree)}


def _pairs(source: Path, count: int, work: Path) -> Path:
    """The first ``count`` RoadScene pairs in a folder of their own."""
    out = work / "pairs"
    for sub in ("ir", "vi"):
        (out / sub).mkdir(parents=True)
        for path in sorted((source / sub).iterdir())[:count]:
            shutil.copy2(path, out / sub / path.name)
    return out


def _commands(tree: Path, pairs: Path, fused: Path, work: Path) -> dict[str, list[str]]:
    py = sys.executable
    commands = {f"{tool} --help": [py, str(tree / "tools" / f"{tool}.py"), "--help"] for tool in HELP_TOOLS}
    commands["eval_fusion (small)"] = [py, str(tree / "tools" / "eval_fusion.py"), "--fused", f"max={fused}",
                                       "--source", str(pairs), "--out", str(work / f"eval_{tree.name}"),
                                       "--no-progress", "--overwrite"]
    return commands


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, required=True, help="another tree of this repository (an earlier commit)")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "roadscene")
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    trees = {"this tree": REPO, "baseline": args.baseline.resolve()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pairs = _pairs(args.data, args.pairs, work)
        fused = work / "fused_max"
        run_process([sys.executable, str(REPO / "tools" / "fuse_dataset.py"), "--data", str(pairs), "--fusion", "max",
                     "--out", str(fused), "--no-progress"], _env(REPO))
        commands = {name: _commands(tree, pairs, fused, work) for name, tree in trees.items()}
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(args.runs):
            for label in commands["this tree"]:
                for name, tree in trees.items():  # alternating, so that the load hits both alike
                    times.setdefault((name, label), []).append(run_process(commands[name][label], _env(tree)))
    print(f"| command (median of {args.runs}, wall / CPU s) | this tree | baseline | ratio |")
    print("|---|---:|---:|---:|")
    for label in commands["this tree"]:
        new, old = (times[(name, label)] for name in trees)
        wall_new, wall_old = statistics.median(w for w, _ in new), statistics.median(w for w, _ in old)
        cpu_new, cpu_old = statistics.median(c for _, c in new), statistics.median(c for _, c in old)
        print(f"| {label} | {wall_new:.2f} / {cpu_new:.2f} | {wall_old:.2f} / {cpu_old:.2f} | "
              f"{wall_old / wall_new:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
