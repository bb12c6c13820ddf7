"""Does a fusion metric predict the downstream score? Spearman's rank correlation across methods.

A comparison writes, per method, the nine fusion-quality metrics (``tables/fusion_quality.json``), the
target retention (``tables/target_retention.json``) and the task's table (``tables/det.json``: mean over
seeds). Across the methods, each metric's ranking is set against the ranking by the downstream score
(mAP@0.5, mIoU): rho near 1, the metric orders the methods as the detector does.

Besides IR-only and VI-only retention, three combinations of the two, fixed before any result was
looked at (benchmarks/msrs_det_notes.md): the worse of the two (``retention min``, EMMA's checkpoint
selection), their mean (``retention mean``) and the mean over every single-modality object
(``retention all``: weighted by how many of each kind there are).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

RETENTION_COLUMNS = ("IR-only retention", "VI-only retention", "retention min", "retention mean", "retention all")


@dataclass(frozen=True)
class RankCorrelation:
    rho: float  # Spearman's rank correlation
    p: float  # its two-sided p-value (no correction for the many metrics)
    n: int  # methods with both values

    def __str__(self) -> str:
        return "–" if math.isnan(self.rho) else f"{self.rho:+.2f} (p {self.p:.2f})"


def rank_correlations(scores: Mapping[str, Mapping[str, float]],
                      target: Mapping[str, float]) -> dict[str, RankCorrelation]:
    """For each column of ``scores`` (method -> column -> value), Spearman's rho against ``target``
    (method -> downstream score) over the methods that have both (fewer than 3: undefined)."""
    from scipy.stats import spearmanr

    columns = list(dict.fromkeys(c for row in scores.values() for c in row))
    out = {}
    for column in columns:
        methods = [m for m in target if _finite(target[m]) and _finite(scores.get(m, {}).get(column))]
        x, y = [scores[m][column] for m in methods], [target[m] for m in methods]
        if len(methods) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
            out[column] = RankCorrelation(math.nan, math.nan, len(methods))
            continue
        rho, p = spearmanr(x, y)
        out[column] = RankCorrelation(float(rho), float(p), len(methods))
    return out


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def retention_columns(ir_only: float, vi_only: float, n_ir: int, n_vi: int) -> dict[str, float]:
    """IR-only and VI-only retention and the three combinations (module docstring)."""
    total = n_ir + n_vi
    return dict(zip(RETENTION_COLUMNS, (ir_only, vi_only, min(ir_only, vi_only), (ir_only + vi_only) / 2,
                                        (ir_only * n_ir + vi_only * n_vi) / total if total else math.nan)))


def method_scores(quality: Mapping, retention: Mapping | None = None) -> dict[str, dict[str, float]]:
    """Per method, the fusion metrics' means and the retention columns, from a comparison's
    ``fusion_quality.json`` and ``target_retention.json`` (as read with ``json.load``)."""
    scores = {m: {k: v for k, v in row["mean"].items() if v is not None} for m, row in quality["methods"].items()}
    for m, row in ((retention or {}).get("methods") or {}).items():
        s = row["summary"]
        scores.setdefault(m, {}).update(retention_columns(s["ir"]["mean"], s["vi"]["mean"], s["ir"]["n"],
                                                          s["vi"]["n"]))
    return scores


def table_column(table: Mapping, column: str) -> dict[str, float]:
    """Method -> the mean of ``column`` in a comparison's task table (``tables/det.json``)."""
    return {m: row[column]["mean"] for m, row in table.items() if row.get(column, {}).get("mean") is not None}


def markdown_table(correlations: Mapping[str, Mapping[str, RankCorrelation]], first: str = "Fusion metric") -> str:
    """One row per metric, one column per downstream score (``correlations``: heading -> metric -> rho)."""
    headings = list(correlations)
    metrics: Sequence[str] = list(dict.fromkeys(m for c in correlations.values() for m in c))
    lines = ["| " + " | ".join((first, *headings)) + " |", "|---|" + "---:|" * len(headings)]
    for metric in metrics:
        cells = [str(correlations[h].get(metric, RankCorrelation(math.nan, math.nan, 0))) for h in headings]
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    ns = sorted({c.n for col in correlations.values() for c in col.values()})
    lines.append(f"\nSpearman's rho across methods (n = {', '.join(map(str, ns))}), two-sided p-value.")
    return "\n".join(lines)


__all__ = ["RETENTION_COLUMNS", "RankCorrelation", "markdown_table", "method_scores", "rank_correlations",
           "retention_columns", "table_column"]
