"""Detection metrics: pycocotools' numbers through the project's evaluation code, checked by hand."""

from __future__ import annotations

import json
import math

import pytest

from fusion_perception.data.records import M3FD_CLASSES, Box
from fusion_perception.metrics.detection import (
    Detection,
    ImageEntry,
    coco_detections,
    coco_ground_truth,
    evaluate_coco,
    evaluate_detections,
    evaluate_groups,
)
from fusion_perception.detection.report import table3_header, table3_row

CLASSES = ("A", "B", "C")


def _images() -> list[ImageEntry]:
    return [
        ImageEntry(1, "one.png", 100, 100, [Box("A", 0, 0, 10, 10), Box("A", 50, 50, 70, 70)]),
        ImageEntry(2, "two.png", 100, 100, [Box("B", 20, 20, 40, 40)]),
    ]


def test_perfect_predictions_score_one() -> None:
    images = _images()
    dets = [Detection(img.image_id, CLASSES.index(b.label), 0.9, b.x1, b.y1, b.x2, b.y2)
            for img in images for b in img.boxes]
    r = evaluate_detections(images, dets, CLASSES)
    assert r["mAP50"] == pytest.approx(1.0)
    assert r["mAP50_95"] == pytest.approx(1.0)
    assert r["per_class_AP50"] == {"A": pytest.approx(1.0), "B": pytest.approx(1.0), "C": None}
    assert r["num_instances"] == {"A": 2, "B": 1, "C": 0}


def test_hits_and_misses_match_hand_computed_ap() -> None:
    # Class A: 2 GT boxes in image 1. Predictions, best first: an exact hit (0.9), then a box on
    # empty ground (0.8). Precision/recall after each: (1.0, 0.5), (0.5, 0.5). COCO makes
    # precision monotone from the right -> [1.0, 0.5] and samples it at the 101 recall points
    # 0.00, 0.01, ..., 1.00: points r <= 0.5 (51 of them) take the first precision with recall
    # >= r, i.e. 1.0; points above 0.5 are never reached, 0. AP@0.5 = 51/101. The hit is exact,
    # so every IoU threshold gives the same: AP@[.5:.95] = 51/101 too.
    # Class B: 1 GT (20,20)-(40,40); one prediction (20,20)-(40,32.4): IoU = 12.4*20/400 = 0.62,
    # a hit at IoU thresholds 0.50, 0.55, 0.60 (AP 1 each) and a miss at the 7 others (AP 0):
    # AP@0.5 = 1, AP@[.5:.95] = 3/10.
    # Class C: no GT and no prediction: left out of the means, reported as None.
    images = _images()
    dets = [
        Detection(1, 0, 0.9, 0, 0, 10, 10),
        Detection(1, 0, 0.8, 80, 80, 90, 90),
        Detection(2, 1, 0.7, 20, 20, 40, 32.4),
    ]
    r = evaluate_detections(images, dets, CLASSES)
    ap_a = 51 / 101
    assert r["per_class_AP50"]["A"] == pytest.approx(ap_a)
    assert r["per_class_AP50"]["B"] == pytest.approx(1.0)
    assert r["per_class_AP50"]["C"] is None
    assert r["per_class_AP50_95"]["A"] == pytest.approx(ap_a)
    assert r["per_class_AP50_95"]["B"] == pytest.approx(0.3)
    assert r["mAP50"] == pytest.approx((ap_a + 1.0) / 2)
    assert r["mAP50_95"] == pytest.approx((ap_a + 0.3) / 2)


def test_false_positive_ranked_first_halves_precision() -> None:
    # Same boxes as class A above but the false positive scores higher: precision/recall
    # (0, 0), (0.5, 0.5) -> interpolated precision 0.5 up to recall 0.5: AP = 0.5 * 51/101.
    images = _images()[:1]
    dets = [Detection(1, 0, 0.9, 80, 80, 90, 90), Detection(1, 0, 0.8, 0, 0, 10, 10)]
    r = evaluate_detections(images, dets, CLASSES)
    assert r["per_class_AP50"]["A"] == pytest.approx(0.5 * 51 / 101)


def test_wrong_class_and_empty_predictions_score_zero() -> None:
    images = _images()
    wrong = [Detection(2, 0, 0.9, 20, 20, 40, 40)]  # right box, class A instead of B
    r = evaluate_detections(images, wrong, CLASSES)
    assert r["per_class_AP50"]["B"] == pytest.approx(0.0)
    assert r["per_class_AP50"]["A"] == pytest.approx(0.0)
    r = evaluate_detections(images, [], CLASSES)
    assert r["mAP50"] == 0.0 and r["per_class_AP50"] == {"A": 0.0, "B": 0.0, "C": None}


def test_coco_structures() -> None:
    gt = coco_ground_truth(_images(), CLASSES)
    assert [c["id"] for c in gt["categories"]] == [1, 2, 3]
    assert gt["annotations"][0]["bbox"] == [0.0, 0.0, 10.0, 10.0]
    assert all(a["id"] > 0 for a in gt["annotations"])
    dt = coco_detections([Detection(2, 1, 0.5, 1, 2, 4, 8)])
    assert dt == [{"image_id": 2, "category_id": 2, "bbox": [1.0, 2.0, 3.0, 6.0], "score": 0.5}]
    json.dumps(gt), json.dumps(dt)  # both serialise as they are
    with pytest.raises(ValueError, match="'Dog'"):
        coco_ground_truth([ImageEntry(1, "x.png", 10, 10, [Box("Dog", 0, 0, 5, 5)])], CLASSES)
    # pycocotools' loadRes must not have mutated our list (it adds area/id in place)
    r = evaluate_coco(gt, dt, CLASSES)
    assert "area" not in dt[0] and math.isfinite(r["mAP50"])


def test_table3_row_order_and_percent() -> None:
    per = {"People": 0.5, "Car": 0.9, "Bus": 0.123, "Motorcycle": None, "Lamp": 0.25, "Truck": 1.0}
    row = table3_row("emma", {"per_class_AP50": per, "mAP50": 0.5556}, M3FD_CLASSES)
    assert row == "| emma | 12.3 | 90.0 | 25.0 | – | 50.0 | 100.0 | 55.6 |"
    head = table3_header(M3FD_CLASSES).splitlines()[0]
    assert head == "| Method | Bus | Car | Lamp | Motorcycle | People | Truck | mAP@0.5 |"
    assert set(per) == set(M3FD_CLASSES)


@pytest.mark.parametrize("width, hit", [(50.5, True), (49.5, False)])
def test_map50_is_decided_at_iou_one_half(width: float, hit: bool) -> None:
    """Pinned (issue 24): a prediction inside a 100x100 box, ``width`` wide, has IoU width/100: just
    above 0.5 a hit (AP@0.5 1), just below a miss (AP@0.5 0), on both sides of the threshold."""
    images = [ImageEntry(1, "one.png", 200, 200, [Box("A", 0, 0, 100, 100)])]
    r = evaluate_detections(images, [Detection(1, 0, 0.9, 0, 0, width, 100)], CLASSES)
    assert r["mAP50"] == pytest.approx(1.0 if hit else 0.0)
    assert r["per_class_AP50"]["A"] == pytest.approx(1.0 if hit else 0.0)
    assert r["mAP50_95"] == pytest.approx(0.1 if hit else 0.0)  # a hit at 0.50 only, of the ten thresholds


def test_groups_of_images_are_scored_on_their_own() -> None:
    # image 1 (day): both A boxes found; image 2 (night): its B box missed, a wrong A box instead
    images = _images()
    dets = [Detection(1, 0, 0.9, 0, 0, 10, 10), Detection(1, 0, 0.8, 50, 50, 70, 70),
            Detection(2, 0, 0.7, 20, 20, 40, 40)]
    gt, dt = coco_ground_truth(images, CLASSES), coco_detections(dets)
    groups = evaluate_groups(gt, dt, CLASSES, {1: "day", 2: "night"})
    assert groups["day"]["mAP50"] == pytest.approx(1.0) and groups["day"]["per_class_AP50"]["B"] is None
    assert groups["night"]["mAP50"] == pytest.approx(0.0) and groups["night"]["num_images"] == 1
    assert groups["night"]["per_class_AP50"] == {"A": None, "B": 0.0, "C": None}
    assert list(evaluate_groups(gt, dt, CLASSES, {1: "day"})) == ["day"]  # ungrouped images left out


def test_table_columns_per_condition() -> None:
    from fusion_perception.detection.task import DetectionTask

    result = {"classes": list(CLASSES), "per_class_AP50": {"A": 0.5, "B": None, "C": 1.0}, "mAP50": 0.75,
              "by_condition": {"night": {"mAP50": 0.5}, "day": {"mAP50": 1.0}}}
    task = DetectionTask()
    assert task.table_columns([result]) == ("A", "B", "C", "mAP@0.5 day", "mAP@0.5 night", "mAP@0.5")
    values = task.table_values(result)
    assert values["mAP@0.5 night"] == 0.5 and values["mAP@0.5"] == 0.75 and math.isnan(values["B"])
    assert task.table_columns([{**result, "by_condition": {}}]) == ("A", "B", "C", "mAP@0.5")
