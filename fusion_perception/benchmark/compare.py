"""Method against method: the detection and segmentation protocols for every method and seed.

Every piece is cached and reused — the fused datasets (by manifest), the splits, and each
finished run (by its ``results.json``) — so an interrupted comparison resumes where it
stopped and a finished one re-renders its tables at once.

Layout of ``out`` (the fused datasets live in the shared cache, ``work_dirs/fused/<method>/<dataset>``)::

    det/splits/seed<S>/           the detection split every method shares for seed S
    det/<method>/seed<S>/         one detection run (results.json when finished)
    seg/<method>/seed<S>/         one segmentation run
    tables/                       det.*, seg.*, fusion_quality.*, target_retention.* (Markdown, CSV, JSON)
    logs/compare.log              the libraries' output that reached this process (each run has its run.log)
    plots/                        det_map50.png, seg_miou.png, qualitative.png
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from fusion_perception.benchmark.plots import bar_chart, qualitative_grid
from fusion_perception.benchmark.tables import (
    DET_COLUMNS,
    SEG_COLUMNS,
    aggregate,
    csv_table,
    json_table,
    markdown_table,
)
from fusion_perception.data.image_io import atomic_write_text
from fusion_perception.devices import check_device
from fusion_perception.errors import ConfigError
from fusion_perception.fusion.base import build_fuser, method_label, parse_method_spec, resolve_weights
from fusion_perception.outputs import check_output_dir

_LOG = logging.getLogger(__name__)
TASKS = ("det", "seg")


@dataclass
class Comparison:
    """What a comparison produced: per-task results and tables, and the files written."""

    results: dict[str, list[dict]] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)  # task or "fusion_quality" -> Markdown
    files: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # fusion, training, scoring (seconds)


def parse_methods(methods: str | Sequence[str]) -> list[str]:
    """``"ir,vi,emma,folder:X=/p"`` -> a list of specs; labels must be unique."""
    specs = [m.strip() for m in (methods.split(",") if isinstance(methods, str) else methods) if m.strip()]
    if not specs:
        raise ConfigError("no fusion methods given")
    labels = [method_label(s) for s in specs]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ConfigError(f"methods named twice: {', '.join(dup)}")
    return specs


def method_weights(specs: Sequence[str], weights: dict[str, str] | None) -> dict[str, str | None]:
    """The fusion checkpoint for each method (``weights`` maps a label to a path)."""
    weights = dict(weights or {})
    unknown = sorted(set(weights) - {method_label(s) for s in specs})
    if unknown:
        raise ConfigError(f"weights given for methods not compared: {', '.join(unknown)}")
    return {s: weights.get(method_label(s)) for s in specs}


def check_methods(specs: Sequence[str], weights: dict[str, str | None],
                  data_roots: Sequence[str | Path | None] = (None,)) -> None:
    """Fail before any training when a method cannot be built on one of ``data_roots`` (unknown
    name, missing weights; ``None`` is the synthetic default)."""
    for spec in specs:
        for root in data_roots:
            w = resolve_weights(spec, weights.get(spec), root)
            build_fuser(spec, "cpu", **({"weights": w} if w else {}))


def task_source(task: str, data: str | Path | None) -> Path:
    """The dataset root a task reads: ``data``, or the synthetic default's set (generated once)."""
    from fusion_perception.downstream.segmentation import msrs_source

    if task == "seg":
        return msrs_source(data)
    if data is not None:
        return Path(data).expanduser().resolve()
    from fusion_perception.data.synthetic import ensure_default

    return (Path(ensure_default("det")) / "m3fd").resolve()


def compare_methods(
    methods: str | Sequence[str],
    out: str | Path,
    *,
    task: str = "both",
    det_data: str | Path | None = None,
    seg_data: str | Path | None = None,
    seeds: Sequence[int] = (0,),
    weights: dict[str, str] | None = None,
    det_config: str | Path | None = None,
    seg_config: str | Path | None = None,
    device: str = "cpu",
    samples: Sequence[str] | None = None,
    quality: bool = True,
    progress: bool = True,
    jobs: int = 1,
    overwrite: bool = False,
    fused_root: str | Path | None = None,
    verbose: bool = False,
) -> Comparison:
    """Run the protocols of ``task`` ("det", "seg" or "both") for every method and seed.

    ``det_data``/``seg_data``: M3FD and MSRS roots (``None``: the synthetic default's sets).
    ``weights``: fusion checkpoints by method label (e.g. ``{"emma": "EMMA.pth"}``).
    ``samples``: names for the qualitative grid (default: the first test images).
    ``jobs``: fusions, then (task, method, seed) runs, at once in separate processes, each with its
    share of the CPU threads; small CPU runs use one core badly, so two jobs on two cores take
    about half the time.
    ``fused_root``: where the fused datasets are cached (default: the shared cache
    ``work_dirs/fused`` that every tool reads, :mod:`fusion_perception.fusion.cache`).
    ``overwrite``: replace runs and fused caches made with other settings (refused otherwise).
    The terminal shows a line per stage and progress bars; the runs' library output goes to their
    ``run.log`` files (``verbose``: to the terminal too). ``Comparison.timings`` says where the
    time went.
    """
    from fusion_perception.console import chatter_to, stage
    from fusion_perception.fusion.cache import cache_label, cache_root, default_fused_dir

    if jobs < 1:
        raise ConfigError(f"jobs must be at least 1, not {jobs}")
    tasks = TASKS if task == "both" else (task,)
    if any(t not in TASKS for t in tasks):
        raise ConfigError(f"task must be det, seg or both, not {task!r}")
    specs = parse_methods(methods)
    per_method_weights = method_weights(specs, weights)
    check_methods(specs, per_method_weights, [det_data if t == "det" else seg_data for t in tasks])
    check_device(device)
    out = check_output_dir(out)
    comparison = Comparison()
    if det_config is None and device == "cpu" and "det" in tasks:
        # As segmentation does: the paper's 400-epoch recipe is for GPUs.
        if progress:
            stage("detection on the CPU: configs/det/small_cpu.py (the paper's recipe: --det-config yolov5s_m3fd)")
        det_config = "small_cpu"

    sources = {t: task_source(t, det_data if t == "det" else seg_data) for t in tasks}
    cache = Path(fused_root) if fused_root is not None else cache_root()
    fused_dirs = {(t, s): default_fused_dir(sources[t], cache_label(method_label(s), per_method_weights[s]), cache)
                  for t in tasks for s in specs}
    runs = dict(sources=sources, seeds=tuple(int(x) for x in seeds), out=out, det_config=det_config,
                seg_config=seg_config, device=device, overwrite=overwrite, verbose=verbose,
                fused_dirs=fused_dirs, weights=per_method_weights)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with chatter_to(out / "logs" / "compare.log", verbose), _Jobs(jobs) as pool:
        fusions = [(t, s) for t in tasks for s in specs]
        pool.run(fuse_unit, [((t, s, runs), (t, s)) for t, s in fusions], "fuse", "dataset", progress,
                 lambda key, n: f"fuse {method_label(key[1])} ({key[0]}): {n} images in {fused_dirs[key]}")
        timings["fusion"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        units = [(t, s, seed) for t in tasks for s in specs for seed in runs["seeds"]]
        done = pool.run(run_unit, [((t, s, seed, runs), (t, s, seed)) for t, s, seed in units], "train + test",
                        "run", progress, _unit_line)
        timings["training"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    for t in tasks:
        results = [done[(t, s, seed)] for s in specs for seed in runs["seeds"]]
        comparison.results[t] = results
        columns = DET_COLUMNS if t == "det" else SEG_COLUMNS
        table = aggregate(results, columns)
        comparison.tables[t] = markdown_table(table, columns)
        comparison.files += _write_table(out / "tables" / t, table, columns, comparison.tables[t])
        key = "mAP@0.5" if t == "det" else "mIoU"
        title = "Detection (YOLO)" if t == "det" else "Segmentation (DeepLabV3+)"
        comparison.files.append(bar_chart(table, key, out / "plots" / f"{t}_{'map50' if t == 'det' else 'miou'}.png", title))

    fused_task = "seg" if "seg" in tasks else "det"
    shown_roots = {method_label(s): fused_dirs[(fused_task, s)] for s in specs}
    if quality:
        md = fusion_quality_table(shown_roots, out / "tables" / "fusion_quality", progress=progress)
        comparison.tables["fusion_quality"] = md
        comparison.files += [p for stem in ("fusion_quality", "target_retention") for ext in ("md", "csv", "json")
                             if (p := out / "tables" / f"{stem}.{ext}").is_file()]
    # ir and vi would repeat the grid's IR and VI source columns
    shown = [method_label(s) for s in specs if parse_method_spec(s)[0] not in ("ir", "vi")]
    comparison.files.append(qualitative_figure(shown_roots, out / "plots" / "qualitative.png", samples, shown))
    timings["scoring"] = time.perf_counter() - t2
    comparison.timings = timings
    return comparison


def fuse_unit(task: str, spec: str, runs: dict[str, Any]) -> int:
    """Fuse one method's copy of one task's dataset into the shared cache (reused when it matches)."""
    from fusion_perception.fusion.stage import fuse_dataset

    source = runs["sources"][task]
    weights = resolve_weights(spec, runs["weights"][spec], source)
    device = "cpu" if runs["device"] == "cpu" else _torch_device(runs["device"])
    fused = fuse_dataset(source, spec, runs["fused_dirs"][(task, spec)], layout="msrs" if task == "seg" else "auto",
                         device=device, weights=weights, on_mismatch="replace" if runs["overwrite"] else "error",
                         progress=False)
    return len(fused)


def run_unit(task: str, spec: str, seed: int, runs: dict[str, Any]) -> dict:
    """One run: a method's detector or segmenter for one seed, on its (already fused) dataset."""
    from fusion_perception.downstream.detection import run_detection
    from fusion_perception.downstream.segmentation import run_segmentation

    out: Path = runs["out"]
    label = method_label(spec)
    # GPU ids ("0", "0,1"): ultralytics' own device string for detection (DDP over several), the first GPU for
    # segmentation, which runs one process here
    device = runs["device"] if task == "det" or runs["device"] == "cpu" else _torch_device(runs["device"])
    common = dict(config=runs["det_config"] if task == "det" else runs["seg_config"], seed=seed,
                  weights=runs["weights"][spec], device=device, fused_dir=runs["fused_dirs"][(task, spec)],
                  progress=False, overwrite=runs["overwrite"], verbose=runs["verbose"])
    if task == "det":
        return run_detection(runs["sources"]["det"], spec, out / "det" / label / f"seed{seed}",
                             split_dir=out / "det" / "splits" / f"seed{seed}", **common)
    return run_segmentation(runs["sources"]["seg"], spec, out / "seg" / label / f"seed{seed}", **common)


def _unit_line(key: tuple[str, str, int], r: dict) -> str:
    task, spec, seed = key
    metric = f"mAP@0.5 {100 * r['mAP50']:.1f}" if task == "det" else f"mIoU {100 * (r['mIoU'] or 0):.1f}"
    return f"{task} {method_label(spec)} seed {seed}: {metric}"


def _torch_device(device: str) -> str:
    from fusion_perception.downstream.detection import torch_device

    return torch_device(device)


class _Jobs:
    """Runs keyed jobs in this process (``jobs=1``) or in ``jobs`` spawned worker processes, each
    with its share of the CPU threads, with a progress bar and a line per finished job."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        self.pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> "_Jobs":
        if self.jobs > 1:
            # Idle OpenMP threads must sleep, not spin, when processes share the cores; torch reads this
            # when it loads, so the (spawned, clean) workers inherit it from the environment.
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            threads = max(1, (os.cpu_count() or 1) // self.jobs)
            self.pool = ProcessPoolExecutor(
                max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=(threads, logging.getLogger().level or logging.INFO))
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)  # finish the running jobs, start no more

    def run(self, fn, items: Sequence[tuple[tuple, Any]], desc: str, unit: str, progress: bool, line) -> dict:
        from fusion_perception.console import progress as progress_bar

        done: dict[Any, Any] = {}
        with progress_bar(total=len(items), desc=desc, unit=unit, disable=not progress) as bar:
            def finish(key: Any, value: Any) -> None:
                done[key] = value
                bar.update(1)
                if progress:
                    bar.write(line(key, value), file=bar.fp)

            if self.pool is None:
                for args, key in items:
                    finish(key, fn(*args))
                return done
            futures = {self.pool.submit(fn, *args): key for args, key in items}
            for fut in as_completed(futures):
                finish(futures[fut], fut.result())
        return done


def _init_worker(threads: int, level: int) -> None:
    import torch

    from fusion_perception.cli import IMPORT_ENV, import_plugins

    torch.set_num_threads(threads)
    logging.basicConfig(level=level, format="[%(processName)s] %(message)s")
    import_plugins(m for m in os.environ.get(IMPORT_ENV, "").split(",") if m)  # the --import modules, here too


def _write_table(stem: Path, table: dict, columns: Sequence[str], md: str) -> list[Path]:
    files = {stem.with_suffix(".md"): md + "\n", stem.with_suffix(".csv"): csv_table(table, columns),
             stem.with_suffix(".json"): json_table(table, columns)}
    for path, text in files.items():
        atomic_write_text(path, text)
    return list(files)


def fusion_quality_table(fused_roots: dict[str, Path], stem: Path, progress: bool = True) -> str:
    """The nine fusion-quality metrics per method over the fused test images, then the target
    retention of the objects one modality shows where the data has boxes (Markdown)."""
    from fusion_perception.metrics.fusion_eval import (
        evaluate_fused_folders,
        evaluate_target_retention,
        write_retention_tables,
        write_tables,
    )

    result = evaluate_fused_folders(fused_roots, split="test", progress=progress)
    md = write_tables(result, stem.parent, stem=stem.name)
    retention = evaluate_target_retention(fused_roots, split="test", progress=progress)
    if retention is not None:
        md += "\n" + write_retention_tables(retention, stem.parent, stem="target_retention")
    return md


def qualitative_figure(
    fused_roots: dict[str, Path], path: Path, samples: Sequence[str] | None = None,
    shown: Sequence[str] | None = None, count: int = 3,
) -> Path:
    """IR | VI | each method's fused image for a few test samples (``shown``: the method columns)."""
    from fusion_perception.fusion.stage import load_fused_dataset

    datasets = {label: load_fused_dataset(root) for label, root in fused_roots.items()}
    first = next(iter(datasets.values()))
    source = _source_pairs(first)
    by_name = {label: {r.name: r.image_path for r in ds.records} for label, ds in datasets.items()}
    if samples:
        missing = [s for s in samples if s not in source]
        if missing:
            raise ConfigError(f"qualitative samples not in the dataset: {', '.join(missing)}")
        names = list(samples)
    else:
        test = [r.name for r in first.records if r.split == "test"] or [r.name for r in first.records]
        names = test[:count]
    return qualitative_grid(
        names,
        [source[n][0] for n in names],
        [source[n][1] for n in names],
        {label: [by_name[label][n] for n in names] for label in (datasets if shown is None else shown)},
        path,
    )


def _source_pairs(fused: Any) -> dict[str, tuple[Path, Path]]:
    """name -> (ir path, vi path) of the source pair, as the fuse stage's manifest records it."""
    return {e["name"]: (Path(e["source"]["ir"]), Path(e["source"]["vi"])) for e in fused.manifest["records"]}
