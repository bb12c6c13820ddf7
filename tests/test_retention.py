"""Target retention: hand-made images with known answers, the rules, and the eval_fusion tool."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fusion_perception.data.image_io import write_image
from fusion_perception.errors import ConfigError, DatasetError
from fusion_perception.metrics.retention import evaluate_retention, local_contrast, retention_ratio, summarize
from fusion_perception.metrics.retention_targets import AnnotatedObject, TargetPair, TargetRule, read_objects_file

REPO = Path(__file__).resolve().parents[1]


def _scene(value: float, background: float = 0.4, box=(20, 10, 30, 26), size=(48, 64)) -> np.ndarray:
    img = np.full(size, background, np.float32)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = value
    return img


def test_local_contrast_of_a_box_against_its_ring():
    img = torch.from_numpy(_scene(0.9))
    c = local_contrast(img, torch.tensor([[20, 10, 30, 26]]))
    assert c.shape == (1,)
    assert c.item() == pytest.approx(0.5, abs=1e-6)
    # a ring that is half brighter: mean ring = background + share of the bright part
    img2 = img.clone()
    img2[10:26, 30:36] = 0.7  # the ring's right band (6 px wide, 16 tall)
    ring_px = (22 * 28) - (10 * 16)
    ring_mean = (0.4 * (ring_px - 6 * 16) + 0.7 * 6 * 16) / ring_px
    assert local_contrast(img2, torch.tensor([[20, 10, 30, 26]])).item() == pytest.approx(0.9 - ring_mean, abs=1e-6)


def test_local_contrast_batched_clipped_and_degenerate():
    imgs = torch.from_numpy(np.stack([_scene(0.9), _scene(0.4), _scene(0.1)]))  # (3, H, W)
    boxes = torch.tensor([[20.0, 10.0, 30.0, 26.0], [0.0, 0.0, 5.0, 5.0], [0.0, 0.0, 64.0, 48.0]])
    c = local_contrast(imgs, boxes)
    assert c.shape == (3, 3)
    assert torch.allclose(c[:, 0], torch.tensor([0.5, 0.0, 0.3]), atol=1e-6)
    assert torch.allclose(c[:, 1], torch.zeros(3))  # a corner box of background: ring clipped to the image
    assert torch.allclose(c[:, 2], torch.zeros(3))  # the whole image: no ring, contrast 0


@pytest.mark.parametrize("fused_value, expected", [(0.9, 1.0), (0.4, 0.0), (0.65, 0.5), (0.15, 0.5), (1.0, 1.2)])
def test_retention_of_hand_made_fusions(fused_value, expected):
    """Copied from IR: 1; absent: 0; half the contrast (either sign): 0.5; stronger: above 1."""
    box = torch.tensor([[20, 10, 30, 26]])
    ir = torch.from_numpy(_scene(0.9))
    fused = torch.from_numpy(_scene(fused_value))
    r = retention_ratio(local_contrast(fused, box), local_contrast(ir, box))
    assert r.item() == pytest.approx(expected, abs=1e-5)


def test_retention_ratio_is_clipped_to_two():
    r = retention_ratio(torch.tensor([0.9, 0.1]), torch.tensor([0.1, 0.0]))
    assert r.tolist() == [2.0, 0.0]


def test_summary_mean_and_confidence_interval():
    s = summarize([0.5, 0.7, 0.9])
    assert s.mean == pytest.approx(0.7)
    half = 4.302652729911275 * 0.2 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert (s.low, s.high, s.n) == (pytest.approx(0.7 - half), pytest.approx(0.7 + half), 3)
    assert summarize([]).n == 0 and str(summarize([])) == "–"


def _write_pair(root: Path, name: str, ir: np.ndarray, vi: np.ndarray) -> tuple[Path, Path]:
    paths = []
    for mod, img in (("ir", ir), ("vi", vi)):
        p = root / mod / f"{name}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        write_image(p, np.round(img * 255).astype(np.uint8))
        paths.append(p)
    return paths[0], paths[1]


def test_rules_pick_single_modality_objects(tmp_path):
    box = (20, 10, 30, 26)
    person = (40, 30, 50, 44)
    ir = _scene(0.9, box=box)
    ir[30:44, 40:50] = 0.4  # the second object is cold: invisible in IR
    vi = _scene(0.4, box=box)
    vi[30:44, 40:50] = 0.8  # but bright in the visible image
    ir_p, vi_p = _write_pair(tmp_path, "a", ir, vi)
    fused = {"copy_ir": ir, "blank": np.full_like(ir, 0.4), "half": (ir + vi) / 2}
    files = {}
    for m, img in fused.items():
        p = tmp_path / m / "a.png"
        p.parent.mkdir(parents=True)
        write_image(p, np.round(img * 255).astype(np.uint8))
        files[m] = {"a": p}
    objects = (AnnotatedObject("People", box, (1.0, 0.0)), AnnotatedObject("Car", person, (0.0, 1.0)))
    pairs = [TargetPair("a", ir_p, vi_p, objects)]
    for rule in (TargetRule(mode="tags"), TargetRule(mode="contrast")):
        res = evaluate_retention(pairs, files, rule)
        assert [o["source"] for o in res.objects] == ["ir", "vi"]
        s = res.summaries()
        assert s["copy_ir"]["ir"].mean == pytest.approx(1.0, abs=0.01)
        assert s["copy_ir"]["vi"].mean == pytest.approx(0.0, abs=0.01)
        assert s["blank"]["ir"].mean == pytest.approx(0.0, abs=0.01)
        assert s["half"]["ir"].mean == pytest.approx(0.5, abs=0.01)
        assert s["half"]["vi"].mean == pytest.approx(0.5, abs=0.01)
    only_cars = evaluate_retention(pairs, files, TargetRule(mode="tags", classes=("car",)))
    assert [o["label"] for o in only_cars.objects] == ["Car"]
    # an object below the minimum source contrast is left out rather than giving a noisy ratio
    faint = [TargetPair("a", ir_p, vi_p, (AnnotatedObject("People", (0, 0, 8, 8), (1.0, 0.0)),))]
    assert evaluate_retention(faint, files, TargetRule(mode="tags")).objects == []


def test_objects_file(tmp_path):
    f = tmp_path / "objects.csv"
    f.write_text("image,x1,y1,x2,y2,source,label\na.png,20,10,30,26,IR,People\n")
    assert read_objects_file(f) == {"a": [(AnnotatedObject("People", (20.0, 10.0, 30.0, 26.0)), "ir")]}
    rule = TargetRule.parse(str(f))
    assert rule.mode == "file"
    f.write_text("image,x1,y1,x2,y2,source\na.png,20,10,30,26,thermal\n")
    with pytest.raises(DatasetError, match=r"objects.csv.*line 2: source must be ir or vi"):
        read_objects_file(f)
    with pytest.raises(ConfigError, match="neither a rule"):
        TargetRule.parse(str(tmp_path / "nope.csv"))
    with pytest.raises(ConfigError, match="SHOWN,HIDDEN"):
        TargetRule.parse("contrast", contrast="0.1")


def test_eval_fusion_reports_retention_on_the_synthetic_layout(synthetic_root, tmp_path):
    """ir keeps every IR-only object and vi every VI-only one, through the fuse stage and the CLI."""
    import subprocess
    import sys

    from fusion_perception.fusion.stage import fuse_dataset

    for m in ("ir", "vi"):
        fuse_dataset(synthetic_root / "m3fd", m, tmp_path / m, progress=False)
    out = tmp_path / "eval"
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "eval_fusion.py"), "--fused", str(tmp_path / "ir"),
         "--fused", str(tmp_path / "vi"), "--out", str(out), "--metrics", "EN", "--quiet"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Target retention (rule: auto" in proc.stdout
    data = json.loads((out / "target_retention.json").read_text())
    summary = {m: v["summary"] for m, v in data["methods"].items()}
    assert summary["ir"]["ir"]["mean"] == pytest.approx(1.0)
    assert summary["vi"]["vi"]["mean"] == pytest.approx(1.0)
    assert summary["vi"]["ir"]["mean"] < 0.5 and summary["ir"]["vi"]["mean"] < 0.5
    assert summary["ir"]["ir"]["n"] > 5 and summary["ir"]["vi"]["n"] > 5


def test_the_probe_that_selects_emma_checkpoints_scores_as_the_evaluation_does(tmp_path):
    """Pinned (issue 24): a fuser that copies IR and one that copies VI get from EMMA's selection
    probe the retention eval_fusion gives their fused images, object for object."""
    from fusion_perception.emma.training.hooks import selection_probe
    from fusion_perception.fusion.stage import fuse_dataset
    from fusion_perception.metrics.fusion_eval import evaluate_target_retention
    from fusion_perception.metrics.retention import TargetRule

    probe = selection_probe(tmp_path / "scenes", seed=1, count=6, size=(160, 128))
    fused = {m: fuse_dataset(tmp_path / "scenes" / "m3fd", m, tmp_path / m, progress=False).root for m in ("ir", "vi")}
    evaluated = evaluate_target_retention(fused, rule=TargetRule(mode="tags"), progress=False).to_json()
    for method, copy in (("ir", lambda ir, vi: ir), ("vi", lambda ir, vi: vi)):
        scores = probe.score(copy)
        summary = evaluated["methods"][method]["summary"]
        assert scores["ir_only"] == pytest.approx(summary["ir"]["mean"], abs=0.01)
        assert scores["vi_only"] == pytest.approx(summary["vi"]["mean"], abs=0.01)
    assert probe.score(lambda ir, vi: ir)["ir_only"] == pytest.approx(1.0)
    assert probe.score(lambda ir, vi: vi)["vi_only"] == pytest.approx(1.0)
