#!/usr/bin/env python
"""The fuse stage against its I/O floor: pairs per second of ``tools/fuse_dataset.py`` for
``mean`` and ``emma`` next to a process that only decodes and encodes the same images.

For each dataset (the synthetic default, 2 x 200 pairs at 320x256, and the 50 RoadScene pairs),
each command runs as a process, start-up included:

* the floor: ``python benchmarks/io_floor.py`` -- both images of every pair decoded, one PNG per
  pair encoded, the stage's codec calls and thread counts, no fusion, nothing but OpenCV loaded;
* ``python tools/fuse_dataset.py --method mean`` (the cheapest fusion: what the stage itself costs);
* ``python tools/fuse_dataset.py --method emma`` (random-init weights unless ``--weights``).

Printed per dataset and command: wall seconds (median of ``--runs``), pairs/s, the ratio to the
floor; and the same after start-up (each side's start-up -- the interpreter and the imports,
timed as a process alone -- taken off), the figure that stays as datasets grow.

    python benchmarks/benchmark_stage.py                          # both datasets, mean and emma
    python benchmarks/benchmark_stage.py --methods mean --runs 3
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from processes import REPO, repo_env, run_process  # noqa: E402  (a module next to this script)
sys.path.insert(0, str(REPO))  # this repository's package, in this process too

DEFAULT_ROADSCENE = REPO.parent / "shared" / "data" / "roadscene"


def pair_list(roots: list[Path], path: Path) -> int:
    """Write the pairs the stage's reader finds under ``roots`` as ``IR<TAB>VI`` lines."""
    from fusion_perception.data.readers import load_dataset

    lines = [f"{r.ir_path}\t{r.vi_path}" for root in roots for r in load_dataset(root).records]
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--methods", default="mean,emma", help="comma-separated (default mean,emma)")
    ap.add_argument("--datasets", default="synthetic,roadscene", help="synthetic and/or roadscene")
    ap.add_argument("--roadscene", type=Path, default=DEFAULT_ROADSCENE, help="RoadScene pair folder")
    ap.add_argument("--weights", type=Path, help="EMMA weights (default: random init)")
    ap.add_argument("--runs", type=int, default=2, help="runs per command (median; default 2, emma once)")
    ap.add_argument("--workers", type=int, default=2, help="decode/encode threads of both (default 2, the stage's)")
    args = ap.parse_args(argv)

    import torch

    from fusion_perception.synthetic.dataset import ensure_default
    from fusion_perception.emma.ufuser import UFuser
    from fusion_perception.emma.checkpoint import save_official_state_dict

    env = repo_env()
    py = sys.executable
    methods = [m for m in args.methods.split(",") if m]
    with tempfile.TemporaryDirectory(prefix="bench_stage_") as tmp:
        work = Path(tmp)
        weights = args.weights
        if "emma" in methods and weights is None:
            torch.manual_seed(0)
            weights = save_official_state_dict(UFuser(), work / "emma_random.pth")
        datasets: dict[str, tuple[list[str], list[Path]]] = {}
        for name in args.datasets.split(","):
            if name == "synthetic":
                root = ensure_default("both")
                datasets["synthetic default"] = (["--data", str(root)], [root / "m3fd", root / "msrs"])
            elif name == "roadscene" and (args.roadscene / "vi").is_dir():
                datasets["RoadScene"] = (["--data", str(args.roadscene)], [args.roadscene])
            elif name == "roadscene":
                print(f"RoadScene not found at {args.roadscene}; skipped", file=sys.stderr)
            else:
                sys.exit(f"unknown dataset {name!r}: synthetic or roadscene")

        startup = {
            "floor": min(run_process([py, "-c", "import cv2, numpy"], env)[0] for _ in range(3)),
            "stage": min(run_process([py, "-c", "import fusion_perception.fusion.stage, fusion_perception.emma.fuser"],
                                     env)[0] for _ in range(3)),
        }
        print(f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f} at start; start-up (interpreter + "
              f"imports): floor {startup['floor']:.2f} s, fuse_dataset {startup['stage']:.2f} s")
        print(f"{'dataset':<18s} {'command':<22s} {'pairs':>6s} {'wall s':>8s} {'pairs/s':>8s} {'x floor':>8s}"
              f" {'after start-up: pairs/s':>24s} {'x floor':>8s}")
        outputs = itertools.count()  # a fresh output folder for every run: nothing to resume

        def timed(cmd_for_run, runs_wanted: int) -> float:
            runs = [run_process(cmd_for_run(work / f"out{next(outputs)}"), env)[0] for _ in range(runs_wanted)]
            return statistics.median(runs)

        for label, (data_args, roots) in datasets.items():
            n = pair_list(roots, work / "pairs.tsv")

            floor = timed(lambda out: [py, str(HERE / "io_floor.py"), "--pairs", str(work / "pairs.tsv"),
                                       "--out", str(out), "--workers", str(args.workers)], args.runs)
            rows = [("I/O floor", floor, startup["floor"])]
            for method in methods:
                extra = ["--weights", str(weights)] if method == "emma" else []
                t = timed(lambda out: [py, str(REPO / "tools" / "fuse_dataset.py"), *data_args, "--method", method,
                                       *extra, "--out", str(out), "--workers", str(args.workers), "--quiet"],
                          1 if method == "emma" else args.runs)
                rows.append((f"fuse_dataset {method}", t, startup["stage"]))
            floor_steady = floor - startup["floor"]
            for cmd, t, st in rows:
                steady = max(t - st, 1e-9)
                print(f"{label:<18s} {cmd:<22s} {n:6d} {t:8.2f} {n / t:8.2f} {t / floor:7.2f}x"
                      f" {n / steady:24.2f} {steady / floor_steady:7.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
