"""Shared fixtures: the real samples in ../shared (skipped where absent) and synthetic data."""

from __future__ import annotations

import logging
import os
import runpy
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FUSION_PERCEPTION_SHARED", REPO.parent / "shared"))

# One intra-op thread: on two shared cores, two torch threads mostly wait on each other.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def own_fused_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test fuses into its own cache (the tools' shared work_dirs/fused stays untouched)."""
    from fusion_perception.fusion.cache import CACHE_ENV

    root = tmp_path_factory.mktemp("fused_cache")
    monkeypatch.setenv(CACHE_ENV, str(root))
    return root


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip(f"real sample data not found at {SHARED} (set FUSION_PERCEPTION_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def shared_data(shared_dir: Path) -> Path:
    return shared_dir / "data"


@pytest.fixture(scope="session")
def shared_fixtures(shared_dir: Path) -> Path:
    return shared_dir / "fixtures"


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic M3FD-layout and MSRS-layout set, made once per test session."""
    from fusion_perception.synthetic.dataset import generate

    out = tmp_path_factory.mktemp("synthetic")
    generate(out, task="both", count=24, size=(160, 128), seed=0)
    return out


_SLOW_MEAN_PLUGIN = '''
import time
from fusion_perception.fusion.classical import ClassicalFuser
from fusion_perception.registry import FUSERS

@FUSERS.register_module(name="slow_mean")
class SlowMean(ClassicalFuser):
    """The mean, taking its time: lets a test kill the stage half-way."""
    name = "slow_mean"
    defaults = {"delay": 0.05}

    def fuse(self, ir, vi, names=None):
        time.sleep(self.params["delay"])
        return (ir + vi) / 2
'''


@pytest.fixture
def slow_mean_plugin(tmp_path: Path) -> Path:
    """A folder holding ``slow_fuser_plugin.py``, which registers ``slow_mean``: the mean, taking
    ``--param delay=SECONDS`` per batch, so that a test can kill the stage half-way. Put the
    folder on PYTHONPATH and pass ``--import slow_fuser_plugin``."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "slow_fuser_plugin.py").write_text(_SLOW_MEAN_PLUGIN)
    return folder


@pytest.fixture
def tool(capsys):
    """Run ``tools/<name>.py``'s main in this process: ``(exit code, stdout, stderr)``."""

    def run(name: str, *args) -> tuple[int, str, str]:
        main = runpy.run_path(str(REPO / "tools" / f"{name}.py"))["main"]
        capsys.readouterr()
        root = logging.getLogger()
        handlers = list(root.handlers)
        try:
            rc = main([str(a) for a in args])
        finally:  # the tool's logging.basicConfig handler writes to this test's captured stderr
            for h in [h for h in root.handlers if h not in handlers]:
                root.removeHandler(h)
        out, err = capsys.readouterr()
        return rc, out, err

    return run


@pytest.fixture
def unwritable_dir(tmp_path):
    """A folder nobody can create files in: immutable (chattr +i) as root, read-only otherwise."""
    d = tmp_path / "locked"
    d.mkdir()
    undo = None
    if os.geteuid() == 0:
        if shutil.which("chattr") and subprocess.run(["chattr", "+i", str(d)], capture_output=True).returncode == 0:
            undo = ["chattr", "-i", str(d)]
    else:
        d.chmod(0o555)
    try:
        (d / "probe").touch()
    except OSError:
        pass
    else:
        (d / "probe").unlink()
        pytest.skip("cannot make a folder unwritable here (no chattr, file system without the flag)")
    yield d
    if undo:
        subprocess.run(undo, check=False)
    d.chmod(0o755)
