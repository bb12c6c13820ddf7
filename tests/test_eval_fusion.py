"""tools/eval_fusion.py and fusion_perception.metrics.fusion_eval: matching, tables, errors."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fusion_perception.errors import ConfigError, DatasetError
from fusion_perception.metrics.fusion_eval import evaluate_fused_folders, write_tables
from fusion_perception.metrics.fused_folders import open_fused_folder
from fusion_perception.metrics.fusion_quality import METRIC_NAMES

REPO = Path(__file__).resolve().parents[1]
PAIRS = ("FLIR_00211", "FLIR_00977", "FLIR_01130", "FLIR_04269")


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # many small ops: a second thread only waits on a shared 2-core machine
    yield
    torch.set_num_threads(before)


def _tool():
    spec = importlib.util.spec_from_file_location("eval_fusion_tool", REPO / "tools" / "eval_fusion.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _gray(path: Path) -> np.ndarray:  # the fixture's preparation, written out here independently
    return np.round(cv2.cvtColor(cv2.imread(str(path)).astype(np.float32), cv2.COLOR_BGR2GRAY))


@pytest.fixture(scope="module")
def roadscene_subset(shared_data, tmp_path_factory):
    """A few RoadScene pairs as a plain pair folder, plus two fused folders written with cv2."""
    root = tmp_path_factory.mktemp("eval")
    src = shared_data / "roadscene"
    for name in PAIRS:
        for mod in ("ir", "vi"):
            (root / "src" / mod).mkdir(parents=True, exist_ok=True)
            (root / "src" / mod / f"{name}.jpg").write_bytes((src / mod / f"{name}.jpg").read_bytes())
        ir, vi = _gray(src / "ir" / f"{name}.jpg"), _gray(src / "vi" / f"{name}.jpg")
        mean = np.round((ir + vi) / 2).astype(np.uint8)  # numpy round: half to even, as the fixture
        (root / "mean").mkdir(exist_ok=True)
        assert cv2.imwrite(str(root / "mean" / f"{name}.png"), mean)
        # max fusion as a fuse-stage output: 3-channel (gray replicated) under fused/, with a manifest
        (root / "maxrun" / "fused").mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(root / "maxrun" / "fused" / f"{name}.bmp"),
                           cv2.cvtColor(np.maximum(ir, vi).astype(np.uint8), cv2.COLOR_GRAY2BGR))
    (root / "maxrun" / "manifest.json").write_text(json.dumps({"method": "max", "label": "max-fusion"}))
    return root


def test_eval_fusion_tool_end_to_end(roadscene_subset, shared_fixtures, capsys):
    root = roadscene_subset
    out = root / "out"
    rc = _tool().main(["--fused", f"avg={root / 'mean'}", "--fused", str(root / "maxrun"),
                       "--source", str(root / "src"), "--out", str(out), "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| avg |" in printed and "| max-fusion |" in printed and "| Method | EN |" in printed

    ref = json.loads((shared_fixtures / "roadscene_metrics_reference.json").read_text())
    data = json.loads((out / "fusion_metrics.json").read_text())
    assert data["metrics"] == list(METRIC_NAMES) and data["images"] == len(PAIRS)
    for method, fusion in (("avg", "mean"), ("max-fusion", "max")):
        per_image = data["methods"][method]["per_image"]
        assert sorted(per_image) == sorted(PAIRS)
        for name in PAIRS:  # files written and read back through the tool give the reference values
            for m in METRIC_NAMES:
                want = ref[fusion][f"{name}.jpg"][m]
                tol = 1e-3 if m in ("VIF", "SSIM") else 1e-4
                assert abs(per_image[name][m] - want) <= tol * abs(want), (method, name, m)
        means = data["methods"][method]["mean"]
        for m in METRIC_NAMES:
            assert means[m] == pytest.approx(np.mean([per_image[n][m] for n in PAIRS]), rel=1e-12)

    with open(out / "fusion_metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * len(PAIRS) + 2  # per image, then one mean row per method
    assert {r["method"] for r in rows} == {"avg", "max-fusion"}
    assert sum(r["image"] == "mean" for r in rows) == 2
    md = (out / "fusion_metrics.md").read_text()
    assert "### avg" in md and all(n in md for n in PAIRS)


def test_metric_subset_and_names(roadscene_subset):
    root = roadscene_subset
    res = evaluate_fused_folders({"m": root / "mean"}, root / "src", metrics="en,MI", progress=False)
    assert res.metrics == ("EN", "MI") and res.methods == ["m"]
    assert set(next(iter(res.per_image["m"].values()))) == {"EN", "MI"}
    assert open_fused_folder(root / "mean").name == "mean"  # plain folder: its own name
    assert open_fused_folder(root / "maxrun").name == "max-fusion"  # manifest label
    assert open_fused_folder(root / "maxrun" / "fused").name == "max-fusion"  # its fused/ folder itself
    with pytest.raises(ConfigError, match="unknown metric"):
        evaluate_fused_folders([root / "mean"], root / "src", metrics="EN,PSNR", progress=False)
    with pytest.raises(ConfigError, match="share the name"):
        evaluate_fused_folders([root / "mean", f"mean={root / 'maxrun'}"], root / "src", progress=False)


def _tiny_pairs(root: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        for mod in ("ir", "vi"):
            (root / mod).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / mod / f"img{i:02d}.png"), rng.integers(0, 256, (48, 48), dtype=np.uint8))


def test_missing_fused_images_are_listed(tmp_path, capsys):
    _tiny_pairs(tmp_path / "src", 14)
    fused = tmp_path / "partial"
    fused.mkdir()
    for i in (0, 5):
        cv2.imwrite(str(fused / f"img{i:02d}.jpg"), np.zeros((48, 48), np.uint8))
    with pytest.raises(DatasetError) as err:
        evaluate_fused_folders([fused], tmp_path / "src", progress=False)
    msg = str(err.value)
    assert err.value.path == fused and "12 of 14 fused images missing for method 'partial'" in msg
    assert "img01, img02, img03, img04, img06" in msg and "(2 more)" in msg and "img00" not in msg
    # the tool: exit status 2 and the same one-line message
    rc = _tool().main(["--fused", str(fused), "--source", str(tmp_path / "src"), "--out", str(tmp_path / "o"),
                       "--quiet"])
    assert rc == 2 and "12 of 14 fused images missing" in capsys.readouterr().err
    assert not (tmp_path / "o" / "fusion_metrics.json").exists()


def test_fused_size_mismatch_names_the_file(tmp_path):
    _tiny_pairs(tmp_path / "src", 2)
    fused = tmp_path / "f"
    fused.mkdir()
    cv2.imwrite(str(fused / "img00.png"), np.zeros((48, 48), np.uint8))
    cv2.imwrite(str(fused / "img01.png"), np.zeros((40, 48), np.uint8))
    with pytest.raises(DatasetError) as err:
        evaluate_fused_folders([fused], tmp_path / "src", progress=False)
    assert err.value.path == fused / "img01.png" and "48x40" in str(err.value)


def test_write_tables_stem(roadscene_subset, tmp_path):
    res = evaluate_fused_folders({"m": roadscene_subset / "mean"}, roadscene_subset / "src", metrics="SD",
                                 progress=False)
    md = write_tables(res, tmp_path / "tables", stem="fusion_quality")
    assert md.startswith("Fusion quality, mean over 4 images") and "| m |" in md
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == [
        "fusion_quality.csv", "fusion_quality.json", "fusion_quality.md"]
