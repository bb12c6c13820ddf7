"""The paired bootstrap over test images: mAP@0.5 and mIoU recomputed on resamples, A against B."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fusion_perception.comparison.paired import BootstrapSettings, compare_run_sets, compare_runs, paired_column
from fusion_perception.comparison.tables import aggregate, csv_table, json_table, markdown_table
from fusion_perception.errors import ConfigError, DatasetError
from fusion_perception.metrics.bootstrap import (
    SegmentationScores,
    miou_resampled,
    paired_difference,
    resample_counts,
    whole_split,
)
from fusion_perception.metrics.detection import evaluate_coco
from fusion_perception.metrics.detection_resampling import match_detections
from fusion_perception.metrics.segmentation import confusion_matrix, iou_from_confusion
from fusion_perception.runs import get_task

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("People", "Car", "Bus", "Motorcycle", "Lamp", "Truck")  # M3FD's, in class-id order


def coco_set(seed: int, images: int = 24, hit_rate: float = 0.8, ties: bool = False,
             predictor: int = 0) -> tuple[dict, list[dict]]:
    """Ground truth (by ``seed``) and YOLO-like predictions (by ``seed`` and ``predictor``): jittered
    hits, some of the wrong class, many low-score boxes."""
    rng, pr = np.random.default_rng(seed), np.random.default_rng([seed, predictor])
    entries, anns, dets = [], [], []
    for i in range(1, images + 1):
        entries.append({"id": i, "file_name": f"scene_{i:03d}.png", "width": 256, "height": 256})
        for _ in range(rng.integers(0, 7)):
            x, y, w, h = *rng.uniform(0, 200, 2), *rng.uniform(6, 60, 2)
            c = int(rng.integers(1, len(CLASSES) + 1))
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": c, "bbox": [x, y, w, h], "area": w * h,
                         "iscrowd": 0})
            if pr.random() < hit_rate:
                j = pr.normal(0, 3, 4)
                score = round(float(pr.random()), 1) if ties else float(pr.random())
                dets.append({"image_id": i, "category_id": c if pr.random() < 0.85 else int(pr.integers(1, 7)),
                             "bbox": [x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])], "score": score})
        for _ in range(pr.integers(20, 140)):  # conf 0.001: many weak boxes
            x, y, w, h = *pr.uniform(0, 200, 2), *pr.uniform(4, 60, 2)
            dets.append({"image_id": i, "category_id": int(pr.integers(1, 7)), "bbox": [x, y, w, h],
                         "score": round(float(pr.random()) * 0.4, 2) if ties else float(pr.random()) * 0.4})
    categories = [{"id": k + 1, "name": n, "supercategory": "object"} for k, n in enumerate(CLASSES)]
    return {"images": entries, "annotations": anns, "categories": categories}, dets


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, False), (3, True)])
def test_bootstrap_map_on_the_whole_split_is_pycocotools_map50(seed: int, ties: bool) -> None:
    gt, dets = coco_set(seed, ties=ties)
    expected = evaluate_coco(gt, dets, CLASSES)["mAP50"]  # the project's pycocotools path
    scores = match_detections(gt, dets)
    assert scores.resampled(whole_split(len(scores.images)))[0] == pytest.approx(expected, abs=1e-6)
    assert 0.05 < expected < 0.95  # neither trivial end


def test_resampled_map_equals_pycocotools_on_the_resampled_images() -> None:
    """A resample is the split with images repeated: pycocotools on that set gives the same mAP."""
    gt, dets = coco_set(4, images=12)
    scores = match_detections(gt, dets)
    counts = resample_counts(len(scores.images), 3, seed=7)
    for row, value in zip(counts.astype(int), scores.resampled(counts)):
        images, anns, repeated = [], [], []
        for i, times in enumerate(row):
            for _ in range(times):
                new_id = len(images) + 1
                images.append({**gt["images"][i], "id": new_id})
                anns += [{**a, "image_id": new_id} for a in gt["annotations"] if a["image_id"] == i + 1]
                repeated += [{**d, "image_id": new_id} for d in dets if d["image_id"] == i + 1]
        anns = [{**a, "id": k + 1} for k, a in enumerate(anns)]
        expected = evaluate_coco({**gt, "images": images, "annotations": anns}, repeated, CLASSES)["mAP50"]
        assert value == pytest.approx(expected, abs=1e-9)


def test_no_detections_and_no_ground_truth_score_as_pycocotools_path() -> None:
    gt, _ = coco_set(5, images=4)
    assert match_detections(gt, []).resampled(whole_split(4))[0] == evaluate_coco(gt, [], CLASSES)["mAP50"] == 0.0
    empty = {**gt, "annotations": []}
    assert match_detections(empty, []).resampled(whole_split(4))[0] == 0.0


def seg_maps(seed: int, images: int = 10, noise: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 5, (images, 24, 32), generator=g)
    target[:, :4] = 255  # ignored pixels
    flip = torch.rand(target.shape, generator=g) < noise
    pred = torch.where(flip, torch.randint(0, 5, target.shape, generator=g), target.clamp(max=4))
    return pred, target


def test_bootstrap_miou_on_the_whole_split_is_the_runs_miou(tmp_path: Path) -> None:
    from fusion_perception.segmentation.evaluate import image_scores
    from fusion_perception.segmentation.metric import PER_IMAGE_FILE, SegIoUMetric

    pred, target = seg_maps(0)
    metric = SegIoUMetric(num_classes=5, ignore_index=255, class_names=tuple("abcde"),
                          per_image_file=str(tmp_path / PER_IMAGE_FILE))
    for i in range(len(pred)):  # one image per batch, as the runs feed it
        metric.process({}, [{"pred": pred[i], "gt": target[i], "name": f"im{i}", "img_path": ""}])
    miou = metric.evaluate(size=len(pred))["mIoU"]
    result = {"results_dir": str(tmp_path), "confusion_matrix": metric.last_confusion.tolist(), "mIoU": miou}
    scores = image_scores(result)
    assert scores.images == tuple(f"im{i}" for i in range(len(pred)))
    assert scores.resampled(whole_split(len(pred)))[0] == pytest.approx(miou, abs=1e-6)
    # and the summed matrices of any resample are the matrix of the images repeated
    counts = resample_counts(len(pred), 2, seed=1)
    for row, value in zip(counts.astype(int), scores.resampled(counts)):
        idx = torch.tensor(np.repeat(np.arange(len(pred)), row))
        _, expected = iou_from_confusion(confusion_matrix(pred[idx], target[idx], 5))
        assert value == pytest.approx(float(expected), abs=1e-12)
    # a per-image file that does not add up to the run's matrix is refused
    with pytest.raises(DatasetError, match="do not add up"):
        image_scores({**result, "confusion_matrix": (metric.last_confusion * 2).tolist()})


def test_identical_predictions_differ_by_exactly_zero_with_p_one() -> None:
    gt, dets = coco_set(6)
    a, b = match_detections(gt, dets), match_detections(gt, [dict(d) for d in dets])
    counts = resample_counts(len(a.images), 1000, seed=0)
    value = a.resampled(whole_split(len(a.images)))[0]
    d = paired_difference([a.resampled(counts)], [b.resampled(counts)], [value], [value])
    assert (d.difference, d.low, d.high, d.p_value) == (0.0, 0.0, 0.0, 1.0) and not d.excludes_zero

    pred, target = seg_maps(1)
    cms = np.stack([confusion_matrix(p, t, 5).numpy() for p, t in zip(pred, target)])
    seg = SegmentationScores(tuple(map(str, range(len(cms)))), cms)
    d = paired_difference([seg.resampled(counts[:, :len(cms)])], [miou_resampled(cms.copy(), counts[:, :len(cms)])],
                          [0.5], [0.5])
    assert (d.difference, d.low, d.high, d.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_strictly_better_on_every_image_gives_an_interval_above_zero() -> None:
    # every image: two People; A finds both, B one of them and ranks a false box above it
    images = [{"id": i, "file_name": f"{i}.png", "width": 100, "height": 100} for i in range(1, 21)]
    anns = [{"id": 2 * i + k + 1, "image_id": i, "category_id": 1, "bbox": [10 + 40 * k, 10, 20, 30],
             "area": 600.0, "iscrowd": 0} for i in range(1, 21) for k in range(2)]
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "People"}]}
    better = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9} for a in anns]
    worse = [{"image_id": i, "category_id": 1, "bbox": [10, 10, 20, 30], "score": 0.5} for i in range(1, 21)] + \
            [{"image_id": i, "category_id": 1, "bbox": [70, 70, 20, 20], "score": 0.8} for i in range(1, 21)]
    a, b = match_detections(gt, better), match_detections(gt, worse)
    counts = resample_counts(20, 500, seed=3)
    whole = whole_split(20)
    d = paired_difference([a.resampled(counts)], [b.resampled(counts)], a.resampled(whole), b.resampled(whole))
    assert d.low > 0 and d.excludes_zero and d.p_value == pytest.approx(2 / 501)

    pred, target = seg_maps(2, noise=0.1)
    worse_pred, _ = seg_maps(2, noise=0.5)
    cm_a = np.stack([confusion_matrix(p, t, 5).numpy() for p, t in zip(pred, target)])
    cm_b = np.stack([confusion_matrix(p, t, 5).numpy() for p, t in zip(worse_pred, target)])
    counts = resample_counts(len(cm_a), 500, seed=3)
    d = paired_difference([miou_resampled(cm_a, counts)], [miou_resampled(cm_b, counts)],
                          miou_resampled(cm_a, whole_split(len(cm_a))), miou_resampled(cm_b, whole_split(len(cm_b))))
    assert d.low > 0 and d.excludes_zero


def test_the_same_seed_gives_the_same_interval() -> None:
    gt, dets = coco_set(7)
    _, other = coco_set(7, predictor=1)
    a, b = match_detections(gt, dets), match_detections(gt, other)

    def interval(seed: int) -> tuple[float, float, float]:
        counts = resample_counts(len(a.images), 400, seed=seed)
        d = paired_difference([a.resampled(counts)], [b.resampled(counts)], [0.0], [0.0])
        return d.low, d.high, d.p_value

    assert interval(5) == interval(5)
    assert interval(5) != interval(6)


# --------------------------------------------------------------------------- runs, tables, the tool


def write_det_run(folder: Path, label: str, seed: int, gt: dict, dets: list[dict]) -> dict:
    """A detection run folder as evaluate_run leaves it: eval/test/*.json and results.json."""
    eval_dir = folder / "eval" / "test"
    eval_dir.mkdir(parents=True)
    (eval_dir / "ground_truth.json").write_text(json.dumps(gt))
    (eval_dir / "predictions.json").write_text(json.dumps(dets))
    metrics = evaluate_coco(gt, dets, CLASSES)
    result = {"task": "det", "method": label, "label": label, "seed": seed, "run_dir": str(folder),
              "mAP50": metrics["mAP50"], "per_class_AP50": metrics["per_class_AP50"],
              "files": {"ground_truth": str(eval_dir / "ground_truth.json"),
                        "predictions": str(eval_dir / "predictions.json")}}
    (folder / "results.json").write_text(json.dumps(result))
    return result


@pytest.fixture()
def det_runs(tmp_path: Path) -> dict[str, list[dict]]:
    """Runs of three methods x two seeds on the same test images; 'good' finds more than the others."""
    runs: dict[str, list[dict]] = {}
    for seed in (0, 1):
        for predictor, (label, hit_rate) in enumerate((("ir", 0.5), ("vi", 0.4), ("good", 0.95))):
            gt, dets = coco_set(20 + seed, images=30, hit_rate=hit_rate, predictor=predictor)
            runs.setdefault(label, []).append(write_det_run(tmp_path / label / f"seed{seed}", label, seed, gt, dets))
    return runs


def test_table_column_against_the_better_single_modality(det_runs: dict[str, list[dict]]) -> None:
    task = get_task("det")
    results = [r for runs in det_runs.values() for r in runs]
    table = aggregate(results, task.table_columns(results))
    means = {label: row[task.metric].mean for label, row in table.items()}
    column = paired_column(task, results, means, BootstrapSettings(resamples=300))
    reference = max(("ir", "vi"), key=lambda m: means[m])
    assert column.reference == reference and column.images == 30 and not column.notes
    good = column.differences["good"]
    assert good.difference == pytest.approx(means["good"] - means[reference])
    assert good.pairs == 2 and good.resamples == 300 and good.excludes_zero
    md = markdown_table(table, task.table_columns(results), paired=column)
    assert f"Δ mAP@0.5 vs {reference}" in md.splitlines()[0]
    assert f"| {reference} |" in md and "| reference |" in md and "†" in md
    assert "paired bootstrap over the 30 test images, resampled 300 times per seed, pooled" in md
    row = json.loads(json_table(table, task.table_columns(results), column))["good"]["paired_difference"]
    assert row["reference"] == reference and row["excludes_zero"] and row["low"] > 0
    header, *lines = csv_table(table, task.table_columns(results), column).splitlines()
    assert header.endswith("reference,difference,difference_low,difference_high,p_value")
    assert any(line.startswith("good,") and f",{reference}," in line for line in lines)
    # a named reference; one not compared is refused
    assert paired_column(task, results, means, BootstrapSettings("good", 50)).reference == "good"
    with pytest.raises(ConfigError, match="--reference laplacian"):
        paired_column(task, results, means, BootstrapSettings("laplacian", 50))


def test_a_run_without_per_image_results_gets_no_interval(det_runs: dict[str, list[dict]]) -> None:
    task = get_task("det")
    Path(det_runs["vi"][1]["files"]["predictions"]).unlink()
    results = [r for runs in det_runs.values() for r in runs]
    column = paired_column(task, results, {"ir": 0.5, "vi": 0.1, "good": 0.9}, BootstrapSettings(resamples=50))
    assert column.differences["vi"] is None and "predictions file is missing" in column.notes["vi"]
    assert column.differences["good"] is not None
    md = markdown_table(aggregate(results, task.table_columns(results)), task.table_columns(results), paired=column)
    assert "No interval for vi:" in md


def test_compare_runs_tool_on_two_sets_of_seeds(det_runs: dict[str, list[dict]], tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cmp.json"
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "compare_runs.py"), str(tmp_path / "good"),
                           str(tmp_path / "ir"), "--resamples", "200", "--json", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "det: good against ir, seeds 0,1, 30 test images" in proc.stdout
    assert "good is ahead: the interval excludes 0" in proc.stdout
    numbers = json.loads(out.read_text())
    expected = compare_run_sets(get_task("det"), {r["seed"]: r for r in det_runs["good"]},
                                {r["seed"]: r for r in det_runs["ir"]}, BootstrapSettings(resamples=200))
    assert numbers["difference"] == pytest.approx(expected.difference) and numbers["low"] == expected.low
    # one run each, named directly; a folder without runs is one line and exit 2
    single = compare_runs([tmp_path / "good" / "seed1"], [tmp_path / "vi" / "seed1"], BootstrapSettings(resamples=50))
    assert single.seeds == ([1], [1]) and single.difference.pairs == 1
    main = runpy.run_path(str(REPO / "tools" / "compare_runs.py"))["main"]
    assert main([str(tmp_path), str(tmp_path / "ir")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path}: no finished run here (no results.json in it or in its sub-folders)"
