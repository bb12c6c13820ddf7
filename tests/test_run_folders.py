"""Run folders and fused caches are never lost, raced or wrongly reused (the run record's rules,
issue 24): one writer per folder, an evaluation never replaces a run's results nor scores a model
on data it was not trained on, caches of two datasets of one name do not collide, finished
results on read-only storage are read, and a run that trained nothing blocks nothing."""

from __future__ import annotations

import errno
import json
import threading
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from pair_folders import random_pairs

from fusion_perception.errors import OutputError
from fusion_perception.record import folder_lock

SEG = dict(config="small_cpu", epochs=1, batch=8, device="cpu", progress=False, num_pred_images=0)


@pytest.fixture(scope="module")
def finished_runs(synthetic_root, tmp_path_factory) -> dict[str, Path]:
    """A finished tiny detection run and segmentation run (fused into a cache of their own)."""
    from fusion_perception.detection.task import run_detection
    from fusion_perception.fusion.cache import CACHE_ENV
    from fusion_perception.segmentation.task import run_segmentation

    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(root / "fused"))
        run_detection(synthetic_root / "m3fd", "mean", root / "det", config="small_cpu", epochs=1, imgsz=64,
                      device="cpu", progress=False)
        run_segmentation(synthetic_root / "msrs", "mean", root / "seg", **SEG)
    return {"det": root / "det", "seg": root / "seg", "fused": root / "fused"}


def _hold(folder: Path):
    """A thread holding ``folder``'s run lock until the returned event is set."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with folder_lock(folder):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(10)
    return thread, release


def test_one_writer_per_folder_and_the_lock_goes_with_it(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    thread, release = _hold(out)
    try:
        with pytest.raises(OutputError, match=r"another run is writing in this folder \(process \d+\); wait for it"):
            with folder_lock(out):
                pass
    finally:
        release.set()
        thread.join()
    with folder_lock(out):  # free again
        pass
    assert not (out / ".run.lock").exists()


def test_a_run_folder_another_process_writes_is_refused(synthetic_root, tmp_path):
    """Item 2: two trainings (or a comparison and the demo) into one folder: the second is refused
    in one line before it reads or writes anything there."""
    from fusion_perception.comparison.compare import compare_methods
    from fusion_perception.segmentation.task import run_segmentation

    for out, call in ((tmp_path / "seg", lambda out: run_segmentation(synthetic_root / "msrs", "mean", out, **SEG)),
                      (tmp_path / "cmp", lambda out: compare_methods("ir", out, task="seg", device="cpu", progress=False,
                                                                     seg_data=synthetic_root / "msrs"))):
        out.mkdir()
        thread, release = _hold(out)
        try:
            with pytest.raises(OutputError, match=r"another .*is writing in this folder \(process \d+\)"):
                call(out)
        finally:
            release.set()
            thread.join()
        assert sorted(p.name for p in out.iterdir()) == []  # nothing written beside the holder's lock (gone)


def test_an_evaluation_never_replaces_a_runs_results(finished_runs):
    """Item 3: eval_seg --out <the run folder> is refused; the run's results stay as they were."""
    from fusion_perception.segmentation.evaluate import evaluate_segmentation

    run = finished_runs["seg"]
    before = (run / "results.json").read_bytes()
    with pytest.raises(OutputError, match="holds a run .*would replace the run's results; give another --out"):
        evaluate_segmentation(run, out=run, device="cpu")
    assert (run / "results.json").read_bytes() == before


def test_a_model_is_not_scored_on_data_it_was_not_trained_on(finished_runs):
    """Item 4: eval_det on a run whose fused images or labels changed since it trained is refused,
    as train_det refuses to reuse it; the run's results stay."""
    from fusion_perception.detection.evaluate import evaluate_run

    run = finished_runs["det"]
    manifest_file = Path(json.loads((run / "run.json").read_text())["fused_dir"]) / "manifest.json"
    original = manifest_file.read_bytes()
    manifest = json.loads(original)
    entry = next(e for e in manifest["records"] if e["boxes"])
    entry["boxes"][0]["x2"] -= 5  # a label edited since the training
    before = (run / "results.json").read_bytes()
    try:
        manifest_file.write_text(json.dumps(manifest))
        with pytest.raises(OutputError, match=r"trained on other data \(fused images .* → .*train_det.py --overwrite"):
            evaluate_run(run, device="cpu")
        assert (run / "results.json").read_bytes() == before
    finally:
        manifest_file.write_bytes(original)
    assert evaluate_run(run, device="cpu", write_results=False)["num_images"] > 0  # the data it knew: scored


def test_two_datasets_of_one_name_get_their_own_cache_folders(tmp_path, own_fused_cache):
    """Item 17: the shared cache is keyed by the dataset's folder name; a second dataset of the same
    name gets a folder of its own instead of a refusal (the first keeps its folder)."""
    from fusion_perception.fusion.cache import default_fused_dir
    from fusion_perception.fusion.stage import fuse_dataset

    first, second = random_pairs(tmp_path / "a" / "msrs", 3, seed=1), random_pairs(tmp_path / "b" / "msrs", 3, seed=2)
    out1 = default_fused_dir(first, "mean")
    fuse_dataset(first, "mean", out1, progress=False)
    out2 = default_fused_dir(second, "mean")
    assert out1.name == "msrs" and out2.name.startswith("msrs-") and out2 != out1
    fuse_dataset(second, "mean", out2, progress=False)
    assert default_fused_dir(first, "mean") == out1 and default_fused_dir(second, "mean") == out2
    assert default_fused_dir(tmp_path / "a" / ".." / "a" / "msrs", "mean") == out1  # one dataset, two paths


def test_finished_results_on_read_only_storage_are_read(finished_runs, synthetic_root, monkeypatch):
    """Item 18: a finished run and a complete fused dataset on storage that cannot be written (an
    archive, a read-only mount) are used and re-printed, not refused as unwritable."""
    from fusion_perception import outputs, record
    from fusion_perception.segmentation.task import run_segmentation

    def unwritable(out, option):
        raise OutputError(out, f"{option} cannot be written (Read-only file system); choose a writable folder")

    def no_lock_file(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(outputs, "_probe_writable", unwritable)
    monkeypatch.setattr(record, "open", no_lock_file, raising=False)
    again = run_segmentation(synthetic_root / "msrs", "mean", finished_runs["seg"], **SEG)
    assert again == json.loads((finished_runs["seg"] / "results.json").read_text())
    with folder_lock(finished_runs["seg"]):  # read without a lock
        pass
    with pytest.raises(OutputError, match="cannot be written"):  # a folder without a result still needs writing
        outputs.check_output_dir(finished_runs["seg"] / "new_run", done="results.json")


@pytest.mark.slow
def test_a_run_that_trained_nothing_does_not_block_the_corrected_command(synthetic_root, tmp_path):
    """Item 19: a run that failed before its first epoch (a misspelt --cfg-options key) left its
    record; the corrected command runs instead of being refused as "other settings"."""
    from fusion_perception.errors import ConfigError
    from fusion_perception.segmentation.task import run_segmentation

    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="encoder_nam"):
        run_segmentation(synthetic_root / "msrs", "mean", out, cfg_options={"model.encoder_nam": "x"}, **SEG)
    assert (out / "run.json").is_file() and not (out / "results.json").exists()
    assert run_segmentation(synthetic_root / "msrs", "mean", out, **SEG)["mIoU"] is not None


def test_a_checkpoint_cut_by_a_crash_is_not_resumed_from(tmp_path):
    """Item 19: a truncated epoch_N.pth (the process died while writing it) is removed before a
    resume, and mmengine's marker then names the last whole checkpoint."""
    import torch

    from fusion_perception.checkpoints import drop_cut_checkpoints

    work = tmp_path / "train"
    work.mkdir()
    torch.save({"state_dict": {"w": torch.ones(2)}}, work / "epoch_1.pth")
    torch.save({"state_dict": {"w": torch.ones(2)}}, work / "epoch_2.pth")
    data = (work / "epoch_2.pth").read_bytes()
    (work / "epoch_2.pth").write_bytes(data[: len(data) // 2])
    (work / "last_checkpoint").write_text(str(work / "epoch_2.pth"))
    assert drop_cut_checkpoints(work) == [work / "epoch_2.pth"]
    assert sorted(p.name for p in work.glob("*.pth")) == ["epoch_1.pth"]
    assert (work / "last_checkpoint").read_text() == str(work / "epoch_1.pth")
    assert zipfile.is_zipfile(work / "epoch_1.pth") and drop_cut_checkpoints(work) == []


def test_one_image_edited_in_place_is_fused_again(tmp_path):
    """A same-size edit to a source image makes its fused image stale (the cache's stamps)."""
    from fusion_perception.data.image_io import read_image
    from fusion_perception.fusion.stage import fuse_dataset

    src = random_pairs(tmp_path / "src", 3)
    out = tmp_path / "out"
    fuse_dataset(src, "max", out, progress=False)
    edited = np.full_like(read_image(src / "ir" / "p001.png"), 255)
    cv2.imwrite(str(src / "ir" / "p001.png"), edited)
    again = fuse_dataset(src, "max", out, progress=False)
    assert again.manifest["counts"]["stale"] == 1 and again.manifest["counts"]["fused"] == 1
    assert (read_image(out / "fused" / "p001.png") == 255).all()
