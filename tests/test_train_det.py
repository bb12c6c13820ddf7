"""Detection protocol: split, YOLO export, fused-cache reuse, bad input, and an offline end-to-end run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fusion_perception.data.records import M3FD_CLASSES, FusedDataset, FusedRecord
from fusion_perception.detection.data import fused_fingerprint, load_or_make_split, make_split
from fusion_perception.detection.config import load_config
from fusion_perception.detection.evaluate import evaluate_run
from fusion_perception.detection.task import prepare_detection_data, run_detection
from fusion_perception.errors import ConfigError, DatasetError, OutputError
from fusion_perception.fusion.manifest import load_fused_dataset

REPO = Path(__file__).resolve().parents[1]


def _mtimes(paths) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in paths}


# --------------------------------------------------------------------------- split


def test_split_is_8_1_1_reproducible_and_seeded() -> None:
    names = [f"{i:05d}" for i in range(200)]
    a = make_split(names, seed=0)
    assert [len(a[s]) for s in ("train", "val", "test")] == [160, 20, 20]
    assert sorted(a["train"] + a["val"] + a["test"]) == names  # disjoint and complete
    assert make_split(list(reversed(names)), seed=0) == a  # depends on the names, not their order
    assert make_split(names, seed=1) != a
    small = make_split(["a", "b", "c"], seed=0)
    assert len(small["val"]) == len(small["test"]) == 1


def test_a_split_ratio_other_than_8_1_1_gives_its_sizes(tmp_path: Path) -> None:
    """Pinned (issue 24): the ratio is (train, val, test) in that order, in any unit."""
    names = [f"{i:05d}" for i in range(200)]
    for ratio, sizes in (((7, 2, 1), [140, 40, 20]), ((0.6, 0.1, 0.3), [120, 20, 60]), ((3, 1, 1), [120, 40, 40])):
        split = make_split(names, seed=0, ratio=ratio)
        assert [len(split[s]) for s in ("train", "val", "test")] == sizes, ratio
        assert sorted(split["train"] + split["val"] + split["test"]) == names
    recs = [FusedRecord(n, tmp_path / f"{n}.png", boxes=[]) for n in names]
    stored, _ = load_or_make_split(FusedDataset(tmp_path, "mean", "mean", "m3fd", recs), tmp_path / "split", seed=0,
                                   ratio=(7, 2, 1))
    assert [len((tmp_path / "split" / f"{s}.txt").read_text().split()) for s in ("train", "val", "test")] == \
        [140, 40, 20] and len(stored["val"]) == 40


def test_stored_split_is_reused_and_own_split_kept(tmp_path: Path) -> None:
    recs = [FusedRecord(f"n{i}", tmp_path / f"n{i}.png", boxes=[]) for i in range(10)]
    fused = FusedDataset(tmp_path, "mean", "mean", "m3fd", recs)
    first, reused = load_or_make_split(fused, tmp_path / "split", seed=3)
    assert not reused and (tmp_path / "split" / "test.txt").read_text().split() == first["test"]
    again, reused = load_or_make_split(fused, tmp_path / "split", seed=99)  # stored files win over the seed
    assert reused and again == first
    # a stored split that misses samples is refused (it would silently change the protocol)
    fused.records.append(FusedRecord("new", tmp_path / "new.png", boxes=[]))
    with pytest.raises(DatasetError, match="does not cover"):
        load_or_make_split(fused, tmp_path / "split", seed=3)
    # TarDAL-style records carry their own split: kept as it is
    own = FusedDataset(tmp_path, "mean", "mean", "m3fd_tardal",
                       [FusedRecord(f"t{i}", tmp_path / f"t{i}.png", split=s, boxes=[])
                        for i, s in enumerate(["train"] * 4 + ["val", "test"])])
    split, _ = load_or_make_split(own, tmp_path / "own", seed=0)
    assert split == {"train": ["t0", "t1", "t2", "t3"], "val": ["t4"], "test": ["t5"]}


# --------------------------------------------------------------------------- preprocessing + export


def test_prepare_reuses_fused_cache_and_split(synthetic_root: Path, tmp_path: Path) -> None:
    data = synthetic_root / "m3fd"
    fused, yolo, info = prepare_detection_data(data, "mean", tmp_path, seed=0, progress=False)
    assert not info["fused_reused"] and not info["split_reused"] and not yolo.reused
    from fusion_perception.fusion.cache import default_fused_dir

    assert Path(info["fused_dir"]) == default_fused_dir(data, "mean").resolve()  # the cache every tool shares
    sizes = {s: len(yolo.split[s]) for s in ("train", "val", "test")}
    assert sum(sizes.values()) == len(fused.records) and min(sizes.values()) >= 1

    # YOLO layout: class names in M3FD order, labels normalised from the fused boxes
    text = yolo.yaml_path.read_text()
    names = re.findall(r"^  \d+: (\S+)$", text, flags=re.M)
    assert tuple(names) == M3FD_CLASSES
    rec = next(r for r in fused.records if r.boxes)
    split = next(s for s in yolo.split if rec.name in yolo.split[s])
    lines = (yolo.root / "labels" / split / f"{rec.name}.txt").read_text().splitlines()
    assert len(lines) == len(rec.boxes)
    from PIL import Image

    w, h = Image.open(rec.image_path).size
    c, cx, cy, bw, bh = lines[0].split()
    b = rec.boxes[0]
    assert int(c) == M3FD_CLASSES.index(b.label)
    assert float(cx) == pytest.approx((b.x1 + b.x2) / 2 / w, abs=1e-5)
    assert float(bh) == pytest.approx((b.y2 - b.y1) / h, abs=1e-5)
    linked = yolo.images[rec.name]
    assert os.path.samefile(linked, rec.image_path)  # linked, not copied

    watched = [Path(r.image_path) for r in fused.records] + list(Path(info["split_dir"]).glob("*.txt"))
    before = _mtimes(watched)
    fused2, yolo2, info2 = prepare_detection_data(data, "mean", tmp_path, seed=0, progress=False)
    assert info2["fused_reused"] and info2["split_reused"] and yolo2.reused
    assert _mtimes(watched) == before  # nothing recomputed or rewritten
    assert yolo2.split == yolo.split and fused_fingerprint(fused2) == fused_fingerprint(fused)


def test_yolo_labels_normalise_each_field_by_its_own_side() -> None:
    """Every field of every label line, on a wide image (x by the width, y by the height)."""
    from fusion_perception.data.records import Box
    from fusion_perception.detection.data import yolo_label_lines

    w, h = 320, 100
    boxes = [Box("Car", 10, 20, 50, 80), Box("People", 200, 5, 260, 95), Box("Truck", 0, 0, 320, 100)]
    lines = yolo_label_lines(boxes, w, h, M3FD_CLASSES).splitlines()
    assert len(lines) == 3
    for line, b in zip(lines, boxes):
        c, cx, cy, bw, bh = line.split()
        assert int(c) == M3FD_CLASSES.index(b.label)
        assert float(cx) == pytest.approx((b.x1 + b.x2) / 2 / w, abs=1e-6)
        assert float(cy) == pytest.approx((b.y1 + b.y2) / 2 / h, abs=1e-6)
        assert float(bw) == pytest.approx((b.x2 - b.x1) / w, abs=1e-6)
        assert float(bh) == pytest.approx((b.y2 - b.y1) / h, abs=1e-6)


def test_boxes_are_clipped_to_a_non_square_image_side_by_side() -> None:
    """Pinned (issue 24): x is clipped to the width and y to the height (100x40 here: a swap keeps
    boxes 60 px below the image, or cuts them at 40 px across)."""
    from fusion_perception.data.records import Box
    from fusion_perception.detection.data import clean_boxes

    record = FusedRecord("wide", Path("wide.png"), boxes=[
        Box("Car", -5, -3, 120, 50),  # larger than the image both ways
        Box("Bus", 60, 10, 95, 30),  # inside: unchanged, beyond x = 40
        Box("People", 90, 30, 130, 80),  # over the right and bottom edges
        Box("Truck", 10, 45, 30, 60),  # entirely below the image: dropped
    ])
    assert [(b.label, b.x1, b.y1, b.x2, b.y2) for b in clean_boxes(record, 100, 40, M3FD_CLASSES)] == [
        ("Car", 0, 0, 100, 40), ("Bus", 60, 10, 95, 30), ("People", 90, 30, 100, 40)]


def test_yolo_results_become_detections_that_score_as_predicted() -> None:
    """ultralytics' Results -> (class, score, x1, y1, x2, y2) -> Detection -> COCO: boxes that
    match the ground truth exactly score an mAP of 1, a shifted class scores 0 for it."""
    import numpy as np
    import torch

    from fusion_perception.data.records import Box
    from fusion_perception.detection.model import ultralytics_offline
    from fusion_perception.detection.evaluate import result_boxes, to_detections
    from fusion_perception.metrics.detection import (
        Detection, ImageEntry, coco_detections, coco_ground_truth, evaluate_coco,
    )

    ultralytics_offline()
    from ultralytics.engine.results import Results

    names = dict(enumerate(M3FD_CLASSES))
    res = Results(np.zeros((100, 200, 3), np.uint8), path="a.png", names=names,
                  boxes=torch.tensor([[10.0, 20.0, 50.0, 80.0, 0.9, 1.0], [120.0, 10.0, 190.0, 60.0, 0.6, 4.0]]))
    got = result_boxes(res)
    assert [(c, round(s, 3), *xy) for c, s, *xy in got] == [(1, 0.9, 10, 20, 50, 80), (4, 0.6, 120, 10, 190, 60)]
    entries = [ImageEntry(7, "a.png", 200, 100, [Box("Car", 10, 20, 50, 80), Box("Lamp", 120, 10, 190, 60)])]
    dets = to_detections(entries, [got])
    assert dets[0] == Detection(7, 1, pytest.approx(0.9), 10, 20, 50, 80)
    gt = coco_ground_truth(entries, M3FD_CLASSES)
    assert coco_detections(dets)[1]["bbox"] == [120, 10, 70, 50]
    metrics = evaluate_coco(gt, coco_detections(dets), M3FD_CLASSES)
    assert metrics["mAP50"] == pytest.approx(1.0) and metrics["per_class_AP50"]["Lamp"] == pytest.approx(1.0)


def test_changed_fusion_checkpoint_invalidates_cache(synthetic_root: Path, tmp_path: Path) -> None:
    import torch

    from fusion_perception.emma.checkpoint import save_official_state_dict
    from fusion_perception.emma.ufuser import UFuser

    ckpt = tmp_path / "emma.pth"
    torch.manual_seed(0)
    save_official_state_dict(UFuser(channels=(4, 4, 4, 4), heads=2), ckpt)
    kw = dict(seed=0, weights=ckpt, progress=False)
    fused, yolo, info = prepare_detection_data(synthetic_root / "m3fd", "emma", tmp_path / "run", **kw)
    first = fused_fingerprint(fused)
    _, _, info = prepare_detection_data(synthetic_root / "m3fd", "emma", tmp_path / "run", **kw)
    assert info["fused_reused"] and info["yolo_reused"]

    torch.manual_seed(1)  # "retrained" fusion weights, same file name
    save_official_state_dict(UFuser(channels=(4, 4, 4, 4), heads=2), ckpt)
    # in the shared cache, other weights get their own folder: the first fused images stay
    _, _, info2 = prepare_detection_data(synthetic_root / "m3fd", "emma", tmp_path / "run2", **kw)
    assert not info2["fused_reused"] and Path(info2["fused_dir"]) != Path(info["fused_dir"])
    assert fused_fingerprint(load_fused_dataset(info["fused_dir"])) == first
    # a fused folder named explicitly is never replaced unasked
    kw["fused_dir"] = info["fused_dir"]
    with pytest.raises(OutputError, match=r"fused dataset .*weights .* → .*--overwrite"):
        prepare_detection_data(synthetic_root / "m3fd", "emma", tmp_path / "run", **kw)
    assert fused_fingerprint(load_fused_dataset(info["fused_dir"])) == first
    fused3, yolo3, info3 = prepare_detection_data(synthetic_root / "m3fd", "emma", tmp_path / "run", **kw,
                                                  overwrite=True)
    assert not info3["fused_reused"] and not yolo3.reused
    assert info3["split_reused"]  # the split depends on names and seed only
    assert fused_fingerprint(fused3) != first


# --------------------------------------------------------------------------- bad input


def test_dataset_without_annotations_is_refused(tmp_path: Path) -> None:
    import numpy as np

    from fusion_perception.data.image_io import write_image

    for sub in ("ir", "vi"):
        for i in range(2):
            write_image(tmp_path / "pairs" / sub / f"{i}.png", np.full((32, 32), 100, np.uint8))
    with pytest.raises(DatasetError, match="no detection annotations") as e:
        prepare_detection_data(tmp_path / "pairs", "mean", tmp_path / "out", progress=False)
    assert e.value.path == (tmp_path / "pairs") or e.value.path.name == "pairs"
    assert not (tmp_path / "out" / "fused").exists()  # refused before any fusion work


def test_unknown_class_names_the_annotation_file(synthetic_root: Path, tmp_path: Path) -> None:
    src = synthetic_root / "m3fd"
    root = tmp_path / "m3fd"
    names = sorted(p.stem for p in (src / "Annotation").glob("*.xml"))[:3]
    for sub, ext in (("Ir", ".png"), ("Vis", ".png"), ("Annotation", ".xml")):
        (root / sub).mkdir(parents=True)
        for n in names:
            shutil.copy(next((src / sub).glob(f"{n}.*")), root / sub)
    bad = root / "Annotation" / f"{names[1]}.xml"
    text = bad.read_text()
    first = re.search(r"<name>([^<]*)</name>", text).group(1)
    bad.write_text(text.replace(f"<name>{first}</name>", "<name>Zeppelin</name>", 1))
    with pytest.raises(DatasetError) as e:
        prepare_detection_data(root, "mean", tmp_path / "out", progress=False)
    assert e.value.path is not None and e.value.path.name == bad.name
    assert "Zeppelin" in str(e.value)


def test_unknown_fusion_name_lists_registered(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "train_det.py"), "--fusion", "nosuch",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "nosuch" in err[0]
    for method in ("ir", "vi", "mean"):
        assert method in err[0]
    with pytest.raises(ConfigError, match="registered methods"):
        run_detection(None, "nosuch", tmp_path)


def test_configs_load() -> None:
    paper = load_config(None)
    assert (paper["model"], paper["epochs"], paper["batch"], paper["imgsz"], paper["optimizer"], paper["lr0"]) == (
        "yolov5s.yaml", 400, 8, 640, "SGD", 0.01)
    small = load_config("small_cpu", epochs=3)
    assert small["epochs"] == 3 and Path(small["model"]).is_file() and small["imgsz"] == 256 and small["optimizer"] == "AdamW"
    with pytest.raises(ConfigError, match="not found"):
        load_config("no_such_config")
    with pytest.raises(ConfigError, match="nothing is downloaded"):
        load_config(None, model="yolov8n.pt")


# --------------------------------------------------------------------------- end to end, offline

# Runs tools/train_det.py in a fresh process whose every network attempt (DNS lookup or
# connect, other than Unix sockets) is recorded and fails at once; proxies point at a closed
# port as well, and ultralytics' config dir is new (first run: settings file, fonts).
_GUARD = r"""
import json, os, runpy, socket, sys, traceback
LOG = os.environ["NET_ATTEMPTS_LOG"]
def _record(what, target):
    with open(LOG, "a") as f:
        f.write(json.dumps([what, str(target), "".join(traceback.format_stack(limit=8))]) + "\n")
    raise OSError(f"network blocked by the test ({what} {target})")
_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
def connect(self, address):
    return _connect(self, address) if self.family == socket.AF_UNIX else _record("connect", address)
def connect_ex(self, address):
    return _connect_ex(self, address) if self.family == socket.AF_UNIX else _record("connect_ex", address)
socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
socket.getaddrinfo = lambda host, *a, **k: _record("getaddrinfo", host)
socket.gethostbyname = lambda host: _record("gethostbyname", host)
socket.create_connection = lambda address, *a, **k: _record("create_connection", address)
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.slow
def test_end_to_end_offline_then_reused(synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    log = tmp_path / "net_attempts.jsonl"
    env = {**os.environ, "NET_ATTEMPTS_LOG": str(log), "YOLO_CONFIG_DIR": str(tmp_path / "ultralytics_cfg"),
           "OMP_NUM_THREADS": "2"}
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[var] = "http://127.0.0.1:9"
    env.pop("NO_PROXY", None), env.pop("no_proxy", None)
    args = ["--data", str(synthetic_root / "m3fd"), "--fusion", "mean", "--config", "small_cpu",
            "--epochs", "2", "--imgsz", "160", "--seed", "3", "--out", str(out), "--device", "cpu"]
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", _GUARD, str(REPO / "tools" / "train_det.py"), *args],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    wall = time.time() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    attempts = log.read_text().splitlines() if log.exists() else []
    assert attempts == [], "network attempts:\n" + "\n".join(attempts[:3])
    assert wall < 180, f"offline run took {wall:.0f}s"

    res = json.loads((out / "results.json").read_text())
    assert res["task"] == "det" and res["method"] == "mean" and res["label"] == "mean" and res["seed"] == 3
    # pinned (issue 24): the run's seed is the one ultralytics trained with (its own record of its arguments)
    import yaml

    trained_with = yaml.safe_load((out / "train" / "args.yaml").read_text())
    assert trained_with["seed"] == 3 and trained_with["deterministic"] is True
    assert set(res["per_class_AP50"]) == set(M3FD_CLASSES)
    present = [c for c in M3FD_CLASSES if res["num_instances"][c] > 0]
    assert present and all(0.0 <= res["per_class_AP50"][c] <= 1.0 for c in present)
    assert 0.0 <= res["mAP50_95"] <= res["mAP50"] <= 1.0
    assert res["markdown_row"].startswith("| mean |") and res["markdown_row"].count("|") == 9
    assert "| Bus | Car | Lamp | Motorcycle | People | Truck | mAP@0.5 |" in (out / "results.md").read_text()
    gt = json.loads(Path(res["files"]["ground_truth"]).read_text())
    assert len(gt["images"]) == res["num_images"] == len((out / "splits" / "seed3" / "test.txt").read_text().split())
    # the paired bootstrap's mAP@0.5 of the unresampled test images is pycocotools' for the run
    from fusion_perception.detection.evaluate import image_scores
    from fusion_perception.metrics.bootstrap import whole_split

    scores = image_scores(res)
    assert len(scores.images) == res["num_images"]
    assert scores.resampled(whole_split(res["num_images"]))[0] == pytest.approx(res["mAP50"], abs=1e-6)
    import cv2

    vis = cv2.imread(res["files"]["visualisation"])
    assert vis is not None and vis.shape[0] > 50 and vis.std() > 0
    assert "Arial" not in proc.stderr or "download" not in proc.stderr.lower()

    # the same command again (in-process now): nothing is retrained or rewritten
    best = out / "train" / "weights" / "best.pt"
    watched = [best, out / "results.json", *(Path(res["files"]["fused_dir"]) / "fused").iterdir()]
    before = _mtimes(watched)
    again = run_detection(synthetic_root / "m3fd", "mean", out, config="small_cpu", epochs=2, imgsz=160,
                          seed=3, device="cpu", progress=False)
    assert again == res and _mtimes(watched) == before

    # tools/eval_det.py re-evaluates without training and gets the same numbers
    import runpy

    eval_main = runpy.run_path(str(REPO / "tools" / "eval_det.py"))["main"]
    assert eval_main(["--run", str(out)]) == 0
    assert _mtimes([best]) == {str(best): before[str(best)]}
    redo = json.loads((out / "results.json").read_text())
    assert redo["mAP50"] == pytest.approx(res["mAP50"]) and redo["per_class_AP50"] == res["per_class_AP50"]
    val = evaluate_run(out, "val")
    assert val["split"] == "val" and (out / "eval" / "val" / "results.json").is_file()


def test_ultralytics_offline_patches() -> None:
    import cloudpickle
    import torch

    from fusion_perception.detection import model as det_offline

    ultra = det_offline.ultralytics_offline()
    import ultralytics.data.utils as data_utils
    import ultralytics.engine.trainer as trainer_mod
    import ultralytics.utils as uutils
    from ultralytics.utils import checks

    assert os.environ["YOLO_OFFLINE"] == "1" and os.environ["YOLO_AUTOINSTALL"] == "false"
    assert uutils.ONLINE is False and checks.ONLINE is False and uutils.SETTINGS["sync"] is False
    assert trainer_mod.check_amp is det_offline._offline_check_amp
    assert det_offline._offline_check_amp(torch.nn.Conv2d(1, 1, 1)) is False  # CPU: no AMP, no download
    font = data_utils.check_font("Arial.ttf")  # what check_det_dataset asks for on every training run
    assert font is not None and Path(font).is_file()
    assert ultra.__name__ == "ultralytics"
    # DDP workers unpickle the trainer class by reference, importing the module that patches ultralytics
    from fusion_perception.detection.train import OfflineDetectionTrainer

    blob = cloudpickle.dumps(OfflineDetectionTrainer)
    assert b"fusion_perception.detection.train" in blob and len(blob) < 500


@pytest.mark.slow
def test_interrupted_training_resumes(synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from fusion_perception.detection import train as det_trainer
    from fusion_perception.detection.train import training_state

    class Interrupted(Exception):
        pass

    original = det_trainer.OfflineDetectionTrainer.save_model

    def save_then_crash(self):  # the process dies right after the first epoch's checkpoint
        original(self)
        raise Interrupted()

    kw = dict(config="small_cpu", epochs=2, imgsz=160, seed=0, device="cpu", progress=False)
    monkeypatch.setattr(det_trainer.OfflineDetectionTrainer, "save_model", save_then_crash)
    with pytest.raises(Interrupted):
        run_detection(synthetic_root / "m3fd", "mean", tmp_path, **kw)
    monkeypatch.setattr(det_trainer.OfflineDetectionTrainer, "save_model", original)
    assert training_state(tmp_path / "train" / "weights") == "partial"
    assert not (tmp_path / "results.json").exists()

    with caplog.at_level(logging.INFO, logger="fusion_perception"):
        res = run_detection(synthetic_root / "m3fd", "mean", tmp_path, **kw)
    assert any("resuming training" in r.getMessage() for r in caplog.records)
    assert training_state(tmp_path / "train" / "weights") == "done"
    rows = (tmp_path / "train" / "results.csv").read_text().strip().splitlines()[1:]
    assert [int(float(r.split(",")[0])) for r in rows] == [1, 2]  # epoch 1 kept, only epoch 2 trained again
    assert res["label"] == "mean" and (tmp_path / "results.json").is_file()
