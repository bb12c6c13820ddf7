"""Comparison tables: mean ± std over seeds, best and second best marked (results fixture)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fusion_perception.comparison.plots import bar_chart
from fusion_perception.comparison.tables import aggregate, csv_table, json_table, markdown_table
from fusion_perception.data.records import M3FD_CLASSES, MSRS_CLASSES
from fusion_perception.runs import get_task

# the tables' columns as the tasks give them for M3FD's and MSRS's classes
DET_COLUMNS = get_task("det").table_columns([{"classes": list(M3FD_CLASSES)}])
SEG_COLUMNS = get_task("seg").table_columns([{"classes": list(MSRS_CLASSES)}])


def det_result(label: str, seed: int, mean: float, per_class: dict[str, float] | None = None) -> dict:
    per = {c: mean for c in M3FD_CLASSES}
    per.update(per_class or {})
    return {"task": "det", "method": label, "label": label, "seed": seed, "mAP50": mean,
            "mAP50_95": mean / 2, "per_class_AP50": per}


@pytest.fixture()
def det_results() -> list[dict]:
    # Three methods, two seeds each. mAP@0.5: ir 0.70/0.72, vi 0.60/0.66, emma 0.80/0.84.
    return [
        det_result("ir", 0, 0.70, {"Bus": 0.90}), det_result("ir", 1, 0.72, {"Bus": 0.90}),
        det_result("vi", 0, 0.60), det_result("vi", 1, 0.66),
        det_result("emma", 0, 0.80), det_result("emma", 1, 0.84),
    ]


def table_rows(md: str) -> dict[str, list[str]]:
    rows = {}
    for line in md.splitlines()[2:]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_mean_std_and_marks(det_results: list[dict]) -> None:
    table = aggregate(det_results, DET_COLUMNS)
    assert list(table) == ["ir", "vi", "emma"]
    cell = table["emma"]["mAP@0.5"]
    assert cell.n == 2 and cell.mean == pytest.approx(0.82)
    assert cell.std == pytest.approx(np.std([0.80, 0.84], ddof=1))

    rows = table_rows(markdown_table(table, DET_COLUMNS))
    m = DET_COLUMNS.index("mAP@0.5")
    # mean ± std in percent; best bold, second italic, third plain
    assert rows["emma"][m] == "**82.0 ± 2.8**"
    assert rows["ir"][m] == "_71.0 ± 1.4_"
    assert rows["vi"][m] == "63.0 ± 4.2"
    # per class: Bus is best for ir (0.90), second for emma (0.82)
    b = DET_COLUMNS.index("Bus")
    assert rows["ir"][b].startswith("**90.0") and rows["emma"][b].startswith("_82.0")


def test_single_seed_has_no_std_and_ties_share_rank() -> None:
    results = [det_result("a", 0, 0.5), det_result("b", 0, 0.5), det_result("c", 0, 0.4)]
    md = markdown_table(aggregate(results, DET_COLUMNS), DET_COLUMNS)
    rows = table_rows(md)
    m = DET_COLUMNS.index("mAP@0.5")
    assert rows["a"][m] == rows["b"][m] == "**50.0**"
    assert rows["c"][m] == "_40.0_"
    assert "±" not in md


def test_seg_nan_class_is_excluded_and_shown_as_dash() -> None:
    per = {c: 0.5 for c in MSRS_CLASSES}
    per["bump"] = math.nan  # absent from both prediction and ground truth
    r = {"task": "seg", "method": "x", "label": "x", "seed": 0, "mIoU": 0.5, "per_class_IoU": per}
    table = aggregate([r], SEG_COLUMNS)
    rows = table_rows(markdown_table(table, SEG_COLUMNS))
    assert rows["x"][SEG_COLUMNS.index("bump")] == "–"
    data = json.loads(json_table(table, SEG_COLUMNS))
    assert data["x"]["bump"]["mean"] is None and data["x"]["mIoU"]["mean"] == 0.5
    assert csv_table(table, SEG_COLUMNS).splitlines()[0].startswith("method,unlabelled_mean")


def test_bar_chart_writes_png(tmp_path, det_results) -> None:
    import cv2

    path = bar_chart(aggregate(det_results, DET_COLUMNS), "mAP@0.5", tmp_path / "bars.png", "Detection")
    img = cv2.imread(str(path))
    assert img is not None and img.shape[0] > 100 and img.shape[1] > 100
