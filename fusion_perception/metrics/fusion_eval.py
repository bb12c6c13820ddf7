"""Score folders of fused images with the fusion-quality metrics, method against method.

``evaluate_fused_folders`` matches each fused folder's images to the source pairs by file
stem (any image extension), reads every source pair once, scores all methods of a pair as one
batch with :func:`~fusion_perception.metrics.fusion_quality.compute_fusion_metrics` (several
pairs at once on worker threads), and
returns per-image values and per-method means; ``write_tables`` writes them as Markdown, CSV
and JSON. ``tools/eval_fusion.py`` and the comparison tool are thin wrappers around the two.

Images are prepared as the reference values in ``shared/fixtures`` were (and as the papers'
evaluation scripts do): read as 3-channel BGR (a gray file replicated), cast to float32,
``cv2.COLOR_BGR2GRAY``, rounded; values stay on the 0..255 scale. Fused colour images go
through the same conversion.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from fusion_perception.files import atomic_write_text
from fusion_perception.data.records import PairDataset
from fusion_perception.devices import torch_device
from fusion_perception.errors import ConfigError, DatasetError, did_you_mean
from fusion_perception.metrics.fused_folders import (
    FUSED_DIR, MANIFEST, FusedFolder, _as_folders, _missing_error, _source_pairs, read_gray255)
from fusion_perception.metrics.fusion_quality import METRIC_NAMES, compute_fusion_metrics
from fusion_perception.metrics.retention_targets import dataset_target_records, labelled_source_records
from fusion_perception.outputs import check_output_dir
from fusion_perception.record import describe_changes, refuse_to_replace

if TYPE_CHECKING:
    from fusion_perception.metrics.retention import RetentionResult
    from fusion_perception.metrics.retention_targets import TargetRule

# ------------------------------------------------------------------------------ evaluation
@dataclass
class FusionEvalResult:
    """Per-image metric values and per-method means of one or more fused folders."""

    metrics: tuple[str, ...]
    source: str
    names: list[str]  # the source pairs scored, in order
    per_image: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # method -> image -> metric
    folders: dict[str, str] = field(default_factory=dict)  # method -> folder

    @property
    def methods(self) -> list[str]:
        return list(self.per_image)

    def mean(self, method: str) -> dict[str, float]:
        """Mean over the images where a metric is defined (NaN where it is defined for none)."""
        rows = list(self.per_image[method].values())
        out = {}
        for m in self.metrics:
            values = [r[m] for r in rows if not math.isnan(r[m])]
            out[m] = float(np.mean(values)) if values else math.nan
        return out

    def undefined(self, method: str) -> dict[str, int]:
        """Per metric, how many images it is undefined for (NaN: too small, or a constant image)."""
        rows = list(self.per_image[method].values())
        return {m: n for m in self.metrics if (n := sum(math.isnan(r[m]) for r in rows))}

    def means(self) -> dict[str, dict[str, float]]:
        return {method: self.mean(method) for method in self.per_image}

    def to_json(self) -> dict:
        """JSON-ready dict; a NaN value (e.g. SCD of a constant image) becomes null."""

        def clean(row: dict[str, float]) -> dict[str, float | None]:
            return {k: None if math.isnan(v) else v for k, v in row.items()}

        return {
            "source": self.source,
            "metrics": list(self.metrics),
            "images": len(self.names),
            "methods": {
                m: {"folder": self.folders.get(m), "mean": clean(self.mean(m)),
                    "per_image": {n: clean(r) for n, r in self.per_image[m].items()}}
                for m in self.per_image
            },
        }


def _parse_metrics(metrics: Sequence[str] | str | None) -> tuple[str, ...]:
    if metrics is None:
        return METRIC_NAMES
    if isinstance(metrics, str):
        metrics = [m for m in metrics.split(",") if m.strip()]
    lookup = {m.lower(): m for m in METRIC_NAMES}
    out = []
    for m in metrics:
        key = m.strip().lower()
        if key not in lookup:
            raise ConfigError(f"unknown metric {m.strip()!r}{did_you_mean(m.strip(), METRIC_NAMES)}; choose from "
                              f"{','.join(METRIC_NAMES)}")
        out.append(lookup[key])
    return tuple(dict.fromkeys(out))


@dataclass
class EvalOptions:
    """How :func:`evaluate_fused_folders` scores (its keyword arguments, by the same names)."""

    layout: str = "auto"
    split: str | None = None
    device: str | torch.device | None = None  # None: the GPU when there is one
    metrics: Sequence[str] | str | None = None
    progress: bool = True
    workers: int | None = None
    out: str | Path | None = None
    overwrite: bool = False
    stem: str = "fusion_metrics"


def evaluate_fused_folders(
    fused: Mapping[str, str | Path] | Sequence[str | Path | tuple[str, str | Path] | FusedFolder],
    source: str | Path | PairDataset | None = None,
    options: EvalOptions | None = None,
    **kwargs,
) -> FusionEvalResult:
    """Score every method's fused images against their source pairs.

    ``fused``: ``{name: folder}``, or folders / ``"NAME=DIR"`` strings / ``(name, folder)``
    tuples (a folder's name defaults to its fuse-stage manifest's label, else the folder name).
    ``source``: the paired dataset root (any layout ``load_dataset`` reads) or a
    :class:`PairDataset`; ``None`` takes the pairs from a fused folder's manifest.
    The options (an :class:`EvalOptions`, or its fields as keyword arguments):
    ``split`` keeps the pairs of that split (ignored where the dataset has no splits).
    ``workers``: pairs read and scored at once, each on its own thread (default: one per CPU
    core); on the CPU each runs torch single-threaded meanwhile.
    A method that lacks some of the pairs' images raises :class:`DatasetError` listing them.
    Images smaller than a metric needs get NaN for it (undefined), not an error.
    ``out``: write the tables there too (:func:`write_tables`); it is checked before any image
    is read, and tables there that score other folders or metrics are replaced only with
    ``overwrite``.
    """
    opts = options if options is not None else EvalOptions(**kwargs)
    if options is not None and kwargs:
        opts = replace(options, **kwargs)
    names_metrics = _parse_metrics(opts.metrics)
    dev = torch.device(torch_device(opts.device))
    out = check_output_dir(opts.out) if opts.out is not None else None
    folders = _as_folders(fused)
    src, pairs = _source_pairs(source, opts.layout, folders)
    if out is not None and not opts.overwrite:
        _refuse_other_tables(out / f"{opts.stem}.json", src, names_metrics, folders)
    pairs = _pairs_to_score(src, pairs, opts.split, folders)
    result = FusionEvalResult(metrics=names_metrics, source=src, names=[p[0] for p in pairs],
                              per_image={f.name: {} for f in folders},
                              folders={f.name: str(f.root) for f in folders})
    _score_pairs(result, folders, pairs, dev, opts)
    if out is not None:
        write_tables(result, out, stem=opts.stem)
    return result


def _pairs_to_score(src: str, pairs: list, split: str | None, folders: list[FusedFolder]) -> list:
    """The pairs of ``split`` (where the dataset has splits); every folder must have them all."""
    if split is not None and any(p[3] is not None for p in pairs):
        pairs = [p for p in pairs if p[3] == split]
        if not pairs:
            raise DatasetError(src, f"no pairs in split {split!r}")
    if not pairs:
        raise DatasetError(src, "the source dataset has no pairs")
    for f in folders:
        missing = [p[0] for p in pairs if p[0] not in f.images]
        if missing:
            raise _missing_error(f, missing, [p[0] for p in pairs])
    return pairs


def _load_pair(pair: tuple[str, Path, Path, str | None], folders: list[FusedFolder]
               ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """A source pair and every method's fused image of it, checked to share one size."""
    name, ir_path, vi_path = pair[:3]
    ir, vi = read_gray255(ir_path), read_gray255(vi_path)
    if ir.shape != vi.shape:
        raise DatasetError(vi_path, f"size {vi.shape[::-1]} differs from its IR image {ir_path} {ir.shape[::-1]}")
    fused_imgs = []
    for f in folders:
        img = read_gray255(f.images[name])
        if img.shape != ir.shape:
            raise DatasetError(f.images[name], f"fused image is {img.shape[1]}x{img.shape[0]}, its source "
                                               f"pair is {ir.shape[1]}x{ir.shape[0]}")
        fused_imgs.append(img)
    return ir, vi, fused_imgs


def _score_pair(pair: tuple[str, Path, Path, str | None], folders: list[FusedFolder], dev: torch.device,
                names_metrics: tuple[str, ...]) -> dict[str, list[float]]:
    # All methods of a pair in one batch against the pair itself (batch 1): what depends on
    # the sources alone is computed once.
    ir, vi, fused_imgs = _load_pair(pair, folders)
    values = compute_fusion_metrics(torch.from_numpy(ir)[None].to(dev), torch.from_numpy(vi)[None].to(dev),
                                    torch.from_numpy(np.stack(fused_imgs)).to(dev), names_metrics)
    return {k: v.cpu().tolist() for k, v in values.items()}


def _score_pairs(result: FusionEvalResult, folders: list[FusedFolder], pairs: list, dev: torch.device,
                 opts: EvalOptions) -> None:
    """Fill ``result.per_image`` with every pair's values, several pairs at once."""
    # Pairs are scored on worker threads: decoding (OpenCV) and the tensor operations release
    # the GIL, so the threads keep every core busy. One torch thread per worker on the CPU:
    # these are many small operations that intra-op threads would mostly wait on (spinning,
    # on a busy machine, for tens of times longer than the work).
    names_metrics = result.metrics
    n_workers = max(1, opts.workers or os.cpu_count() or 1)
    threads_before = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(1)
    pool = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="fusion-metrics")
    bar = tqdm(total=len(pairs), desc="fusion metrics", unit="pair", disable=not opts.progress)
    try:
        jobs = [pool.submit(_score_pair, p, folders, dev, names_metrics) for p in pairs]
        for pair, job in zip(pairs, jobs):
            host = job.result()
            for i, f in enumerate(folders):
                result.per_image[f.name][pair[0]] = {k: host[k][i] for k in names_metrics}
            bar.update(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        torch.set_num_threads(threads_before)


def _refuse_other_tables(path: Path, source: str, metrics: Sequence[str], folders: list[FusedFolder]) -> None:
    """Tables already at ``path`` that score other folders or metrics are not replaced silently."""
    try:
        old = json.loads(path.read_text())
        before = {"source": old["source"], "metrics": ",".join(old["metrics"]),
                  "folders": {m: v.get("folder") for m, v in old["methods"].items()}}
    except FileNotFoundError:
        return
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        before = {"tables": "unreadable"}
    now = {"source": source, "metrics": ",".join(metrics), "folders": {f.name: str(f.root) for f in folders}}
    if before != now:
        raise refuse_to_replace(path.parent, "fusion-quality tables", describe_changes(before, now))


# ------------------------------------------------------------------------------ tables
def _fmt(v: float) -> str:
    return "–" if math.isnan(v) else f"{v:.4f}"


def markdown_table(result: FusionEvalResult, per_image: bool = False) -> str:
    """The per-method means (and optionally every image's values) as Markdown tables."""
    cols = list(result.metrics)
    head = "| Method | " + " | ".join(cols) + " |\n|---|" + "---:|" * len(cols) + "\n"
    lines = [f"Fusion quality, mean over {len(result.names)} images\n", "\n", head]
    means = result.means()
    for method, mean in means.items():
        lines.append(f"| {method} | " + " | ".join(_fmt(mean[c]) for c in cols) + " |\n")
    if any(math.isnan(v) for mean in means.values() for v in mean.values()):
        # e.g. SCD of ir/vi: F - IR = 0 has no correlation with anything
        lines.append("\n– undefined (a constant image in the metric, e.g. SCD of a source image itself, "
                     "or images too small for it)\n")
    for method, mean in means.items():
        partly = {k: n for k, n in result.undefined(method).items() if not math.isnan(mean[k])}
        if partly:
            counts = ", ".join(f"{k} on {n} of {len(result.names)} images" for k, n in partly.items())
            lines.append(f"\n{method}: means over the images where defined; undefined for {counts}\n")
    if per_image:
        for method, rows in result.per_image.items():
            lines += [f"\n### {method}\n", "\n", head.replace("| Method |", "| Image |")]
            for name, row in rows.items():
                lines.append(f"| {name} | " + " | ".join(_fmt(row[c]) for c in cols) + " |\n")
    return "".join(lines)


def csv_text(result: FusionEvalResult) -> str:
    """One row per method and image, then one ``mean`` row per method."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "image", *result.metrics])
    for method, rows in result.per_image.items():
        for name, row in rows.items():
            w.writerow([method, name, *(repr(row[c]) for c in result.metrics)])
    for method, mean in result.means().items():
        w.writerow([method, "mean", *(repr(mean[c]) for c in result.metrics)])
    return buf.getvalue()


def write_tables(result: FusionEvalResult, out: str | Path, *, stem: str = "fusion_metrics") -> str:
    """Write ``out/{stem}.md`` (means and per image), ``.csv`` and ``.json``; return the means table."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"{stem}.md", markdown_table(result, per_image=True))
    atomic_write_text(out / f"{stem}.csv", csv_text(result))
    atomic_write_text(out / f"{stem}.json", json.dumps(result.to_json(), indent=1))
    return markdown_table(result)


# ------------------------------------------------------------------------------ target retention
def _target_records(source: str | Path | PairDataset | None, layout: str, folders: list[FusedFolder]
                    ) -> list[dict]:
    """Source pairs with their annotations, for :mod:`~fusion_perception.metrics.retention`."""
    if source is not None:
        if isinstance(source, PairDataset):
            ds = source
        else:
            from fusion_perception.data.readers import load_dataset

            ds = load_dataset(source, layout)
        return dataset_target_records(ds)
    folder = next((f for f in folders if f.manifest), None)
    if folder is None:
        raise ConfigError("give the source dataset (--source): no fused folder has a fuse-stage manifest")
    labelled = labelled_source_records(folder.manifest)  # per-modality labels live in the source only
    if labelled is not None:
        return labelled
    run_root = folder.root.resolve().parent if folder.root.resolve().name == FUSED_DIR else folder.root.resolve()
    try:
        return [{"name": e["name"], "ir": e["source"]["ir"], "vi": e["source"]["vi"], "split": e.get("split"),
                 "condition": e.get("condition"), "annotation": run_root / e["annotation"] if e.get("annotation")
                 else None, "boxes": e.get("boxes")} for e in folder.manifest["records"]]
    except (KeyError, TypeError) as e:
        raise DatasetError(run_root / MANIFEST, f"manifest lacks the source pairs ({type(e).__name__}: {e})") from None


def evaluate_target_retention(
    fused: Mapping[str, str | Path] | Sequence[str | Path | tuple[str, str | Path] | FusedFolder],
    source: str | Path | PairDataset | None = None,
    *,
    layout: str = "auto",
    split: str | None = None,
    rule: "TargetRule | None" = None,
    progress: bool = True,
) -> "RetentionResult | None":
    """Target retention of every method (see :mod:`~fusion_perception.metrics.retention`);
    ``None`` when the source has no annotated objects (e.g. plain pair folders)."""
    from fusion_perception.metrics.retention import evaluate_retention
    from fusion_perception.metrics.retention_targets import target_pairs
    from fusion_perception.metrics.retention_targets import TargetRule

    rule = rule or TargetRule()
    folders = _as_folders(fused)
    records = _target_records(source, layout, folders)
    if split is not None and any(r["split"] is not None for r in records):
        records = [r for r in records if r["split"] == split]
    pairs = target_pairs(records, rule)
    if not pairs:
        return None
    for f in folders:
        missing = [p.name for p in pairs if p.name not in f.images]
        if missing:
            raise _missing_error(f, missing, len(pairs))
    return evaluate_retention(pairs, {f.name: f.images for f in folders}, rule, progress=progress)


def write_retention_tables(result: "RetentionResult", out: str | Path, *, stem: str = "target_retention") -> str:
    """Write ``out/{stem}.md``, ``.csv`` and ``.json`` (every object's value); return the Markdown."""
    from fusion_perception.metrics import retention

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md = retention.markdown_table(result)
    atomic_write_text(out / f"{stem}.md", md)
    atomic_write_text(out / f"{stem}.csv", retention.csv_text(result))
    atomic_write_text(out / f"{stem}.json", json.dumps(result.to_json(), indent=1))
    return md
