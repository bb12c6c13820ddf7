"""What a careless or unlucky user meets: one line naming the file and the problem (exit code 2)
for everything they can cause, results never replaced unasked, files readable by others, stale
outputs redone, user checkpoints never unpickled unsafely, their Ultralytics setup untouched.

Each test names the failure of the campaign it covers (F2-F26 of issue 13).
"""

from __future__ import annotations

import json
import os
import runpy
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from pair_folders import random_pairs
from user_tools import crafted_pickle, mtimes, one_line, real_yolo_pt
import torch

from fusion_perception.data.image_io import read_image
from fusion_perception.errors import ConfigError, DatasetError, OutputError

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- results kept


def test_f2_fused_dir_of_another_method_is_refused_not_deleted(synthetic_root, tmp_path, tool):
    from fusion_perception.detection.task import prepare_detection_data
    from fusion_perception.fusion.stage import fuse_dataset

    theirs = tmp_path / "gff"
    fuse_dataset(synthetic_root / "m3fd", "gff", theirs, progress=False)
    before = mtimes(theirs)
    rc, _, err = tool("train_det", "--data", synthetic_root / "m3fd", "--fusion", "mean", "--fused-dir", theirs,
                      "--config", "small_cpu", "--epochs", "1", "--out", tmp_path / "run")
    line = one_line(err)
    assert rc == 2 and "method gff → mean" in line and "--overwrite" in line
    assert mtimes(theirs) == before  # another method's output is left as it was
    # a matching one is reused as it is
    fused, _, info = prepare_detection_data(synthetic_root / "m3fd", "gff", tmp_path / "run2", fused_dir=theirs,
                                            progress=False)
    assert info["fused_reused"] and mtimes(theirs) == before


@pytest.fixture(scope="module")
def finished_det_run(synthetic_root, tmp_path_factory) -> Path:
    from fusion_perception.detection.task import run_detection
    from fusion_perception.fusion.cache import CACHE_ENV

    out = tmp_path_factory.mktemp("det_run")
    # a module's fixture is made before conftest's own_fused_cache, and outlives one test: a cache of its own
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("fused_cache")))
        run_detection(synthetic_root / "m3fd", "mean", out, config="small_cpu", epochs=1, imgsz=64, device="cpu",
                      progress=False)
    return out


def _det_args(synthetic_root: Path, out: Path, *extra) -> list:
    return ["--data", synthetic_root / "m3fd", "--fusion", "mean", "--config", "small_cpu", "--imgsz", "64",
            "--out", out, *extra]


@pytest.mark.slow
def test_f3_failing_rerun_leaves_a_finished_run_as_it_was(finished_det_run, synthetic_root, tool):
    before = mtimes(finished_det_run)
    assert {"results.json", "results.md", "predictions.png", "train/weights/best.pt"} <= set(before)
    rc, _, err = tool("train_det", *_det_args(synthetic_root, finished_det_run, "--epochs", "0"))
    assert rc == 2 and "--epochs" in one_line(err)
    assert mtimes(finished_det_run) == before


@pytest.mark.slow
def test_f4_other_settings_do_not_replace_a_run(finished_det_run, synthetic_root, tool):
    from fusion_perception.detection.task import default_out

    before = mtimes(finished_det_run)
    rc, _, err = tool("train_det", *_det_args(synthetic_root, finished_det_run, "--epochs", "2"))
    line = one_line(err)
    assert rc == 2 and "epochs 1 → 2" in line and "--overwrite" in line and "another --out" in line
    assert mtimes(finished_det_run) == before
    # runs of other configs get other default folders: a quick run never lands on a paper-recipe run
    assert default_out("mean", 0, "small_cpu") != default_out("mean", 0, "yolov5s_m3fd")
    assert "small_cpu" in str(default_out("mean", 0, "small_cpu"))


def test_f8_files_are_written_with_the_users_umask(tmp_path):
    from fusion_perception.fusion.stage import fuse_dataset
    from fusion_perception.emma.ufuser import UFuser
    from fusion_perception.emma.checkpoint import save_official_state_dict

    src = random_pairs(tmp_path / "src", colour_every=1)
    old = os.umask(0o022)
    try:
        fuse_dataset(src, "mean", tmp_path / "out", progress=False)
        save_official_state_dict(UFuser(channels=(4, 4, 4, 4), heads=2), tmp_path / "w.pth")
    finally:
        os.umask(old)
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()] + [tmp_path / "w.pth"]
    assert written and {oct(p.stat().st_mode & 0o777) for p in written} == {"0o644"}


def test_f9_an_edited_source_is_fused_again(tmp_path, tool):
    src = random_pairs(tmp_path / "src")
    out = tmp_path / "out"
    assert tool("fuse_dataset", "--data", src, "--method", "mean", "--out", out, "--quiet")[0] == 0
    before = mtimes(out / "fused")
    time.sleep(0.01)
    cv2.imwrite(str(src / "ir" / "p001.png"), np.full((32, 48), 255, np.uint8))  # edited in place
    rc, stdout, _ = tool("fuse_dataset", "--data", src, "--method", "mean", "--out", out, "--quiet")
    assert rc == 0 and "1 new, 3 kept" in stdout and "1 re-fused" in stdout
    after = mtimes(out / "fused")
    assert after["p001.png"] != before["p001.png"] and {k: after[k] for k in before if k != "p001.png"} == \
        {k: v for k, v in before.items() if k != "p001.png"}
    vi = read_image(src / "vi" / "p001.png").astype(float)
    assert np.abs(read_image(out / "fused" / "p001.png") - (255 + vi) / 2).max() <= 1  # fused from the edited IR


def test_f10_a_rerun_that_writes_nothing_says_so(tmp_path, tool):
    src = random_pairs(tmp_path / "src", colour_every=1)
    out = tmp_path / "out"
    assert "4 new, 0 kept" in tool("fuse_dataset", "--data", src, "--method", "max", "--out", out, "--quiet")[1]
    before = mtimes(out)
    rc, stdout, _ = tool("fuse_dataset", "--data", src, "--method", "max", "--out", out, "--quiet")
    assert rc == 0 and "0 new, 4 kept" in stdout and mtimes(out) == before


# ----------------------------------------------------------------------------- security and setup


def test_f7_a_crafted_det_weights_file_never_runs(synthetic_root, tmp_path, tool):
    target = tmp_path / "pwned"
    evil = crafted_pickle(tmp_path / "evil.pt", target)
    try:
        rc, _, err = tool("train_det", *_det_args(synthetic_root, tmp_path / "run", "--epochs", "1",
                                                  "--det-weights", evil))
    finally:
        assert not target.exists(), "the crafted checkpoint's code ran"
    assert rc == 2 and "evil.pt" in one_line(err)
    assert not (tmp_path / "run" / "fused").exists()  # refused before any work


@pytest.mark.slow
def test_f7_a_crafted_checkpoint_in_a_run_folder_is_refused_by_eval_det(finished_det_run, tmp_path, tool):
    """Issue 24, item 6: the YOLO loader of eval_det, like every other, refuses in one line."""
    run = tmp_path / "run"
    shutil.copytree(finished_det_run, run)
    target = tmp_path / "pwned"
    crafted_pickle(run / "train" / "weights" / "best.pt", target)
    rc, _, err = tool("eval_det", "--run", run)
    line = one_line(err)
    assert rc == 2 and "best.pt: the run's weights: not a YOLO checkpoint that loads safely" in line
    assert not target.exists() and "weights_only" not in line


def test_f7_ultralytics_loads_safely_everywhere_in_the_toolkit(tmp_path):
    from fusion_perception.detection.model import ultralytics_offline

    ultralytics_offline()
    from ultralytics import YOLO

    target = tmp_path / "pwned"
    evil = crafted_pickle(tmp_path / "evil.pt", target)
    with pytest.raises(Exception):
        YOLO(str(evil))
    assert not target.exists(), "the crafted checkpoint's code ran"
    from fusion_perception.detection.model import check_yolo_weights

    real = real_yolo_pt(tmp_path / "real.pt")  # a real checkpoint still loads, safely
    assert check_yolo_weights(real) == real
    assert sum(p.numel() for p in YOLO(str(real)).model.parameters()) > 1_000_000


def test_f12_the_users_ultralytics_settings_and_config_dir_are_untouched(tmp_path):
    home = tmp_path / "home"
    user_cfg = tmp_path / "user_yolo"
    (user_cfg / "Ultralytics").mkdir(parents=True)
    settings = user_cfg / "Ultralytics" / "settings.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_", "XDG_"))}
    env.update(HOME=str(home), PYTHONPATH=str(REPO), YOLO_CONFIG_DIR=str(user_cfg))
    probe = ("import ultralytics.utils as u, json, pathlib; "
             "pathlib.Path(r'{0}').write_text(json.dumps(dict(u.SETTINGS)))")
    # the user's own settings file, as ultralytics itself writes it, with integrations on
    subprocess.run([sys.executable, "-c", probe.format(tmp_path / "defaults.json")], env=env, check=True,
                   capture_output=True)
    data = {**json.loads(settings.read_text()), "tensorboard": True, "mlflow": True, "wandb": True, "sync": True}
    settings.write_text(json.dumps(data))
    before = {p.name: p.read_bytes() for p in (user_cfg / "Ultralytics").iterdir()}
    code = ("from fusion_perception.detection.model import ultralytics_offline; ultralytics_offline(); "
            "import ultralytics.utils as u, ultralytics.data.utils as d; "
            "assert not (u.SETTINGS['tensorboard'] or u.SETTINGS['mlflow'] or u.SETTINGS['wandb'] or u.SETTINGS['sync']); "
            "assert d.check_font('Arial.ttf').is_file()")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert {p.name: p.read_bytes() for p in (user_cfg / "Ultralytics").iterdir()} == before
    assert not (home / ".config" / "Ultralytics").exists()  # nor the default one
    # ultralytics imported by the user's code first: its settings file is not changed either
    env.pop("YOLO_CONFIG_DIR")
    code_first = "import ultralytics; " + code
    subprocess.run([sys.executable, "-c", "import ultralytics"], env=env, check=True, capture_output=True)
    default_settings = home / ".config" / "Ultralytics" / "settings.json"
    default_settings.write_text(json.dumps(data))
    r = subprocess.run([sys.executable, "-c", code_first], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(default_settings.read_text()) == data
    assert not list(default_settings.parent.glob("Arial*"))


# ----------------------------------------------------------------------------- one line, exit code 2


def test_f11_16bit_ir_is_scored_as_it_was_fused(tmp_path):
    """A 16-bit IR frame is stretched by its min and max when fused; scoring the `ir` fusion
    against its own source must see the same image (as for an 8-bit pair), not its high byte."""
    from fusion_perception.fusion.stage import fuse_dataset
    from fusion_perception.metrics.fusion_eval import evaluate_fused_folders

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:80]
    scene = (np.sin(xx / 6.0) + np.cos(yy / 5.0) + 0.3 * rng.random((64, 80))) / 2.3 + 0.5
    ir16 = (3000 + 600 * scene).astype(np.uint16)  # raw thermal counts in a narrow band
    ir8 = np.round((ir16 - ir16.min()) / (ir16.max() - ir16.min()) * 255).astype(np.uint8)
    vi = rng.integers(0, 256, (64, 80), dtype=np.uint8)
    ssim = {}
    for name, ir in (("bit16", ir16), ("bit8", ir8)):
        src = tmp_path / name
        (src / "ir").mkdir(parents=True)
        (src / "vi").mkdir()
        cv2.imwrite(str(src / "ir" / "a.png"), ir)
        cv2.imwrite(str(src / "vi" / "a.png"), vi)
        fuse_dataset(src, "ir", tmp_path / f"fused_{name}", progress=False)
        res = evaluate_fused_folders([tmp_path / f"fused_{name}"], metrics="SSIM", progress=False)
        ssim[name] = res.mean(res.methods[0])["SSIM"]
    assert ssim["bit16"] == pytest.approx(ssim["bit8"], abs=0.02)


def test_f13_images_too_small_for_a_metric_leave_it_undefined(tmp_path, tool):
    from fusion_perception.fusion.stage import fuse_dataset

    src = random_pairs(tmp_path / "src", size=(32, 24), colour_every=1)
    fuse_dataset(src, "mean", tmp_path / "mean", progress=False)
    rc, stdout, err = tool("eval_fusion", "--fused", tmp_path / "mean", "--out", tmp_path / "eval", "--quiet")
    assert rc == 0, err
    table = json.loads((tmp_path / "eval" / "fusion_metrics.json").read_text())["methods"]["mean"]["mean"]
    assert table["VIF"] is None and table["SSIM"] is not None and table["EN"] is not None
    assert "undefined" in stdout


TOOLS_WITH_OUT = {
    "fuse_dataset": lambda d: ["--data", d["pairs"], "--method", "mean"],
    "eval_fusion": lambda d: ["--fused", d["fused"]],
    "train_det": lambda d: ["--data", d["m3fd"], "--fusion", "mean", "--config", "small_cpu", "--epochs", "1"],
    "train_seg": lambda d: ["--data", d["msrs"], "--fusion", "mean", "--config", "small_cpu", "--epochs", "1"],
}


@pytest.fixture
def inputs(synthetic_root, tmp_path):
    from fusion_perception.fusion.stage import fuse_dataset

    pairs = random_pairs(tmp_path / "pairs", colour_every=1)
    fuse_dataset(pairs, "mean", tmp_path / "fused_mean", progress=False)
    return {"pairs": pairs, "fused": tmp_path / "fused_mean", "m3fd": synthetic_root / "m3fd",
            "msrs": synthetic_root / "msrs"}


@pytest.mark.parametrize("name", TOOLS_WITH_OUT)
def test_f14_out_that_is_a_file(name, inputs, tmp_path, tool):
    out = tmp_path / "taken.txt"
    out.write_text("my notes")
    rc, _, err = tool(name, *TOOLS_WITH_OUT[name](inputs), "--out", out)
    line = one_line(err)
    assert rc == 2 and str(out) in line and "is a file" in line
    assert out.read_text() == "my notes"


@pytest.mark.parametrize("where", ["immutable", "proc"])
@pytest.mark.parametrize("name", TOOLS_WITH_OUT)
def test_f15_out_that_cannot_be_written(name, where, inputs, tmp_path, tool, request):
    out = (request.getfixturevalue("unwritable_dir") / "run" if where == "immutable"
           else Path("/proc") / f"fusion_perception_test_{os.getpid()}" / "run")
    rc, _, err = tool(name, *TOOLS_WITH_OUT[name](inputs), "--out", out)
    line = one_line(err)
    assert rc == 2 and str(out) in line and "cannot be written" in line


def test_f16_full_disk_ends_in_one_line_and_leaves_whole_files(tmp_path):
    """A real full disk: a 160 KB tmpfs in a private mount namespace (``unshare``)."""
    if not shutil.which("unshare"):
        pytest.skip("unshare not available")
    src = random_pairs(tmp_path / "src", n=40, size=(96, 64), colour_every=1)
    disk = tmp_path / "disk"
    disk.mkdir()
    check = ("import json, sys, pathlib; from fusion_perception.data.image_io import read_image; "
             "out = pathlib.Path(sys.argv[1]); pngs = sorted(out.rglob('*.png')); [read_image(p) for p in pngs]; "
             "print(json.dumps({'images': len(pngs), 'temps': [str(p) for p in out.rglob('*.tmp')]}))")
    script = (f"mount -t tmpfs -o size=160k none {disk} || exit 99; "
              f"{sys.executable} {REPO / 'tools' / 'fuse_dataset.py'} --data {src} --method mean "
              f"--out {disk / 'out'} --quiet --workers 1 2> {tmp_path / 'err.txt'}; echo rc=$?; "
              f"{sys.executable} -c \"{check}\" {disk / 'out'}")
    r = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    if r.returncode == 99 or "rc=" not in r.stdout:
        pytest.skip(f"cannot mount a private tmpfs here: {r.stderr.strip()[:200]}")
    rc = int(r.stdout.split("rc=")[1].split()[0])
    found = json.loads(r.stdout.strip().splitlines()[-1])
    line = one_line((tmp_path / "err.txt").read_text())
    assert rc == 2 and "no space left" in line and str(disk / "out") in line
    assert 0 < found["images"] < 40 and found["temps"] == []  # what was written decodes; no temp file left


def test_f17_out_of_memory_advises_a_smaller_batch(tmp_path, tool):
    """A real allocation failure while fusing a batch ends in one line advising --batch-size 1."""
    from fusion_perception.fusion.classical import ClassicalFuser
    from fusion_perception.fusion.stage import fuse_dataset
    from fusion_perception.registry import FUSERS

    if "greedy_test_method" not in FUSERS.module_dict:
        @FUSERS.register_module(name="greedy_test_method")
        class Greedy(ClassicalFuser):
            name = "greedy_test_method"

            def fuse(self, ir, vi, names=None):
                torch.empty(1 << 46, dtype=torch.uint8)  # 64 TB: the allocator fails
                return ir

    src = random_pairs(tmp_path / "src", n=4, colour_every=1)
    with pytest.raises(DatasetError, match=r"out of memory fusing 2 48x32 pairs at once.*--batch-size 1"):
        fuse_dataset(src, "greedy_test_method", tmp_path / "out", batch_size=2, progress=False)
    with pytest.raises(DatasetError, match=r"out of memory fusing this 48x32 pair") as e:
        fuse_dataset(src, "greedy_test_method", tmp_path / "out", batch_size=1, progress=False)
    assert "--batch-size" not in str(e.value)


def test_f17_gff_memory_does_not_grow_with_a_copy_per_step(tmp_path):
    """gff on two 2000x1500 pairs: the float64 guided filter used to hold several copies of the
    whole batch (18 GB for two 5000x4000 pairs); it now works in slices of bounded size."""
    code = ("import resource, torch; torch.set_num_threads(1); from fusion_perception.fusion.classical_rules import fuse_gff; "
            "ir, vi = torch.rand(2, 1, 1500, 2000), torch.rand(2, 1, 1500, 2000); "
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; fuse_gff(ir, vi); "
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    assert float(r.stdout.strip()) < 700, f"gff grew the peak memory by {r.stdout.strip()} MB"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_f18_device_cuda_without_a_gpu(inputs, tmp_path, tool):
    rc, _, err = tool("eval_fusion", "--fused", inputs["fused"], "--out", tmp_path / "e", "--device", "cuda")
    line = one_line(err)
    assert rc == 2 and "--device cuda" in line and "no CUDA GPU" in line
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("kind", ["random.pth", "ufuser.pt", "ufuser.pth", "folder"])
def test_f19_det_weights_that_are_not_yolo(kind, synthetic_root, tmp_path, tool):
    from fusion_perception.emma.ufuser import UFuser
    from fusion_perception.emma.checkpoint import save_official_state_dict

    path = tmp_path / kind
    if kind == "random.pth":
        path.write_bytes(os.urandom(4096))
    elif kind == "folder":
        path.mkdir()
    else:
        save_official_state_dict(UFuser(channels=(4, 4, 4, 4), heads=2), path)
    rc, _, err = tool("train_det", *_det_args(synthetic_root, tmp_path / "run", "--epochs", "1",
                                              "--det-weights", path))
    line = one_line(err)
    assert rc == 2 and str(path) in line and "--det-weights" in line
    assert not (tmp_path / "run" / "fused").exists()  # refused before fusing


def test_f20_epochs_zero_is_refused_before_fusing(synthetic_root, tmp_path, tool):
    rc, _, err = tool("train_det", *_det_args(synthetic_root, tmp_path / "run", "--epochs", "0"))
    assert rc == 2 and "--epochs" in one_line(err)
    assert not (tmp_path / "run").exists()


def test_f21_emma_weights_given_a_yolo_checkpoint(tmp_path, tool):
    yolo = real_yolo_pt(tmp_path / "last.pt")
    src = random_pairs(tmp_path / "src", colour_every=1)
    rc, _, err = tool("fuse_dataset", "--data", src, "--method", "emma", "--weights", yolo, "--out", tmp_path / "out")
    line = one_line(err)
    assert rc == 2 and str(yolo) in line and "ultralytics YOLO checkpoint, not EMMA weights" in line


def test_f22_emma_weights_given_a_folder(tmp_path, tool):
    (tmp_path / "weights").mkdir()
    src = random_pairs(tmp_path / "src", colour_every=1)
    rc, _, err = tool("fuse_dataset", "--data", src, "--method", "emma", "--weights", tmp_path / "weights",
                      "--out", tmp_path / "out")
    line = one_line(err)
    assert rc == 2 and str(tmp_path / "weights") in line and "is a directory" in line


def test_f23_a_dangling_symlink_is_named(tmp_path, tool):
    src = random_pairs(tmp_path / "src", colour_every=1)
    link = src / "ir" / "p002.png"
    link.unlink()
    link.symlink_to(tmp_path / "gone" / "p002.png")
    rc, _, err = tool("describe_dataset", "--data", src)
    line = one_line(err)
    assert rc == 2 and str(link) in line and "broken symbolic link" in line and "partner" not in line


def test_f24_an_empty_modality_folder_is_named(tmp_path, tool):
    src = random_pairs(tmp_path / "src", colour_every=1)
    for p in (src / "vi").iterdir():
        p.unlink()
    rc, _, err = tool("fuse_dataset", "--data", src, "--method", "mean", "--out", tmp_path / "out")
    line = one_line(err)
    assert rc == 2 and str(src / "vi") in line and "holds no images" in line and "ir/ holds 4" in line


def test_f25_missing_fused_images_name_what_was_found(tmp_path, tool):
    src = random_pairs(tmp_path / "src", colour_every=1)
    fused = tmp_path / "results"
    fused.mkdir()
    for i in range(4):
        shutil.copy(src / "vi" / f"p{i:03d}.png", fused / f"fused_p{i:03d}.png")
    rc, _, err = tool("eval_fusion", "--fused", fused, "--source", src, "--out", tmp_path / "eval")
    line = one_line(err)
    assert rc == 2 and "4 of 4" in line and "fused_p000.png" in line and "fused_<pair>" in line


def test_f26_folder_method_without_a_path(tmp_path, tool):
    src = random_pairs(tmp_path / "src", colour_every=1)
    rc, _, err = tool("fuse_dataset", "--data", src, "--method", "folder", "--out", tmp_path / "out")
    assert rc == 2 and "folder:NAME=PATH" in one_line(err)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="folder:NAME=PATH"):
        from fusion_perception.fusion.base import build_fuser

        build_fuser("folder:X=")


# ----------------------------------------------------------------------------- the central rule


@pytest.mark.parametrize("exc,expected", [
    (OSError(28, "No space left on device", "/data/out/a.png"), "/data/out/a.png: no space left on the device"),
    (PermissionError(13, "Permission denied", "/data/out"), "/data/out: permission denied"),
    (MemoryError(), "out of memory"),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"), "--batch-size 1"),
    (RuntimeError("Found no NVIDIA driver on your system."), "--device cpu"),
    (DatasetError("/x.png", "file is empty\x1b[0m"), "/x.png: file is empty"),
])
def test_user_errors_become_one_line(exc, expected):
    from fusion_perception.errors import user_error_message

    msg = user_error_message(exc)
    assert expected in msg and "\n" not in msg and "\x1b" not in msg


def test_bugs_keep_their_traceback():
    from fusion_perception.cli import tool_main
    from fusion_perception.errors import user_error_message

    assert user_error_message(KeyError("x")) is None and user_error_message(RuntimeError("shape mismatch")) is None

    @tool_main
    def broken(argv=None):
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        broken([])


def test_every_tool_ends_user_errors_in_one_line():
    """Every tool's main goes through the one place that turns user errors into a line (test_cli
    runs each with a user error, as a script and as a ``fusion-perception`` subcommand)."""
    from fusion_perception.cli import tool_main

    for path in sorted((REPO / "tools").glob("*.py")):
        main = runpy.run_path(str(path))["main"]
        assert main.__code__ is tool_main(lambda argv: 0).__code__, f"{path.name} does not use cli.tool_main"
        assert "except FusionPerceptionError as e:" not in path.read_text(), path.name


def test_a_refusal_keeps_output_untouched(tmp_path):
    """Fuse into a folder holding another method's output: refused, every file as it was."""
    from fusion_perception.fusion.stage import fuse_dataset

    src = random_pairs(tmp_path / "src", colour_every=1)
    fuse_dataset(src, "max", tmp_path / "out", progress=False)
    before = mtimes(tmp_path / "out")
    with pytest.raises(OutputError, match="method max → mean"):
        fuse_dataset(src, "mean", tmp_path / "out", progress=False)
    assert mtimes(tmp_path / "out") == before
    assert read_image(tmp_path / "out" / "fused" / "p000.png").shape == (32, 48, 3)


@pytest.mark.parametrize("name", ["train_det", "train_seg", "train_sensing"])
def test_a_broken_config_file_is_named(name, inputs, tmp_path, tool):
    bad = tmp_path / "broken.py"
    bad.write_text("model = dict(type='x'\n")  # a syntax error
    args = {"train_det": ["--data", inputs["m3fd"], "--fusion", "mean", "--out", tmp_path / "o"],
            "train_seg": ["--data", inputs["msrs"], "--fusion", "mean", "--out", tmp_path / "o"],
            "train_sensing": ["--work-dir", tmp_path / "o"]}[name]
    rc, _, err = tool(name, *args, "--config", bad)
    line = one_line(err)
    assert rc == 2 and str(bad) in line and "not a readable config file" in line


def test_cfg_options_that_do_not_fit_the_config(inputs, tmp_path, tool):
    rc, _, err = tool("train_seg", "--data", inputs["msrs"], "--fusion", "mean", "--config", "small_cpu",
                      "--out", tmp_path / "o", "--cfg-options", "model.encoder_name.depth=3")
    assert rc == 2 and "--cfg-options" in one_line(err)
    assert not (tmp_path / "o").exists()
