"""Method against method: an interrupted comparison resumes without retraining finished methods."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from fusion_perception.comparison.compare import parse_methods
from fusion_perception.errors import ConfigError, ImageReadError

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "compare_methods.py"


def tiny_seg_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "tiny_seg.py"
    base = REPO / "configs" / "seg" / "small_cpu.py"
    cfg.write_text(
        f"_base_ = [{str(base)!r}]\n"
        "max_epochs = 1\n"
        "train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=2)\n"
        "param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=1, T_max=1,"
        " eta_min=0.0, convert_to_iter_based=True)]\n"
        "default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=True,"
        " max_keep_ckpts=1, save_last=True))\n"
    )
    return cfg


def compare_cmd(data: Path, config: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(TOOL), "--task", "seg", "--methods", "ir,vi", "--seg-data", str(data),
            "--seg-config", str(config), "--out", str(out), "--fused-root", str(out.parent / "fused"), *extra]


@pytest.mark.slow
def test_interrupted_comparison_does_not_retrain_finished_methods(synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    cmd = compare_cmd(synthetic_root / "msrs", tiny_seg_config(tmp_path), out, "--no-quality")
    first = out / "seg" / "ir" / "seed0" / "results.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.time() + 240
        while not first.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert first.exists(), "the first method never finished"
    finally:
        proc.send_signal(signal.SIGKILL)  # interrupted after the first method
        proc.wait()
    stamp = first.stat().st_mtime_ns
    first_results = json.loads(first.read_text())

    # Resumed with quality, the remaining runs in two worker processes.
    done = subprocess.run([*cmd[:-1], "--jobs", "2"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert first.stat().st_mtime_ns == stamp, "the finished method was retrained"
    assert json.loads(first.read_text()) == first_results
    assert (out / "seg" / "vi" / "seed0" / "results.json").is_file()

    md = (out / "tables" / "seg.md").read_text()
    assert "| ir |" in md and "| vi |" in md and "mIoU" in md
    assert "EN" in (out / "tables" / "fusion_quality.md").read_text()
    for png in ("seg_miou.png", "qualitative.png"):
        img = cv2.imread(str(out / "plots" / png))
        assert img is not None and min(img.shape[:2]) > 100


def test_dataset_errors_survive_a_worker_process() -> None:
    err = pickle.loads(pickle.dumps(ImageReadError("/data/x.png", "truncated")))
    assert isinstance(err, ImageReadError) and err.path == Path("/data/x.png") and err.problem == "truncated"
    assert str(err) == "/data/x.png: truncated"


def test_method_list_errors() -> None:
    assert parse_methods("ir, vi,folder:X=/p") == ["ir", "vi", "folder:X=/p"]
    with pytest.raises(ConfigError, match="named twice: ir"):
        parse_methods("ir,vi,ir")
    with pytest.raises(ConfigError, match="no fusion methods"):
        parse_methods(" , ")


def test_unknown_method_fails_before_training(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(TOOL), "--task", "seg", "--methods", "ir,nosuch",
                        "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "nosuch" in r.stderr and "registered methods" in r.stderr
    assert not (tmp_path / "o" / "seg").exists()


def test_parallel_runs_probe_sibling_output_folders(tmp_path: Path) -> None:
    """Parallel units of a comparison check out/det/<method>/seed0 at once, the shared parents
    missing: each finds its folder writable and none sees another's half-made parent as an error."""
    import multiprocessing

    from fusion_perception.outputs import check_output_dir

    for round_ in range(10):
        dirs = [tmp_path / f"r{round_}" / "det" / m / "seed0" for m in ("ir", "vi", "mean", "max")]
        with multiprocessing.get_context("fork").Pool(4) as pool:
            assert pool.map(check_output_dir, dirs) == dirs
        assert not (tmp_path / f"r{round_}").exists() or not any((tmp_path / f"r{round_}").rglob("*.write_test*"))
