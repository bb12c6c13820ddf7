"""Method against method: every registered task's protocol (detection, segmentation) for every method and seed.

The comparison knows tasks only through :class:`fusion_perception.runs.Task`: where a task's data
is, how its dataset is fused, its table's columns and headline metric, its options in a
comparison. A new task is one new package and runs here unchanged.

Every piece is cached and reused — the fused datasets (by manifest), the splits, and each
finished run (by its ``results.json``) — so an interrupted comparison resumes where it
stopped and a finished one re-renders its tables at once.

Layout of ``out`` (the fused datasets live in the shared cache, ``work_dirs/fused/<method>/<dataset>``)::

    det/splits/seed<S>/           the detection split every method shares for seed S
    <task>/<method>/seed<S>/      one run (results.json when finished): det/, seg/
    tables/                       <task>.*, fusion_quality.*, target_retention.* (Markdown, CSV, JSON); each
                                  task's table ends with every method's paired difference to a reference
    logs/compare.log              the libraries' output that reached this process (each run has its run.log)
    plots/                        <task>_<metric>.png (det_map50, seg_miou), qualitative.png
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from fusion_perception.comparison.jobs import Jobs
from fusion_perception.comparison.paired import BootstrapSettings, paired_column, pooled_means
from fusion_perception.comparison.plots import bar_chart, qualitative_grid
from fusion_perception.comparison.tables import aggregate, csv_table, json_table, markdown_table
from fusion_perception.data.layouts import merge_layout_spec
from fusion_perception.devices import process_device, resolve_device
from fusion_perception.files import atomic_write_text
from fusion_perception.errors import ConfigError
from fusion_perception.fusion.base import method_label, parse_method_spec
from fusion_perception.outputs import check_output_dir
from fusion_perception.record import folder_lock
from fusion_perception.runs import RunRequest, Task, get_task

_LOG = logging.getLogger(__name__)
ALL_TASKS = "both"  # the command line's word for every registered task (detection and segmentation)


@dataclass
class Comparison:
    """What a comparison produced: per-task results and tables, and the files written."""

    results: dict[str, list[dict]] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)  # task or "fusion_quality" -> Markdown
    files: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # fusion, training, scoring, bootstrap (seconds)


@dataclass
class ComparisonSettings:
    """How a comparison runs. ``data``, ``layouts`` and ``configs`` are by task name (``None``: the
    synthetic default's dataset, the task's own layout, the task's config for the device); ``weights``
    by method label."""

    task: str | Sequence[str] = ALL_TASKS  # a task, several, or "both" (every registered task)
    data: dict[str, str | Path | None] = field(default_factory=dict)
    layouts: dict[str, str] = field(default_factory=dict)  # layout specs, e.g. {"det": "auto:label_view=fusion"}
    configs: dict[str, Any] = field(default_factory=dict)
    seeds: Sequence[int] = (0,)
    weights: dict[str, str] | None = None
    device: str | None = None  # None: the GPU when there is one (fusion_perception.devices)
    samples: Sequence[str] | None = None  # names for the qualitative grid (default: the first test images)
    quality: bool = True
    progress: bool = True
    jobs: int = 1
    overwrite: bool = False
    fused_root: str | Path | None = None
    verbose: bool = False
    # the paired bootstrap: every method against ``reference`` (None: the better of ir and vi)
    reference: str | None = None
    resamples: int = 1000  # per seed pair; 0: no difference column
    bootstrap_seed: int = 0

    @classmethod
    def from_options(cls, **options: Any) -> "ComparisonSettings":
        """The settings from keyword options: this class's fields, and ``<task>_data`` /
        ``<task>_layout`` / ``<task>_config`` for one task's dataset root, layout spec or config
        (``det_data=``, ``det_layout=``, ``seg_config=``)."""
        from fusion_perception.registry import TASKS

        per_task = {"data": "data", "layout": "layouts", "config": "configs"}
        settings = cls(**{k: v for k, v in options.items() if not k.endswith(tuple(f"_{t}" for t in per_task))})
        for key, value in options.items():
            name, _, kind = key.rpartition("_")
            if name and kind in per_task:
                if name not in TASKS:
                    raise TypeError(f"unexpected option {key!r}: no task {name!r} is registered")
                getattr(settings, per_task[kind])[name] = value
        return settings

    def tasks(self) -> list[Task]:
        """The tasks to run, in the registry's order for "both"; unknown names are a ConfigError."""
        from fusion_perception.registry import TASKS

        names = TASKS.names() if self.task == ALL_TASKS else \
            [self.task] if isinstance(self.task, str) else list(self.task)
        if any(n not in TASKS for n in names) or not names:
            raise ConfigError(f"task must be {', '.join(TASKS.names())} or {ALL_TASKS}, not {self.task!r}")
        return [get_task(n) for n in names]


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


def check_reference(reference: str | None, specs: Sequence[str]) -> None:
    """The paired column's reference (``None``: the better of ir and vi) must be a compared method."""
    labels = [method_label(s) for s in specs]
    if reference is not None and reference not in labels:
        raise ConfigError(f"--reference {reference}: not one of the compared methods ({', '.join(labels)})")


def method_weights(specs: Sequence[str], weights: dict[str, str] | None) -> dict[str, str | None]:
    """The fusion checkpoint for each method (``weights`` maps a label to a path)."""
    weights = dict(weights or {})
    unknown = sorted(set(weights) - {method_label(s) for s in specs})
    if unknown:
        raise ConfigError(f"weights given for methods not compared: {', '.join(unknown)}")
    return {s: weights.get(method_label(s)) for s in specs}


def check_methods(specs: Sequence[str], weights: dict[str, str | None],
                  data_roots: Sequence[str | Path | None] = (None,)) -> dict[tuple[str, str | Path | None], Any]:
    """Every method resolved for each of ``data_roots`` (``None``: the synthetic default), so that
    one that cannot be (unknown name, missing or wrong weights) fails before any training."""
    from fusion_perception.fusion.method import resolve_method

    return {(spec, root): resolve_method(spec, weights.get(spec), root) for spec in specs for root in data_roots}


@dataclass
class _Units:
    """What every fusion and run of a comparison shares (sent to the worker processes)."""

    out: Path
    settings: ComparisonSettings
    sources: dict[str, Path]  # task name -> the dataset root it reads
    fused_dirs: dict[tuple[str, str], Path]  # (task name, method) -> its fused folder
    weights: dict[str, str | None]  # method -> its fusion checkpoint
    seeds: tuple[int, ...]


def compare_methods(methods: str | Sequence[str], out: str | Path, settings: ComparisonSettings | None = None,
                    **options: Any) -> Comparison:
    """Run the protocols of the tasks (``settings.task``: "det", "seg" or "both") for every method and seed.

    ``settings`` (or its fields as keyword ``options``, with ``det_data``/``seg_data`` for the
    M3FD and MSRS roots, ``det_layout`` for how the first is read (a layout spec such as
    ``auto:label_view=fusion``) and ``det_config``/``seg_config``; see :class:`ComparisonSettings`).
    ``jobs``: fusions, then (task, method, seed) runs, at once in separate processes, each with its
    share of the CPU threads; small CPU runs use one core badly, so two jobs on two cores take
    about half the time. ``fused_root``: where the fused datasets are cached (default: the shared
    cache ``work_dirs/fused`` that every tool reads, :mod:`fusion_perception.fusion.cache`).
    ``overwrite``: replace runs and fused caches made with other settings (refused otherwise).
    The terminal shows a line per stage and progress bars; the runs' library output goes to their
    ``run.log`` files (``verbose``: to the terminal too). ``Comparison.timings`` says where the
    time went.
    """
    from fusion_perception.console import chatter_to

    settings = settings if settings is not None else ComparisonSettings.from_options(**options)
    tasks, units = _plan(methods, out, settings)
    comparison = Comparison()
    specs = list(units.weights)
    t0 = time.perf_counter()
    units.out.mkdir(parents=True, exist_ok=True)
    with folder_lock(units.out, what="comparison"):  # one comparison writes into a folder at a time
        with chatter_to(units.out / "logs" / "compare.log", settings.verbose), Jobs(settings.jobs) as pool:
            fusions = [(t, s) for t in tasks for s in specs]
            pool.run(fuse_unit, [((t, s, units), (t.name, s)) for t, s in fusions], "fuse", "dataset",
                     settings.progress,
                     lambda key, n: f"fuse {method_label(key[1])} ({key[0]}): {n} images in {units.fused_dirs[key]}")
            comparison.timings["fusion"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            runs = [(t, s, seed) for t in tasks for s in specs for seed in units.seeds]
            done = pool.run(run_unit, [((t, s, seed, units), (t.name, s, seed)) for t, s, seed in runs],
                            "train + test", "run", settings.progress, _unit_line)
            comparison.timings["training"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        comparison.timings["bootstrap"] = 0.0
        for task in tasks:
            _task_tables(comparison, task, [done[(task.name, s, seed)] for s in specs for seed in units.seeds],
                         units)
        _figures(comparison, tasks[-1], units)
        comparison.timings["scoring"] = time.perf_counter() - t2 - comparison.timings["bootstrap"]
    return comparison


def _plan(methods: str | Sequence[str], out: str | Path, settings: ComparisonSettings) -> tuple[list[Task], _Units]:
    """Every argument checked before any work; where each task's data and fused images are."""
    from fusion_perception.console import stage
    from fusion_perception.fusion.cache import cache_root, default_fused_dir

    if settings.jobs < 1:
        raise ConfigError(f"jobs must be at least 1, not {settings.jobs}")
    seeds = [int(s) for s in settings.seeds]
    if not seeds or len(set(seeds)) < len(seeds) or any(s < 0 for s in seeds):
        raise ConfigError(f"seeds {list(settings.seeds)}: give different non-negative seeds, each once (a seed "
                          "run twice is the same run: counted twice, it would shrink the spread)")
    tasks = settings.tasks()
    specs = parse_methods(methods)
    check_reference(settings.reference, specs)
    weights = method_weights(specs, settings.weights)
    resolved = check_methods(specs, weights, [settings.data.get(t.name) for t in tasks])
    settings.device = resolve_device(settings.device)
    out = check_output_dir(out)
    for task in tasks:
        if settings.configs.get(task.name) is None and settings.device == "cpu" and task.cpu_config_note:
            if settings.progress:
                stage(task.cpu_config_note)  # the paper's recipes are for GPUs
    sources = {t.name: t.source_root(settings.data.get(t.name)) for t in tasks}
    cache = Path(settings.fused_root) if settings.fused_root is not None else cache_root()
    fused_dirs = {(t.name, s): default_fused_dir(sources[t.name], resolved[(s, settings.data.get(t.name))].cache_label,
                                                 cache) for t in tasks for s in specs}
    return tasks, _Units(out, settings, sources, fused_dirs, weights, tuple(seeds))


def _task_tables(comparison: Comparison, task: Task, results: list[dict], units: _Units) -> None:
    """The task's table (mean ± std over seeds, each method's paired difference to the reference) in
    Markdown, CSV and JSON, and its bar chart."""
    out, s = units.out, units.settings
    comparison.results[task.name] = results
    columns = task.table_columns(results)
    table = aggregate(results, columns)
    paired = paired_column(task, results, pooled_means(table, task.metric),
                           BootstrapSettings(s.reference, s.resamples, s.bootstrap_seed))
    comparison.timings["bootstrap"] += paired.seconds if paired is not None else 0.0
    comparison.tables[task.name] = markdown_table(table, columns, paired=paired)
    comparison.files += _write_table(out / "tables" / task.name, table, columns, comparison.tables[task.name], paired)
    comparison.files.append(bar_chart(table, task.metric, out / "plots" / f"{task.name}_{task.plot_stem}.png",
                                      task.title))


def _figures(comparison: Comparison, shown_task: Task, units: _Units) -> None:
    """The fusion-quality tables and the qualitative grid, on the fused images of ``shown_task``
    (the last task run: the segmentation set's test images when both run)."""
    settings, specs = units.settings, list(units.weights)
    shown_roots = {method_label(s): units.fused_dirs[(shown_task.name, s)] for s in specs}
    tables = units.out / "tables"
    if settings.quality:
        comparison.tables["fusion_quality"] = fusion_quality_table(shown_roots, tables / "fusion_quality",
                                                                   progress=settings.progress)
        comparison.files += [p for stem in ("fusion_quality", "target_retention") for ext in ("md", "csv", "json")
                             if (p := tables / f"{stem}.{ext}").is_file()]
    # ir and vi would repeat the grid's IR and VI source columns
    shown = [method_label(s) for s in specs if parse_method_spec(s)[0] not in ("ir", "vi")]
    comparison.files.append(qualitative_figure(shown_roots, units.out / "plots" / "qualitative.png",
                                               settings.samples, shown))


def fuse_unit(task: Task, spec: str, units: _Units) -> int:
    """Fuse one method's copy of one task's dataset into the shared cache (reused when it matches)."""
    from fusion_perception.fusion.method import resolve_method
    from fusion_perception.fusion.stage import fuse_dataset

    method = resolve_method(spec, units.weights[spec], units.settings.data.get(task.name))
    layout = merge_layout_spec(units.settings.layouts.get(task.name, "auto"), task.fuse_layout)
    fused = fuse_dataset(units.sources[task.name], method, units.fused_dirs[(task.name, spec)],
                         layout=layout, device=process_device(units.settings.device),
                         on_mismatch="replace" if units.settings.overwrite else "error", progress=False)
    return len(fused)


def run_unit(task: Task, spec: str, seed: int, units: _Units) -> dict:
    """One run: a method's model of ``task`` for one seed, on its (already fused) dataset."""
    settings = units.settings
    # GPU ids ("0", "0,1"): their own device string for a task that takes them (detection: ultralytics' DDP over
    # several), the first GPU for the others, which run one process here
    device = settings.device if task.gpu_ids else process_device(settings.device)  # checked by _plan
    request = RunRequest(
        data=units.sources[task.name], layout=settings.layouts.get(task.name, "auto"), method=spec,
        out=units.out / task.name / method_label(spec) / f"seed{seed}",
        config=settings.configs.get(task.name), seed=seed, weights=units.weights[spec], device=device,
        fused_dir=units.fused_dirs[(task.name, spec)], progress=False, overwrite=settings.overwrite,
        verbose=settings.verbose, options=task.options_type(**task.comparison_options(units.out, seed)))
    return task.run(request)


def _unit_line(key: tuple[str, str, int], r: dict) -> str:
    name, spec, seed = key
    return f"{name} {method_label(spec)} seed {seed}: {get_task(name).summary(r)}"


def _write_table(stem: Path, table: dict, columns: Sequence[str], md: str, paired: Any = None) -> list[Path]:
    files = {stem.with_suffix(".md"): md + "\n", stem.with_suffix(".csv"): csv_table(table, columns, paired),
             stem.with_suffix(".json"): json_table(table, columns, paired)}
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
    from fusion_perception.fusion.manifest import load_fused_dataset

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
