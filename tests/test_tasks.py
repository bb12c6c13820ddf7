"""A new downstream task is ONE new file: it registers a :class:`~fusion_perception.runs.Task` in
``TASKS`` and runs through the comparison as detection and segmentation do (the same skeleton:
source -> fuse -> prepare -> skip if done -> train -> evaluate -> results), with no edit elsewhere."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterator

import cv2
import pytest

from fusion_perception.registry import TASKS, Registry, import_plugins

TOY_TASK = '''
"""A toy task: the share of a method's fused test images brighter than its training images'
median (the "model" it trains is that median)."""
from dataclasses import dataclass

import numpy as np

from fusion_perception.data.image_io import read_image
from fusion_perception.registry import TASKS
from fusion_perception.record import read_json, write_json, write_results
from fusion_perception.runs import Task

STEPS = []  # the skeleton's calls, in order, for the test to read


@dataclass
class ToyOptions:
    quantile: float = 0.5


@TASKS.register_module(name="toy")
class BrightnessTask(Task):
    title = "Toy: bright test images"
    metric = "bright"
    plot_stem = "bright"
    columns = ("bright",)
    options_type = ToyOptions

    def fuse(self, plan, source):
        STEPS.append("fuse")
        return super().fuse(plan, source)

    def prepare(self, plan, fused):
        STEPS.append("prepare")
        return {s: [float(read_image(r.image_path).mean()) for r in fused.split(s)] for s in ("train", "test")}

    def train(self, plan, brightness):
        STEPS.append("train")
        threshold = float(np.quantile(brightness["train"], plan.request.options.quantile))
        write_json(plan.out / "model.json", {"threshold": threshold})

    def evaluate(self, plan, brightness):
        STEPS.append("evaluate")
        threshold = read_json(plan.out / "model.json")["threshold"]
        bright = float(np.mean([b >= threshold for b in brightness["test"]]))
        results = {"task": self.name, "method": plan.request.method, "label": plan.label,
                   "seed": plan.request.seed, "bright": bright, "settings": plan.settings}
        write_results(plan.out, results, f"| {plan.label} | {100 * bright:.1f} |\\n")
        return results
'''


@pytest.fixture
def toy_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """``toy_task_plugin.py`` in a folder on ``sys.path``, imported as the tools' ``--import`` does;
    unregistered again afterwards."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "toy_task_plugin.py").write_text(TOY_TASK)
    monkeypatch.syspath_prepend(str(folder))
    assert import_plugins(["toy_task_plugin"]) == ["toy_task_plugin"]
    try:
        yield sys.modules["toy_task_plugin"]
    finally:
        TASKS.module_dict.pop("toy", None)
        sys.modules.pop("toy_task_plugin", None)


def test_a_task_in_one_new_file_runs_through_compare_methods(toy_task, synthetic_root: Path, tmp_path: Path) -> None:
    from fusion_perception.comparison.compare import compare_methods

    assert TASKS.names() == ["det", "seg", "toy"] and TASKS.get("toy").name == "toy"
    out, fused_root = tmp_path / "cmp", tmp_path / "fused"
    options = dict(task="toy", toy_data=synthetic_root / "msrs", quality=False, progress=False, fused_root=fused_root)
    result = compare_methods("ir,vi", out, **options)
    # the skeleton's steps, in order, for each method
    assert toy_task.STEPS == ["fuse", "prepare", "train", "evaluate"] * 2
    for method in ("ir", "vi"):
        manifest = json.loads((fused_root / method / "msrs" / "manifest.json").read_text())
        assert manifest["method"] == method and manifest["complete"]  # fused into the shared cache
        run = out / "toy" / method / "seed0"
        assert json.loads((run / "results.json").read_text())["task"] == "toy"
        assert (run / "results.md").read_text().startswith(f"| {method} |")
    ir, vi = result.results["toy"]
    assert ir["label"] == "ir" and vi["label"] == "vi" and 0.0 <= ir["bright"] <= 1.0
    # the comparison's table and bar chart, in the task's columns
    md = (out / "tables" / "toy.md").read_text()
    assert md.splitlines()[0] == "| Method | bright | Δ bright vs vi |" and f"{100 * ir['bright']:.1f}" in md
    assert result.tables["toy"] == md.rstrip("\n")
    assert json.loads((out / "tables" / "toy.json").read_text())["vi"]["bright"]["mean"] == vi["bright"]
    for png in ("toy_bright.png", "qualitative.png"):
        img = cv2.imread(str(out / "plots" / png))
        assert img is not None and min(img.shape[:2]) > 100

    # finished runs are reused: the skeleton stops before fusing, nothing is trained again
    stamps = {m: (out / "toy" / m / "seed0" / "results.json").stat().st_mtime_ns for m in ("ir", "vi")}
    toy_task.STEPS.clear()
    again = compare_methods("ir,vi", out, **options)
    assert toy_task.STEPS == [] and again.results == result.results
    assert stamps == {m: (out / "toy" / m / "seed0" / "results.json").stat().st_mtime_ns for m in ("ir", "vi")}


def test_the_compare_command_runs_a_task_an_import_registers(toy_task, synthetic_root: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """``compare --import MODULE --task NAME``: the command's task list is the registry's, read after
    the ``--import`` modules loaded (the toy task reads the test's small MSRS set, not the default)."""
    import logging

    from fusion_perception import commands

    monkeypatch.setattr(TASKS.get("toy"), "source_root", lambda self, data: synthetic_root / "msrs")
    handlers = list(logging.getLogger().handlers)
    try:
        rc = commands.main(["compare", "--import", "toy_task_plugin", "--task", "toy", "--methods", "ir,vi",
                            "--no-quality", "--out", str(tmp_path / "cmp"), "--fused-root", str(tmp_path / "fused")])
        assert rc == 0
        assert "## toy" in capsys.readouterr().out
        assert (tmp_path / "cmp" / "tables" / "toy.md").read_text().splitlines()[0] == \
            "| Method | bright | Δ bright vs vi |"
        assert commands.main(["compare", "--task", "nosuch", "--methods", "ir", "--out", str(tmp_path / "x")]) == 2
        assert capsys.readouterr().err.strip() == "error: --task nosuch: no such task; choose det, seg, toy or both"
    finally:
        for h in [h for h in logging.getLogger().handlers if h not in handlers]:
            logging.getLogger().removeHandler(h)


def test_the_compare_command_takes_the_data_of_a_task_an_import_registers(toy_task, synthetic_root: Path,
                                                                          tmp_path: Path, capsys) -> None:
    """``compare --import MODULE --task toy --toy-data DIR``: the ``--import`` modules load before
    the parser is built, so a task they register gets its own ``--<task>-data`` and
    ``--<task>-config`` flags, passed to ``compare_methods`` by task name."""
    import logging
    import shutil

    from fusion_perception import commands

    data = tmp_path / "toy_msrs"  # a copy under its own name: the fused cache is named after it
    shutil.copytree(synthetic_root / "msrs", data)
    TASKS.module_dict.pop("toy")  # as in a fresh process: only the --import makes the task known
    sys.modules.pop("toy_task_plugin")
    handlers = list(logging.getLogger().handlers)
    try:
        with pytest.raises(SystemExit) as e:
            commands.main(["compare", "--import", "toy_task_plugin", "--help"])
        shown = capsys.readouterr().out
        assert e.value.code == 0 and "--toy-data TOY_DATA" in shown and "--toy-config TOY_CONFIG" in shown
        assert "--det-data DET_DATA" in shown and "--seg-config SEG_CONFIG" in shown  # the built-in ones stay
        fused = tmp_path / "fused"
        rc = commands.main(["compare", "--import", "toy_task_plugin", "--task", "toy", "--toy-data", str(data),
                            "--methods", "ir", "--no-quality", "--out", str(tmp_path / "cmp"),
                            "--fused-root", str(fused)])
        assert rc == 0 and "## toy" in capsys.readouterr().out
        manifest = json.loads((fused / "ir" / "toy_msrs" / "manifest.json").read_text())
        assert manifest["source"]["root"] == str(data.resolve())  # --toy-data was the task's source
        assert sys.modules["toy_task_plugin"].STEPS == ["fuse", "prepare", "train", "evaluate"]
        assert json.loads((tmp_path / "cmp" / "toy" / "ir" / "seed0" / "results.json").read_text())["task"] == "toy"
    finally:
        for h in [h for h in logging.getLogger().handlers if h not in handlers]:
            logging.getLogger().removeHandler(h)


def test_registry_finds_a_module_in_every_sub_package_that_has_one(tmp_path: Path, monkeypatch) -> None:
    """``"package.*.task"``: the task module of each task package, found on disk, so that the
    sub-packages without one are not imported."""
    root = tmp_path / "toy_tasks_root"
    for sub, has_task in (("beta", True), ("alpha", True), ("other", False)):
        (root / sub).mkdir(parents=True)
        (root / sub / "__init__.py").write_text("" if has_task else "raise ImportError('must not be imported')\n")
        if has_task:
            (root / sub / "task.py").write_text(
                "from toy_task_holder import REG\n"
                f"REG.register_module(name={sub!r}, module=type({sub!r}, (), {{}}))\n")
    (root / "__init__.py").write_text("")
    holder = type(sys)("toy_task_holder")
    holder.REG = Registry("toy task", locations=("toy_tasks_root.beta.task", "toy_tasks_root.*.task"))
    monkeypatch.setitem(sys.modules, "toy_task_holder", holder)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert holder.REG.names() == ["beta", "alpha"]
        assert "toy_tasks_root.other" not in sys.modules
    finally:
        for module in [m for m in sys.modules if m.startswith("toy_tasks_root")]:
            del sys.modules[module]


def test_the_same_fusion_weights_at_another_path_make_the_same_run():
    """A run's settings name the fusion weights by path and by sha256; the path alone changing (a
    second clone, the toolkit's checkpoint after it moved) is the same run, other weights are not."""
    from fusion_perception.record import same_settings

    def settings(path: str, sha: str | None, key: str = "fusion_checkpoint_sha256") -> dict:
        return {"method": "emma", "seed": 0, key: sha,
                "fuser": {"method": "emma", "params": {"weights": path, "normalize": "minmax"}}}

    for key in ("fusion_checkpoint_sha256", "fusion_weights_sha256"):  # the skeleton's key, detection's
        assert same_settings(settings("/a/weights/emma.pth", "93fe", key), settings("/b/pretrained/emma.pth", "93fe", key))
        assert not same_settings(settings("/a/emma.pth", "93fe", key), settings("/a/emma.pth", "0c1d", key))
    assert not same_settings(settings("/a/x.pth", None), settings("/b/x.pth", None))  # no hash: the path is all there is
    moved = settings("/b/emma.pth", "93fe")
    moved["fuser"]["params"]["normalize"] = "none"
    assert not same_settings(settings("/a/emma.pth", "93fe"), moved)
