"""A dataset's specifics are its layout's: its classes, its ignore index, its palette and so the
tables' columns. A new detection or segmentation dataset is its layout file (and, if it wants, a
config): here a 2-class detection layout and a 4-class segmentation layout, both in ONE plugin
file, run through ``train_det.py``, ``train_seg.py`` and ``compare_methods`` untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pytest

from fusion_perception.registry import DATASET_LAYOUTS, import_plugins

REPO = Path(__file__).resolve().parents[1]

TOY_LAYOUTS = '''
"""Two toy datasets: boxes of walkers and carts (detection), masks of four classes (segmentation)."""
from fusion_perception.data.layouts import DatasetLayout, PairListing
from fusion_perception.data.layouts.scan import attach_files, pair_candidates, split_dirs, subdirs
from fusion_perception.data.records import Box
from fusion_perception.registry import DATASET_LAYOUTS


def read_boxes(path, size):
    boxes = []
    for line in path.read_text().splitlines():
        label, *xyxy = line.split()
        boxes.append(Box(label, *map(float, xyxy)))
    return boxes


@DATASET_LAYOUTS.register_module(name="toy_boxes")
class ToyBoxes(DatasetLayout):
    classes = ("walker", "cart")
    tasks = ("det",)
    detect_order = 15
    description = "toy boxes (thermal/, colour/, boxes/)"
    need = description

    def detect(self, root):
        return {"thermal", "colour", "boxes"} <= subdirs(root).keys()

    def list_pairs(self, root):
        subs = subdirs(root)
        listing = PairListing(modalities=("thermal", "colour"))
        found = pair_candidates(subs["thermal"], subs["colour"], listing.problems)
        listing.candidates = attach_files(found, subs["boxes"], listing.problems, "box file",
                                          lambda p: p.suffix == ".txt", ".txt", "annotation", "thermal/ and colour/")
        for c in listing.candidates:
            c.read_boxes = read_boxes
        return listing


@DATASET_LAYOUTS.register_module(name="toy_masks")
class ToyMasks(DatasetLayout):
    classes = ("ground", "lane", "post", "sign")
    ignore_index = 200
    palette = ((10, 10, 10), (250, 250, 0), (0, 200, 0), (200, 0, 200))
    tasks = ("seg",)
    detect_order = 15
    description = "toy masks (train/ and test/ holding thermal/, colour/, labels/)"
    need = description

    def detect(self, root):
        return any({"thermal", "colour", "labels"} <= subdirs(d).keys() for d in split_dirs(root).values())

    def list_pairs(self, root):
        listing = PairListing(modalities=("thermal", "colour"))
        for split, folder in split_dirs(root).items():
            subs = subdirs(folder)
            found = pair_candidates(subs["thermal"], subs["colour"], listing.problems, split)
            listing.candidates += attach_files(found, subs["labels"], listing.problems, "mask",
                                               lambda p: p.suffix == ".png", ".png", "mask", "thermal/ and colour/")
        return listing
'''

DET_CONFIG = '''
model = {model!r}
epochs = 1
imgsz = 64
batch = 4
workers = 0
train_args = dict(mosaic=0.0, plots=False)
'''


@pytest.fixture
def toy_layouts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``toy_layouts.py`` in a folder on ``sys.path`` and ``PYTHONPATH``, imported; unregistered afterwards."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "toy_layouts.py").write_text(TOY_LAYOUTS)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]))
    import_plugins(["toy_layouts"])
    try:
        yield folder
    finally:
        for name in ("toy_boxes", "toy_masks"):
            DATASET_LAYOUTS.module_dict.pop(name, None)
        sys.modules.pop("toy_layouts", None)


def toy_boxes(root: Path, count: int = 12) -> Path:
    """Pairs with a warm walker (bright in thermal) and a cart (bright in colour) each."""
    rng = np.random.default_rng(0)
    for sub in ("thermal", "colour", "boxes"):
        (root / sub).mkdir(parents=True)
    for i in range(count):
        ir = rng.integers(0, 60, (64, 96), dtype=np.uint8)
        vi = rng.integers(0, 60, (64, 96, 3), dtype=np.uint8)
        wx, cx = int(rng.integers(4, 30)), int(rng.integers(50, 70))
        ir[10:50, wx:wx + 14] = 230
        vi[30:52, cx:cx + 22] = (40, 220, 90)
        cv2.imwrite(str(root / "thermal" / f"f{i:02d}.png"), ir)
        cv2.imwrite(str(root / "colour" / f"f{i:02d}.png"), vi)
        (root / "boxes" / f"f{i:02d}.txt").write_text(f"walker {wx} 10 {wx + 14} 50\ncart {cx} 30 {cx + 22} 52\n")
    return root


def toy_masks(root: Path) -> Path:
    """8 training and 4 test pairs whose masks hold the ids 0..3 and the ignore index 200."""
    rng = np.random.default_rng(1)
    for split, count in (("train", 8), ("test", 4)):
        for sub in ("thermal", "colour", "labels"):
            (root / split / sub).mkdir(parents=True)
        for i in range(count):
            mask = np.zeros((48, 64), np.uint8)
            mask[30:, :] = 1
            mask[5:40, 8:14] = 2
            mask[5:20, 40:60] = 3
            mask[:2, :] = 200
            ir = (mask * 50 + rng.integers(0, 30, mask.shape)).astype(np.uint8)
            vi = cv2.cvtColor((255 - ir).astype(np.uint8), cv2.COLOR_GRAY2BGR)
            cv2.imwrite(str(root / split / "thermal" / f"{split}{i}.png"), ir)
            cv2.imwrite(str(root / split / "colour" / f"{split}{i}.png"), vi)
            cv2.imwrite(str(root / split / "labels" / f"{split}{i}.png"), mask)
    return root


def tiny_seg_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "tiny_seg.py"
    cfg.write_text(
        f"_base_ = [{str(REPO / 'configs' / 'seg' / 'small_cpu.py')!r}]\n"
        "train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=2)\n"
        "param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=1, T_max=1,"
        " eta_min=0.0, convert_to_iter_based=True)]\n"
        "default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=True,"
        " max_keep_ckpts=1, save_last=True))\n"
        "train_dataloader = dict(batch_size=4, dataset=dict(augment=dict(crop_size=(32, 32))))\n")
    return cfg


def tiny_det_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "tiny_det.py"
    cfg.write_text(DET_CONFIG.format(model=str(REPO / "configs" / "det" / "yolo_tiny.yaml")))
    return cfg


def tool(name: str, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "tools" / f"{name}.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_a_two_class_detection_layout_runs_through_train_det(toy_layouts, tmp_path):
    data = toy_boxes(tmp_path / "boxes_set")
    out = tmp_path / "det_run"
    r = tool("train_det", "--import", "toy_layouts", "--data", data, "--fusion", "max", "--config",
             tiny_det_config(tmp_path), "--device", "cpu", "--out", out, "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["classes"] == ["walker", "cart"] and set(results["per_class_AP50"]) == {"walker", "cart"}
    # the table's columns are the dataset's classes (alphabetically, as the paper's Table 3), then mAP
    assert (out / "results.md").read_text().splitlines()[0] == "| Method | cart | walker | mAP@0.5 |"
    assert r.stdout.splitlines()[0] == "| Method | cart | walker | mAP@0.5 |"
    assert "names:\n  0: walker\n  1: cart" in (out / "yolo" / "dataset.yaml").read_text()


@pytest.mark.slow
def test_a_four_class_segmentation_layout_runs_through_train_seg(toy_layouts, tmp_path):
    data = toy_masks(tmp_path / "masks_set")
    out = tmp_path / "seg_run"
    r = tool("train_seg", "--import", "toy_layouts", "--data", data, "--fusion", "max", "--config",
             tiny_seg_config(tmp_path), "--device", "cpu", "--out", out, "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["classes"] == ["ground", "lane", "post", "sign"]
    assert np.array(results["confusion_matrix"]).shape == (4, 4)  # the ignore index (200) scored nowhere
    assert (out / "results.md").read_text().splitlines()[0] == "| Method | ground | lane | post | sign | mIoU |"
    config = (out / "config.py").read_text()
    assert "num_classes=4" in config and "ignore_index=200" in config and "num_classes=9" not in config
    legend = cv2.cvtColor(cv2.imread(str(out / "predictions" / "legend.png")), cv2.COLOR_BGR2RGB)
    assert tuple(legend[11, 20]) == (10, 10, 10) and tuple(legend[22 + 11, 20]) == (250, 250, 0)  # its palette


@pytest.mark.slow
def test_both_toy_layouts_run_through_the_comparison(toy_layouts, tmp_path):
    from fusion_perception.comparison.compare import compare_methods

    det, seg = toy_boxes(tmp_path / "boxes_set"), toy_masks(tmp_path / "masks_set")
    out = tmp_path / "cmp"
    compare_methods("ir,max", out, task="both", det_data=det, seg_data=seg, det_config=tiny_det_config(tmp_path),
                    seg_config=tiny_seg_config(tmp_path), device="cpu", quality=False, progress=False,
                    fused_root=tmp_path / "fused")
    det_md = (out / "tables" / "det.md").read_text().splitlines()
    seg_md = (out / "tables" / "seg.md").read_text().splitlines()
    assert det_md[0] == "| Method | cart | walker | mAP@0.5 | Δ mAP@0.5 vs ir |"  # the paired column
    assert seg_md[0] == "| Method | ground | lane | post | sign | mIoU | Δ mIoU vs ir |"
    assert [row.split(" |")[0] for row in det_md[2:4]] == [row.split(" |")[0] for row in seg_md[2:4]] == ["| ir", "| max"]
    assert set(json.loads((out / "tables" / "seg.json").read_text())["max"]) == {"ground", "lane", "post", "sign",
                                                                                "mIoU", "paired_difference"}
