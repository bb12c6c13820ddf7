"""EMMA training with mmengine: sensing nets, then the fuser; loss falls, ablation logs, resume, export.

Tiny widths and a handful of 32x32 patches of the synthetic set keep this fast; the
behaviour under test (Runner, checkpoints, resume under weights_only=True, exports) is
the real one.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import pytest
import torch

from fusion_perception.emma.checkpoint import load_official_checkpoint
from fusion_perception.emma.training.hooks import read_loss_history
from fusion_perception.emma.training.patches import EMMAPatchDataset, PatchOptions, build_patches, low_contrast
from fusion_perception.checkpoints import allow_mmengine_checkpoints
from fusion_perception.emma.training.runner import train_emma, train_sensing

TINY = dict(patch=32, stride=40, max_patches=8)
SENSING_OPTS = {"model.widths": (4, 4, 8, 8, 8), "train_dataloader.batch_size": 8,
                "optim_wrapper.optimizer.lr": 5e-3, "default_hooks.logger.interval": 1}
EMMA_OPTS = {"model.fuser": dict(channels=(4, 4, 4, 4), heads=2), "train_dataloader.batch_size": 4,
             "optim_wrapper.optimizer.lr": 5e-3, "default_hooks.logger.interval": 1,
             "train_dataloader.dataset.patch_size": TINY["patch"], "train_dataloader.dataset.stride": TINY["stride"],
             "model.warm_start": None}  # the CPU recipe's warm start is tested on its own below


@pytest.fixture(scope="module")
def msrs_root(synthetic_root: Path) -> Path:
    return synthetic_root / "msrs"


@pytest.fixture(scope="module")
def sensing_dir(msrs_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("sensing")
    opts = dict(SENSING_OPTS, **{"train_dataloader.dataset.patch_size": TINY["patch"],
                                 "train_dataloader.dataset.stride": TINY["stride"]})
    out = train_sensing(data_root=msrs_root, pseudo_gt=["mean", "max"], work_dir=work, epochs=2,
                        max_patches=TINY["max_patches"], cfg_options=opts)
    assert set(out) == {"ir", "vi"} and all(p.is_file() for p in out.values())
    return work


def test_low_contrast_filter():
    flat = torch.full((16, 16), 0.5).numpy()
    assert low_contrast(flat)
    assert low_contrast(torch.zeros(16, 16).numpy())
    assert not low_contrast(torch.linspace(0, 1, 256).reshape(16, 16).numpy())


def test_patches_cached_and_pseudo_gt(msrs_root: Path, tmp_path: Path):
    options = PatchOptions(patch_size=32, stride=40, max_patches=6, cache_dir=tmp_path)
    a = build_patches(msrs_root, ("mean", "max"), options, progress=False)
    assert a.ir.shape == (6, 32, 32) and a.fused.shape == (2, 6, 32, 32) and a.methods == ("mean", "max")
    assert a.path is not None and a.path.is_file()
    # the pseudo-GT really is the method's fusion of the same patch (uint8 rounding aside)
    mean = (a.ir.astype(float) + a.vi.astype(float)) / 2
    assert abs(a.fused[0].astype(float) - mean).max() <= 1.0
    assert (a.fused[1].astype(int) >= a.ir.astype(int) - 1).all()
    stamp = a.path.stat().st_mtime_ns
    b = build_patches(msrs_root, ("mean", "max"), options, progress=False)
    assert b.path == a.path and b.path.stat().st_mtime_ns == stamp  # reused, not recomputed
    assert (b.ir == a.ir).all() and (b.fused == a.fused).all()
    ds = EMMAPatchDataset(str(msrs_root), patch_size=32, stride=40, max_patches=6, cache_dir=str(tmp_path))
    item = ds[0]
    assert item["ir"].shape == (1, 32, 32) and 0 <= float(item["vi"].min()) <= float(item["vi"].max()) <= 1


def test_sensing_exports_load(sensing_dir: Path):
    for tgt in ("ir", "vi"):
        net = load_official_checkpoint(sensing_dir / f"sensing_{tgt}.pth", "sensing")
        assert net.widths == (4, 4, 8, 8, 8)
        hist = read_loss_history(sensing_dir / tgt)
        assert [r["epoch"] for r in hist] == [1, 2] and "loss_mse" in hist[0]


def _emma(msrs_root: Path, sensing_dir: Path, work: Path, epochs: int, **kw) -> Path:
    return train_emma(data_root=msrs_root, sensing_dir=sensing_dir, work_dir=work, epochs=epochs,
                      max_patches=TINY["max_patches"], cfg_options=EMMA_OPTS, **kw)


def test_emma_trains_exports_and_resumes(msrs_root: Path, sensing_dir: Path, tmp_path: Path):
    work = tmp_path / "emma"
    out = _emma(msrs_root, sensing_dir, work, epochs=3)
    hist = read_loss_history(work)
    assert [r["epoch"] for r in hist] == [1, 2, 3]
    assert {"loss", "loss_ir", "loss_vi", "loss_eq"} <= set(hist[0])
    assert hist[-1]["loss"] < hist[0]["first"]["loss"]  # it learns

    # export: a plain U-Fuser state dict that the official loader reads, equal to the checkpoint's fuser
    fuser = load_official_checkpoint(out, "ufuser")
    from_ckpt = load_official_checkpoint(work / "epoch_3.pth", "ufuser")
    x = torch.rand(1, 1, 32, 32)
    assert torch.equal(fuser(x, x), from_ckpt(x, x))

    # torch's safe default is untouched: a bare torch.load of the mmengine checkpoint refuses it
    with pytest.raises(pickle.UnpicklingError):
        torch.load(work / "epoch_3.pth")

    # resume from a mid-run checkpoint (as if the run had stopped after epoch 1)
    with allow_mmengine_checkpoints():
        uninterrupted = torch.load(work / "epoch_3.pth")["state_dict"]
    (work / "last_checkpoint").write_text(str(work / "epoch_1.pth"))
    stamps = {n: (work / f"epoch_{n}.pth").stat().st_mtime_ns for n in (1, 2, 3)}
    _emma(msrs_root, sensing_dir, work, epochs=3, resume=True)
    # epoch 1 was not redone (its checkpoint is untouched); epochs 2 and 3 were trained again
    assert (work / "epoch_1.pth").stat().st_mtime_ns == stamps[1]
    assert all((work / f"epoch_{n}.pth").stat().st_mtime_ns > stamps[n] for n in (2, 3))
    resumed = read_loss_history(work)
    assert [r["epoch"] for r in resumed] == [1, 2, 3]
    assert resumed[0] == hist[0]  # the curve before the checkpoint is kept
    # epoch 2 came next (not 1), and continues from the trained state rather than a fresh start
    assert resumed[1]["first"]["loss"] < hist[0]["first"]["loss"]
    with allow_mmengine_checkpoints():
        ckpt = torch.load(work / "epoch_3.pth")
    assert ckpt["meta"]["epoch"] == 3
    # and it ends as the uninterrupted run did: the checkpoint carried the random transforms' state
    def losses(rows: list) -> list:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    assert losses(resumed[1:]) == losses(hist[1:])
    assert uninterrupted.keys() == ckpt["state_dict"].keys()
    assert all(torch.equal(uninterrupted[k], ckpt["state_dict"][k]) for k in uninterrupted)


def test_no_equivariance_still_logs_eq(msrs_root: Path, sensing_dir: Path, tmp_path: Path):
    work = tmp_path / "noeq"
    _emma(msrs_root, sensing_dir, work, epochs=1, loss=dict(equivariance=False, a1=0.5))
    hist = read_loss_history(work)
    assert hist[0]["loss_eq"] > 0
    # the optimised total leaves the a2 term out (a1 weighs the visible term)
    first = hist[0]["first"]
    assert first["loss"] == pytest.approx(first["loss_ir"] + 0.5 * first["loss_vi"], rel=1e-5)
    scalars = next(work.glob("*/vis_data/scalars.json")).read_text().splitlines()
    assert all("loss_eq" in json.loads(line) for line in scalars if '"loss"' in line)


def test_selection_keeps_the_fuser_with_the_best_held_out_retention(msrs_root: Path, sensing_dir: Path,
                                                                       tmp_path: Path):
    """Every `interval` steps the fuser is scored on held-out scenes of another seed; the best is exported."""
    work = tmp_path / "emma_sel"
    hooks = [dict(type="LossHistoryHook"),
              dict(type="RetentionSelectionHook", interval=2, seed=5, count=6, size=(96, 64))]
    out = train_emma(data_root=msrs_root, sensing_dir=sensing_dir, work_dir=work, epochs=3,
                     max_patches=TINY["max_patches"], cfg_options={**EMMA_OPTS, "custom_hooks": hooks})
    record = json.loads((work / "emma_fuser_best.json").read_text())
    assert record["iteration"] in (2, 4, 6) and record["scenes"] == {"seed": 5, "count": 6}
    assert record["min"] == min(record["ir_only"], record["vi_only"])
    log = (work / "run.log").read_text()
    scores = re.findall(r"held-out retention at iteration (\d+): IR-only ([\d.]+), VI-only ([\d.]+)", log)
    assert [int(s[0]) for s in scores] == [2, 4, 6]
    assert record["min"] == pytest.approx(max(min(float(a), float(b)) for _, a, b in scores), abs=1e-3)
    assert out.read_bytes() == (work / "emma_fuser_best.pth").read_bytes()  # the selected fuser is the export
    assert (work / "emma_fuser_last.pth").is_file()
    assert (work / "selection_scenes" / "m3fd" / "synthetic.json").is_file()  # never the training data


def test_warm_start_imitates_then_hands_over_to_emma_loss(msrs_root: Path, sensing_dir: Path, tmp_path: Path):
    """`warm_start`: the first iterations fit the named classical fusion, then the three terms take over;
    the selection scores only EMMA-phase fusers."""
    work = tmp_path / "emma_warm"
    hooks = [dict(type="LossHistoryHook"),
             dict(type="RetentionSelectionHook", interval=1, seed=5, count=4, size=(96, 64), begin=2)]
    opts = {**EMMA_OPTS, "custom_hooks": hooks, "model.warm_start": dict(method="laplacian", levels=3, iters=2)}
    train_emma(data_root=msrs_root, sensing_dir=sensing_dir, work_dir=work, epochs=2,
               max_patches=TINY["max_patches"], cfg_options=opts)
    first, second = read_loss_history(work)  # 8 patches, batch 4: two iterations per epoch
    assert set(first) - {"epoch", "iters", "first", "seconds"} == {"loss", "loss_warm"}
    assert first["loss"] == pytest.approx(first["loss_warm"])
    assert {"loss_ir", "loss_vi", "loss_eq"} <= set(second) and "loss_warm" not in second
    scores = re.findall(r"held-out retention at iteration (\d+)", (work / "run.log").read_text())
    assert [int(s) for s in scores] == [3, 4]


def test_warm_start_needs_a_method():
    from fusion_perception.emma.training.models import EMMAModel

    with pytest.raises(ValueError, match="names no method"):
        EMMAModel(sensing_ir=dict(widths=(4, 4, 8, 8, 8)), sensing_vi=dict(widths=(4, 4, 8, 8, 8)),
                  warm_start=dict(iters=2))


def test_a_run_inside_its_warm_start_says_so(msrs_root: Path, sensing_dir: Path, tmp_path: Path, capfd):
    opts = {**EMMA_OPTS, "model.warm_start": dict(method="laplacian", levels=3, iters=5)}
    train_emma(data_root=msrs_root, sensing_dir=sensing_dir, work_dir=tmp_path / "w", epochs=1,
               max_patches=TINY["max_patches"], cfg_options=opts, progress=False)
    err = capfd.readouterr().err
    assert "ended within its 5-step warm start" in err and "imitates laplacian" in err


def test_real_data_trains_on_the_train_part_and_selects_on_val(sensing_dir: Path, tmp_path: Path):
    """On a dataset with labels per modality and a split: patches from the train part only, the fuser
    selected on the val part's retention from the human labels (RetentionSelectionHook data='training')."""
    from test_msrs_det import published

    root = published(tmp_path / "msrs_det", names=("00001D", "00002N", "00003D", "00004N"))
    lists = tmp_path / "split"
    lists.mkdir()
    for part, names in (("train", "00001D\n00002N\n"), ("val", "00003D\n"), ("test", "00004N\n")):
        (lists / f"{part}.txt").write_text(names)
    layout = f"msrs_det:split_lists={lists}"
    work = tmp_path / "emma_real"
    hooks = [dict(type="RetentionSelectionHook", interval=1, data="training", split="val")]
    opts = {**EMMA_OPTS, "custom_hooks": hooks, "train_dataloader.dataset.stride": 16}  # 64x48 images
    train_emma(data_root=root, layout=layout, sensing_dir=sensing_dir, work_dir=work, epochs=2, cfg_options=opts)
    patches = build_patches(root, options=PatchOptions(patch_size=32, stride=16, cache_dir=work, layout=layout))
    assert set(patches.names) == {"00001D", "00002N"}  # the train part, never val or test
    record = json.loads((work / "emma_fuser_best.json").read_text())
    assert record["scenes"] == {"data": str(root), "layout": layout, "split": "val", "targets": "auto", "pairs": 1}
    assert record["iteration"] in (1, 2) and record["min"] == min(record["ir_only"], record["vi_only"])
    assert not (work / "selection_scenes").exists()
