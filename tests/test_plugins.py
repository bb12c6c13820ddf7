"""A new fusion method is ONE new file, outside the package, whose name is written once (in its
decorator); the tools load it with ``--import MODULE`` and the package with ``import_plugins``,
and it then works like a built-in one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from pair_folders import random_pairs

from fusion_perception.data.image_io import read_image
from fusion_perception.registry import FUSERS, PluginImportError, import_plugins

REPO = Path(__file__).resolve().parents[1]
CLI = REPO / "tools" / "fuse_dataset.py"

TOY_FUSER = '''
import torch

from fusion_perception.fusion.base import Fuser
from fusion_perception.registry import FUSERS


@FUSERS.register_module(name="toy_min")
class ToyMin(Fuser):
    """The darker of the two images at every pixel."""

    def fuse(self, ir, vi, names=None):
        return torch.minimum(ir, vi)
'''

def _write_plugin(folder: Path, module: str, source: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / f"{module}.py").write_text(source)
    return folder


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for plugin files; what they register is unregistered afterwards, so
    that the other tests see the built-in registries only."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for registry in (FUSERS,):
        for key in [k for k, cls in registry.module_dict.items() if cls.__module__.startswith("toy_")]:
            del registry.module_dict[key]
    for module in [m for m in sys.modules if m.startswith("toy_")]:
        del sys.modules[module]


def _run_cli(plugins: Path, *args: object) -> subprocess.CompletedProcess:
    # the plugin folder and this checkout first: the tool must import this package, not an installed one
    path = os.pathsep.join([str(plugins), str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(CLI), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


# ----------------------------------------------------------------------------- a fusion method


def test_a_fusion_method_in_one_file_works_through_the_cli_and_the_stage(tmp_path, plugin_dir):
    from fusion_perception.fusion.base import build_fuser, registered_methods
    from fusion_perception.fusion.stage import fuse_dataset, load_fused_dataset

    _write_plugin(plugin_dir, "toy_fuser_plugin", TOY_FUSER)
    src = random_pairs(tmp_path / "src", 4)
    r = _run_cli(plugin_dir, "--import", "toy_fuser_plugin", "--method", "toy_min", "--data", src,
                 "--out", tmp_path / "cli", "--quiet")
    assert r.returncode == 0, r.stderr
    assert f"toy_min: 4 fused images in {tmp_path / 'cli'} (4 new, 0 kept)" in r.stdout
    by_cli = load_fused_dataset(tmp_path / "cli")
    assert by_cli.label == "toy_min" and by_cli.manifest["fuser"]["method"] == "toy_min"  # named once
    for rec in by_cli.records:
        ir, vi = read_image(src / "ir" / f"{rec.name}.png"), read_image(src / "vi" / f"{rec.name}.png")
        assert np.array_equal(read_image(rec.image_path), np.minimum(ir, vi)), rec.name

    assert "toy_min" not in FUSERS.module_dict  # this process has not imported it yet
    assert import_plugins(["toy_fuser_plugin"]) == ["toy_fuser_plugin"]
    assert "toy_min" in registered_methods() and build_fuser("toy_min").name == "toy_min"
    by_stage = fuse_dataset(src, "toy_min", tmp_path / "stage", progress=False)
    assert [r.name for r in by_stage.records] == [r.name for r in by_cli.records]
    for a, b in zip(by_stage.records, by_cli.records):
        assert a.image_path.read_bytes() == b.image_path.read_bytes()  # the same method either way


def test_import_of_a_missing_module_is_one_line(tmp_path, plugin_dir):
    with pytest.raises(PluginImportError, match="--import toy_absent_plugin: No module named 'toy_absent_plugin'"):
        import_plugins(["toy_absent_plugin"])
    r = _run_cli(plugin_dir, "--import", "toy_absent_plugin", "--data", random_pairs(tmp_path / "src", 2),
                 "--method", "mean", "--out", tmp_path / "out")
    assert r.returncode == 2
    assert r.stderr.strip() == "error: --import toy_absent_plugin: No module named 'toy_absent_plugin'"
