"""Method against method: the detection and segmentation protocols for every method and seed.

Every piece is cached and reused — the fused datasets (by manifest), the splits, and each
finished run (by its ``results.json``) — so an interrupted comparison resumes where it
stopped and a finished one re-renders its tables at once.

Layout of ``out``::

    fused/{det,seg}/<method>/     fused datasets (the preprocessing stage's output)
    det/splits/seed<S>/           the detection split every method shares for seed S
    det/<method>/seed<S>/         one detection run (results.json when finished)
    seg/<method>/seed<S>/         one segmentation run
    tables/                       det.*, seg.*, fusion_quality.*, target_retention.* (Markdown, CSV, JSON)
    plots/                        det_map50.png, seg_miou.png, qualitative.png
"""

from __future__ import annotations

import logging
import multiprocessing
import os
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
) -> Comparison:
    """Run the protocols of ``task`` ("det", "seg" or "both") for every method and seed.

    ``det_data``/``seg_data``: M3FD and MSRS roots (``None``: the synthetic default's sets).
    ``weights``: fusion checkpoints by method label (e.g. ``{"emma": "EMMA.pth"}``).
    ``samples``: names for the qualitative grid (default: the first test images).
    ``jobs``: (task, method) units run at once in separate processes, each with its share of
    the CPU threads; small CPU runs use one core badly, so two jobs on two cores take about
    half the time. Units share nothing but the detection split, which is deterministic.
    ``overwrite``: replace runs and fused caches in ``out`` made with other settings (refused otherwise).
    """
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
        _LOG.info("detection on CPU: using configs/det/small_cpu.py (pass --det-config for another)")
        det_config = "small_cpu"

    runs = dict(det_data=det_data, seg_data=seg_data, seeds=tuple(int(x) for x in seeds), out=out,
                det_config=det_config, seg_config=seg_config, device=device, progress=progress, overwrite=overwrite)
    units = [(t, spec, per_method_weights[spec]) for t in tasks for spec in specs]
    done = _run_units(units, runs, jobs)
    for t in tasks:
        results = [r for spec in specs for r in done[(t, spec)]]
        comparison.results[t] = results
        columns = DET_COLUMNS if t == "det" else SEG_COLUMNS
        table = aggregate(results, columns)
        comparison.tables[t] = markdown_table(table, columns)
        comparison.files += _write_table(out / "tables" / t, table, columns, comparison.tables[t])
        key = "mAP@0.5" if t == "det" else "mIoU"
        title = "Detection (YOLO)" if t == "det" else "Segmentation (DeepLabV3+)"
        comparison.files.append(bar_chart(table, key, out / "plots" / f"{t}_{'map50' if t == 'det' else 'miou'}.png", title))

    fused_task = "seg" if "seg" in tasks else "det"
    fused_roots = {method_label(s): out / "fused" / fused_task / method_label(s) for s in specs}
    if quality:
        md = fusion_quality_table(fused_roots, out / "tables" / "fusion_quality", progress=progress)
        comparison.tables["fusion_quality"] = md
        comparison.files += [p for stem in ("fusion_quality", "target_retention") for ext in ("md", "csv", "json")
                             if (p := out / "tables" / f"{stem}.{ext}").is_file()]
    # ir and vi would repeat the grid's IR and VI source columns
    shown = [method_label(s) for s in specs if parse_method_spec(s)[0] not in ("ir", "vi")]
    comparison.files.append(qualitative_figure(fused_roots, out / "plots" / "qualitative.png", samples, shown))
    return comparison


def run_unit(task: str, spec: str, weights: str | None, runs: dict[str, Any]) -> list[dict]:
    """One method's runs of one task, seed after seed (its fused cache is built by the first)."""
    from fusion_perception.downstream.detection import run_detection
    from fusion_perception.downstream.segmentation import run_segmentation

    out: Path = runs["out"]
    label = method_label(spec)
    results = []
    for seed in runs["seeds"]:
        _LOG.info("%s: %s, seed %d", task, label, seed)
        common = dict(config=runs["det_config"] if task == "det" else runs["seg_config"], seed=seed, weights=weights,
                      device=runs["device"], fused_dir=out / "fused" / task / label, progress=runs["progress"],
                      overwrite=runs["overwrite"])
        if task == "det":
            r = run_detection(runs["det_data"], spec, out / "det" / label / f"seed{seed}",
                              split_dir=out / "det" / "splits" / f"seed{seed}", **common)
        else:
            r = run_segmentation(runs["seg_data"], spec, out / "seg" / label / f"seed{seed}", **common)
        results.append(r)
    return results


def _run_units(
    units: Sequence[tuple[str, str, str | None]], runs: dict[str, Any], jobs: int
) -> dict[tuple[str, str], list[dict]]:
    """Run every (task, method) unit, in this process or in ``jobs`` worker processes."""
    if jobs == 1 or len(units) == 1:
        return {(t, spec): run_unit(t, spec, w, runs) for t, spec, w in units}
    from fusion_perception.data.synthetic import ensure_default

    for t in sorted({t for t, _, _ in units if runs[f"{t}_data"] is None}):
        ensure_default(t)  # here, not in two workers at once
    threads = max(1, (os.cpu_count() or 1) // jobs)
    done: dict[tuple[str, str], list[dict]] = {}
    # Idle OpenMP threads must sleep, not spin, when processes share the cores; torch reads this
    # when it loads, so the (spawned, clean) workers inherit it from the environment.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    quiet = {**runs, "progress": False}  # progress bars of parallel runs would interleave
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker, initargs=(threads, logging.getLogger().level or logging.INFO),
    ) as pool:
        futures = {pool.submit(run_unit, t, spec, w, quiet): (t, spec) for t, spec, w in units}
        try:
            for fut in as_completed(futures):
                t, spec = futures[fut]
                done[(t, spec)] = fut.result()
                _LOG.info("%s: %s finished (%d of %d)", t, method_label(spec), len(done), len(units))
        except BaseException:
            pool.shutdown(cancel_futures=True)  # finish the running units, start no more
            raise
    return done


def _init_worker(threads: int, level: int) -> None:
    import torch

    torch.set_num_threads(threads)
    logging.basicConfig(level=level, format="[%(processName)s] %(message)s")


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
