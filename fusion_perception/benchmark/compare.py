"""Method against method: the detection and segmentation protocols for every method and seed.

Every piece is cached and reused — the fused datasets (by manifest), the splits, and each
finished run (by its ``results.json``) — so an interrupted comparison resumes where it
stopped and a finished one re-renders its tables at once.

Layout of ``out``::

    fused/{det,seg}/<method>/     fused datasets (the preprocessing stage's output)
    det/splits/seed<S>/           the detection split every method shares for seed S
    det/<method>/seed<S>/         one detection run (results.json when finished)
    seg/<method>/seed<S>/         one segmentation run
    tables/                       det.*, seg.*, fusion_quality.* (Markdown, CSV, JSON)
    plots/                        det_map50.png, seg_miou.png, qualitative.png
"""

from __future__ import annotations

import logging
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
from fusion_perception.errors import ConfigError
from fusion_perception.fusion.base import build_fuser, method_label, parse_method_spec

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


def check_methods(specs: Sequence[str], weights: dict[str, str | None]) -> None:
    """Fail before any training when a method cannot be built (unknown name, missing weights)."""
    for spec in specs:
        name, _ = parse_method_spec(spec)
        params = {"weights": weights[spec]} if weights.get(spec) else {}
        build_fuser(spec, "cpu", **params)


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
) -> Comparison:
    """Run the protocols of ``task`` ("det", "seg" or "both") for every method and seed.

    ``det_data``/``seg_data``: M3FD and MSRS roots (``None``: the synthetic default's sets).
    ``weights``: fusion checkpoints by method label (e.g. ``{"emma": "EMMA.pth"}``).
    ``samples``: names for the qualitative grid (default: the first test images).
    """
    from fusion_perception.downstream.detection import run_detection
    from fusion_perception.downstream.segmentation import run_segmentation

    tasks = TASKS if task == "both" else (task,)
    if any(t not in TASKS for t in tasks):
        raise ConfigError(f"task must be det, seg or both, not {task!r}")
    specs = parse_methods(methods)
    per_method_weights = method_weights(specs, weights)
    check_methods(specs, per_method_weights)
    out = Path(out)
    comparison = Comparison()
    if det_config is None and device == "cpu" and "det" in tasks:
        # As segmentation does: the paper's 400-epoch recipe is for GPUs.
        _LOG.info("detection on CPU: using configs/det/small_cpu.py (pass --det-config for another)")
        det_config = "small_cpu"

    for t in tasks:
        results = []
        for spec in specs:
            label = method_label(spec)
            for seed in seeds:
                _LOG.info("%s: %s, seed %d", t, label, seed)
                common = dict(
                    config=det_config if t == "det" else seg_config, seed=int(seed),
                    weights=per_method_weights[spec], device=device,
                    fused_dir=out / "fused" / t / label, progress=progress,
                )
                if t == "det":
                    r = run_detection(det_data, spec, out / "det" / label / f"seed{seed}",
                                      split_dir=out / "det" / "splits" / f"seed{seed}", **common)
                else:
                    r = run_segmentation(seg_data, spec, out / "seg" / label / f"seed{seed}", **common)
                results.append(r)
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
        comparison.files += [out / "tables" / f"fusion_quality.{ext}" for ext in ("md", "csv", "json")]
    comparison.files.append(qualitative_figure(fused_roots, out / "plots" / "qualitative.png", samples))
    return comparison


def _write_table(stem: Path, table: dict, columns: Sequence[str], md: str) -> list[Path]:
    files = {stem.with_suffix(".md"): md + "\n", stem.with_suffix(".csv"): csv_table(table, columns),
             stem.with_suffix(".json"): json_table(table, columns)}
    for path, text in files.items():
        atomic_write_text(path, text)
    return list(files)


def fusion_quality_table(fused_roots: dict[str, Path], stem: Path, progress: bool = True) -> str:
    """The nine fusion-quality metrics per method over the fused test images (Markdown)."""
    from fusion_perception.metrics.fusion_eval import evaluate_fused_folders, write_tables

    result = evaluate_fused_folders(fused_roots, split="test", progress=progress)
    return write_tables(result, stem.parent, stem=stem.name)


def qualitative_figure(
    fused_roots: dict[str, Path], path: Path, samples: Sequence[str] | None = None, count: int = 3
) -> Path:
    """IR | VI | each method's fused image for a few test samples."""
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
        {label: [by_name[label][n] for n in names] for label in datasets},
        path,
    )


def _source_pairs(fused: Any) -> dict[str, tuple[Path, Path]]:
    """name -> (ir path, vi path) of the source pair, as the fuse stage's manifest records it."""
    return {e["name"]: (Path(e["source"]["ir"]), Path(e["source"]["vi"])) for e in fused.manifest["records"]}
