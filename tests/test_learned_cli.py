"""The tools take DIDFuse, TarDAL and SeAFusion with ``--weights`` (random-weight checkpoints this test
writes, so nothing shared is needed): the fuse stage records the weights' sha256 and caches under
``<method>-<sha8>``, the evaluation scores the result, a comparison runs them, a wrong or missing
checkpoint stops every tool in one line before any work; and the reference script of the authors'
execution (``tests/reference/reference_learned.py``) writes what the stage writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fusion_perception.fusion.base import build_fuser
from fusion_perception.fusion.stage import fuse_dataset
from learned_weights import METHODS, reference_weights, write_weights
from pair_folders import random_pairs

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / "tools"


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("learned_cli_weights")
    return {m: write_weights(m, root / m, seed=1) for m in METHODS}


def _tool(name: str, *args: object, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOLS / f"{name}.py"), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def test_fuse_and_evaluate_with_a_learned_method(weights, synthetic_root, own_fused_cache, tmp_path):
    r = _tool("fuse_dataset", "--data", synthetic_root / "msrs", "--fusion", "didfuse", "--weights",
              weights["didfuse"], "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    sha = build_fuser("didfuse", "cpu", weights=str(weights["didfuse"])).checkpoint_sha256()
    fused = own_fused_cache / f"didfuse-{sha[:8]}" / "msrs"  # its own cache folder, like EMMA's
    manifest = json.loads((fused / "manifest.json").read_text())
    assert manifest["fusion_weights_sha256"] == sha and manifest["complete"] and manifest["counts"]["total"] == 24
    assert manifest["fuser"]["params"]["rule"] == "l1_norm"
    assert f"didfuse: 24 fused images in {fused}" in r.stdout and f"--weights {weights['didfuse']}" in r.stdout
    img = cv2.imread(str(next((fused / "test" / "fused").iterdir())))
    assert img is not None and img.shape[2] == 3

    r = _tool("eval_fusion", "--fused", fused, "--out", tmp_path / "eval", "--metrics", "EN,SD", "--targets", "off",
              "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| didfuse |" in (tmp_path / "eval" / "fusion_metrics.md").read_text()


def test_a_wrong_or_missing_checkpoint_stops_every_tool_in_one_line(weights, tmp_path):
    out = tmp_path / "out"
    cases = [
        ("fuse_dataset", ["--fusion", "seafusion", "--weights", weights["tardal"], "--data", tmp_path, "--out", out],
         f"error: {weights['tardal']}: not SeAFusion weights"),
        ("train_seg", ["--fusion", "tardal", "--weights", weights["seafusion"], "--out", out],
         f"error: {weights['seafusion']}: not TarDAL weights"),
        ("train_det", ["--fusion", "didfuse", "--weights", weights["tardal"].parent, "--out", out],
         f"error: {weights['tardal'].parent}: holds no *encoder*.pkl files"),
        ("train_det", ["--fusion", "seafusion", "--out", out],
         "error: seafusion needs its authors' weights, which the toolkit does not ship: pass --weights PATH"),
        ("compare_methods", ["--task", "seg", "--methods", "ir,tardal", "--weights", f"tardal={weights['seafusion']}",
                             "--out", out], f"error: {weights['seafusion']}: not TarDAL weights"),
        ("demo", ["--weights", f"didfuse={weights['seafusion']}", "--out", out],
         f"error: {weights['seafusion']}: names neither an encoder"),
    ]
    for tool, args, words in cases:
        r = _tool(tool, *args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith(words), (tool, r.stderr[-2000:])
        assert not out.exists()  # nothing run, nothing written


def test_the_demo_gains_the_rows_of_the_methods_given_weights(weights):
    from fusion_perception.comparison.demo import DEMO_METHODS, demo_methods
    from fusion_perception.errors import ConfigError

    given = {"tardal": str(weights["tardal"]), "didfuse": str(weights["didfuse"])}
    assert demo_methods(DEMO_METHODS, given) == ([*DEMO_METHODS, "tardal", "didfuse"], given)
    assert demo_methods(DEMO_METHODS, None) == (list(DEMO_METHODS), {})  # runnable without them
    assert demo_methods(["ir", "tardal"], given)[0] == ["ir", "tardal", "didfuse"]  # each row once
    with pytest.raises(ConfigError, match="choose one"):
        demo_methods(DEMO_METHODS, {"emma": "EMMA.pth"}, train_emma=True)


def test_weights_of_several_methods_in_one_flag():
    from fusion_perception.commands.compare_methods import build_parser

    args = build_parser().parse_args(["--methods", "didfuse,tardal,emma", "--weights", "didfuse=/w/a,b,tardal=t.pt",
                                      "--weights", "emma=official"])
    assert args.weights == {"didfuse": "/w/a,b", "tardal": "t.pt", "emma": "official"}


@pytest.mark.slow
def test_a_comparison_runs_a_learned_method_with_its_weights(weights, synthetic_root, tmp_path):
    from test_compare import tiny_seg_config

    out, fused_root = tmp_path / "cmp", tmp_path / "fused"
    r = _tool("compare_methods", "--task", "seg", "--methods", "tardal", "--weights", f"tardal={weights['tardal']}",
              "--seg-data", synthetic_root / "msrs", "--seg-config", tiny_seg_config(tmp_path), "--out", out,
              "--fused-root", fused_root, "--no-quality", "--no-progress", timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| tardal |" in (out / "tables" / "seg.md").read_text()
    sha = build_fuser("tardal", "cpu", weights=str(weights["tardal"])).checkpoint_sha256()
    manifest = json.loads((fused_root / f"tardal-{sha[:8]}" / "msrs" / "manifest.json").read_text())
    assert manifest["fusion_weights_sha256"] == sha
    results = json.loads((out / "seg" / "tardal" / "seed0" / "results.json").read_text())
    assert results["settings"]["fusion_weights_sha256"] == sha


@pytest.mark.parametrize("method", METHODS)
def test_the_reference_script_writes_what_the_stage_writes(method, weights, tmp_path):
    pairs = random_pairs(tmp_path / "pairs", n=3, size=(45, 38), seed=2, colour_every=1)
    r = subprocess.run([sys.executable, str(REPO / "tests" / "reference" / "reference_learned.py"), "--method", method,
                        "--data", str(pairs), "--weights", reference_weights(method, weights[method]),
                        "--out", str(tmp_path / "reference")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    fuse_dataset(pairs, method, tmp_path / "ours", weights=str(weights[method]), progress=False)
    for name in ("p000", "p001", "p002"):
        ours = cv2.imread(str(tmp_path / "ours" / "fused" / f"{name}.png"))
        reference = cv2.imread(str(tmp_path / "reference" / f"{name}.png"))
        diff = np.abs(ours.astype(int) - reference.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() <= 1e-3, (name, diff.max(), (diff > 0).sum())


def test_learned_methods_make_the_sensing_nets_pseudo_ground_truth(weights, synthetic_root, tmp_path):
    """``train_sensing.py --pseudo-gt didfuse,tardal --weights ...`` (the public code's pseudo ground
    truth is DIDFuse's): the patches hold each method's gray result, other weights at the same path
    make other patches, and the command trains on them."""
    import shutil

    import torch

    from fusion_perception.emma.training.patches import PatchOptions, _read_pair, build_patches, training_records

    tardal = tmp_path / "w" / "tardal.pt"
    tardal.parent.mkdir()
    shutil.copy(weights["tardal"], tardal)
    options = PatchOptions(patch_size=32, stride=40, max_patches=4, cache_dir=tmp_path / "cache")
    entries = [{"method": "tardal", "weights": str(tardal)}, "mean"]
    a = build_patches(synthetic_root / "msrs", entries, options, progress=False)
    assert a.fused.shape == (2, 4, 32, 32) and a.methods[1] == "mean"
    fuser = build_fuser("tardal", "cpu", weights=str(tardal))
    _, records = training_records(synthetic_root / "msrs", "auto")
    rec = next(r for r in records if r.name == a.names[0])
    ir, vi = (torch.from_numpy(x)[None, None] for x in _read_pair(rec))  # the patches' own reading
    whole = (fuser.fuse(ir, vi)[0, 0].numpy() * 255).round().astype(np.uint8)
    assert any(np.array_equal(a.fused[0, 0], whole[y:y + 32, x:x + 32])
               for y in range(0, whole.shape[0] - 31, 40) for x in range(0, whole.shape[1] - 31, 40))
    shutil.copy(write_weights("tardal", tmp_path / "other", seed=5), tardal)  # other weights, same path
    b = build_patches(synthetic_root / "msrs", entries, options, progress=False)
    assert b.path != a.path and not np.array_equal(a.fused[0], b.fused[0])

    r = _tool("train_sensing", "--data", synthetic_root / "msrs", "--pseudo-gt", "didfuse,tardal", "--weights",
              f"didfuse={weights['didfuse']},tardal={tardal}", "--target", "ir", "--epochs", "1", "--max-patches", "4",
              "--out", tmp_path / "sensing", "--no-progress", "--cfg-options", "model.widths=(4,4,8,8,8)",
              "train_dataloader.dataset.patch_size=32", "train_dataloader.dataset.stride=40")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "sensing" / "sensing_ir.pth").is_file()
    # a learned method the config lists (as configs/sensing/msrs_det_cpu.py lists didfuse and tardal)
    # takes its weights from --weights alone: the patches hold its fusion, as with --pseudo-gt
    config = tmp_path / "learned_pgt.py"
    config.write_text(f'_base_ = ["{REPO / "configs" / "sensing" / "small_cpu.py"}"]\n'
                      'train_dataloader = dict(dataset=dict(pseudo_gt=("tardal", "mean")))\n')
    r = _tool("train_sensing", "--config", config, "--data", synthetic_root / "msrs", "--weights", f"tardal={tardal}",
              "--target", "ir", "--epochs", "1", "--max-patches", "4", "--out", tmp_path / "from_config",
              "--no-progress", "--cfg-options", "model.widths=(4,4,8,8,8)", "train_dataloader.dataset.patch_size=32",
              "train_dataloader.dataset.stride=40")
    assert r.returncode == 0, r.stderr[-2000:]
    with np.load(next((tmp_path / "from_config").glob("patches_*.npz"))) as z:
        assert [str(m) for m in z["methods"]] == [f"tardal(weights={tardal})", "mean"]
    for args, words in ((["--pseudo-gt", "tardal"], "error: tardal needs its authors' weights"),
                        (["--config", config],  # the config lists tardal: the error says how to give its weights
                         "error: tardal needs its authors' weights, which the toolkit does not ship: pass --weights PATH "
                         "(--weights tardal=PATH where a command takes several methods)"),
                        (["--weights", f"tardal={tardal}"],  # the default config's list has no tardal
                         "error: --weights given for methods not in the pseudo ground truth (laplacian(levels=5), "),
                        (["--pseudo-gt", "mean", "--weights", f"tardal={tardal}"],
                         "error: --weights given for methods not in the pseudo ground truth (mean): tardal")):
        r = _tool("train_sensing", "--data", synthetic_root / "msrs", *args, "--out", tmp_path / "no")
        assert r.returncode == 2 and r.stderr.strip().startswith(words), r.stderr[-2000:]
        assert not (tmp_path / "no").exists()
