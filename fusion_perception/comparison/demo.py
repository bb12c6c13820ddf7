"""The README's main job: the whole pipeline end to end on the synthetic default, on a CPU.

1. generate the demo's data (once; reused afterwards): the synthetic default's 200 scenes per task,
   byte for byte, so that every model trains on what ``train_det.py`` and ``train_seg.py`` train on,
   and :data:`DEMO_HELD_OUT` further scenes per task for testing only, so that the tables' paired
   intervals can resolve the differences they show (20 detection and 50 segmentation test images
   could not);
2. EMMA: the toolkit's committed checkpoint (or, ``train_emma``, trained here by its recipe);
3. fuse with EMMA, the classical methods, IR and VI (into the demo's own cache, ``OUT/fused``);
   train and score the small YOLO detector and DeepLabV3+ segmenter on each method's fused images;
4. print the detection, segmentation and fusion-quality tables (with target retention and each
   method's paired difference to the better single modality) and where the pictures are.

Every step is cached: a second run (or one after an interruption) only re-renders what is missing.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from fusion_perception.comparison.compare import Comparison, ComparisonSettings, check_reference, compare_methods
from fusion_perception.devices import resolve_device
from fusion_perception.errors import ConfigError
from fusion_perception.outputs import check_output_dir

DEMO_METHODS: tuple[str, ...] = ("ir", "vi", "mean", "max", "laplacian", "dwt", "gff", "emma")
DEMO_HELD_OUT = 200  # test-only scenes per task beside the synthetic default's 200
DEMO_CONFIGS = {"det": "small_cpu", "seg": "small_cpu.py"}
_LOG = logging.getLogger(__name__)


def train_demo_emma(out: Path, verbose: bool = False, progress: bool = True) -> Path:
    """Train (or reuse) EMMA with the recipe of the toolkit's checkpoint (configs/{sensing,emma}/small_cpu.py)
    under ``out/emma``; returns the fuser checkpoint."""
    from fusion_perception.emma.training.runner import EMMA_EXPORT, train_emma, train_sensing

    fuser = out / "emma" / EMMA_EXPORT
    if fuser.is_file():
        return fuser
    sensing = out / "emma" / "sensing"
    if not all((sensing / f"sensing_{t}.pth").is_file() for t in ("ir", "vi")):
        train_sensing("small_cpu", work_dir=sensing, verbose=verbose, progress=progress)
    return train_emma("small_cpu", sensing_dir=sensing, work_dir=out / "emma", verbose=verbose, progress=progress)


def run_demo(
    out: str | Path = "outputs/demo", methods: Sequence[str] = DEMO_METHODS, device: str | None = None,
    seeds: Sequence[int] = (0,), overwrite: bool = False, train_emma: bool = False, verbose: bool = False,
    progress: bool = True, **comparison: Any,
) -> Comparison:
    """The demo's comparison on the synthetic default; ``Comparison.timings`` says where the time went.

    EMMA fuses with the toolkit's checkpoint, or (``train_emma``) with one trained here by the same
    recipe. ``overwrite`` replaces runs in ``out`` made with other settings (by an older version,
    say), which are refused otherwise. ``comparison``: more fields of
    :class:`~fusion_perception.comparison.compare.ComparisonSettings`, such as the tables' paired
    difference column (``reference``, default the better of IR and VI; ``resamples``; ``bootstrap_seed``).
    ``comparison["weights"]``: a method's checkpoint by name (``tardal=PATH``, ``emma=PATH``); a method
    given weights that ``methods`` lacks gains its rows (the learned fusers, whose weights the toolkit
    does not ship).
    """
    from fusion_perception.console import stage
    from fusion_perception.emma.weights import DEFAULT_EMMA_WEIGHTS

    out = check_output_dir(out)
    methods, weights = demo_methods(methods, comparison.pop("weights", None), train_emma)
    check_reference(comparison.get("reference"), methods)  # before any work
    t0 = time.perf_counter()
    steps: dict[str, float] = {}
    data = demo_data(out, seeds)
    steps["synthetic data"] = time.perf_counter() - t0
    stage(f"synthetic data: {data['det'].parent} (the default's 200 pairs per task + {DEMO_HELD_OUT} held-out "
          f"test pairs each, {steps['synthetic data']:.0f} s)")
    if "emma" in methods and "emma" not in weights:
        if train_emma:
            t = time.perf_counter()
            stage("EMMA: training the sensing nets, then the U-Fuser (configs/{sensing,emma}/small_cpu.py)")
            weights["emma"] = str(train_demo_emma(out, verbose, progress))
            steps["EMMA training"] = time.perf_counter() - t
        else:
            weights["emma"] = str(DEFAULT_EMMA_WEIGHTS)
        stage(f"EMMA: {weights['emma']} (--train-emma trains one here)" if not train_emma
              else f"EMMA: {weights['emma']} ({steps['EMMA training']:.0f} s)")
    # The small runs keep about one core busy whatever their thread count: on a CPU, run as
    # many at once as there are cores (one thread each).
    device = resolve_device(device)  # the GPU when there is one
    jobs = min(4, os.cpu_count() or 1) if device == "cpu" else 1
    stage(f"{len(methods)} methods x 2 tasks x {len(seeds)} seed(s) on {jobs} worker(s); each run's log is its run.log")
    result = compare_methods(list(methods), out, ComparisonSettings(
        task="both", data=data, configs=DEMO_CONFIGS, seeds=seeds, weights=weights, fused_root=out / "fused",
        device=device, jobs=jobs, overwrite=overwrite, verbose=verbose, progress=progress, **comparison))
    result.timings = {**steps, **result.timings, "total": time.perf_counter() - t0}
    return result


def demo_methods(methods: Sequence[str], weights: Mapping[str, str] | None,
                 train_emma: bool = False) -> tuple[list[str], dict[str, str]]:
    """The demo's methods and their weights: ``methods`` and, after them, every method given weights
    that they lack. The given weights are checked here (a wrong checkpoint fails before any work)."""
    from fusion_perception.comparison.compare import check_methods, parse_methods

    weights = dict(weights or {})
    if train_emma and "emma" in weights:
        raise ConfigError("--train-emma trains the demo's EMMA; --weights emma=... gives one: choose one of them")
    methods = parse_methods([*methods, *(m for m in weights if m not in methods)])
    check_methods(list(weights), weights)
    return methods, weights


def demo_data(out: Path, seeds: Sequence[int], data_root: Path | None = None) -> dict[str, Path]:
    """The demo's datasets by task, under ``data_root`` (default ``out/data``; made once): the synthetic
    default's scenes and :data:`DEMO_HELD_OUT` more per task for testing only. The detection split of
    each seed (``out/det/splits/seed<S>``, which every method's run reads) is the default's 8:1:1 split,
    what ``train_det.py`` makes, with the held-out pairs added to its test list."""
    from fusion_perception.detection.config import load_config
    from fusion_perception.detection.data import make_split, read_split, write_split
    from fusion_perception.synthetic.dataset import DEFAULT_COUNT, DEFAULT_SEED, DEFAULT_SIZE, generate

    root = Path(data_root) if data_root is not None else out / "data"
    written = generate(root, "both", DEFAULT_COUNT, DEFAULT_SIZE, DEFAULT_SEED, progress=True, overwrite=True,
                       held_out=DEMO_HELD_OUT)  # the demo's own folder: a set made otherwise is replaced
    names = sorted(p.stem for p in (written["m3fd"] / "Ir").glob("*.png"))  # zero-padded: index order
    ratio = load_config(DEMO_CONFIGS["det"])["split_ratio"]
    for seed in seeds:
        split = make_split(names[:DEFAULT_COUNT], seed, ratio)
        split["test"] = sorted(split["test"] + names[DEFAULT_COUNT:])
        split_dir = out / "det" / "splits" / f"seed{seed}"
        if read_split(split_dir) != split:
            write_split(split_dir, split)
    return {"det": written["m3fd"], "seg": written["msrs"]}
