"""The fuse stage and its command line: layouts, manifest, resume after a kill, cache
matching, the folder method's round trip, and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from pair_folders import random_pairs

from fusion_perception.data.image_io import is_gray, read_image
from fusion_perception.errors import ConfigError, DatasetError, OutputError
from fusion_perception.fusion.manifest import load_fused_dataset
from fusion_perception.fusion.stage import fuse_dataset

REPO = Path(__file__).resolve().parents[1]
CLI = REPO / "tools" / "fuse_dataset.py"
CLASSICAL = ("ir", "vi", "mean", "max", "laplacian", "dwt", "gff")


def _env(**extra: str) -> dict[str, str]:
    # one intra-op thread: the child shares two cores with the test runner
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CLI), *map(str, args)], capture_output=True, text=True,
                          env=_env(), timeout=300, **kw)


def _cli_main(argv: list[str]) -> int:
    """The command line's main() in this process (same code path, no interpreter start-up)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fuse_dataset_cli", CLI)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main([str(a) for a in argv])


def _png_ok(path: Path) -> bool:
    try:
        read_image(path)  # also rejects truncated files
        return True
    except DatasetError:
        return False


def _stat(p: Path) -> tuple[int, int]:
    st = p.stat()
    return st.st_ino, st.st_mtime_ns


# ----------------------------------------------------------------------------- synthetic set via the CLI


def test_cli_fuses_both_synthetic_datasets(synthetic_root, tmp_path):
    """--data at a root holding m3fd/ and msrs/ (like the synthetic default) fuses both."""
    from fusion_perception.data.readers import load_dataset

    out = tmp_path / "mean"
    r = _cli("--data", synthetic_root, "--method", "mean", "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    for part in ("m3fd", "msrs"):
        src = load_dataset(synthetic_root / part)
        fused = load_fused_dataset(out / part)
        assert fused.manifest["complete"] and fused.label == "mean" and len(fused) == len(src)
        assert fused.source_layout == src.layout and fused.manifest["source"]["pairs"] == len(src)
        assert set(fused.manifest["versions"]) >= {"torch", "fusion_perception", "numpy", "opencv"}
        by_name = {r.name: r for r in src.records}
        for rec in fused.records:
            assert rec.image_path.is_absolute() and rec.image_path.parent.name == "fused"
            s = by_name[rec.name]
            assert rec.split == s.split and rec.boxes == s.boxes and rec.tags == s.tags
            img = read_image(rec.image_path)
            vi = read_image(s.vi_path)
            assert img.shape[:2] == vi.shape[:2] and img.dtype == np.uint8
            if s.annotation_path is not None:  # labels carried over, byte for byte
                copy = out / part / Path(s.annotation_path).relative_to(src.root)
                assert copy.read_bytes() == Path(s.annotation_path).read_bytes()
            if s.mask_path is not None:
                assert rec.mask_path.read_bytes() == Path(s.mask_path).read_bytes()
    assert (out / "m3fd" / "fused").is_dir() and (out / "m3fd" / "Annotation").is_dir()
    assert {p.parent.name for p in (out / "msrs").glob("*/fused")} >= {"train", "test"}
    assert any((out / "msrs").glob("*/Segmentation_labels/*.png"))
    assert "mean" in r.stdout


@pytest.mark.parametrize("method", CLASSICAL)
def test_each_classical_method_from_the_command_line(method, synthetic_root, tmp_path, capsys):
    src = synthetic_root / "m3fd"
    out = tmp_path / method
    assert _cli_main(["--data", src, "--method", method, "--out", out, "--quiet", "--batch-size", "3"]) == 0
    assert method in capsys.readouterr().out
    fused = load_fused_dataset(out)
    assert fused.manifest["fuser"]["method"] == method and len(fused) > 0
    for rec, entry in list(zip(fused.records, fused.manifest["records"]))[:4]:
        # colour where the visible image is colour and the method keeps colour; ir stays gray
        vi_colour = not is_gray(read_image(entry["source"]["vi"]))
        assert read_image(rec.image_path).ndim == (3 if vi_colour and method != "ir" else 2)


def test_gray_flag_and_colour_output(tmp_path):
    src = random_pairs(tmp_path / "src", 4, colour_every=2)
    colour = fuse_dataset(src, "max", tmp_path / "c", progress=False)
    gray = fuse_dataset(src, "max", tmp_path / "g", gray_output=True, progress=False)
    dims = [read_image(r.image_path).ndim for r in colour.records]
    assert dims == [3, 2, 3, 2]
    assert all(read_image(r.image_path).ndim == 2 for r in gray.records)
    assert gray.manifest["gray_output"] is True


def test_tardal_layout_keeps_labels_and_meta(tmp_path):
    src = random_pairs(tmp_path / "tardal", 6, colour_every=1)
    (src / "labels").mkdir()
    (src / "meta").mkdir()
    for i in range(6):
        (src / "labels" / f"p{i:03d}.txt").write_text("1 0.5 0.5 0.25 0.5\n")
    (src / "meta" / "train.txt").write_text("p000.png\np001.png\np002.png\np003.png\n")
    (src / "meta" / "val.txt").write_text("p004.png\n")
    (src / "meta" / "pred.txt").write_text("p005.png\n")
    fused = fuse_dataset(src, "dwt", tmp_path / "out", layout="m3fd_tardal", progress=False)
    out = tmp_path / "out"
    assert fused.source_layout == "m3fd_tardal"
    assert sorted(p.name for p in (out / "meta").iterdir()) == ["pred.txt", "train.txt", "val.txt"]
    assert len(list((out / "labels").glob("*.txt"))) == 6 and len(list((out / "fused").glob("*.png"))) == 6
    assert [r.split for r in fused.records] == ["train"] * 4 + ["val", "test"]
    assert all(r.boxes and r.boxes[0].label == "Car" for r in fused.records)


# ----------------------------------------------------------------------------- resume after a kill

def test_kill_half_way_then_resume(tmp_path, slow_mean_plugin):
    src = random_pairs(tmp_path / "src", 40)
    out = tmp_path / "out"
    args = [sys.executable, str(CLI), "--data", str(src), "--method", "slow_mean", "--out", str(out),
            "--import", "slow_fuser_plugin", "--param", "delay=0.1", "--batch-size", "1", "--workers", "2",
            "--quiet"]
    env = _env(PYTHONPATH=str(slow_mean_plugin) + os.pathsep + os.environ.get("PYTHONPATH", ""))

    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while len(list((out / "fused").glob("*.png"))) < 8:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the stage wrote nothing in time"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    before = {p.name: _stat(p) for p in (out / "fused").glob("*.png")}
    assert 8 <= len(before) < 40, f"{len(before)} images at the kill: not half-way"
    assert all(_png_ok(p) for p in (out / "fused").glob("*.png"))  # atomic writes: no half images
    assert json.loads((out / "manifest.json").read_text())["complete"] is False
    with pytest.raises(DatasetError, match="not finished"):
        load_fused_dataset(out)

    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    fused = load_fused_dataset(out)
    assert len(fused) == 40 and fused.manifest["complete"]
    assert fused.manifest["counts"]["skipped"] == len(before)
    assert fused.manifest["counts"]["fused"] == 40 - len(before)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    for name, st in before.items():  # finished images were not recomputed
        assert _stat(out / "fused" / name) == st, name
    for rec in fused.records:  # and every image is whole and right
        ir = read_image(src / "ir" / f"{rec.name}.png").astype(np.float32) / 255
        vi = read_image(src / "vi" / f"{rec.name}.png").astype(np.float32) / 255
        assert np.abs(read_image(rec.image_path).astype(int) - np.rint((ir + vi) / 2 * 255)).max() <= 1


def test_rerun_reuses_and_a_changed_setup_is_detected(tmp_path):
    src = random_pairs(tmp_path / "src", 5)
    out = tmp_path / "out"
    first = fuse_dataset(src, "laplacian", out, fuser_params={"levels": 2}, progress=False)
    stats = {r.name: _stat(r.image_path) for r in first.records}
    again = fuse_dataset(src, "laplacian", out, fuser_params={"levels": 2}, progress=False)
    assert {r.name: _stat(r.image_path) for r in again.records} == stats

    with pytest.raises(OutputError, match=r"levels 2 → 3.*--overwrite.*another --out to keep both"):
        fuse_dataset(src, "laplacian", out, fuser_params={"levels": 3}, progress=False)
    with pytest.raises(OutputError, match="gray output false → true"):
        fuse_dataset(src, "laplacian", out, fuser_params={"levels": 2}, gray_output=True, progress=False)
    assert {r.name: _stat(r.image_path) for r in load_fused_dataset(out).records} == stats  # untouched

    replaced = fuse_dataset(src, "laplacian", out, fuser_params={"levels": 3}, on_mismatch="replace",
                            progress=False)
    assert replaced.manifest["params"] == {"levels": 3} and replaced.manifest["counts"]["fused"] == 5
    assert all(_stat(r.image_path) != stats[r.name] for r in replaced.records)


# ----------------------------------------------------------------------------- the folder method


def _metrics(ir_paths, vi_paths, fused_paths):
    import torch

    from fusion_perception.metrics import fusion_quality as fq

    def gray(p):  # the reference's preparation: BGR read, BGR2GRAY, rounded
        return torch.from_numpy(np.rint(cv2.cvtColor(cv2.imread(str(p)).astype(np.float32),
                                                     cv2.COLOR_BGR2GRAY)))

    ir = torch.stack([gray(p) for p in ir_paths])
    vi = torch.stack([gray(p) for p in vi_paths])
    fu = torch.stack([gray(p) for p in fused_paths])
    return fq.compute_fusion_metrics(ir, vi, fu)


def test_a_same_size_edit_of_a_source_makes_its_fused_image_stale(tmp_path):
    """Pinned (issue 24): an edit that keeps the file's size (an uncompressed BMP rewritten) still
    makes its fused image stale: the stamp is the size and the modification time."""
    rng = np.random.default_rng(0)
    for modality in ("ir", "vi"):
        (tmp_path / "src" / modality).mkdir(parents=True)
        for name in ("a", "b"):
            cv2.imwrite(str(tmp_path / "src" / modality / f"{name}.bmp"), rng.integers(0, 256, (16, 24), np.uint8))
    fuse_dataset(tmp_path / "src", "max", tmp_path / "out", progress=False)
    edited = tmp_path / "src" / "ir" / "a.bmp"
    size, stamp = edited.stat().st_size, edited.stat().st_mtime_ns
    cv2.imwrite(str(edited), np.full((16, 24), 255, np.uint8))
    os.utime(edited, ns=(stamp + 10**9, stamp + 10**9))  # a clock that ticks coarsely: a second later
    assert edited.stat().st_size == size
    again = fuse_dataset(tmp_path / "src", "max", tmp_path / "out", progress=False)
    assert again.manifest["counts"]["fused"] == 1 and again.manifest["counts"]["stale"] == 1
    assert (read_image(tmp_path / "out" / "fused" / "a.png") == 255).all()  # max with a white IR image


def test_a_dataset_copied_again_keeps_its_fused_images(tmp_path):
    """A dataset provisioned again (the same bytes, new modification times, as a copy or a sync
    makes) keeps its fused cache: the stamps differ, the content decides; nothing is fused, the fused
    images keep their own times (so the detection runs that fingerprinted them are kept), and the
    manifest takes the new stamps. A pair whose bytes did change is fused again."""
    rng = np.random.default_rng(1)
    for modality in ("ir", "vi"):
        (tmp_path / "src" / modality).mkdir(parents=True)
        for name in ("a", "b", "c"):
            cv2.imwrite(str(tmp_path / "src" / modality / f"{name}.png"), rng.integers(0, 256, (16, 24), np.uint8))
    first = fuse_dataset(tmp_path / "src", "max", tmp_path / "out", progress=False)
    assert all(set(e["source_sha256"]) == {"ir", "vi"} for e in first.manifest["records"])
    fused_times = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "fused").iterdir()}
    for src in (tmp_path / "src").rglob("*.png"):
        data = src.read_bytes()
        src.unlink()
        src.write_bytes(data)  # a fresh copy: same bytes, a new inode and new times
        os.utime(src, ns=(src.stat().st_mtime_ns + 10**9,) * 2)
    again = fuse_dataset(tmp_path / "src", "max", tmp_path / "out", progress=False)
    assert again.manifest["counts"]["fused"] == 0 and again.manifest["counts"]["stale"] == 0
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "fused").iterdir()} == fused_times
    third = fuse_dataset(tmp_path / "src", "max", tmp_path / "out", progress=False)
    assert third.manifest["counts"]["skipped"] == 3  # the new stamps were kept: reused as is
    cv2.imwrite(str(tmp_path / "src" / "vi" / "b.png"), np.full((16, 24), 255, np.uint8))
    edited = fuse_dataset(tmp_path / "src", "max", tmp_path / "out", progress=False)
    assert edited.manifest["counts"]["fused"] == 1 and edited.manifest["counts"]["stale"] == 1
    assert (read_image(tmp_path / "out" / "fused" / "b.png") == 255).all()


def test_a_cache_fused_before_digests_were_kept_is_fused_again_when_its_stamps_change(tmp_path):
    """A manifest written before the sources' sha256 were kept has only stamps: a changed stamp
    cannot be told from an edit, so the pair is fused again (and gets its digests)."""
    rng = np.random.default_rng(2)
    for modality in ("ir", "vi"):
        (tmp_path / "src" / modality).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "src" / modality / "a.png"), rng.integers(0, 256, (16, 24), np.uint8))
    fuse_dataset(tmp_path / "src", "max", tmp_path / "out", progress=False)
    manifest_path = tmp_path / "out" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["records"]:
        del entry["source_sha256"]
    manifest_path.write_text(json.dumps(manifest))
    src = tmp_path / "src" / "ir" / "a.png"
    os.utime(src, ns=(src.stat().st_mtime_ns + 10**9,) * 2)
    again = fuse_dataset(tmp_path / "src", "max", tmp_path / "out", progress=False)
    assert again.manifest["counts"]["fused"] == 1 and again.manifest["counts"]["stale"] == 1
    assert "source_sha256" in again.manifest["records"][0]


def test_folder_method_round_trip(synthetic_root, tmp_path):
    """Fuse with mean, read the results back through folder:, and get the same images and metrics."""
    src = synthetic_root / "m3fd"
    mean = fuse_dataset(src, "mean", tmp_path / "mean", progress=False)
    copy = fuse_dataset(src, f"folder:mean_copy={tmp_path / 'mean'}", tmp_path / "copy", progress=False)
    assert copy.label == "mean_copy" and copy.manifest["fuser"]["params"]["root"] == str(tmp_path / "mean")
    pairs = list(zip(mean.records, copy.records))
    assert [a.name for a, _ in pairs] == [b.name for _, b in pairs]
    for a, b in pairs:
        assert np.array_equal(read_image(a.image_path), read_image(b.image_path)), a.name

    # a flat folder of results with other (lossless) extensions works the same way
    flat = tmp_path / "flat"
    flat.mkdir()
    for k, r in enumerate(mean.records):
        ext = (".png", ".bmp", ".tif")[k % 3]
        cv2.imwrite(str(flat / f"{r.name}{ext}"), cv2.imread(str(r.image_path), cv2.IMREAD_UNCHANGED))
    again = fuse_dataset(src, f"folder:flat={flat}", tmp_path / "copy2", progress=False)
    for a, b in zip(mean.records, again.records):
        assert np.array_equal(read_image(a.image_path), read_image(b.image_path)), a.name

    srcs = [e["source"] for e in mean.manifest["records"]]
    m1 = _metrics([s["ir"] for s in srcs], [s["vi"] for s in srcs], [r.image_path for r in mean.records])
    m2 = _metrics([s["ir"] for s in srcs], [s["vi"] for s in srcs], [r.image_path for r in copy.records])
    assert m1.keys() == m2.keys() and len(m1) == 9
    for k in m1:
        assert np.array_equal(m1[k].cpu().numpy(), m2[k].cpu().numpy()), k


def test_folder_missing_or_mismatched_results(tmp_path, capsys):
    src = random_pairs(tmp_path / "src", 6)
    results = tmp_path / "results"
    results.mkdir()
    for i in range(6):
        if i not in (1, 4):
            cv2.imwrite(str(results / f"p{i:03d}.jpg"), np.full((32, 48), 128, np.uint8))
    with pytest.raises(DatasetError, match=r"2 of 6 images missing .*p001, p004"):
        fuse_dataset(src, f"folder:X={results}", tmp_path / "out", progress=False)
    assert not list((tmp_path / "out").rglob("*.png"))  # checked before any work

    rc = _cli_main(["--data", src, "--method", f"folder:X={results}", "--out", tmp_path / "out", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "p001" in err and "p004" in err and "Traceback" not in err

    for i in (1, 4):
        cv2.imwrite(str(results / f"p{i:03d}.png"), np.zeros((32, 48), np.uint8))
    cv2.imwrite(str(results / "p002.jpg"), np.zeros((30, 48), np.uint8))  # wrong size
    with pytest.raises(DatasetError, match=r"p002\.jpg.*48x30"):
        fuse_dataset(src, f"folder:X={results}", tmp_path / "out", progress=False)
    with pytest.raises(DatasetError, match="not found"):
        fuse_dataset(src, f"folder:X={tmp_path / 'nowhere'}", tmp_path / "out2", progress=False)


# ----------------------------------------------------------------------------- bad input


def test_bad_method_and_bad_data_on_the_command_line(tmp_path, capsys):
    src = random_pairs(tmp_path / "src", 2)
    assert _cli_main(["--data", src, "--method", "nope", "--out", tmp_path / "o"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "nope" in err and "registered methods" in err and "gff" in err
    assert _cli_main(["--data", tmp_path / "missing", "--method", "mean", "--out", tmp_path / "o"]) == 2
    assert str(tmp_path / "missing") in capsys.readouterr().err
    assert _cli_main(["--data", src, "--method", "mean", "--weights", "w.pth", "--out", tmp_path / "o"]) == 2
    assert "no weights" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="source"):
        fuse_dataset(src, "mean", src, progress=False)  # output onto the source
    from fusion_perception.fusion.base import registered_methods

    if "emma" in registered_methods():  # a learned method without its weights: told how to get them
        assert _cli_main(["--data", src, "--method", "emma", "--out", tmp_path / "o"]) == 2
        err = capsys.readouterr().err.strip()
        assert "weights" in err and "Traceback" not in err


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_skip_bad_pairs_are_listed(tmp_path, capsys):
    src = random_pairs(tmp_path / "src", 5)
    bad = src / "vi" / "p002.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated
    assert _cli_main(["--data", src, "--method", "mean", "--out", tmp_path / "o", "--quiet"]) == 2
    assert "p002.png" in capsys.readouterr().err
    fused = fuse_dataset(src, "mean", tmp_path / "o", skip_bad=True, progress=False)
    assert [r.name for r in fused.records] == ["p000", "p001", "p003", "p004"]
    assert [Path(s["path"]).name for s in fused.manifest["source"]["skipped"]] == ["p002.png"]
    assert fused.manifest["counts"]["bad"] == 1


def test_synthetic_default_needs_a_part(tmp_path, monkeypatch, synthetic_root):
    from fusion_perception.synthetic import dataset as synthetic

    with pytest.raises(ConfigError, match="m3fd.*msrs"):
        fuse_dataset(None, "mean", tmp_path / "o", progress=False)
    monkeypatch.setattr(synthetic, "ensure_default", lambda task="both": synthetic_root)
    fused = fuse_dataset(None, "ir", tmp_path / "o", layout="msrs", progress=False)
    assert fused.source_layout == "msrs" and {r.split for r in fused.records} >= {"train", "test"}
