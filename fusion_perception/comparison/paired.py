"""Every method against a reference method on the same test images: the tables' difference column.

For each method, its runs are paired with the reference's by training seed, and the headline metric
of both is recomputed on the same bootstrap resamples of the test images
(:mod:`fusion_perception.metrics.bootstrap`). The reference is the better single modality (IR or
VI) on the headline metric unless one is named. A run without per-image results (a segmentation
run scored before they were kept, say) gets no interval, and the table says why.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from fusion_perception.errors import ConfigError, DatasetError
from fusion_perception.metrics.bootstrap import (
    ImageScores,
    PairedDifference,
    aligned_counts,
    paired_difference,
    resample_counts,
)

__all__ = ["BootstrapSettings", "PairedColumn", "RunSetComparison", "choose_reference", "compare_run_sets", "compare_runs",
           "paired_column", "read_run_set"]

SINGLE_MODALITIES = ("ir", "vi")


@dataclass(frozen=True)
class BootstrapSettings:
    """The paired bootstrap of a comparison: the reference method's label (``None``: the better of
    IR and VI on the headline metric), resamples per seed pair (0: none), its seed, the interval."""

    reference: str | None = None
    resamples: int = 1000
    seed: int = 0
    confidence: float = 0.95


@dataclass
class PairedColumn:
    """Each method's difference to ``reference`` on ``metric`` (``None``: no interval, ``notes`` says why)."""

    reference: str
    metric: str
    differences: dict[str, PairedDifference | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    images: int = 0  # test images per run (the first pair's)
    seconds: float = 0.0  # the bootstrap's time, matching included


def choose_reference(means: Mapping[str, float], reference: str | None = None) -> str | None:
    """``reference`` if it is one of the methods (``means``: headline mean by label), else the better of IR
    and VI; ``None`` when neither was compared."""
    if reference is not None:
        if reference not in means:
            raise ConfigError(f"--reference {reference}: not one of the compared methods ({', '.join(means)})")
        return reference
    singles = [m for m in SINGLE_MODALITIES if m in means and not math.isnan(means[m])]
    return max(singles, key=lambda m: means[m]) if singles else None


def paired_column(task: Any, results: Sequence[dict], means: Mapping[str, float],
                  settings: BootstrapSettings) -> PairedColumn | None:
    """The difference column of ``task``'s table (``results``: every run; ``means``: headline mean by
    label), or ``None`` when there is no reference or no resampling is asked for."""
    reference = choose_reference(means, settings.reference)
    if reference is None or settings.resamples < 1:
        return None
    t0 = time.perf_counter()
    runs: dict[str, dict[int, dict]] = {}
    for r in results:
        runs.setdefault(r["label"], {})[int(r["seed"])] = r
    column = PairedColumn(reference, task.metric)
    scores = _ScoresOnce(task)  # the reference's are read once and shared by every pair
    for label, by_seed in runs.items():
        if label == reference:
            continue
        try:
            column.differences[label] = compare_run_sets(task, by_seed, runs[reference], settings, scores)
        except (DatasetError, NotImplementedError, ValueError) as e:
            column.differences[label], column.notes[label] = None, str(e)
    try:
        column.images = len(scores(next(iter(runs[reference].values()))).images)
    except (DatasetError, NotImplementedError, ValueError):
        column.images = 0
    column.seconds = time.perf_counter() - t0
    return column


def compare_run_sets(task: Any, a: Mapping[int, dict], b: Mapping[int, dict], settings: BootstrapSettings,
                     scores: Callable[[dict], ImageScores] | None = None) -> PairedDifference:
    """A minus B on ``task``'s headline metric: run ``a[s]`` paired with ``b[s]`` for every seed both
    have (``results.json`` contents by seed), the resamples of all pairs pooled. ``scores``: how a
    run's per-image results are read (default: ``task.image_scores``)."""
    scores = scores or task.image_scores
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError(f"no seed in common (seeds {sorted(a)} and {sorted(b)})")
    resampled_a, resampled_b, observed_a, observed_b = [], [], [], []
    for seed in seeds:
        scores_a, scores_b = scores(a[seed]), scores(b[seed])
        names = sorted(scores_b.images)
        counts = resample_counts(len(names), settings.resamples, (settings.seed, seed))
        resampled_a.append(scores_a.resampled(aligned_counts(counts, names, scores_a.images)))
        resampled_b.append(scores_b.resampled(aligned_counts(counts, names, scores_b.images)))
        observed_a.append(task.table_values(a[seed])[task.metric])
        observed_b.append(task.table_values(b[seed])[task.metric])
    return paired_difference(resampled_a, resampled_b, observed_a, observed_b, settings.confidence)


class _ScoresOnce:
    """``task.image_scores`` with each run read once (a failure is remembered too)."""

    def __init__(self, task: Any):
        self.task, self.done = task, {}

    def __call__(self, result: dict) -> ImageScores:
        key = id(result)
        if key not in self.done:
            try:
                self.done[key] = self.task.image_scores(result)
            except (DatasetError, NotImplementedError, ValueError) as e:
                self.done[key] = e
        if isinstance(self.done[key], Exception):
            raise self.done[key]
        return self.done[key]


def difference_cell(d: PairedDifference | None, percent: bool = True, digits: int = 1) -> str:
    """``+7.2 [+1.3, +13.0]†`` (points; † the interval excludes 0), ``–`` for none."""
    if d is None:
        return "–"
    s = 100.0 if percent else 1.0
    text = f"{d.difference * s:+.{digits}f} [{d.low * s:+.{digits}f}, {d.high * s:+.{digits}f}]"
    return text + ("†" if d.excludes_zero else "")


def column_note(column: PairedColumn, seeds: int) -> list[str]:
    """The lines under a table that say what the difference column is, and which runs have none."""
    lines = [f"Δ: difference to {column.reference} in points ({'mean over seeds, ' if seeds > 1 else ''}"
             f"[{100 * _confidence(column):.0f}% interval] of a paired bootstrap over the "
             f"{column.images} test images, resampled {_resamples(column)} times"
             f"{' per seed, pooled' if seeds > 1 else ''}); † the interval excludes 0."]
    reasons: dict[str, list[str]] = {}
    for label, why in column.notes.items():  # the reference's own problem is every method's: said once
        reasons.setdefault(why, []).append(label)
    lines += [f"No interval for {', '.join(labels)}: {why}" for why, labels in reasons.items()]
    return lines


def _confidence(column: PairedColumn) -> float:
    return next((d.confidence for d in column.differences.values() if d is not None), 0.95)


def _resamples(column: PairedColumn) -> int:
    return next((d.resamples for d in column.differences.values() if d is not None), 0)


def paired_record(column: PairedColumn | None, label: str) -> dict[str, Any] | None:
    """The JSON of one method's difference (``None``: no column; the reference marks itself)."""
    if column is None:
        return None
    if label == column.reference:
        return {"reference": label, "is_reference": True}
    d = column.differences.get(label)
    record: dict[str, Any] = {"reference": column.reference, "metric": column.metric}
    if d is None:
        return {**record, "note": column.notes.get(label, "no runs to pair")}
    return {**record, **d.as_dict()}


def pooled_means(table: Mapping[str, Mapping[str, Any]], metric: str) -> dict[str, float]:
    """The headline mean of each method from an aggregated table (its ``Cell.mean``)."""
    return {label: row[metric].mean for label, row in table.items()}


# --------------------------------------------------------------------------- two sets of runs


@dataclass
class RunSetComparison:
    """``compare-runs``: two sets of runs of one task, paired by seed, and A minus B."""

    task: str
    metric: str
    labels: tuple[str, str]
    seeds: tuple[list[int], list[int]]
    means: tuple[float, float]
    images: int
    difference: PairedDifference

    def as_dict(self) -> dict[str, Any]:
        return {"task": self.task, "metric": self.metric, "a": {"label": self.labels[0], "seeds": self.seeds[0],
                "mean": self.means[0]}, "b": {"label": self.labels[1], "seeds": self.seeds[1], "mean": self.means[1]},
                "test_images": self.images, **self.difference.as_dict()}

    def lines(self) -> list[str]:
        d, (a, b) = self.difference, self.labels
        verdict = (f"{a if d.difference > 0 else b} is ahead: the interval excludes 0" if d.excludes_zero
                   else "not resolved: the interval includes 0")
        seeds = "seed" + ("s " if len(self.seeds[0]) > 1 else " ") + ",".join(map(str, self.seeds[0]))
        return [f"{self.task}: {a} against {b}, {seeds}, {self.images} test images",
                f"{self.metric} {100 * self.means[0]:.1f} against {100 * self.means[1]:.1f}: difference "
                f"{difference_cell(d).rstrip('†')} ({100 * d.confidence:.0f}% interval, paired bootstrap, "
                f"{d.resamples} resamples x {d.pairs} pair{'s' if d.pairs > 1 else ''}), p = {d.p_value:.3g}",
                verdict]


def compare_runs(a: Sequence[str | Path], b: Sequence[str | Path],
                 settings: BootstrapSettings = BootstrapSettings()) -> RunSetComparison:
    """Runs ``a`` against runs ``b`` (each a run folder or a folder of run folders, such as a
    comparison's ``det/emma``), paired by seed; one run on each side is paired whatever its seed."""
    from fusion_perception.runs import get_task

    set_a, set_b = read_run_set(a), read_run_set(b)
    tasks = {r["task"] for r in (*set_a.values(), *set_b.values())}
    if len(tasks) != 1:
        raise ConfigError(f"the runs are of different tasks ({', '.join(sorted(tasks))})")
    task = get_task(tasks.pop())
    if len(set_a) == 1 and len(set_b) == 1:
        pair_a, pair_b = {0: next(iter(set_a.values()))}, {0: next(iter(set_b.values()))}
    else:
        pair_a, pair_b = set_a, set_b
    try:
        difference = compare_run_sets(task, pair_a, pair_b, settings)
    except ValueError as e:
        raise ConfigError(f"cannot pair the runs: {e}") from None
    seeds = sorted(set(pair_a) & set(pair_b))
    used_a, used_b = [pair_a[s] for s in seeds], [pair_b[s] for s in seeds]
    means = tuple(sum(task.table_values(r)[task.metric] for r in rs) / len(rs) for rs in (used_a, used_b))
    return RunSetComparison(task.name, task.metric, (used_a[0]["label"], used_b[0]["label"]),
                            ([int(r["seed"]) for r in used_a], [int(r["seed"]) for r in used_b]), means,
                            len(task.image_scores(used_b[0]).images), difference)


def read_run_set(folders: Sequence[str | Path]) -> dict[int, dict]:
    """The finished runs in ``folders`` (each a run folder or a folder of them), by seed."""
    from fusion_perception.record import RESULTS_FILE, read_results

    runs: dict[int, dict] = {}
    for folder in map(Path, folders):
        found = [folder] if (folder / RESULTS_FILE).is_file() else sorted(
            p.parent for p in folder.glob(f"*/{RESULTS_FILE}")) if folder.is_dir() else []
        if not found:
            raise DatasetError(folder, "no finished run here (no results.json in it or in its sub-folders)")
        for run in found:
            result = read_results(run)
            if not isinstance(result, dict) or "seed" not in result or "task" not in result:
                raise DatasetError(run / RESULTS_FILE, "not a run's results")
            if int(result["seed"]) in runs:
                raise ConfigError(f"{run}: a second run of seed {result['seed']} on one side")
            runs[int(result["seed"])] = result
    return runs
