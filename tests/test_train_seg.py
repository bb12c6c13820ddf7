"""Segmentation protocol: model, augmentation, freezing, resume, bad input and an end-to-end run."""

from __future__ import annotations

import importlib.util
import json
import pickle
import shutil
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fusion_perception.errors import ConfigError, DatasetError, OutputError

REPO = Path(__file__).resolve().parents[1]
SMALL_ENCODER = "tu-mobilenetv3_small_100"
# A tiny run: 32x32 crops of 64x48 images, small encoder, checkpoints every epoch.
TINY_OPTS = {
    "model.encoder_name": SMALL_ENCODER,
    "model.test_scale": 1.0,
    "train_dataloader.batch_size": 2,
    "train_dataloader.dataset.augment.crop_size": (32, 32),
    "train_dataloader.dataset.augment.scale_range": (0.8, 1.2),
    "default_hooks.checkpoint.interval": 1,
    "default_hooks.checkpoint.max_keep_ckpts": 5,
    "default_hooks.logger.interval": 1,
}


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tiny_msrs(root: Path, n_train: int = 6, n_test: int = 4, size: tuple[int, int] = (64, 48), seed: int = 0) -> Path:
    """A minimal MSRS layout: noisy backgrounds and labelled rectangles (classes 1-3 hot in IR,
    the others coloured in VI). Names are unique across splits, as in MSRS."""
    rng = np.random.default_rng(seed)
    w, h = size
    for split, n, first in (("train", n_train, 0), ("test", n_test, 500)):
        base = root / split
        for sub in ("ir", "vi", "Segmentation_labels"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            name = f"{first + i:05d}{'DN'[i % 2]}"
            ir = rng.integers(20, 60, (h, w)).astype(np.uint8)
            vi = rng.integers(60, 120, (h, w, 3)).astype(np.uint8)
            lab = np.zeros((h, w), np.uint8)
            for _ in range(3):
                c = int(rng.integers(1, 9))
                x, y = int(rng.integers(0, w - 12)), int(rng.integers(0, h - 12))
                bw, bh = int(rng.integers(8, 20)), int(rng.integers(8, 16))
                lab[y:y + bh, x:x + bw] = c
                if c <= 3:
                    ir[y:y + bh, x:x + bw] = 200 + 10 * c
                else:
                    vi[y:y + bh, x:x + bw] = (25 * c, 255 - 20 * c, 40 * (c % 3))
            cv2.imwrite(str(base / "ir" / f"{name}.png"), ir)
            cv2.imwrite(str(base / "vi" / f"{name}.png"), vi)
            cv2.imwrite(str(base / "Segmentation_labels" / f"{name}.png"), lab)
    return root


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return tiny_msrs(tmp_path_factory.mktemp("tiny_msrs"))


# ----------------------------------------------------------------------------------- fast tests
def test_model_builds_offline_and_handles_any_size(monkeypatch):
    from fusion_perception.segmentation.model import SegSmpModel

    def no_network(*args, **kwargs):
        raise AssertionError("the segmentation model tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    model = SegSmpModel(encoder_name=SMALL_ENCODER, num_classes=9, arch_kwargs=dict(decoder_channels=32))
    model.eval()
    x = torch.randint(0, 256, (2, 3, 50, 70), dtype=torch.uint8)  # not a multiple of 32: padded inside
    with torch.no_grad():
        assert model(x).shape == (2, 9, 50, 70)
        model.test_scale = 0.5  # predicted at half size, upsampled back to the label's size
        out = model(x, {"sizes": [(50, 70), (40, 60)], "names": ["a", "b"], "img_paths": ["", ""]}, mode="predict")
    assert out[0]["pred"].shape == (50, 70) and out[1]["pred"].shape == (40, 60)


def test_encoder_weights_from_local_file(tmp_path):
    from fusion_perception.segmentation.model import SegSmpModel

    torch.manual_seed(1)
    src = SegSmpModel(encoder_name="resnet18")
    path = tmp_path / "resnet18_encoder.pth"
    # torchvision-style file: encoder keys plus a classifier the encoder does not have
    torch.save({**src.net.encoder.state_dict(), "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)},
               path)
    torch.manual_seed(2)
    dst = SegSmpModel(encoder_name="resnet18", encoder_weights=str(path))
    for k, v in src.net.encoder.state_dict().items():
        assert torch.equal(v, dst.net.encoder.state_dict()[k]), k
    with pytest.raises(ConfigError, match="does not fit"):
        SegSmpModel(encoder_name=SMALL_ENCODER, encoder_weights=str(path))
    with pytest.raises(DatasetError, match="absent.pth: encoder weights file not found"):
        SegSmpModel(encoder_name="resnet18", encoder_weights=str(tmp_path / "absent.pth"))


def test_augmentation_keeps_image_and_mask_paired():
    from fusion_perception.segmentation.data import build_train_transform, mix_seed
    from fusion_perception.data.layouts.msrs import MSRS_PALETTE

    MSRS_PALETTE = np.array(MSRS_PALETTE, np.uint8)
    lab = np.zeros((48, 64), np.uint8)
    lab[:, 16:32], lab[:, 32:48], lab[:24, 48:] = 1, 4, 7
    img = MSRS_PALETTE[lab].copy()
    img[lab == 0] = (255, 255, 255)  # tell background from the black padding
    tf = build_train_transform(crop_size=(64, 64), scale_range=(0.5, 1.5), hflip_prob=0.5)
    outs = []
    for epoch in (0, 0, 1):
        tf.set_random_seed(mix_seed(0, epoch, 3))
        outs.append(tf(image=img, mask=lab))
    o = outs[0]
    assert o["image"].shape == (64, 64, 3) and o["mask"].shape == (64, 64)
    pad = o["mask"] == 255
    assert pad.any(), "crop larger than the scaled image: some padding expected"
    assert (o["image"][pad] == 0).all()
    expected = MSRS_PALETTE[np.where(pad, 0, o["mask"])]
    expected[(o["mask"] == 0)] = (255, 255, 255)
    agree = (np.abs(o["image"].astype(int) - expected).max(-1) <= 2)[~pad].mean()
    assert agree > 0.9  # only the linear-interpolated borders may differ
    assert np.array_equal(outs[0]["mask"], outs[1]["mask"])  # same (seed, epoch, index): same sample
    assert not np.array_equal(outs[0]["mask"], outs[2]["mask"])  # next epoch: a new draw


def test_masks_are_padded_with_the_ignore_index_and_padding_costs_nothing():
    """Pinned (issue 24): a batch of two sizes pads the smaller image with 0 and its mask with the
    ignore index (never a class id: 0 is 'unlabelled', a class the loss would learn), and the loss of
    the padded batch is the loss over the image's own pixels."""
    from fusion_perception.segmentation.data import seg_collate
    from fusion_perception.segmentation.model import SegSmpModel

    def item(h: int, w: int, value: int) -> dict:
        mask = torch.full((h, w), value, dtype=torch.uint8)
        return {"inputs": torch.full((3, h, w), 100, dtype=torch.uint8),
                "data_samples": {"mask": mask, "name": f"{h}x{w}", "img_path": "-"}}

    batch = seg_collate([item(32, 64, 3), item(24, 40, 1)], ignore_index=255)
    masks, inputs = batch["data_samples"]["masks"], batch["inputs"]
    assert masks.shape == (2, 32, 64) and batch["data_samples"]["sizes"] == [(32, 64), (24, 40)]
    assert (masks[1, :24, :40] == 1).all() and (masks[1, 24:] == 255).all() and (masks[1, :, 40:] == 255).all()
    assert (inputs[1, :, 24:] == 0).all() and (inputs[1, :, :, 40:] == 0).all() and (masks[0] == 3).all()
    torch.manual_seed(0)
    model = SegSmpModel(encoder_name=SMALL_ENCODER, num_classes=9).eval()
    with torch.no_grad():
        loss = model(inputs[1:].float(), {"masks": masks[1:]}, mode="loss")["loss"]
        logits = model.logits(inputs[1:].float())
    only_the_image = torch.nn.functional.cross_entropy(logits[..., :24, :40], masks[1:, :24, :40].long())
    torch.testing.assert_close(loss, only_the_image)


def test_read_label_checks(tmp_path):
    from fusion_perception.segmentation.data import read_label

    p = tmp_path / "lab.png"
    cv2.imwrite(str(p), np.full((4, 6), 9, np.uint8))
    with pytest.raises(DatasetError, match=r"lab\.png.*outside 0\.\.8"):
        read_label(p, 9)
    cv2.imwrite(str(p), np.zeros((4, 6), np.uint8))
    with pytest.raises(DatasetError, match=r"lab\.png.*6x4.*img\.png.*8x4"):
        read_label(p, 9, (4, 8), "img.png")
    with pytest.raises(DatasetError, match=r"absent\.png.*not found"):
        read_label(tmp_path / "absent.png", 9)
    assert read_label(p, 9, (4, 6)).shape == (4, 6)


@pytest.mark.parametrize("problem", ["ids", "size", "missing"])
def test_bad_labels_fail_with_the_file_named(tmp_path, problem):
    from fusion_perception.segmentation.task import run_segmentation

    root = tiny_msrs(tmp_path / "msrs", n_train=2, n_test=2)
    lab = root / "train" / "Segmentation_labels" / "00001N.png"
    m = cv2.imread(str(lab), cv2.IMREAD_UNCHANGED)
    if problem == "ids":
        m[0, 0] = 12
        cv2.imwrite(str(lab), m)
    elif problem == "size":
        cv2.imwrite(str(lab), m[:40])
    else:
        lab.unlink()
    with pytest.raises(DatasetError, match="00001N") as err:
        run_segmentation(root, "mean", tmp_path / "run", config="small_cpu", device="cpu", progress=False)
    assert str(lab.name) in str(err.value)
    assert not (tmp_path / "run" / "results.json").exists()


def test_unknown_method_lists_registered_ones(tmp_path, tiny_root, capsys):
    from fusion_perception.segmentation.task import run_segmentation
    from fusion_perception.fusion.base import registered_methods

    with pytest.raises(ConfigError, match="registered methods") as err:
        run_segmentation(tiny_root, "nosuchfusion", tmp_path / "run", config="small_cpu", device="cpu")
    assert all(m in str(err.value) for m in registered_methods())
    assert _tool("train_seg").main(["--data", str(tiny_root), "--fusion", "nosuchfusion", "--device", "cpu",
                                    "--out", str(tmp_path / "run")]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("error: unknown fusion method")


def test_gpu_only_options_refused_on_cpu(tiny_root, tmp_path):
    from fusion_perception.segmentation.task import run_segmentation

    with pytest.raises(ConfigError, match="amp"):
        run_segmentation(tiny_root, "mean", tmp_path / "r", device="cpu", amp=True)
    with pytest.raises(ConfigError, match="DDP"):
        run_segmentation(tiny_root, "mean", tmp_path / "r", device="cpu", launcher="pytorch")


# ----------------------------------------------------------------------------------- training runs
def _load(path: Path) -> dict:
    from fusion_perception.checkpoints import allow_mmengine_checkpoints

    with allow_mmengine_checkpoints():  # torch.load stays weights_only=True
        return torch.load(path, map_location="cpu")


def _part(ckpt: dict, encoder: bool) -> dict[str, torch.Tensor]:
    return {k: v for k, v in ckpt["state_dict"].items() if k.startswith("net.encoder.") == encoder}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_random_encoder_is_never_frozen():
    """The paper's frozen phase presumes a pretrained encoder; a random one trains from epoch 1."""
    import logging
    from types import SimpleNamespace

    from fusion_perception.segmentation.model import SegFreezeEncoderHook

    class Model:
        encoder_frozen = False

        def __init__(self, pretrained):
            self.encoder_pretrained = pretrained
            self.calls = []

        def freeze_encoder(self, frozen):
            self.calls.append(frozen)

    for pretrained, expected in ((False, [False]), (True, [True])):
        model, hook = Model(pretrained), SegFreezeEncoderHook(frozen_epochs=100)
        runner = SimpleNamespace(model=model, epoch=0, logger=logging.getLogger("test"))
        hook.before_train(runner)
        hook.before_train_epoch(runner)
        assert model.calls == expected


@pytest.mark.slow
def test_freezing_then_resume_continues_exactly(tmp_path, tiny_root):
    """Run A: 3 epochs, encoder frozen for 2. Run B resumes from A's epoch-2 checkpoint and must
    finish epoch 3 only, with the weights (and optimizer state) A ended with."""
    from fusion_perception.segmentation.task import run_segmentation

    import segmentation_models_pytorch as smp

    opts = {**TINY_OPTS, "custom_hooks": [dict(type="SegEpochSeedHook"),
                                          dict(type="SegFreezeEncoderHook", frozen_epochs=2)]}
    # freezing applies to a pretrained encoder only: give it one (here, a saved random one)
    enc = tmp_path / "encoder.pth"
    torch.save(smp.encoders.get_encoder(SMALL_ENCODER, weights=None).state_dict(), enc)
    kw = dict(config="small_cpu", epochs=3, cfg_options=opts, device="cpu", progress=False, encoder_weights=enc)
    run_segmentation(tiny_root, "mean", tmp_path / "A", **kw)
    a1, a2, a3 = (_load(tmp_path / "A" / "train" / f"epoch_{i}.pth") for i in (1, 2, 3))
    with pytest.raises(pickle.UnpicklingError):  # torch's weights_only default is still in force
        torch.load(tmp_path / "A" / "train" / "epoch_1.pth", map_location="cpu")
    # frozen: epoch 2 leaves every encoder tensor (BatchNorm statistics included) as epoch 1 left it
    assert _same(_part(a1, True), _part(a2, True))
    assert not _same(_part(a1, False), _part(a2, False))  # while the decoder trains
    assert not _same(_part(a2, True), _part(a3, True))  # unfrozen in epoch 3

    # B: a run interrupted after epoch 2 (its checkpoint is A's), resumed
    train_b = tmp_path / "B" / "train"
    train_b.mkdir(parents=True)
    shutil.copy(tmp_path / "A" / "train" / "epoch_2.pth", train_b / "epoch_2.pth")
    (train_b / "last_checkpoint").write_text(str(train_b / "epoch_2.pth"))
    res_b = run_segmentation(tiny_root, "mean", tmp_path / "B", resume=True,
                             fused_dir=tmp_path / "A" / "fused", **kw)
    assert sorted(p.name for p in train_b.glob("epoch_*.pth")) == ["epoch_2.pth", "epoch_3.pth"]
    b3 = _load(train_b / "epoch_3.pth")
    assert b3["meta"]["epoch"] == 3 and b3["meta"]["iter"] == a3["meta"]["iter"]
    assert _same(b3["state_dict"], a3["state_dict"])
    mom_a = a3["optimizer"]["state"]
    mom_b = b3["optimizer"]["state"]
    assert mom_a.keys() == mom_b.keys()
    assert all(torch.equal(mom_a[k]["momentum_buffer"], mom_b[k]["momentum_buffer"]) for k in mom_a)
    res_a = json.loads((tmp_path / "A" / "results.json").read_text())
    assert res_b["confusion_matrix"] == res_a["confusion_matrix"]

    # an unfinished run is not resumed under other settings (that would mix two runs), nor replaced
    (tmp_path / "B" / "results.json").unlink()
    with pytest.raises(OutputError, match=r"unfinished segmentation run .*seed 0 → 5.*--overwrite"):
        run_segmentation(tiny_root, "mean", tmp_path / "B", **{**kw, "resume": True, "seed": 5})


@pytest.mark.slow
def test_end_to_end_on_synthetic_msrs(tmp_path, synthetic_root):
    from fusion_perception.data.records import MSRS_CLASSES
    from fusion_perception.segmentation.task import run_segmentation
    from fusion_perception.metrics.segmentation import iou_from_confusion

    out = tmp_path / "run"
    res = run_segmentation(synthetic_root / "msrs", "mean", out, config="small_cpu", epochs=1, device="cpu",
                           num_pred_images=2, progress=False)
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk == res
    assert res["task"] == "seg" and res["method"] == "mean" and res["label"] == "mean" and res["seed"] == 0
    assert list(res["per_class_IoU"]) == list(MSRS_CLASSES)
    n_test = sum(1 for _ in (synthetic_root / "msrs" / "test" / "Segmentation_labels").glob("*.png"))
    assert res["num_test_images"] == n_test
    # the whole test split is scored at full label resolution
    h, w = cv2.imread(str(next((synthetic_root / "msrs" / "test" / "Segmentation_labels").glob("*.png"))), 0).shape
    assert res["pixels_scored"] == n_test * h * w
    per, miou = iou_from_confusion(torch.tensor(res["confusion_matrix"]))
    assert res["mIoU"] == pytest.approx(float(miou)) and 0.0 <= res["mIoU"] <= 1.0
    # each test image's confusion matrix is kept: the paired bootstrap's mIoU of them all is the run's
    from fusion_perception.metrics.bootstrap import whole_split
    from fusion_perception.segmentation.evaluate import image_scores
    from fusion_perception.segmentation.metric import PER_IMAGE_FILE

    assert (out / PER_IMAGE_FILE).is_file()
    scores = image_scores(res)
    assert len(scores.images) == n_test
    assert scores.resampled(whole_split(n_test))[0] == pytest.approx(res["mIoU"], abs=1e-6)
    assert (out / "results.md").read_text().splitlines()[-1] == res["markdown_row"]
    assert res["markdown_row"].startswith("| mean | ")
    pngs = sorted((out / "predictions").glob("*_pred.png"))
    assert len(pngs) == 2
    pred = cv2.imread(str(pngs[0]))
    assert pred is not None and pred.shape == (h, w, 3)
    panel = cv2.imread(str(pngs[0]).replace("_pred", "_panel"))
    assert panel.shape[0] == h and panel.shape[1] == 3 * w + 8

    # finished with the same settings: returned as it is, nothing retrained
    stamp = (out / "results.json").stat().st_mtime_ns
    assert run_segmentation(synthetic_root / "msrs", "mean", out, config="small_cpu", epochs=1,
                            device="cpu", num_pred_images=2) == res
    assert (out / "results.json").stat().st_mtime_ns == stamp

    # eval_seg re-scores the saved checkpoint: the same confusion matrix
    assert _tool("eval_seg").main(["--run", str(out), "--device", "cpu"]) == 0
    ev = json.loads((out / "eval" / Path(res["checkpoint"]).stem / "results.json").read_text())
    assert ev["confusion_matrix"] == res["confusion_matrix"]
    assert ev["checkpoint"] == res["checkpoint"]
    # a run scored before the per-image matrices were kept finds eval_seg's (same checkpoint, same sum)
    (out / PER_IMAGE_FILE).unlink()
    assert (out / "eval" / Path(res["checkpoint"]).stem / PER_IMAGE_FILE).is_file()
    assert image_scores(res).resampled(whole_split(n_test))[0] == pytest.approx(res["mIoU"], abs=1e-6)

    # other settings (here the number of epochs): refused in words, the finished run left as it was
    with pytest.raises(OutputError, match=r"finished segmentation run .*epochs 1 → 2.*--overwrite.*another --out"):
        run_segmentation(synthetic_root / "msrs", "mean", out, config="small_cpu", epochs=2, device="cpu",
                         num_pred_images=0, progress=False)
    assert (out / "results.json").stat().st_mtime_ns == stamp and any((out / "predictions").glob("*_pred.png"))
    # replaced when asked
    res2 = run_segmentation(synthetic_root / "msrs", "mean", out, config="small_cpu", epochs=2, device="cpu",
                            num_pred_images=0, progress=False, overwrite=True)
    assert res2["epochs"] == 2 and res2["settings"]["config_sha256"] != res["settings"]["config_sha256"]
    assert json.loads((out / "results.json").read_text()) == res2
    assert not any((out / "predictions").glob("*_pred.png"))  # the old run's pictures went with it


@pytest.mark.slow
def test_killed_run_resumes_with_the_same_command(tmp_path, tiny_root, monkeypatch):
    """F5: after a kill, the same call (no resume flag) continues from the last checkpoint
    instead of discarding it and starting at epoch 1."""
    from mmengine.hooks import CheckpointHook

    from fusion_perception.segmentation.task import run_segmentation

    class Killed(Exception):
        pass

    original = CheckpointHook.after_train_epoch

    def save_then_die(self, runner):  # the process dies right after epoch 1's checkpoint
        original(self, runner)
        raise Killed()

    kw = dict(config="small_cpu", epochs=2, cfg_options=TINY_OPTS, device="cpu", progress=False)
    monkeypatch.setattr(CheckpointHook, "after_train_epoch", save_then_die)
    with pytest.raises(Killed):
        run_segmentation(tiny_root, "mean", tmp_path, **kw)
    # put the hook back only, not with monkeypatch.undo(): that would also undo conftest's own fused
    # cache, and the second run would fuse into (and compare with) the working directory's work_dirs/fused
    monkeypatch.setattr(CheckpointHook, "after_train_epoch", original)
    first = tmp_path / "train" / "epoch_1.pth"
    stamp = first.stat().st_mtime_ns
    res = run_segmentation(tiny_root, "mean", tmp_path, **kw)
    assert first.stat().st_mtime_ns == stamp  # epoch 1 was not trained again
    assert (tmp_path / "train" / "epoch_2.pth").is_file() and res["epochs"] == 2
    assert json.loads((tmp_path / "results.json").read_text()) == res


@pytest.mark.slow
def test_other_settings_are_refused_in_words(tmp_path, tiny_root):
    """F6: a run with other settings says what differs (not a hash), keeps the finished run and
    says how to keep both."""
    from fusion_perception.segmentation.task import run_segmentation

    kw = dict(config="small_cpu", cfg_options=TINY_OPTS, device="cpu", progress=False)
    run_segmentation(tiny_root, "mean", tmp_path, epochs=1, **kw)
    stamp = (tmp_path / "results.json").stat().st_mtime_ns
    with pytest.raises(OutputError, match=r"epochs 1 → 2.*--overwrite.*another --out to keep both"):
        run_segmentation(tiny_root, "mean", tmp_path, epochs=2, **kw)
    with pytest.raises(OutputError, match=r"config small_cpu → deeplabv3plus_r50_msrs"):
        run_segmentation(tiny_root, "mean", tmp_path, epochs=1, **{**kw, "config": "deeplabv3plus_r50_msrs"})
    with pytest.raises(OutputError, match=r"method mean → max"):
        run_segmentation(tiny_root, "max", tmp_path, epochs=1, **kw)
    assert (tmp_path / "results.json").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in (tmp_path / "train").glob("epoch_*.pth")) == ["epoch_1.pth"]
