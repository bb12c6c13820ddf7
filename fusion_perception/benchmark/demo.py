"""The README's main job: the whole pipeline end to end on the synthetic default, on a CPU.

1. generate the synthetic multi-modal default (once; reused afterwards);
2. train the small sensing modules on classical fusions, then the small EMMA U-Fuser;
3. fuse with EMMA, the classical methods, IR and VI; train and score the small YOLO detector
   and DeepLabV3+ segmenter on each method's fused images;
4. print the detection, segmentation and fusion-quality tables and where the pictures are.

Every step is cached under ``out``: a second run (or one after an interruption) only
re-renders what is missing.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Sequence

from fusion_perception.benchmark.compare import Comparison, compare_methods
from fusion_perception.outputs import check_output_dir

DEMO_METHODS: tuple[str, ...] = ("ir", "vi", "mean", "max", "laplacian", "dwt", "gff", "emma")
# The small configs' schedules shortened so the whole demo fits in 15 minutes on 2 cores
# (the full small configs train for about 8 minutes on their own).
DEMO_SENSING_EPOCHS = 8
DEMO_EMMA_EPOCHS = 3
_LOG = logging.getLogger(__name__)


def train_small_emma(out: Path) -> Path:
    """Train (or reuse) the small CPU sensing modules and EMMA; returns the fuser checkpoint."""
    from fusion_perception.training.runner import train_emma, train_sensing

    fuser = out / "emma" / "emma_fuser.pth"
    if fuser.is_file():
        _LOG.info("reusing %s", fuser)
        return fuser
    sensing = out / "sensing"
    if not all((sensing / f"sensing_{t}.pth").is_file() for t in ("ir", "vi")):
        train_sensing("small_cpu.py", work_dir=sensing, resume=True, epochs=DEMO_SENSING_EPOCHS)
    return train_emma("small_cpu.py", sensing_dir=sensing, work_dir=out / "emma", resume=True,
                      epochs=DEMO_EMMA_EPOCHS)


def run_demo(
    out: str | Path = "outputs/demo", methods: Sequence[str] = DEMO_METHODS, device: str = "cpu",
    seeds: Sequence[int] = (0,), overwrite: bool = False,
) -> Comparison:
    """The demo's comparison; ``overwrite`` replaces runs in ``out`` made with other settings
    (by an older version, say), which are refused otherwise."""
    from fusion_perception.data.synthetic import ensure_default

    out = check_output_dir(out)
    t0 = time.time()
    steps: dict[str, float] = {}
    ensure_default("both")
    steps["synthetic data"] = time.time() - t0
    weights = {}
    if "emma" in methods:
        t = time.time()
        weights["emma"] = str(train_small_emma(out))
        steps["EMMA training"] = time.time() - t
    t = time.time()
    # The small runs keep about one core busy whatever their thread count: on a CPU, run as
    # many at once as there are cores (one thread each).
    jobs = min(4, os.cpu_count() or 1) if device == "cpu" else 1
    result = compare_methods(list(methods), out, task="both", seeds=seeds, weights=weights, device=device,
                             det_config="small_cpu", seg_config="small_cpu.py", jobs=jobs, overwrite=overwrite)
    steps["fusion + detection + segmentation"] = time.time() - t
    steps["total"] = time.time() - t0
    result.timings = steps  # type: ignore[attr-defined]
    return result
