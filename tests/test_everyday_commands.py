"""The three everyday commands: ``fuse_dataset.py`` bare fuses with EMMA into the shared cache, and
``train_det.py --fusion emma`` / ``train_seg.py`` reuse it (nothing fused twice); short output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tool(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(REPO / "tools" / f"{name}.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


def _stamps(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*.png"))}


@pytest.mark.slow
def test_fuse_then_train_reuses_the_fused_images(synthetic_root: Path, tmp_path: Path, own_fused_cache: Path):
    # 1. fuse_dataset.py with only --data: EMMA (the toolkit's checkpoint on synthetic data), both parts
    fuse = _tool("fuse_dataset", "--data", str(synthetic_root), cwd=tmp_path)
    assert fuse.returncode == 0, fuse.stderr
    m3fd, msrs = own_fused_cache / "emma" / "m3fd", own_fused_cache / "emma" / "msrs"
    assert json.loads((m3fd / "manifest.json").read_text())["method"] == "emma"
    assert "next: python tools/train_det.py --fusion emma" in fuse.stdout
    before = {"m3fd": _stamps(m3fd), "msrs": _stamps(msrs)}
    assert len(before["m3fd"]) == 24 and before["msrs"]

    # 2. train_det.py --fusion emma: reads the cache, rewrites none of it; short output
    det = _tool("train_det", "--data", str(synthetic_root / "m3fd"), "--fusion", "emma", "--epochs", "1",
                "--imgsz", "128", cwd=tmp_path)
    assert det.returncode == 0, det.stderr
    assert _stamps(m3fd) == before["m3fd"]
    assert "detection config: small_cpu on the CPU" in det.stderr
    assert "fuse emma: 24 images reused from" in det.stderr
    assert "emma: mAP@0.5" in det.stdout and "next: python tools/train_seg.py" in det.stdout
    run = tmp_path / "work_dirs" / "det" / "small_cpu" / "emma_seed0"
    assert json.loads((run / "run.json").read_text())["fused_dir"] == str(m3fd.resolve())
    assert "Ultralytics" in (run / "run.log").read_text()  # the library's chatter went to the log
    assert len(det.stdout.splitlines()) + len(det.stderr.splitlines()) < 25
    assert "Ultralytics" not in det.stderr + det.stdout

    # 3. train_seg.py bare (but for the data and a one-epoch run): EMMA by default, the cache again
    seg = _tool("train_seg", "--data", str(synthetic_root / "msrs"), "--epochs", "1", cwd=tmp_path)
    assert seg.returncode == 0, seg.stderr
    assert _stamps(msrs) == before["msrs"]
    assert "emma: mIoU" in seg.stdout
    out = tmp_path / "work_dirs" / "seg" / "small_cpu" / "emma_seed0"
    assert json.loads((out / "results.json").read_text())["fused_dir"] == str(msrs.resolve())
    assert "mmengine" in (out / "run.log").read_text()
    assert "mmengine" not in seg.stderr + seg.stdout


def test_other_weights_get_their_own_cache_folder(tmp_path: Path):
    """Fusing with another checkpoint neither replaces nor collides with the default's cached images."""
    from fusion_perception.emma.fuser import EMMAFuser
    from fusion_perception.emma.weights import DEFAULT_EMMA_WEIGHTS, OFFICIAL_EMMA_FILE, emma_cache_dir
    from fusion_perception.files import file_sha256

    other = tmp_path / "mine.pth"
    other.write_bytes(b"another checkpoint")
    cache_label = EMMAFuser.cache_label  # (label, weights resolved, their sha256)
    assert cache_label("emma", None, None) == "emma"
    assert cache_label("emma", DEFAULT_EMMA_WEIGHTS, file_sha256(DEFAULT_EMMA_WEIGHTS)) == "emma"
    assert cache_label("emma", emma_cache_dir() / OFFICIAL_EMMA_FILE, "46f38247") == "emma-official"
    assert cache_label("emma", other, file_sha256(other)) == f"emma-{file_sha256(other)[:8]}"
