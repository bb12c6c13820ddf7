"""The second careless-user campaign (issue 24): nothing lost, nothing unsafe, nothing silently
wrong, nothing raced; every user error one line naming the input.

Each test names the item of the issue it covers (``i1`` ... ``i16``, ``msg`` for the paragraph on
tracebacks and unclear messages). The data is tiny and the trainings a few iterations long.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from user_tools import one_line

from fusion_perception.errors import ConfigError, OutputError
from fusion_perception.synthetic import dataset as synthetic

SMALL = (160, 128)


# ----------------------------------------------------------------------------- 1: data loss


@pytest.fixture
def tiny_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The synthetic default made small (2 pairs per task) in ``tmp_path/default``."""
    monkeypatch.setenv("FUSION_PERCEPTION_DATA", str(tmp_path / "default"))
    monkeypatch.setattr(synthetic, "DEFAULT_COUNT", 2)
    monkeypatch.setattr(synthetic, "DEFAULT_SIZE", SMALL)
    return tmp_path / "default"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_i1_the_default_is_never_made_over_a_users_folder(tiny_default: Path) -> None:
    own = tiny_default / "m3fd"  # a dataset of the user's own, where the default would go
    (own / "Ir").mkdir(parents=True)
    (own / "Ir" / "mine.png").write_bytes(b"user data")
    with pytest.raises(OutputError, match="FUSION_PERCEPTION_DATA") as err:
        synthetic.ensure_default("det")
    assert "m3fd/ (not the synthetic default: no synthetic.json)" in str(err.value)
    assert _tree(tiny_default) == {"m3fd/Ir/mine.png": b"user data"}


def test_i1_an_older_default_with_files_of_the_users_is_kept(tiny_default: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    synthetic.ensure_default("det")
    (tiny_default / "m3fd" / "Annotation" / "notes.txt").write_text("mine")
    before = _tree(tiny_default)
    monkeypatch.setattr(synthetic, "GENERATOR_VERSION", synthetic.GENERATOR_VERSION + 1)
    with pytest.raises(OutputError, match=r"m3fd/Annotation/notes\.txt"):
        synthetic.ensure_default("det")
    assert _tree(tiny_default) == before
    (tiny_default / "m3fd" / "Annotation" / "notes.txt").unlink()
    assert synthetic.ensure_default("det") == tiny_default.resolve()  # the generator's own files: remade


def test_i1_a_folder_of_other_things_is_not_filled_with_the_default(tiny_default: Path, tool) -> None:
    tiny_default.mkdir()
    (tiny_default / "Ir").mkdir()  # FUSION_PERCEPTION_DATA pointed at a dataset by mistake
    rc, _, err = tool("fuse_dataset", "--fusion", "mean", "--out", tiny_default.parent / "fused")
    assert rc == 2 and "FUSION_PERCEPTION_DATA" in one_line(err) and "Ir" in one_line(err)
    assert sorted(p.name for p in tiny_default.iterdir()) == ["Ir"]


# ----------------------------------------------------------------------------- 5: unsafe paths


@pytest.mark.parametrize("name", ["..", "../../escaped", "/tmp/abs", "a/b", "a\\b", "", "~user"])
def test_i5_a_method_name_never_leaves_its_folder(name: str, tmp_path: Path, tool,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from pair_folders import random_pairs

    monkeypatch.setenv("FUSION_PERCEPTION_FUSED", str(tmp_path / "cache" / "fused"))
    data = random_pairs(tmp_path / "data", n=2)
    spec = f"folder:{name}={data / 'vi'}"
    for command in (("fuse_dataset", "--data", data, "--fusion", spec),
                    ("compare_methods", "--task", "seg", "--methods", f"ir,{spec}", "--out", tmp_path / "cmp")):
        rc, _, err = tool(*command)
        line = one_line(err)
        assert rc == 2 and ("cannot name a folder" in line or "folder:NAME=PATH" in line), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # nothing in the cache, nothing beside it


def test_i5_every_path_made_of_a_name_checks_it() -> None:
    from fusion_perception.config_files import find_config
    from fusion_perception.fusion.base import method_label
    from fusion_perception.fusion.cache import fused_cache_root

    for bad in ("..", "a/b", "/abs"):
        with pytest.raises(ConfigError, match="cannot name a folder"):
            method_label(f"folder:{bad}=/x")
        with pytest.raises(ConfigError, match="cannot name a folder"):
            fused_cache_root(bad)
    assert method_label("folder:CDDFuse v2=/x") == "CDDFuse v2"
    assert find_config("det", "small_cpu") is not None


# ----------------------------------------------------------------------------- checkpoints: 6, 10, 12, 13


@pytest.fixture(scope="module")
def tiny_seg_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """A finished one-epoch segmentation run on a tiny MSRS layout: its folder, the data, the options."""
    from test_train_seg import TINY_OPTS, tiny_msrs

    from fusion_perception.segmentation.task import run_segmentation

    root = tiny_msrs(tmp_path_factory.mktemp("tiny_msrs"))
    out = tmp_path_factory.mktemp("seg_run")
    kw = dict(config="small_cpu", epochs=1, cfg_options=TINY_OPTS, device="cpu", progress=False, seed=5,
              fused_dir=tmp_path_factory.mktemp("fused") / "mean")
    run_segmentation(root, "mean", out, **kw)
    return out, root, kw


def test_pinned_the_seed_reaches_mmengines_training(tiny_seg_run):
    """Pinned (issue 24): the run's seed is the one mmengine's Runner seeded with (its own log of
    its runtime environment) and the one the training set's augmentations draw from."""
    run, _, _ = tiny_seg_run
    assert re.search(r"^\s+seed: 5$", (run / "run.log").read_text(), flags=re.M)
    config = (run / "config.py").read_text()
    assert "randomness = dict(deterministic=False, seed=5)" in config and "seed=5," in config


def _unfinished_copy(run: Path, to: Path) -> Path:
    """The run as a kill after its checkpoint would leave it: no results; the same command resumes it."""
    import shutil

    shutil.copytree(run, to, ignore=shutil.ignore_patterns("results.*", "predictions", "eval"))
    (to / "train" / "last_checkpoint").write_text(str(_seg_checkpoint(to)))
    return to


def _seg_checkpoint(run: Path) -> Path:
    return run / "train" / "epoch_1.pth"


def _edit_checkpoint(path: Path, edit) -> Path:
    """Rewrite an mmengine checkpoint after ``edit(state_dict)`` (the same safe loading as the toolkit's)."""
    import torch

    from fusion_perception.checkpoints import allow_mmengine_checkpoints

    with allow_mmengine_checkpoints():
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    edit(ckpt["state_dict"])
    torch.save(ckpt, path)
    return path


def test_i13_resuming_a_checkpoint_with_a_tensor_of_another_shape_is_refused(tiny_seg_run, tmp_path):
    from fusion_perception.errors import DatasetError
    from fusion_perception.segmentation.task import run_segmentation

    run, data, kw = tiny_seg_run
    copy = _unfinished_copy(run, tmp_path / "run")
    key = "net.segmentation_head.0.weight"
    _edit_checkpoint(_seg_checkpoint(copy), lambda sd: sd.__setitem__(key, sd[key][:3]))
    with pytest.raises(DatasetError, match=rf"epoch_1\.pth: tensor {key} is \(3, .*\) in the file but \(9, "):
        run_segmentation(data, "mean", copy, **kw)
    assert not (copy / "results.json").exists()


def test_i10_eval_seg_refuses_a_checkpoint_of_another_kind(tiny_seg_run, tmp_path, tool):
    from fusion_perception.emma.weights import DEFAULT_EMMA_WEIGHTS

    run, _, _ = tiny_seg_run
    rc, _, err = tool("eval_seg", "--run", run, "--checkpoint", DEFAULT_EMMA_WEIGHTS, "--out", tmp_path / "ev")
    assert rc == 2 and "emma_synthetic.pth: holds none of the tensors of a SegSmpModel" in one_line(err)
    other = tmp_path / "other.pth"
    other.write_bytes(_seg_checkpoint(run).read_bytes())
    _edit_checkpoint(other, lambda sd: sd.pop("net.segmentation_head.0.bias"))
    rc, _, err = tool("eval_seg", "--run", run, "--checkpoint", other, "--out", tmp_path / "ev")
    assert rc == 2 and "does not fit a SegSmpModel: 1 of its tensors missing" in one_line(err)
    assert not (tmp_path / "ev" / "results.json").exists()


def test_i12_load_from_is_applied_and_recorded(tiny_seg_run, tmp_path):
    import torch

    from fusion_perception.checkpoints import allow_mmengine_checkpoints
    from fusion_perception.errors import DatasetError
    from fusion_perception.segmentation.task import run_segmentation

    run, data, kw = tiny_seg_run
    start = _seg_checkpoint(run)
    frozen = {**kw["cfg_options"], "load_from": str(start), "optim_wrapper.optimizer.lr": 1e-30}
    res = run_segmentation(data, "mean", tmp_path / "ft", **{**kw, "cfg_options": frozen})
    assert res["settings"]["config_values"]["load_from"] == str(start)
    with allow_mmengine_checkpoints():
        a, b = (torch.load(p, map_location="cpu", weights_only=True)["state_dict"]
                for p in (start, _seg_checkpoint(tmp_path / "ft")))
    key = "net.segmentation_head.0.weight"  # trained at a learning rate of 1e-30: where it started
    assert torch.allclose(a[key], b[key], atol=1e-6)
    missing = {**kw["cfg_options"], "load_from": str(tmp_path / "absent.pth")}
    with pytest.raises(DatasetError, match=r"absent\.pth: load_from checkpoint not found"):
        run_segmentation(data, "mean", tmp_path / "ft2", **{**kw, "cfg_options": missing})


def _refused_safely(line: str, target: Path) -> None:
    """A crafted checkpoint was refused: nothing in it ran, and torch's advice to load it unsafely
    (``weights_only=False``, or allow-listing what it asks for) is not relayed."""
    assert not target.exists()
    assert "weights_only` set to `False`" not in line and "weights_only=False" not in line, line
    assert "safe_globals" not in line and "can still be loaded" not in line, line


@pytest.mark.parametrize("loader", ["emma_weights", "seg_resume", "seg_checkpoint", "encoder_weights", "yolo_weights"])
def test_i6_every_checkpoint_loader_refuses_a_crafted_pickle_in_one_line(loader, tiny_seg_run, synthetic_root,
                                                                         tmp_path, tool):
    from user_tools import crafted_pickle

    run, data, kw = tiny_seg_run
    target = tmp_path / "pwned"
    # .pt: ultralytics reads YOLO weights from .pt files only (the others take any name)
    crafted = crafted_pickle(tmp_path / "crafted.pt", target)
    if loader == "seg_resume":  # met on resuming: the run's own last checkpoint replaced
        from fusion_perception.segmentation.task import run_segmentation

        copy = _unfinished_copy(run, tmp_path / "run")
        _seg_checkpoint(copy).write_bytes(crafted.read_bytes())
        with pytest.raises(Exception) as err:
            run_segmentation(data, "mean", copy, **kw)
        assert "epoch_1.pth: not a checkpoint that loads with weights_only=True (UnpicklingError" in str(err.value)
        return _refused_safely(str(err.value), target)
    mean = ("--fusion", "mean", "--out", tmp_path / "out")
    args = {"emma_weights": ("fuse_dataset", "--data", synthetic_root / "m3fd", "--fusion", "emma", "--weights",
                             crafted, "--out", tmp_path / "out"),
            "seg_checkpoint": ("eval_seg", "--run", run, "--checkpoint", crafted, "--out", tmp_path / "out"),
            "encoder_weights": ("train_seg", "--data", data, *mean, "--config", "small_cpu", "--encoder-weights",
                                crafted, "--fused-dir", tmp_path / "fused"),
            "yolo_weights": ("train_det", "--data", synthetic_root / "m3fd", *mean, "--config", "small_cpu",
                             "--det-weights", crafted)}[loader]
    rc, _, err = tool(*args)
    line = one_line(err)
    assert rc == 2 and "crafted.pt: " in line and "not found" not in line, line
    _refused_safely(line, target)


# ----------------------------------------------------------------------------- 11: non-finite training


def test_i11_nan_or_negative_rates_and_loss_weights_are_refused_up_front(tiny_seg_run, tmp_path, tool):

    from fusion_perception.detection.config import load_config
    from fusion_perception.segmentation.task import run_segmentation

    _, data, kw = tiny_seg_run
    for key, value, says in (("optim_wrapper.optimizer.lr", float("nan"), "lr is nan; it must be a finite number"),
                             ("optim_wrapper.optimizer.lr", -0.1, "a learning rate must be above 0"),
                             ("model.class_weight", [1.0] * 8 + [-1.0], "class_weight.8 is -1.0; a rate or loss weight")):
        with pytest.raises(ConfigError, match=says):
            run_segmentation(data, "mean", tmp_path / "seg", **{**kw, "cfg_options": {**kw["cfg_options"], key: value}})
    for train_args, says in (({"lr0": float("nan")}, "train_args.lr0 is nan"), ({"box": -7.5}, "train_args.box is -7.5"),
                             ({"cls": float("inf")}, "train_args.cls is inf")):
        with pytest.raises(ConfigError, match=says):
            load_config("small_cpu", train_args=train_args)
    with pytest.raises(ConfigError, match="lr0 is nan"):
        load_config({"lr0": float("nan")})
    # EMMA's two steps: the sensing nets' rate, the fuser's loss weights (before the sensing nets load)
    (tmp_path / "ai.pth").write_bytes(b"")
    (tmp_path / "av.pth").write_bytes(b"")
    emma = ("--sensing-ir", tmp_path / "ai.pth", "--sensing-vi", tmp_path / "av.pth", "--out", tmp_path / "emma")
    for args, says in ((("--a1", "nan"), "model.a1 is nan"), (("--a2", "-1"), "model.a2 is -1.0")):
        rc, _, err = tool("train_emma", *emma, *args)
        assert rc == 2 and says in one_line(err), err
    rc, _, err = tool("train_sensing", "--out", tmp_path / "sensing", "--cfg-options", "optim_wrapper.optimizer.lr=nan")
    assert rc == 2 and "lr is nan" in one_line(err)
    assert not (tmp_path / "seg").exists() and not any((tmp_path / "emma").glob("*.pth"))


def test_i11_every_training_stops_at_the_first_non_finite_loss(tiny_seg_run, synthetic_root, tmp_path, tool):
    from test_train_emma import SENSING_OPTS

    from fusion_perception.errors import TrainingDiverged
    from fusion_perception.segmentation.task import run_segmentation

    _, data, kw = tiny_seg_run
    huge = {**kw["cfg_options"], "optim_wrapper.optimizer.lr": 1e30}
    with pytest.raises(TrainingDiverged, match=r"seg/train: training stopped: loss is nan at epoch 1, iteration \d+ "
                                               r"\(learning rate [\d.]+e\+(29|30)\)"):
        run_segmentation(data, "mean", tmp_path / "seg", **{**kw, "cfg_options": huge})
    assert not (tmp_path / "seg" / "results.json").exists()
    # EMMA's sensing nets (the fuser's training runs on the same Runner, with the same hook)
    opts = [f"{k}={v}" for k, v in {**SENSING_OPTS, "optim_wrapper.optimizer.lr": 1e30,
                                     "train_dataloader.dataset.patch_size": 32,
                                     "train_dataloader.dataset.stride": 40}.items()]
    rc, _, err = tool("train_sensing", "--data", synthetic_root / "msrs", "--pseudo-gt", "mean", "--target", "ir",
                      "--out", tmp_path / "sensing", "--epochs", "3", "--max-patches", "16", "--no-progress",
                      "--cfg-options", *opts)
    assert rc == 2 and "training stopped: loss is nan at epoch 1" in one_line(err), err
    assert not (tmp_path / "sensing" / "sensing_ir.pth").exists()
    # YOLO (ultralytics would reload its last epoch and retry three times, then fail with a traceback)
    det_configs = Path(__file__).resolve().parents[1] / "configs" / "det"
    config = tmp_path / "huge_box_gain.py"  # the box loss's gain: finite, the loss it makes is not
    config.write_text(f"_base_ = [{str(det_configs / 'small_cpu.py')!r}]\nmodel = {str(det_configs / 'yolo_tiny.yaml')!r}\n"
                      "train_args = dict(box=1e38)\n")
    rc, _, err = tool("train_det", "--data", synthetic_root / "m3fd", "--fusion", "mean", "--config", config,
                      "--imgsz", "64", "--epochs", "2", "--out", tmp_path / "det", "--no-progress")
    assert rc == 2 and re.search(r"det: training stopped: the loss is (nan|inf) at epoch 1, iteration", one_line(err))
    assert not (tmp_path / "det" / "results.json").exists()


# ----------------------------------------------------------------------------- 14: values a library would change


def test_i14_a_value_the_library_would_change_is_refused_not_recorded_as_given(tmp_path, synthetic_root, tool):
    from fusion_perception.emma.training.patches import PatchOptions

    rc, _, err = tool("train_det", "--data", synthetic_root / "m3fd", "--fusion", "mean", "--config", "small_cpu",
                      "--imgsz", "250", "--out", tmp_path / "det")
    assert rc == 2 and "multiple of 32" in one_line(err) and "give 224 or 256" in one_line(err)
    assert not (tmp_path / "det").exists()
    with pytest.raises(ConfigError, match="patch_size must be a multiple of 16"):
        PatchOptions(patch_size=30)  # the networks would fail on it, deep inside


# ----------------------------------------------------------------------------- 15: a score of exactly 0


def test_i15_a_score_of_exactly_zero_is_printed_as_zero_and_an_undefined_one_as_a_dash():
    from fusion_perception.console import percent
    from fusion_perception.runs import get_task
    from fusion_perception.segmentation.report import table4_row

    assert (percent(0.0), percent(0), percent(float("nan")), percent(None), percent(0.4567)) == \
        ("0.0", "0.0", "–", "–", "45.7")
    seg = get_task("seg")
    zero = {"per_class_IoU": {"car": 0.0}, "mIoU": 0.0}
    assert seg.summary(zero) == "mIoU 0.0" and seg.summary({**zero, "mIoU": None}) == "mIoU –"
    assert table4_row("m", {"car": 0.0, "bike": float("nan")}, 0.0, classes=("car", "bike")) == "| m | 0.0 | – | 0.0 |"


# ----------------------------------------------------------------------------- 9: a seed given twice


def test_i9_a_seed_given_twice_is_refused_not_counted_twice(tmp_path, tool, capsys):
    from fusion_perception.comparison.compare import compare_methods

    for args, says in ((("--seeds", "0,0"), "seed 0 given more than once"), (("--seeds", "1,2,1"), "seed 1 given"),
                       (("--seeds", "-1"), "a seed is an integer from 0 to 4294967295, not -1")):
        with pytest.raises(SystemExit) as stop:
            tool("compare_methods", "--methods", "ir,vi", "--out", tmp_path / "cmp", *args)
        assert stop.value.code == 2 and says in capsys.readouterr().err
    with pytest.raises(ConfigError, match="each once"):
        compare_methods("ir,vi", tmp_path / "cmp", seeds=[0, 0], task="seg")
    assert not (tmp_path / "cmp").exists()


@pytest.mark.parametrize("seed", ["-1", "4294967296", "99999999999999999999"])
def test_msg_a_negative_or_huge_seed_is_one_usage_line(seed, tmp_path, tool, capsys):
    for name in ("train_det", "train_seg", "make_synthetic"):
        with pytest.raises(SystemExit) as stop:
            tool(name, "--seed", seed, "--out", tmp_path / name)
        err = capsys.readouterr().err
        assert stop.value.code == 2 and "a seed is an integer from 0 to 4294967295" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- 7: NaN in labels


@pytest.mark.parametrize("coordinate", ["nan", "NaN", "inf", "-inf"])
def test_i7_a_box_coordinate_that_is_not_a_finite_number_is_refused(coordinate, tmp_path):
    from test_readers import make_m3fd, make_tardal

    from fusion_perception.data.readers import load_dataset
    from fusion_perception.errors import DatasetError
    from fusion_perception.metrics.retention_targets import read_objects_file

    root = make_m3fd(tmp_path / "m3fd", {"1": [("People", 1, 1, 5, 5), ("Car", coordinate, 5, 10, 10)]})
    with pytest.raises(DatasetError, match=r"Annotation/1\.xml: object #2: box Car .*(not a finite number|outside)"):
        load_dataset(root)
    tardal = make_tardal(tmp_path / "tardal")
    for line in (f"{coordinate} 0.5 0.5 0.2 0.2", f"0 0.5 {coordinate} 0.2 0.2"):
        (tardal / "labels" / "00002.txt").write_text(line + "\n")
        with pytest.raises(DatasetError, match=r"labels/00002\.txt: line 1: "):
            load_dataset(tardal)
    size = (tmp_path / "size.xml")
    size.write_text(f"<annotation><size><width>{coordinate}</width><height>24</height></size></annotation>")
    from fusion_perception.data.annotations import read_voc_xml

    with pytest.raises(DatasetError, match="non-numeric width or height"):
        read_voc_xml(size)
    targets = tmp_path / "targets.csv"
    targets.write_text(f"image,x1,y1,x2,y2,source\n1.png,{coordinate},1,5,5,ir\n")
    with pytest.raises(DatasetError, match=r"targets\.csv: line 2: box .* not a finite number"):
        read_objects_file(targets)


def test_i7_target_contrast_thresholds_are_numbers_in_0_1():
    from fusion_perception.metrics.retention_targets import TargetRule

    for bad in ("nan,0.03", "0.05,inf", "2,0.1"):
        with pytest.raises(ConfigError, match="SHOWN,HIDDEN in 0..1"):
            TargetRule.parse("contrast", contrast=bad)


# ----------------------------------------------------------------------------- 8: a cut cached image


def test_i8_a_cached_image_that_no_longer_decodes_is_fused_again(tmp_path):
    from pair_folders import random_pairs

    from fusion_perception.data.image_io import read_image
    from fusion_perception.fusion.stage import fuse_dataset

    data = random_pairs(tmp_path / "data", n=3)
    first = fuse_dataset(data, "mean", tmp_path / "fused", progress=False)
    cut = first.records[1].image_path
    whole = cut.read_bytes()
    cut.write_bytes(whole[: len(whole) // 2])  # a disk that filled up, a copy cut short
    again = fuse_dataset(data, "mean", tmp_path / "fused", progress=False)
    assert again.manifest["counts"]["fused"] == 1 and cut.read_bytes() == whole
    assert all(read_image(r.image_path) is not None for r in again.records)


# ----------------------------------------------------------------------------- 16: orphaned workers

_SLEEPY_PLUGIN = '''
import time
from fusion_perception.fusion.classical import ClassicalFuser
from fusion_perception.registry import FUSERS

@FUSERS.register_module(name="sleepy")
class Sleepy(ClassicalFuser):
    """The mean after a long wait: keeps a comparison's workers busy."""
    name = "sleepy"

    def fuse(self, ir, vi, names=None):
        time.sleep(120)
        return (ir + vi) / 2
'''


def test_i16_killing_the_comparison_ends_its_workers(synthetic_root, tmp_path, own_fused_cache):
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    (tmp_path / "sleepy_plugin.py").write_text(_SLEEPY_PLUGIN)
    tool = Path(__file__).resolve().parents[1] / "tools" / "compare_methods.py"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, str(tool), "--import", "sleepy_plugin", "--task", "seg", "--methods", "sleepy,mean",
           "--seg-data", str(synthetic_root / "msrs"), "--out", str(tmp_path / "cmp"), "--jobs", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline, workers = time.time() + 120, []
        while time.time() < deadline and proc.poll() is None:
            workers = [c for c in psutil.Process(proc.pid).children()
                       if "spawn_main" in " ".join(c.cmdline())]
            if len(workers) == 2 and (own_fused_cache / "sleepy" / "msrs" / "manifest.json").is_file():
                break  # both workers up, one of them fusing (sleeping for minutes)
            time.sleep(0.2)
        assert len(workers) == 2, "the comparison never started its two workers"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    gone, alive = psutil.wait_procs(workers, timeout=15)
    for p in alive:
        p.kill()
    assert alive == [], "workers outlived the comparison they worked for"


# ----------------------------------------------------------------------------- msg: tracebacks and unclear messages

_BAD_PLUGINS = {
    "raises_at_import": 'raise ValueError("half-written plugin")\n',
    "takes_a_name": '''
from fusion_perception.fusion.classical import ClassicalFuser
from fusion_perception.registry import FUSERS

@FUSERS.register_module(name="mean")
class Mine(ClassicalFuser):
    def fuse(self, ir, vi, names=None):
        return ir
''',
    "bad_output": '''
from fusion_perception.fusion.classical import ClassicalFuser
from fusion_perception.registry import FUSERS

@FUSERS.register_module(name="cropped")
class Cropped(ClassicalFuser):
    def fuse(self, ir, vi, names=None):
        return ir[..., :-1]

@FUSERS.register_module(name="nans")
class Nans(ClassicalFuser):
    def fuse(self, ir, vi, names=None):
        return ir * float("nan")
''',
}


@pytest.mark.parametrize("plugin, method, says", [
    ("raises_at_import", "mean", "--import raises_at_import: it fails as it loads (ValueError: half-written plugin)"),
    ("takes_a_name", "mean", "--import takes_a_name: it fails as it loads (fuser 'mean' is already registered (by "
                             "fusion_perception.fusion.classical); register yours under another name)"),
    ("bad_output", "cropped", "fusion method 'cropped' returned shape (2, 1, 32, 47) for a batch of (2, 1, 32, 48)"),
    ("bad_output", "nans", "p000.png: fusion method 'nans' produced NaN or infinite values for p000, p001"),
])
def test_msg_a_plugin_that_fails_is_one_line(plugin, method, says, tmp_path, tool, monkeypatch):
    import sys

    from pair_folders import random_pairs

    from fusion_perception.registry import FUSERS

    (tmp_path / f"{plugin}.py").write_text(_BAD_PLUGINS[plugin])
    monkeypatch.syspath_prepend(str(tmp_path))
    FUSERS.import_locations()  # the built-in methods first: then a copy of the registry for this test's plugin
    monkeypatch.setattr(FUSERS, "module_dict", dict(FUSERS.module_dict))
    monkeypatch.delitem(sys.modules, plugin, raising=False)
    data = random_pairs(tmp_path / "data", n=2)
    rc, _, err = tool("fuse_dataset", "--import", plugin, "--fusion", method, "--data", data, "--out", tmp_path / "o")
    assert rc == 2 and says in one_line(err), err


def test_msg_a_manifest_that_is_not_an_object_is_one_line(tmp_path, tool):
    from pair_folders import random_pairs

    data = random_pairs(tmp_path / "data", n=2)
    for text in ("[1, 2]", '"fused"', '{"cut": '):
        (tmp_path / "o").mkdir(exist_ok=True)
        (tmp_path / "o" / "manifest.json").write_text(text)
        rc, _, err = tool("fuse_dataset", "--fusion", "mean", "--data", data, "--out", tmp_path / "o")
        assert rc == 2 and "a manifest.json that is not a JSON object" in one_line(err)
        rc, _, err = tool("eval_fusion", "--fused", tmp_path / "o", "--out", tmp_path / "ev")
        assert rc == 2 and "manifest" in one_line(err)


def test_msg_an_invalid_emma_url_names_the_variable(tmp_path, tool, monkeypatch):
    from pair_folders import random_pairs

    monkeypatch.setenv("FUSION_PERCEPTION_CACHE", str(tmp_path / "cache"))
    data = random_pairs(tmp_path / "data", n=2)
    for url, says in (("not a url", "FUSION_PERCEPTION_EMMA_URL='not a url' is not a URL"),
                      ("http://", "from FUSION_PERCEPTION_EMMA_URL=http:// (no host given)")):
        monkeypatch.setenv("FUSION_PERCEPTION_EMMA_URL", url)
        rc, _, err = tool("fuse_dataset", "--fusion", "emma", "--weights", "official", "--data", data,
                          "--out", tmp_path / "o")
        assert rc == 2 and says in one_line(err), err
    assert "FUSION_PERCEPTION_CACHE names that folder" in one_line(err)


@pytest.mark.parametrize("option, says", [
    ("train_cfg.max_epochs=abc", "train_cfg.max_epochs='abc': expected an integer (the config has 10)"),
    ("train_dataloader.batch_size=2.5", "batch_size=2.5: expected an integer"),
    ("optim_wrapper.optimizer.lr=[1,2]", "lr=[1, 2]: expected a number"),
])
def test_msg_a_cfg_option_of_the_wrong_type_is_one_line(option, says, tiny_seg_run, tmp_path, tool, monkeypatch):
    _, data, _ = tiny_seg_run
    rc, _, err = tool("train_seg", "--data", data, "--fusion", "mean", "--config", "small_cpu", "--out",
                      tmp_path / "seg", "--cfg-options", option)
    assert rc == 2 and says in one_line(err), err
    monkeypatch.chdir(tmp_path)  # EMMA's tools find their default config from any folder
    rc, _, err = tool("train_sensing", "--out", tmp_path / "sensing", "--cfg-options", option)
    assert rc == 2 and option.split("=")[0] in one_line(err), err
    assert not (tmp_path / "seg").exists()


def test_msg_library_output_stays_in_the_log(tiny_seg_run, tmp_path, tool, monkeypatch):
    from PIL import Image
    from pair_folders import random_pairs

    run, _, _ = tiny_seg_run
    rc, out, err = tool("eval_seg", "--run", run, "--out", tmp_path / "ev")
    assert rc == 0 and "mmengine" not in out + err and "IterTimerHook" not in out
    assert "mmengine" in (tmp_path / "ev" / "run.log").read_text()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 48x32 images now trip PIL's decompression-bomb warning
    rc, out, err = tool("describe_dataset", "--data", random_pairs(tmp_path / "data", n=2, size=(48, 32)))
    assert rc == 0 and "DecompressionBomb" not in err and "pixels" not in err and "pairs: 2" in out


def test_msg_next_commands_can_be_pasted(tmp_path, tool, slow_mean_plugin, monkeypatch):
    import shlex

    from pair_folders import random_pairs
    from test_readers import make_m3fd

    monkeypatch.syspath_prepend(str(slow_mean_plugin))
    for data, words in ((random_pairs(tmp_path / "my pairs", n=2), ["tools/eval_fusion.py", "--fused",
                                                                    str(tmp_path / "fused 1"), "--out",
                                                                    str(tmp_path / "fused 1" / "eval")]),
                        (make_m3fd(tmp_path / "my m3fd", {"1": [("Car", 1, 1, 9, 9)]}),
                         ["tools/train_det.py", "--import", "slow_fuser_plugin", "--fusion", "slow_mean", "--data",
                          str(tmp_path / "my m3fd"), "--fused-dir", str(tmp_path / "fused 1")])):
        rc, out, _ = tool("fuse_dataset", "--import", "slow_fuser_plugin", "--fusion", "slow_mean", "--data", data,
                          "--out", tmp_path / "fused 1", "--overwrite")
        line = next(ln for ln in out.splitlines() if ln.startswith("next: "))
        assert rc == 0 and shlex.split(line[len("next: "):].split("   ")[0]) == ["python", *words], line


def test_msg_images_of_another_format_are_named(tmp_path, tool):
    from PIL import Image

    for modality in ("ir", "vi"):
        (tmp_path / "data" / modality).mkdir(parents=True)
        for i in range(2):
            Image.new("L", (16, 16)).save(tmp_path / "data" / modality / f"{i}.webp")
    rc, _, err = tool("describe_dataset", "--data", tmp_path / "data")
    assert rc == 2 and "ir/ and vi/ hold no images (4 .webp: formats not read here; read here: .png" in one_line(err)


def test_msg_a_folder_an_environment_variable_sets_is_named_by_it(tmp_path, tool, unwritable_dir, monkeypatch):
    from pair_folders import random_pairs

    monkeypatch.setenv("FUSION_PERCEPTION_FUSED", str(unwritable_dir / "fused"))
    rc, _, err = tool("fuse_dataset", "--fusion", "mean", "--data", random_pairs(tmp_path / "data", n=2))
    assert rc == 2 and "the folder FUSION_PERCEPTION_FUSED names cannot be written" in one_line(err)
