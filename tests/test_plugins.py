"""A new fusion method and a new dataset layout are each ONE new file, outside the package, whose
name is written once (in its decorator); the tools load it with ``--import MODULE`` and the
package with ``import_plugins``, and it then works like a built-in one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from pair_folders import random_pairs

from fusion_perception.data.image_io import read_image
from fusion_perception.registry import DATASET_LAYOUTS, FUSERS, PluginImportError, import_plugins

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

TOY_LAYOUT = '''
from fusion_perception.data.layouts import DatasetLayout, PairListing
from fusion_perception.data.layouts.scan import pair_candidates, subdirs
from fusion_perception.registry import DATASET_LAYOUTS


@DATASET_LAYOUTS.register_module(name="toy_frames")
class ToyFrames(DatasetLayout):
    """ROOT/thermal/ and ROOT/colour/ hold the pairs; ROOT/frames.txt says '<split> <name>' per line."""

    classes = ("thing",)
    description = "toy frames (thermal/, colour/ and frames.txt)"
    need = "thermal/, colour/ and frames.txt"

    def detect(self, root):
        return (root / "frames.txt").is_file() and {"thermal", "colour"} <= subdirs(root).keys()

    def list_pairs(self, root):
        subs = subdirs(root)
        listing = PairListing(modalities=(subs["thermal"].name, subs["colour"].name))
        listing.candidates = pair_candidates(subs["thermal"], subs["colour"], listing.problems)
        lines = (root / "frames.txt").read_text().splitlines()
        split_of = {name: split for split, name in (line.split() for line in lines if line.strip())}
        for pair in listing.candidates:
            pair.split = split_of.get(pair.name)
        return listing

    def fused_path(self, record):
        return f"{record.split}/fused/{record.name}.png"

    def extra_files(self, root):
        return ["frames.txt"]
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
    for registry in (FUSERS, DATASET_LAYOUTS):
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


def _toy_frames(root: Path) -> Path:
    """6 gray pairs in thermal/ + colour/, 4 listed as train and 2 as test in frames.txt."""
    random_pairs(root, 6, seed=3)
    (root / "ir").rename(root / "thermal")
    (root / "vi").rename(root / "colour")
    (root / "frames.txt").write_text("".join(f"{'train' if i < 4 else 'test'} p{i:03d}\n" for i in range(6)))
    return root


# ----------------------------------------------------------------------------- a fusion method


def test_a_fusion_method_in_one_file_works_through_the_cli_and_the_stage(tmp_path, plugin_dir):
    from fusion_perception.fusion.base import build_fuser, registered_methods
    from fusion_perception.fusion.manifest import load_fused_dataset
    from fusion_perception.fusion.stage import fuse_dataset

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


# ----------------------------------------------------------------------------- a dataset layout


def test_a_dataset_layout_in_one_file_works_through_the_cli(tmp_path, plugin_dir):
    from fusion_perception.data.readers import detect_layout
    from fusion_perception.fusion.manifest import load_fused_dataset

    _write_plugin(plugin_dir, "toy_layout_plugin", TOY_LAYOUT)
    root = _toy_frames(tmp_path / "frames")
    assert detect_layout(root) == "pairs"  # without the plugin: two image folders, nothing more
    out = tmp_path / "out"
    r = _run_cli(plugin_dir, "--import", "toy_layout_plugin", "--data", root, "--method", "max",
                 "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert f"max: 6 fused images in {out} (6 new, 0 kept)" in r.stdout
    assert f"next: python tools/eval_fusion.py --fused {out} --out {out}/eval" in r.stdout  # no task's labels
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["layout"] == "toy_frames" and manifest["source"]["classes"] == ["thing"]
    assert manifest["source"]["modalities"] == ["thermal", "colour"]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        *(f"test/fused/p00{i}.png" for i in (4, 5)), *(f"train/fused/p00{i}.png" for i in range(4))]
    assert (out / "frames.txt").read_bytes() == (root / "frames.txt").read_bytes()  # its extra file
    assert manifest["extra_files"] == ["frames.txt"]
    fused = load_fused_dataset(out)
    assert fused.source_layout == "toy_frames" and [r.split for r in fused.records] == ["train"] * 4 + ["test"] * 2
    for rec in fused.records:
        ir = read_image(root / "thermal" / f"{rec.name}.png")
        vi = read_image(root / "colour" / f"{rec.name}.png")
        assert np.array_equal(read_image(rec.image_path), np.maximum(ir, vi)), rec.name


def test_a_layout_an_import_registers_can_be_named_with_layout(tmp_path, plugin_dir):
    """``--layout NAME`` takes a layout that only an ``--import`` module registers: the tool imports
    those modules before it builds its parser, whose choices and ``--help`` then list it."""
    _write_plugin(plugin_dir, "toy_layout_plugin", TOY_LAYOUT)
    root = _toy_frames(tmp_path / "frames")
    out = tmp_path / "out"
    r = _run_cli(plugin_dir, "--import", "toy_layout_plugin", "--layout", "toy_frames", "--data", root,
                 "--method", "max", "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert f"max: 6 fused images in {out} (6 new, 0 kept)" in r.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["layout"] == "toy_frames" and manifest["source"]["modalities"] == ["thermal", "colour"]
    assert (out / "train" / "fused" / "p000.png").is_file() and (out / "test" / "fused" / "p005.png").is_file()

    shown = _run_cli(plugin_dir, "--import", "toy_layout_plugin", "--help")
    assert shown.returncode == 0 and "msrs_det,toy_frames}" in shown.stdout.replace("\n", "").replace(" ", "")
    # without the module the name is unknown: a usage error, as for any other unknown layout
    unknown = _run_cli(plugin_dir, "--layout", "toy_frames", "--data", root, "--method", "max", "--out", out)
    assert unknown.returncode == 2 and "invalid choice: 'toy_frames'" in unknown.stderr


def test_a_dataset_layout_in_one_file_works_through_the_package(tmp_path, plugin_dir):
    from fusion_perception.data.layouts import layout_help, layout_names
    from fusion_perception.data.readers import describe, detect_layout, load_dataset
    from fusion_perception.fusion.stage import fuse_dataset

    _write_plugin(plugin_dir, "toy_layout_plugin", TOY_LAYOUT)
    root = _toy_frames(tmp_path / "wrapper" / "frames")
    import_plugins(["toy_layout_plugin"])
    assert layout_names() == ("pairs", "m3fd", "m3fd_tardal", "msrs", "msrs_det", "toy_frames")
    assert "TarDAL M3FD (ir/, vi/ with labels/ YOLO txt and/or meta/{train,val,pred}.txt), toy frames " \
           "(thermal/, colour/ and frames.txt), or a pair folder" in layout_help()  # tried before pairs
    assert detect_layout(root) == detect_layout(tmp_path / "wrapper") == "toy_frames"  # also one wrapper deep
    ds = load_dataset(root)
    assert ds.layout == "toy_frames" and ds.classes == ("thing",) and ds.modalities == ("thermal", "colour")
    assert [(r.name, r.split) for r in ds.records][3:5] == [("p003", "train"), ("p004", "test")]
    assert "per split: train 4, test 2" in describe(ds)
    assert load_dataset(root, layout="pairs").layout == "pairs"  # a layout asked for by name still wins
    fused = fuse_dataset(root, "mean", tmp_path / "out", progress=False)
    assert [r.image_path.relative_to(fused.root).as_posix() for r in fused.records][3:5] == [
        "train/fused/p003.png", "test/fused/p004.png"]
