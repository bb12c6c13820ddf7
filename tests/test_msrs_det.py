"""MSRS detection with labels per modality: the msrs_det layout (as published and as downloaded), the
union ground truth, the label views, conditions, split lists, and retention from human labels."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fusion_perception.data.modality_labels import labelled_objects, seen_counts, union_boxes
from fusion_perception.data.readers import SkippedItemWarning, describe, detect_layout, load_dataset
from fusion_perception.data.records import Box
from fusion_perception.errors import ConfigError, DatasetError

REPO = Path(__file__).resolve().parents[1]
W, H = 64, 48
# Pixel boxes of the scene every pair shows: a warm walker only infrared shows, a cart only the
# visible image shows, and a sign both show.
IR_ONLY, VI_ONLY, BOTH = (8, 8, 20, 32), (36, 24, 56, 40), (30, 4, 42, 16)
CLASSES = "0   walker \n1 cart\n2 sign\n"  # a class list of its own: the classes are the file's, not code's


def _yolo(cls: int, box: tuple[int, int, int, int], sep: str = " ") -> str:
    x1, y1, x2, y2 = box
    values = [(x1 + x2) / 2 / W, (y1 + y2) / 2 / H, (x2 - x1) / W, (y2 - y1) / H]
    return sep.join([str(cls), *(f"{v:.6f}" for v in values)]) + "  \n"  # trailing spaces, as published


def _images(ir_dir: Path, vi_dir: Path, name: str) -> None:
    ir = np.full((H, W), 60, np.uint8)
    vi = np.full((H, W, 3), 90, np.uint8)
    for (x1, y1, x2, y2), in_ir, in_vi in ((IR_ONLY, 1, 0), (VI_ONLY, 0, 1), (BOTH, 1, 1)):
        if in_ir:
            ir[y1:y2, x1:x2] = 220
        if in_vi:
            vi[y1:y2, x1:x2] = (20, 200, 240)
    ir_dir.mkdir(parents=True, exist_ok=True)
    vi_dir.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(ir_dir / f"{name}.png"), ir)
    cv2.imwrite(str(vi_dir / f"{name}.png"), vi)


def _labels(folders: dict[str, Path], name: str, empty: bool = False) -> None:
    """Per-modality labels as published (``folders``: view -> its folder): several spaces between
    fields, trailing spaces, empty files."""
    texts = {"infrared": _yolo(0, IR_ONLY, "   ") + _yolo(2, BOTH),
             "visible": _yolo(1, VI_ONLY) + _yolo(2, (31, 4, 43, 17), "  "),
             "fusion": _yolo(0, IR_ONLY)}
    for view, folder in folders.items():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.txt").write_text("" if empty else texts[view])


VIEWS = ("infrared", "visible", "fusion")


def published(root: Path, names: tuple[str, ...] = ("00001D", "00002N", "00003N")) -> Path:
    """The published arrangement: ir/, vi/, labels/{infrared,visible,fusion}/, classes.txt."""
    for i, name in enumerate(names):
        _images(root / "ir", root / "vi", name)
        _labels({v: root / "labels" / v for v in VIEWS}, name, empty=i == len(names) - 1)
    (root / "classes.txt").write_text(CLASSES)
    return root


def downloaded(root: Path, wrapper: str = "") -> Path:
    """MSRS as downloaded ({train,test}/{ir,vi} and its segmentation labels) with the label release
    ({infrared,visible,fusion}/{train,test}, classes.txt) unpacked beside train/ and test/ (inside
    ``wrapper`` when given)."""
    labels = root / wrapper if wrapper else root
    for split, names in (("train", ("00010D", "00011N")), ("test", ("00020D",))):
        for name in names:
            _images(root / split / "ir", root / split / "vi", name)
            (root / split / "Segmentation_labels").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / split / "Segmentation_labels" / f"{name}.png"), np.zeros((H, W), np.uint8))
            _labels({v: labels / v / split for v in VIEWS}, name)
    (labels / "classes.txt").write_text(CLASSES)
    return root


# --------------------------------------------------------------------------- the union rule
def _box(label: str, x1: float, y1: float, x2: float, y2: float) -> Box:
    return Box(label, x1, y1, x2, y2)


def test_union_counts_an_object_both_modalities_label_once():
    ir = [_box("person", 0, 0, 10, 10), _box("car", 50, 50, 60, 60), _box("person", 100, 0, 110, 10)]
    vi = [_box("person", 1, 1, 11, 11),  # IoU 0.68 with the first: one object
          _box("person", 50, 50, 60, 60),  # overlaps the car exactly, but another class: its own object
          _box("person", 106, 0, 116, 10)]  # IoU 0.25 with the third person: below 0.3, two objects
    seen = labelled_objects(ir, vi)
    assert [s for _, s in seen] == ["both", "ir", "ir", "vi", "vi"]
    assert seen[0][0] == _box("person", 0.5, 0.5, 10.5, 10.5)  # the mean of the two boxes: neither favoured
    assert len(union_boxes(ir, vi)) == 5 and union_boxes([], vi) == vi and union_boxes(ir, []) == ir


def test_every_box_is_judged_against_all_boxes_of_the_other_modality():
    # one infrared box round two people, each labelled in the visible image: nobody is single-modality
    ir = [_box("person", 0, 0, 20, 10)]
    vi = [_box("person", 0, 0, 10, 10), _box("person", 10, 0, 20, 10)]
    assert seen_counts([{"ir": ir, "vi": vi}]) == {"ir": 0, "vi": 0, "both": 1}


# --------------------------------------------------------------------------- the layout
def test_published_arrangement(tmp_path):
    root = published(tmp_path / "msrs_det")
    assert detect_layout(root) == "msrs_det"  # not TarDAL's ir/ + vi/ + labels/
    ds = load_dataset(root)
    assert ds.layout == "msrs_det" and ds.classes == ("walker", "cart", "sign")
    assert [r.condition for r in ds.records] == ["day", "night", "night"] and ds.records[0].split is None
    first, empty = ds.records[0], ds.records[-1]
    assert [b.label for b in first.modality_boxes["ir"]] == ["walker", "sign"]
    walker = first.modality_boxes["ir"][0]  # several spaces and trailing ones read
    assert (walker.x1, walker.y1, walker.x2, walker.y2) == pytest.approx(IR_ONLY, abs=1e-3)
    assert sorted(b.label for b in first.boxes) == ["cart", "sign", "walker"]  # the union: the sign once
    assert first.annotation_path is None  # the union has no file of its own
    assert empty.boxes == [] and empty.modality_boxes == {"ir": [], "vi": []}  # an empty file: no objects
    text = describe(ds)
    assert "IR-only 2, VI-only 2, both 2" in text and "conditions: day 1, night 2" in text


def test_label_views_change_the_boxes_and_the_layout_spec(tmp_path):
    root = published(tmp_path / "msrs_det")
    views = {v: load_dataset(root, f"auto:label_view={v}") for v in ("fusion", "infrared", "visible")}
    assert [b.label for b in views["fusion"].records[0].boxes] == ["walker"]
    assert [b.label for b in views["visible"].records[0].boxes] == ["cart", "sign"]
    assert views["infrared"].layout == "msrs_det:label_view=infrared"
    assert views["fusion"].records[0].annotation_path == root / "labels" / "fusion" / "00001D.txt"
    assert views["fusion"].records[0].modality_boxes == load_dataset(root).records[0].modality_boxes  # kept
    with pytest.raises(ConfigError, match="label_view of the 'msrs_det' layout must be one of union"):
        load_dataset(root, "msrs_det:label_view=thermal")
    with pytest.raises(ConfigError, match="the 'pairs' layout takes no 'label_view' option"):
        load_dataset(tmp_path / "msrs_det" / "labels", "pairs:label_view=fusion")  # labels/ holds 3 folders


def test_a_malformed_line_names_the_file_and_the_line(tmp_path):
    root = published(tmp_path / "msrs_det")
    bad = root / "labels" / "visible" / "00002N.txt"
    bad.write_text(bad.read_text() + "2 0.5 0.5 0.1\n")
    with pytest.raises(DatasetError, match=r"labels/visible/00002N\.txt: line 3: expected 5 numbers"):
        load_dataset(root)
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "describe_dataset.py"), "--data", str(root)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "00002N.txt: line 3: expected 5 numbers" in proc.stderr
    bad.write_text("7 0.5 0.5 0.1 0.1\n")
    with pytest.raises(DatasetError, match=r"00002N\.txt: line 1: class id 7 out of range 0\.\.2 \(walker, cart, sign"):
        load_dataset(root)
    (root / "classes.txt").write_text("0 walker\n0 cart\n")
    with pytest.raises(DatasetError, match=r"classes\.txt: line 2: expected 'ID NAME' with id 1"):
        load_dataset(root)


def test_missing_labels_are_reported(tmp_path):
    root = published(tmp_path / "msrs_det")
    (root / "labels" / "infrared" / "00002N.txt").unlink()
    with pytest.raises(DatasetError, match=r"infrared/00002N\.txt: infrared label file missing for the pair 00002N"):
        load_dataset(root)
    with pytest.warns(SkippedItemWarning, match="infrared label file missing"):
        ds = load_dataset(root, skip_bad=True)
    assert [r.name for r in ds.records] == ["00001D", "00003N"] and len(ds.skipped) == 1
    (root / "classes.txt").unlink()
    with pytest.raises(DatasetError, match=r"classes\.txt: class list missing"):
        load_dataset(root)


@pytest.mark.parametrize("wrapper", ["", "labels"])
def test_downloaded_arrangement_keeps_the_published_split(tmp_path, wrapper):
    root = downloaded(tmp_path / "MSRS", wrapper)
    ds = load_dataset(root)  # before msrs, which reads the same train/ and test/ for segmentation
    assert ds.layout == "msrs_det" and ds.classes == ("walker", "cart", "sign")
    assert {r.name: (r.split, r.condition) for r in ds.records} == {
        "00010D": ("train", "day"), "00011N": ("train", "night"), "00020D": ("test", "day")}
    assert all(len(r.boxes) == 3 for r in ds.records)
    seg = load_dataset(root, "msrs")
    assert seg.layout == "msrs" and all(r.mask_path is not None for r in seg.records)
    assert {r.condition for r in seg.records} == {"day", "night"}


def test_split_lists_replace_the_layouts_split(tmp_path):
    root = published(tmp_path / "msrs_det")
    lists = tmp_path / "split"
    lists.mkdir()
    (lists / "train.txt").write_text("00001D\n00002N\n")
    (lists / "test.txt").write_text("00003N\n")
    ds = load_dataset(root, f"auto:split_lists={lists}")
    assert [r.split for r in ds.records] == ["train", "train", "test"]
    assert ds.layout == "msrs_det"  # the records carry the split; a fused copy is as good with another
    (lists / "test.txt").write_text("ghost\n")
    with pytest.raises(DatasetError, match=r"test\.txt: line 1 lists 'ghost' but the dataset's pairs hold no"):
        load_dataset(root, f"auto:split_lists={lists}")
    (lists / "test.txt").write_text("")
    with pytest.raises(DatasetError, match=r"1 pair\(s\) are in none of train\.txt, val\.txt, test\.txt: 00003N"):
        load_dataset(root, f"auto:split_lists={lists}")


# --------------------------------------------------------------------------- the fused copy and retention
def test_the_view_identifies_a_fused_copy_and_conditions_are_carried(tmp_path):
    from fusion_perception.fusion.stage import fuse_dataset, load_fused_dataset

    root, out = published(tmp_path / "msrs_det"), tmp_path / "fused"
    fused = fuse_dataset(root, "mean", out, progress=False)
    assert fused.source_layout == "msrs_det" and [r.condition for r in fused.records] == ["day", "night", "night"]
    assert len(fused.records[0].boxes) == 3 and fused.classes == ("walker", "cart", "sign")
    with pytest.raises(DatasetError, match="layout msrs_det → msrs_det:label_view=fusion"):
        fuse_dataset(root, "mean", out, layout="auto:label_view=fusion", progress=False)
    fused = fuse_dataset(root, "mean", out, layout="auto:label_view=fusion", on_mismatch="replace", progress=False)
    assert [b.label for b in fused.records[0].boxes] == ["walker"]
    assert (out / "labels" / "fusion" / "00001D.txt").is_file()
    lists = tmp_path / "split"
    lists.mkdir()
    (lists / "train.txt").write_text("00001D\n00002N\n")
    (lists / "test.txt").write_text("00003N\n")
    fused = fuse_dataset(root, "mean", out, layout=f"auto:label_view=fusion,split_lists={lists}", progress=False)
    assert fused.manifest["counts"]["fused"] == 0 and [r.split for r in fused.records] == ["train", "train", "test"]
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["records"]:
        del entry["condition"]  # as a manifest written before conditions
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert [r.condition for r in load_fused_dataset(out).records] == [None, None, None]


def test_retention_takes_single_modality_objects_from_the_labels(tmp_path):
    from fusion_perception.fusion.stage import fuse_dataset
    from fusion_perception.metrics.fusion_eval import evaluate_target_retention
    from fusion_perception.metrics.retention import markdown_table
    from fusion_perception.metrics.retention_targets import TargetRule

    root = published(tmp_path / "msrs_det")
    folders = {m: fuse_dataset(root, m, tmp_path / m, progress=False).root for m in ("ir", "vi")}
    for source in (None, root):  # the source from the fused copies' manifests, or given
        result = evaluate_target_retention(folders, source, progress=False)  # auto: the labels here
        assert [(o["label"], o["source"], o["condition"]) for o in result.objects] == [
            ("walker", "ir", "day"), ("cart", "vi", "day"), ("walker", "ir", "night"), ("cart", "vi", "night")]
        ir, vi = result.summary("ir"), result.summary("vi")
        assert ir["ir"].mean == pytest.approx(1.0) and vi["vi"].mean == pytest.approx(1.0)
        assert ir["vi"].mean == pytest.approx(0.0) and vi["ir"].mean == pytest.approx(0.0)
        assert result.conditions() == ["day", "night"] and result.summary("ir", "night")["ir"].n == 1
    table = markdown_table(result)
    assert "| IR-only (n=2) | VI-only (n=2) | IR-only day (n=1) |" in table
    labels = evaluate_target_retention(folders, rule=TargetRule.parse("labels"), progress=False)
    assert labels.objects == result.objects
    m3fd_like = tmp_path / "plain"
    _images(m3fd_like / "ir", m3fd_like / "vi", "p1")
    with pytest.raises(DatasetError, match="the labels rule needs labels drawn on each modality"):
        evaluate_target_retention({"ir": folders["ir"]}, m3fd_like, rule=TargetRule(mode="labels"), progress=False)


def test_eval_fusion_reports_retention_per_condition(tmp_path):
    root = published(tmp_path / "msrs_det")
    tools = REPO / "tools"
    run = lambda *a: subprocess.run([sys.executable, *map(str, a)], capture_output=True, text=True)  # noqa: E731
    for m in ("ir", "max"):
        assert run(tools / "fuse_dataset.py", "--data", root, "--fusion", m, "--out", tmp_path / m,
                   "--no-progress").returncode == 0
    proc = run(tools / "eval_fusion.py", "--fused", tmp_path / "ir", "--fused", tmp_path / "max", "--targets", "auto",
               "--metrics", "EN", "--out", tmp_path / "eval", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "IR-only night (n=1)" in proc.stdout
    rows = (tmp_path / "eval" / "target_retention.csv").read_text().splitlines()
    assert rows[0] == "method,source,condition,mean,ci_low,ci_high,n" and rows[1].startswith("ir,ir_only,all,1.0,")


# --------------------------------------------------------------------------- splits
def test_split_by_strata_and_blocks():
    from fusion_perception.detection.data import make_split

    names = [f"{i:05d}{'D' if i < 40 else 'N'}" for i in range(100)]
    strata = {n: n[-1] for n in names}
    split = make_split(names, 0, (10, 3, 7), strata=strata, block=4)
    assert {s: len(v) for s, v in split.items()} == {"train": 50, "val": 15, "test": 35}
    assert sum(n.endswith("N") for n in split["test"]) == 21  # 60 night pairs: 7/20 of them
    part = {n: s for s, v in split.items() for n in v}
    night = sorted(n for n in names if n.endswith("N"))
    cut = sum(len({part[n] for n in night[i:i + 4]}) > 1 for i in range(0, 60, 4))
    assert cut <= 2  # blocks of 4 neighbours stay together, but where a part's count cuts one
    assert make_split(names, 0) == make_split(names, 0, strata=None, block=1)


def test_own_train_test_split_gets_a_val_part_from_train(tmp_path):
    from fusion_perception.detection.data import load_or_make_split
    from fusion_perception.fusion.stage import fuse_dataset

    fused = fuse_dataset(downloaded(tmp_path / "MSRS"), "mean", tmp_path / "fused", progress=False)
    split, reused = load_or_make_split(fused, tmp_path / "split", seed=0)
    assert not reused and split["test"] == ["00020D"] and len(split["val"]) == 1 and len(split["train"]) == 1
    assert sorted(split["train"] + split["val"]) == ["00010D", "00011N"]
    assert [r.split for r in fused.records] == ["train", "train", "test"]  # the fused copy keeps the split
    assert (tmp_path / "fused" / "train" / "fused" / "00010D.png").is_file()


def test_the_stored_benchmark_split_is_its_rule():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from make_msrs_det_split import SPLIT_DIR, benchmark_split

    from fusion_perception.detection.data import read_split

    stored = read_split(SPLIT_DIR)
    names = [n for part in stored.values() for n in part]
    assert len(names) == len(set(names)) == 300
    assert {s: len(v) for s, v in stored.items()} == {"train": 150, "val": 45, "test": 105}
    assert benchmark_split(names) == stored
    assert sum(n.endswith("N") for n in stored["test"]) == 53


def test_comparison_options_take_the_detection_layout():
    from fusion_perception.comparison.compare import ComparisonSettings

    s = ComparisonSettings.from_options(task="det", det_data="/d", det_layout="auto:label_view=fusion")
    assert s.data == {"det": "/d"} and s.layouts == {"det": "auto:label_view=fusion"}


# --------------------------------------------------------------------------- the real set
def test_the_real_msrs_det_set(shared_data):
    root = shared_data / "msrs_det"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    ds = load_dataset(root)
    assert ds.layout == "msrs_det" and ds.classes == ("person", "bicycle", "car") and len(ds) == 300
    assert seen_counts([r.modality_boxes for r in ds.records]) == {"ir": 782, "vi": 108, "both": 715}
    assert sum(len(r.boxes) for r in ds.records) == 782 + 108 + 715
    assert sum(r.condition == "day" for r in ds.records) == 149
    split = load_dataset(root, f"auto:split_lists={REPO / 'benchmarks' / 'msrs_det_split'}")
    assert sum(r.split == "test" for r in split.records) == 105
    fusion = load_dataset(root, "msrs_det:label_view=fusion")
    assert sum(len(r.boxes) for r in fusion.records) == 1248


# --------------------------------------------------------------------------- detection per condition
@pytest.mark.slow
def test_the_comparison_breaks_detection_down_by_condition(tmp_path):
    """A detector trained on a split of the published arrangement is scored per condition (day / night)
    in its results and in the comparison's table, which the benchmark's metric correlations read."""
    from fusion_perception.comparison.compare import compare_methods
    from fusion_perception.comparison.metric_correlation import method_scores

    names = ("00001D", "00002N", "00003D", "00004N", "00005D", "00006N")
    root = published(tmp_path / "msrs_det", names=names)
    lists = tmp_path / "split"
    lists.mkdir()
    for part, members in (("train", names[:2]), ("val", names[2:4]), ("test", names[4:])):
        (lists / f"{part}.txt").write_text("".join(f"{n}\n" for n in members))
    config = tmp_path / "tiny_det.py"
    config.write_text(f"model = {str(REPO / 'configs' / 'det' / 'yolo_tiny.yaml')!r}\nepochs = 1\nimgsz = 64\n"
                      "batch = 2\nworkers = 0\ntrain_args = dict(mosaic=0.0, plots=False)\n")
    out = tmp_path / "cmp"
    compare_methods("ir,max", out, task="det", det_data=root, det_layout=f"msrs_det:split_lists={lists}",
                    det_config=config, fused_root=tmp_path / "fused", progress=False)
    results = json.loads((out / "det" / "ir" / "seed0" / "results.json").read_text())
    assert results["num_images"] == 2 and {c: m["num_images"] for c, m in results["by_condition"].items()} == {
        "day": 1, "night": 1}
    header = (out / "tables" / "det.md").read_text().splitlines()[0]
    assert header == "| Method | cart | sign | walker | mAP@0.5 day | mAP@0.5 night | mAP@0.5 | Δ mAP@0.5 vs ir |"
    tables = {s: json.loads((out / "tables" / f"{s}.json").read_text()) for s in ("fusion_quality", "target_retention")}
    scores = method_scores(tables["fusion_quality"], tables["target_retention"])
    assert scores["ir"]["IR-only retention"] == pytest.approx(1.0) and "Qabf" in scores["max"]
    # the test part's objects only (00006N's label files are empty)
    assert [(o["image"], o["source"]) for o in tables["target_retention"]["objects"]] == [("00005D", "ir"),
                                                                                          ("00005D", "vi")]
