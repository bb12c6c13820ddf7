"""Method-against-method tables: mean ± std across seeds, best and second best marked.

Input is a list of run results (the ``results.json`` each run of a task writes); output is
Markdown, CSV and JSON in the task's layout (its ``columns``: the paper's Table 3 / Table 4), with,
where a comparison made one, each method's paired difference to a reference method
(:mod:`fusion_perception.comparison.paired`) as the last column.
Which columns a run's results fill is the task's to say (:meth:`fusion_perception.runs.Task.table_values`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

from fusion_perception.registry import TASKS

if TYPE_CHECKING:
    from fusion_perception.comparison.paired import PairedColumn


@dataclass(frozen=True)
class Cell:
    """One table entry: mean and sample standard deviation over ``n`` seeds (values 0..1)."""

    mean: float
    std: float
    n: int

    @property
    def defined(self) -> bool:
        return self.n > 0 and not math.isnan(self.mean)


def run_values(result: dict) -> dict[str, float]:
    """The table columns of one run's ``results.json`` (fractions in 0..1; NaN where undefined)."""
    task = TASKS.get(result["task"])
    if task is None:
        raise ValueError(f"unknown task {result['task']!r} in a results file")
    return task().table_values(result)


def aggregate(results: Iterable[dict], columns: Sequence[str]) -> dict[str, dict[str, Cell]]:
    """Group runs by method label and reduce each column to mean ± std over seeds.

    Methods keep the order in which they first appear; a NaN value (class absent from a
    test split) is left out of that column's statistics.
    """
    grouped: dict[str, list[dict[str, float]]] = {}
    for r in results:
        grouped.setdefault(r["label"], []).append(run_values(r))
    table: dict[str, dict[str, Cell]] = {}
    for label, runs in grouped.items():
        row = {}
        for col in columns:
            vals = [v[col] for v in runs if not math.isnan(v.get(col, math.nan))]
            if not vals:
                row[col] = Cell(math.nan, math.nan, 0)
                continue
            mean = sum(vals) / len(vals)
            std = math.sqrt(sum((x - mean) ** 2 for x in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
            row[col] = Cell(mean, std, len(vals))
        table[label] = row
    return table


def ranks(table: dict[str, dict[str, Cell]], column: str) -> dict[str, int]:
    """1 for the best method in a column, 2 for the second best (ties share a rank); higher is better."""
    means = sorted({round(r[column].mean, 12) for r in table.values() if r[column].defined}, reverse=True)
    out = {}
    for label, row in table.items():
        if row[column].defined:
            out[label] = means.index(round(row[column].mean, 12)) + 1
    return out


def format_cell(cell: Cell, percent: bool = True, digits: int = 1) -> str:
    if not cell.defined:
        return "–"
    scale = 100.0 if percent else 1.0
    text = f"{cell.mean * scale:.{digits}f}"
    if cell.n > 1:
        text += f" ± {cell.std * scale:.{digits}f}"
    return text


def markdown_table(
    table: dict[str, dict[str, Cell]], columns: Sequence[str], percent: bool = True, digits: int = 1,
    first_header: str = "Method", paired: PairedColumn | None = None,
) -> str:
    """A Markdown table; the best value of each column in **bold**, the second best in _italics_;
    with ``paired``, a last column of each method's difference to the reference and its interval."""
    from fusion_perception.comparison.paired import column_note, difference_cell

    rank = {c: ranks(table, c) for c in columns}
    extra = [f"Δ {paired.metric} vs {paired.reference}"] if paired is not None else []
    lines = [
        "| " + " | ".join((first_header, *columns, *extra)) + " |",
        "|" + "---|" * (len(columns) + len(extra) + 1),
    ]
    for label, row in table.items():
        cells = []
        for c in columns:
            text = format_cell(row[c], percent, digits)
            r = rank[c].get(label)
            cells.append(f"**{text}**" if r == 1 else f"_{text}_" if r == 2 else text)
        if paired is not None:
            cells.append("reference" if label == paired.reference else
                         difference_cell(paired.differences.get(label), percent, digits))
        lines.append("| " + " | ".join((label, *cells)) + " |")
    n = max((cell.n for row in table.values() for cell in row.values()), default=0)
    note = f"Values in %, mean ± std over {n} seeds" if n > 1 else "Values in %"
    if not percent:
        note = "Mean ± std over seeds" if n > 1 else "Values"
    lines.append("")
    lines.append(f"{note}; **best**, _second best_.")
    if paired is not None:
        lines += column_note(paired, n)
    return "\n".join(lines)


PAIRED_CSV = ("reference", "difference", "difference_low", "difference_high", "p_value")


def csv_table(table: dict[str, dict[str, Cell]], columns: Sequence[str], paired: PairedColumn | None = None) -> str:
    """Mean and std of each column per method; with ``paired``, the difference to the reference, its
    interval and p-value (empty where there is none)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["method"] + [f"{c}{suffix}" for c in columns for suffix in ("_mean", "_std")] + ["seeds"]
               + (list(PAIRED_CSV) if paired is not None else []))
    for label, row in table.items():
        n = max((row[c].n for c in columns), default=0)
        extra = []
        if paired is not None:
            d = paired.differences.get(label)
            extra = [paired.reference] + ([f"{v:.6f}" for v in (d.difference, d.low, d.high, d.p_value)]
                                          if d is not None else [""] * 4)
        w.writerow([label] + [f"{v:.6f}" for c in columns for v in (row[c].mean, row[c].std)] + [n] + extra)
    return buf.getvalue()


def json_table(table: dict[str, dict[str, Cell]], columns: Sequence[str], paired: PairedColumn | None = None) -> str:
    """Per method, each column's mean, std and seed count; with ``paired``, ``paired_difference`` too."""
    from fusion_perception.comparison.paired import paired_record

    data = {
        label: {c: {"mean": _nan_none(row[c].mean), "std": _nan_none(row[c].std), "n": row[c].n} for c in columns}
        for label, row in table.items()
    }
    if paired is not None:
        for label in data:
            data[label]["paired_difference"] = paired_record(paired, label)
    return json.dumps(data, indent=2)


def _nan_none(x: float) -> float | None:
    return None if math.isnan(x) else x
