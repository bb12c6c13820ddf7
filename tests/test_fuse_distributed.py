"""The fuse stage over several processes with torchrun (2 ranks, CPU, gloo): the single process's
output file for file, one merged manifest, and a killed run that resumes per rank."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from pair_folders import random_pairs
import torch

from fusion_perception.errors import DatasetError
from fusion_perception.fusion.manifest import load_fused_dataset
from fusion_perception.emma.ufuser import UFuser
from fusion_perception.emma.checkpoint import save_official_state_dict

REPO = Path(__file__).resolve().parents[1]
CLI = REPO / "tools" / "fuse_dataset.py"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
def _env(**extra: str) -> dict[str, str]:
    # One torch thread in every process, as torchrun gives each rank: the same arithmetic (a
    # network's float results may differ in the last bit between thread counts).
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}


def _run(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run([*map(str, cmd)], capture_output=True, text=True, env=env or _env(), timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def _files(root: Path) -> dict[str, bytes]:
    """Every file of an output folder but the manifests, by relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


def _manifest(path: Path) -> dict:
    m = json.loads(path.read_text())
    return {k: v for k, v in m.items() if k not in ("started", "finished")}


@pytest.mark.parametrize("method", ["mean", "emma"])
def test_two_ranks_equal_one_process(method, synthetic_root, tmp_path):
    """Both synthetic layouts (labels, splits, colour): every fused image and label file the
    same bytes, one manifest per part with the same records and counts."""
    extra = ["--batch-size", "3"]
    if method == "emma":
        torch.manual_seed(0)
        weights = save_official_state_dict(UFuser((8, 8, 16, 16)), tmp_path / "emma_narrow.pth")
        extra += ["--weights", weights]
    common = ["--data", synthetic_root, "--method", method, *extra, "--quiet"]
    one = _run([sys.executable, CLI, *common, "--out", tmp_path / "one"])
    two = _run([*TORCHRUN, CLI, *common, "--out", tmp_path / "two"])
    assert two.stdout.count("fused images in") == one.stdout.count("fused images in") == 2  # the leader reports
    assert _files(tmp_path / "two") == _files(tmp_path / "one")
    for part in ("m3fd", "msrs"):
        m1, m2 = _manifest(tmp_path / "one" / part / "manifest.json"), _manifest(tmp_path / "two" / part / "manifest.json")
        assert m2 == m1 and m2["complete"] and m2["counts"]["fused"] == 24
        assert [p.name for p in (tmp_path / "two" / part).glob("manifest*")] == ["manifest.json"]  # one, merged
    # run again on the finished output: every rank takes the same view of it (the entries, the
    # sources' digests included) and reuses it as is; none waits for a manifest the leader never rewrites
    again = _run([*TORCHRUN, CLI, *common, "--out", tmp_path / "two"])
    assert "0 new" in again.stdout and _files(tmp_path / "two") == _files(tmp_path / "one")


def test_killed_two_rank_run_resumes_per_rank(tmp_path, slow_mean_plugin):
    src = random_pairs(tmp_path / "src", 24, size=(64, 48), colour_every=1)
    env = _env(PYTHONPATH=os.pathsep.join([str(slow_mean_plugin), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "two"
    args = [*TORCHRUN, str(CLI), "--data", str(src), "--method", "slow_mean", "--import", "slow_fuser_plugin",
            "--param", "delay=0.15", "--batch-size", "1", "--out", str(out), "--quiet"]

    # SIGKILL the whole job once some images are there: both ranks (torchrun starts each in a
    # session of its own) and torchrun, as a crash or the OOM killer would
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    try:
        while len(list((out / "fused").glob("*.png"))) < 6:
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the ranks wrote nothing in time"
            time.sleep(0.02)
    finally:
        job = psutil.Process(proc.pid)
        for p in [*job.children(recursive=True), job]:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGKILL)
        proc.communicate()
    before = {p.name: p.stat().st_mtime_ns for p in (out / "fused").glob("*.png")}
    assert 6 <= len(before) < 24, f"{len(before)} images at the kill: not half-way"
    assert json.loads((out / "manifest.json").read_text())["complete"] is False
    with pytest.raises(DatasetError, match="not finished"):
        load_fused_dataset(out)

    _run(args, env)  # the same command again
    fused = load_fused_dataset(out)
    assert len(fused) == 24 and fused.manifest["complete"]
    assert fused.manifest["counts"]["skipped"] == len(before)
    assert fused.manifest["counts"]["fused"] == 24 - len(before)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    for name, mtime in before.items():  # what either rank had finished was kept, not redone
        assert (out / "fused" / name).stat().st_mtime_ns == mtime, name
    # and the result is the uninterrupted single process's, file for file
    _run([sys.executable, CLI, "--data", src, "--method", "slow_mean", "--import", "slow_fuser_plugin",
          "--param", "delay=0", "--batch-size", "1", "--out", tmp_path / "one", "--quiet"], env)
    assert _files(out) == _files(tmp_path / "one")


def test_a_second_writer_waits_for_the_first(tmp_path):
    """Two runs into one fused folder (two seeds of a method in a comparison): the second waits
    for the first's lock, then finds every image written, instead of failing."""
    import threading
    import time

    from fusion_perception.fusion.manifest import exclusive
    from fusion_perception.fusion.stage import fuse_dataset

    src = random_pairs(tmp_path / "src")
    out = tmp_path / "out"
    out.mkdir()
    released = threading.Event()

    def hold() -> None:
        with exclusive(out):
            time.sleep(1.0)
        released.set()

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.2)
    fused = fuse_dataset(src, "mean", out, progress=False)
    assert released.is_set()  # it waited
    holder.join()
    assert len(fused.records) == 4 and not (out / ".fuse_dataset.lock").exists()
