"""IoU correctness: confusion matrix, IoU per class and mIoU on hand-made maps, the mmengine Metric,
and the Table 4 row."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from fusion_perception.metrics.segmentation import confusion_matrix, iou_from_confusion

IGN = 255

# Two 2x4 images, 4 classes. Worked out by hand, pixel by pixel, as (target, prediction):
#   image 1: (0,0) (0,1) (1,1) (1,1) / (2,2) (2,0) (255,3)->ignored (1,0)
#   image 2: (0,0) (0,0) (0,2) (1,1) / (1,1) (255,0)->ignored (255,1)->ignored (2,2)
# Confusion (rows target, columns prediction):
#   t=0: p0 1+2=3, p1 1, p2 1          -> [3, 1, 1, 0]   row sum 5
#   t=1: p0 1,     p1 2+2=4            -> [1, 4, 0, 0]   row sum 5
#   t=2: p0 1,     p2 1+1=2            -> [1, 0, 2, 0]   row sum 3
#   t=3: nothing                       -> [0, 0, 0, 0]   row sum 0
#   column sums: 5, 5, 3, 0 (class 3 was only "predicted" on an ignored pixel)
# IoU = TP / (row + col - TP):
#   class 0: 3 / (5 + 5 - 3) = 3/7
#   class 1: 4 / (5 + 5 - 4) = 4/6 = 2/3
#   class 2: 2 / (3 + 3 - 2) = 2/4 = 1/2
#   class 3: union 0 -> undefined (NaN), left out of the mean
# mIoU = (3/7 + 2/3 + 1/2) / 3
TARGET = torch.tensor([
    [[0, 0, 1, 1], [2, 2, IGN, 1]],
    [[0, 0, 0, 1], [1, IGN, IGN, 2]],
])
PRED = torch.tensor([
    [[0, 1, 1, 1], [2, 0, 3, 0]],
    [[0, 0, 2, 1], [1, 0, 1, 2]],
])
CM = [[3, 1, 1, 0], [1, 4, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
IOU = [3 / 7, 2 / 3, 1 / 2, math.nan]
MIOU = (3 / 7 + 2 / 3 + 1 / 2) / 3


def test_confusion_matrix_by_hand():
    cm = confusion_matrix(PRED, TARGET, 4, ignore_index=IGN)
    assert cm.dtype == torch.int64
    assert cm.tolist() == CM


def test_iou_by_hand_with_absent_class():
    per_class, miou = iou_from_confusion(confusion_matrix(PRED, TARGET, 4, ignore_index=IGN))
    np.testing.assert_allclose(per_class[:3].numpy(), IOU[:3], rtol=1e-12)
    assert math.isnan(float(per_class[3]))
    assert float(miou) == pytest.approx(MIOU, rel=1e-12)


def test_class_in_target_only_counts_as_zero():
    # target [0, 1], prediction [0, 0], 3 classes: cm = [[1,0,0],[1,0,0],[0,0,0]]
    # class 0: 1 / (1 + 2 - 1) = 1/2; class 1: 0 / (1 + 0 - 0) = 0 (counts); class 2: NaN
    cm = confusion_matrix(torch.tensor([0, 0]), torch.tensor([0, 1]), 3)
    assert cm.tolist() == [[1, 0, 0], [1, 0, 0], [0, 0, 0]]
    per_class, miou = iou_from_confusion(cm)
    assert per_class[:2].tolist() == [0.5, 0.0]
    assert math.isnan(float(per_class[2]))
    assert float(miou) == pytest.approx(0.25)


def test_split_wide_matrix_is_not_mean_of_per_image_iou():
    # Summing per-image matrices is the split's matrix; the mean of per-image mIoUs differs.
    per_image = [confusion_matrix(PRED[i], TARGET[i], 4, IGN) for i in range(2)]
    assert torch.equal(per_image[0] + per_image[1], confusion_matrix(PRED, TARGET, 4, IGN))
    mean_of_images = sum(float(iou_from_confusion(c)[1]) for c in per_image) / 2
    assert mean_of_images != pytest.approx(MIOU)


def test_all_ignored_and_empty():
    cm = confusion_matrix(torch.zeros(2, 3, dtype=torch.long), torch.full((2, 3), IGN), 9)
    assert int(cm.sum()) == 0
    per_class, miou = iou_from_confusion(cm)
    assert bool(torch.isnan(per_class).all()) and math.isnan(float(miou))


def test_matches_sklearn_on_random_maps():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 9, (3, 17, 23), generator=g)
    target[:, :2] = IGN
    pred = torch.randint(0, 9, (3, 17, 23), generator=g)
    cm = confusion_matrix(pred, target, 9, IGN)
    keep = target != IGN
    ref = sklearn_metrics.confusion_matrix(target[keep].numpy(), pred[keep].numpy(), labels=list(range(9)))
    assert cm.tolist() == ref.tolist()
    ref_iou = sklearn_metrics.jaccard_score(target[keep].numpy(), pred[keep].numpy(), labels=list(range(9)),
                                            average=None)
    np.testing.assert_allclose(iou_from_confusion(cm)[0].numpy(), ref_iou, rtol=1e-12)


def test_bad_ids_and_shapes_raise():
    with pytest.raises(ValueError, match="outside 0..3"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 7]), 4)
    with pytest.raises(ValueError, match="prediction"):
        confusion_matrix(torch.tensor([0, 9]), torch.tensor([0, 1]), 4)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(torch.zeros(2, 2), torch.zeros(2, 3), 4)
    with pytest.raises(ValueError, match="square"):
        iou_from_confusion(torch.zeros(2, 3))


def test_mmengine_metric_accumulates_over_split(tmp_path):
    from fusion_perception.segmentation.metric import SegIoUMetric

    metric = SegIoUMetric(num_classes=4, ignore_index=IGN, class_names=("a", "b", "c", "d"))
    # fed one image per batch: the result must be the split-wide score, not a per-batch mean
    for i in range(2):
        metric.process({}, [{"pred": PRED[i], "gt": TARGET[i], "name": f"im{i}", "img_path": ""}])
    res = metric.evaluate(size=2)
    assert res["mIoU"] == pytest.approx(MIOU)
    assert res["IoU.a"] == pytest.approx(3 / 7) and res["IoU.c"] == pytest.approx(0.5)
    assert math.isnan(res["IoU.d"])
    assert metric.last_confusion.tolist() == CM


def test_results_record_and_table4_row(tmp_path):
    from fusion_perception.record import read_results
    from fusion_perception.segmentation.report import build_results, table4_header, write_results

    classes = ("a", "b", "c", "d")
    res = build_results(torch.tensor(CM), classes, method="mean", label="mean", seed=0)
    assert res["per_class_IoU"]["d"] is None  # undefined IoU: null in JSON, not NaN
    assert res["mIoU"] == pytest.approx(MIOU)
    # percent, one decimal: 3/7 = 42.857 -> 42.9; 2/3 -> 66.7; 1/2 -> 50.0; mIoU 53.17 -> 53.2
    assert res["markdown_row"] == "| mean | 42.9 | 66.7 | 50.0 | – | 53.2 |"
    assert table4_header(classes).splitlines()[0] == "| Method | a | b | c | d | mIoU |"
    write_results(tmp_path, res)
    text = (tmp_path / "results.json").read_text()

    def no_nan(name):  # strict JSON: NaN/Infinity are not allowed
        raise AssertionError(f"non-standard JSON constant {name}")

    assert json.loads(text, parse_constant=no_nan)["per_class_IoU"]["a"] == pytest.approx(3 / 7)
    assert read_results(tmp_path)["markdown_row"] == res["markdown_row"]
    assert (tmp_path / "results.md").read_text().splitlines()[-1] == res["markdown_row"]
