"""The run record (fusion_perception/record.py): one format for fused datasets, task runs and EMMA's
training steps, one key per idea, and the records of the version before it still recognised."""

from __future__ import annotations

import json
import time

import pytest
from pair_folders import random_pairs

from fusion_perception.errors import OutputError
from fusion_perception.record import (
    WEIGHTS_SHA256, describe_changes, same_settings, stored_run, write_record, write_results)


def test_the_weights_hash_has_one_key_and_older_names_read_as_it():
    new = {"method": "emma", WEIGHTS_SHA256: "93fe", "fuser": {"method": "emma", "params": {"weights": "/b/e.pth"}}}
    for old_key in ("checkpoint_sha256", "fusion_checkpoint_sha256"):  # the manifest's, segmentation's
        old = {"method": "emma", old_key: "93fe", "fuser": {"method": "emma", "params": {"weights": "/a/e.pth"}}}
        assert same_settings(old, new)
        assert not same_settings({**old, old_key: "0c1d"}, new)
        assert describe_changes({**old, old_key: "0c1d"}, new) == "weights 0c1d → 93fe"


def test_records_of_every_kind_and_of_the_version_before(tmp_path):
    settings, data = {"method": "mean", "seed": 0}, {"fused": "f1", "split": "s1"}
    # this version: run.json, then results.json
    write_record(tmp_path / "new", settings, data, task="det")
    stored = stored_run(tmp_path / "new")
    assert stored.settings == settings and stored.data_settings == data and not stored.finished
    write_results(tmp_path / "new", {"task": "det", "settings": settings}, "| x |\n")
    assert stored_run(tmp_path / "new").finished and stored_run(tmp_path / "new").data_key == stored.data_key
    # detection before: run.json with "request" (the settings) and "settings" (the data's) and their key
    old_det = tmp_path / "old_det"
    old_det.mkdir()
    (old_det / "run.json").write_text(json.dumps({"request": settings, "settings": data, "settings_key": "k"}))
    assert (stored_run(old_det).settings, stored_run(old_det).data_settings, stored_run(old_det).data_key) == \
        (settings, data, "k")
    # segmentation and EMMA's training before: run_settings.json holding the settings alone
    old_seg = tmp_path / "old_seg"
    old_seg.mkdir()
    (old_seg / "run_settings.json").write_text(json.dumps(settings))
    assert stored_run(old_seg).settings == settings and not stored_run(old_seg).finished
    # no record, but work (checkpoints): a run whose settings are unknown; nothing: no run
    assert stored_run(tmp_path / "empty", has_work=True).settings is None
    assert stored_run(tmp_path / "empty") is None


def test_a_fused_cache_of_the_version_before_is_reused(tmp_path):
    """A fused dataset whose manifest names the weights' hash ``checkpoint_sha256`` (as the version
    before wrote it) is the same fused dataset: kept, nothing fused again."""
    from fusion_perception.fusion.stage import fuse_dataset

    src = random_pairs(tmp_path / "src", 4)
    out = tmp_path / "fused"
    fuse_dataset(src, "laplacian", out, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    for record in (manifest, manifest["fingerprint"]):
        record["checkpoint_sha256"] = record.pop(WEIGHTS_SHA256)
    for entry in manifest["records"]:
        assert entry.pop("condition") is None  # a field the version before did not write
    (out / "manifest.json").write_text(json.dumps(manifest))
    before = (out / "manifest.json").read_bytes()
    again = fuse_dataset(src, "laplacian", out, progress=False)
    assert again.manifest["counts"]["fused"] == 0 and again.manifest["counts"]["skipped"] == 4
    assert (out / "manifest.json").read_bytes() == before  # kept as it is: runs fingerprinted it
    with pytest.raises(OutputError, match=r"levels 4 → 5"):  # other settings are still refused in words
        fuse_dataset(src, "laplacian", out, progress=False, fuser_params={"levels": 5})


@pytest.mark.slow
def test_a_segmentation_run_of_the_version_before_is_reused(synthetic_root, tmp_path):
    """A finished segmentation run whose record is the version before's (``run_settings.json``, the
    weights' hash as ``fusion_checkpoint_sha256``) is returned as it is, not retrained or refused."""
    from fusion_perception.segmentation.task import run_segmentation

    kw = dict(config="small_cpu", epochs=1, batch=8, device="cpu", progress=False, num_pred_images=0)
    out = tmp_path / "run"
    first = run_segmentation(synthetic_root / "msrs", "emma", out, **kw)
    record = json.loads((out / "run.json").read_text())
    legacy = {("fusion_checkpoint_sha256" if k == WEIGHTS_SHA256 else k): v for k, v in record["settings"].items()}
    (out / "run.json").unlink()
    (out / "run_settings.json").write_text(json.dumps(legacy))
    results = json.loads((out / "results.json").read_text())
    results["settings"] = legacy
    (out / "results.json").write_text(json.dumps(results))
    stamp = (out / "results.json").stat().st_mtime_ns
    time.sleep(0.01)
    again = run_segmentation(synthetic_root / "msrs", "emma", out, **kw)
    assert again["mIoU"] == first["mIoU"] and (out / "results.json").stat().st_mtime_ns == stamp
    with pytest.raises(OutputError, match=r"finished segmentation run .*seed 0 → 1"):
        run_segmentation(synthetic_root / "msrs", "emma", out, **{**kw, "seed": 1})
