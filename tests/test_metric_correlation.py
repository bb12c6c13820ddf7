"""Spearman's rank correlation between fusion metrics and the downstream score, across methods."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fusion_perception.comparison.metric_correlation import (
    markdown_table, method_scores, rank_correlations, retention_columns, table_column)

MAP = {"ir": 0.40, "vi": 0.20, "mean": 0.30, "max": 0.35}


def test_rank_correlations_by_hand():
    scores = {"ir": {"EN": 7.0, "SD": 1.0, "flat": 1.0}, "vi": {"EN": 5.0, "SD": 4.0, "flat": 1.0},
              "mean": {"EN": 6.0, "SD": 3.0, "flat": 1.0}, "max": {"EN": 6.5, "SD": 2.0, "flat": 1.0}}
    r = rank_correlations(scores, MAP)
    assert r["EN"].rho == pytest.approx(1.0) and r["EN"].n == 4  # the same order as mAP
    assert r["SD"].rho == pytest.approx(-1.0)  # the reverse order
    assert math.isnan(r["flat"].rho)  # a constant metric ranks nothing
    # one tie: ranks 1.5 / 1.5 / 3 / 4 against 4 / 1 / 2 / 3 -> Pearson's r of the ranks, by hand
    scores["vi"]["EN"] = 6.0
    x, y = [4, 1.5, 1.5, 3], [4, 1, 2, 3]
    mx, my = sum(x) / 4, sum(y) / 4
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y))
    expected = cov / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))
    assert rank_correlations(scores, MAP)["EN"].rho == pytest.approx(expected)
    assert rank_correlations({"ir": {"EN": 1.0}, "vi": {"EN": 2.0}}, MAP)["EN"].n == 2  # too few: undefined


def test_retention_combinations():
    c = retention_columns(0.9, 0.5, 30, 10)
    assert c == {"IR-only retention": 0.9, "VI-only retention": 0.5, "retention min": 0.5,
                 "retention mean": pytest.approx(0.7), "retention all": pytest.approx(0.8)}


def test_scores_from_the_comparison_tables(tmp_path: Path):
    quality = {"methods": {m: {"mean": {"EN": v, "SCD": None}} for m, v in zip(MAP, (7.0, 5.0, 6.0, 6.5))}}
    retention = {"methods": {m: {"summary": {"ir": {"mean": v, "n": 3}, "vi": {"mean": 1 - v, "n": 1}}}
                             for m, v in zip(MAP, (1.0, 0.1, 0.5, 0.9))}}
    table = {m: {"mAP@0.5": {"mean": v, "std": 0.0, "n": 3}} for m, v in MAP.items()}
    scores = method_scores(json.loads(json.dumps(quality)), retention)
    assert set(scores["ir"]) == {"EN", "IR-only retention", "VI-only retention", "retention min", "retention mean",
                                 "retention all"}
    r = rank_correlations(scores, table_column(table, "mAP@0.5"))
    assert r["IR-only retention"].rho == pytest.approx(1.0) and r["VI-only retention"].rho == pytest.approx(-1.0)
    md = markdown_table({"real mAP@0.5": r})
    assert "| IR-only retention | +1.00 (p 0.00) |" in md and "n = 4" in md


def _benchmark_module():
    """``benchmarks/msrs_det_benchmark.py``, imported from its path (benchmarks/ is not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "msrs_det_benchmark.py"
    spec = importlib.util.spec_from_file_location("msrs_det_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_benchmark_correlations_join_an_earlier_output_folder(tmp_path):
    """The MSRS benchmark's ``--earlier``: a second output folder's rows win, the first adds its other
    methods, and the correlation is over all of them."""
    bench = _benchmark_module()

    def write(folder: Path, maps: dict[str, float], sd: dict[str, float]) -> Path:
        (folder / "tables").mkdir(parents=True)
        det = {m: {"mAP@0.5": {"mean": v, "std": 0.0, "n": 3}} for m, v in maps.items()}
        quality = {"methods": {m: {"mean": {"SD": sd[m]}} for m in maps}}
        for stem, table in (("det", det), ("fusion_quality", quality)):
            (folder / "tables" / f"{stem}.json").write_text(json.dumps(table))
        return folder

    earlier = write(tmp_path / "a", {"ir": 0.3, "vi": 0.1, "mean": 0.2, "emma": 0.9},
                    {"ir": 1.0, "vi": 3.0, "mean": 2.0, "emma": 0.0})
    later = write(tmp_path / "b", {"ir": 0.3, "emma": 0.05, "tardal": 0.25},
                  {"ir": 1.0, "emma": 4.0, "tardal": 1.5})
    det = bench.merged_table([later, earlier], "det")
    assert sorted(det) == ["emma", "ir", "mean", "tardal", "vi"] and det["emma"]["mAP@0.5"]["mean"] == 0.05
    assert bench.merged_table([later, earlier], "fusion_quality")["methods"]["emma"]["mean"]["SD"] == 4.0
    md = bench.correlations(later, None, [earlier])
    # five methods (no day / night columns here: n 0); SD falls as mAP rises, exactly in rank: rho -1
    assert "| SD | -1.00" in md and "(n = 0, 5)" in md
    alone = bench.correlations(earlier, None)  # the first folder alone: its four methods
    assert "| SD | -1.00" in alone and "(n = 0, 4)" in alone
    # a mistyped --earlier folder stops before any work, naming what is missing
    with pytest.raises(SystemExit) as stop:
        bench.main(["--earlier", str(tmp_path / "typo"), "--out", str(tmp_path / "c")])
    assert stop.value.code == 2 and not (tmp_path / "c").exists()


def test_benchmark_timing_keeps_every_invocation(tmp_path):
    """A re-run that only re-prints the finished tables appends its time; the full run's figure stays
    (and the one-run file an earlier version wrote is kept as the first entry)."""
    bench = _benchmark_module()
    (tmp_path / "timing.json").write_text(json.dumps({"wall_s": 4740.0, "methods": ["ir"]}))  # earlier format
    bench.record_timing(tmp_path, {"wall_s": 42.0, "methods": ["ir", "emma"]})
    runs = bench.record_timing(tmp_path, {"wall_s": 40.0, "methods": ["ir", "emma"]})
    saved = json.loads((tmp_path / "timing.json").read_text())["runs"]
    assert saved == runs and [r["wall_s"] for r in saved] == [4740.0, 42.0, 40.0]
    assert all("finished" in r for r in saved[1:])
