"""DIDFuse, TarDAL and SeAFusion as registered fusers, on random-weight networks saved in their
authors' checkpoint formats (nothing shared is needed): the formats round-trip and load strictly,
a wrong file is one line and loads nothing, a batch gives what one image at a time gives (TarDAL's
per-image BatchNorm above all), OpenCV's 8-bit colour formulas, DIDFuse's weights folder."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fusion_perception.errors import ConfigError, DatasetError
from fusion_perception.files import file_sha256
from fusion_perception.fusion.base import build_fuser, fuse_with_colour
from fusion_perception.fusion.method import resolve_method


def cache_label(method: str, weights: Path) -> str:
    """The shared cache's folder of ``method`` fused with ``weights`` (the resolved method's)."""
    return resolve_method(method, weights).cache_label
from fusion_perception.fusion.didfuse import fuse_features
from fusion_perception.fusion.tardal import PerImageBatchNorm2d, opencv_crcb, opencv_gray, opencv_ycrcb_to_rgb
from learned_weights import METHODS, write_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("learned_weights")
    return {m: write_weights(m, root / m) for m in METHODS}


def _pairs(b: int, h: int, w: int, seed: int = 0, colour: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth random 8-bit pairs as the stage gives them: ``u8 / 255`` float32."""
    g = torch.Generator().manual_seed(seed)
    x = F.avg_pool2d(torch.rand(b, 4, h + 4, w + 4, generator=g), 5, stride=1)
    x = (x - x.amin()) / (x.amax() - x.amin())
    u8 = (x * 255).round() / 255
    return u8[:, :1].contiguous(), (u8[:, 1:] if colour else u8[:, 1:2]).contiguous()


# ----------------------------------------------------------------------------- weights
@pytest.mark.parametrize("method", METHODS)
def test_the_authors_checkpoint_formats_round_trip(method, weights):
    fuser = build_fuser(method, "cpu", weights=str(weights[method]))
    got = fuser.model.state_dict()
    if method == "didfuse":
        saved = {}
        for part in ("encoder", "decoder"):
            state = torch.load(weights[method] / f"{part.title()}_weight_IJCAI.pkl", weights_only=True)["weight"]
            saved.update({f"{part}.{k}": v for k, v in state.items()})
    else:
        saved = torch.load(weights[method], weights_only=True)
    assert list(got) == list(saved)
    assert all(torch.equal(got[k], saved[k]) for k in saved)
    params = fuser.config()["params"]
    assert params["weights"] == str(Path(weights[method]).absolute())
    assert params.get("rule") == ("l1_norm" if method == "didfuse" else None)


def test_weights_are_required_and_the_line_says_which_file_and_where():
    for method, published in (("seafusion", "github.com/Linfeng-Tang/SeAFusion"),
                              ("tardal", "github.com/JinyuanLiu-CV/TarDAL"),
                              ("didfuse", "github.com/Zhaozixiang1228/IVIF-DIDFuse")):
        with pytest.raises(ConfigError) as err:
            build_fuser(method, "cpu")
        message = str(err.value)
        assert "\n" not in message and "does not ship" in message and "--weights PATH" in message
        assert published in message


def test_strict_loading_refuses_missing_unexpected_and_reshaped_keys(weights, tmp_path):
    state = torch.load(weights["seafusion"], weights_only=True)
    variants = {
        "missing": ({k: v for k, v in state.items() if k != "decode1.conv.bias"},
                    "1 of the 72 keys it needs are missing (e.g. decode1.conv.bias)"),
        "unexpected": ({**state, "extra.weight": torch.zeros(1)}, "1 keys are not its own (e.g. extra.weight)"),
        "reshaped": ({**state, "decode1.conv.bias": torch.zeros(2)}, "shapes differ: decode1.conv.bias (2,) (needs (1,))"),
    }
    for name, (bad, words) in variants.items():
        torch.save(bad, tmp_path / f"{name}.pth")
        with pytest.raises(DatasetError) as err:
            build_fuser("seafusion", "cpu", weights=str(tmp_path / f"{name}.pth"))
        assert words in str(err.value) and "\n" not in str(err.value)
        assert str(err.value).startswith(f"{tmp_path / name}.pth: not SeAFusion weights")
    # DIDFuse: the line names the file of the two that is wrong
    folder = tmp_path / "didfuse"
    shutil.copytree(weights["didfuse"], folder)
    dec = torch.load(folder / "Decoder_weight_IJCAI.pkl", weights_only=True)
    dec["weight"].pop("cov7.cov7.2.running_var")
    torch.save(dec, folder / "Decoder_weight_IJCAI.pkl")
    with pytest.raises(DatasetError, match=r"Decoder_weight_IJCAI\.pkl: not DIDFuse decoder weights .*running_var"):
        build_fuser("didfuse", "cpu", weights=str(folder))


class _Code:
    """Unpickling this would run a command that leaves a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_wrong_checkpoint_is_one_line_and_loads_nothing(weights, tmp_path):
    from fusion_perception.emma.weights import DEFAULT_EMMA_WEIGHTS

    marker = tmp_path / "ran"
    data = Path(weights["tardal"]).read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "code.pth").write_bytes(pickle.dumps(_Code(marker), protocol=2))
    torch.save({"weights": _Code(marker)}, tmp_path / "code_zip.pth")
    cases = [  # (method, file, words of the line)
        ("tardal", weights["seafusion"], "not TarDAL weights (46 of the 46 keys it needs are missing"),
        ("seafusion", weights["tardal"], "not SeAFusion weights (72 of the 72 keys it needs are missing"),
        ("tardal", DEFAULT_EMMA_WEIGHTS, "not TarDAL weights"),
        ("tardal", tmp_path / "cut.pt", "not a PyTorch weights file readable with weights_only=True"),
        ("seafusion", tmp_path / "code.pth", "is a pickled Python object, not SeAFusion weights (it holds posix.system"),
        ("tardal", tmp_path / "code_zip.pth", "is a pickled Python object, not TarDAL weights (it holds posix.system"),
        ("seafusion", tmp_path / "nothing.pth", "SeAFusion weights file not found"),
    ]
    for method, path, words in cases:
        with pytest.raises(DatasetError) as err:
            build_fuser(method, "cpu", weights=str(path))
        message = str(err.value)
        assert message.startswith(f"{path}: ") and words in message and "\n" not in message, message
        assert "weights_only=False" not in message
        assert "expected the authors'" in message or "not found" in message
    assert not marker.exists()  # the pickled command never ran


def test_didfuse_weights_are_one_folder_or_one_file_beside_its_partner(weights, tmp_path):
    folder = weights["didfuse"]
    enc, dec = folder / "Encoder_weight_IJCAI.pkl", folder / "Decoder_weight_IJCAI.pkl"
    sha = hashlib.sha256(enc.read_bytes() + dec.read_bytes()).hexdigest()
    for given in (folder, enc, dec):
        fuser = build_fuser("didfuse", "cpu", weights=str(given))
        assert fuser.checkpoint_sha256() == sha
    assert cache_label("didfuse", folder) == f"didfuse-{sha[:8]}" == cache_label("didfuse", dec)

    # two encoders: the folder is ambiguous, the path of one of them is not
    twice = tmp_path / "twice"
    shutil.copytree(folder, twice)
    shutil.copy(enc, twice / "encoder_old.PKL")
    with pytest.raises(DatasetError, match=r"twice: holds 2 \*encoder\*\.pkl files .*, where DIDFuse needs exactly one"):
        build_fuser("didfuse", "cpu", weights=str(twice))
    assert build_fuser("didfuse", "cpu", weights=str(twice / "encoder_old.PKL")).checkpoint_sha256() == sha
    (twice / "Decoder_weight_IJCAI.pkl").write_bytes(b"not a checkpoint")  # another decoder: another sha
    with pytest.raises(DatasetError, match=r"Decoder_weight_IJCAI\.pkl: not a PyTorch weights file"):
        build_fuser("didfuse", "cpu", weights=str(twice / "encoder_old.PKL"))
    (tmp_path / "lone").mkdir()
    shutil.copy(enc, tmp_path / "lone" / enc.name)  # an encoder without its decoder
    with pytest.raises(DatasetError, match=r"lone: holds no \*decoder\*\.pkl files"):
        build_fuser("didfuse", "cpu", weights=str(tmp_path / "lone" / enc.name))
    with pytest.raises(ConfigError, match="rule must be one of l1_norm, sum"):
        build_fuser("didfuse", "cpu", weights=str(folder), rule="max")
    with pytest.raises(ConfigError, match="unknown parameter"):
        build_fuser("tardal", "cpu", weights=str(weights["tardal"]), rule="sum")


# ----------------------------------------------------------------------------- fusing
@pytest.mark.parametrize("method", METHODS)
def test_a_batch_gives_what_one_image_at_a_time_gives(method, weights):
    fuser = build_fuser(method, "cpu", weights=str(weights[method]))
    ir, vi = _pairs(3, 29, 41, seed=1)
    with torch.no_grad():
        raw = fuser.raw_output(ir, vi)[0]
        alone = torch.cat([fuser.raw_output(ir[k:k + 1], vi[k:k + 1])[0] for k in range(3)])
    assert (raw - alone).abs().max() < 1e-5
    out = fuse_with_colour(fuser, ir, vi)
    assert out.shape == (3, 3, 29, 41)
    assert torch.equal(out, torch.cat([fuse_with_colour(fuser, ir[k:k + 1], vi[k:k + 1]) for k in range(3)]))
    assert torch.equal(out * 255, (out * 255).round())  # 8-bit values, which the stage's writer keeps


def test_tardal_normalises_each_image_by_its_own_statistics(weights, monkeypatch):
    """What the per-image BatchNorm prevents: statistics pooled over the batch change every image."""
    fuser = build_fuser("tardal", "cpu", weights=str(weights["tardal"]))
    ir, vi = _pairs(2, 24, 32, seed=2)
    with torch.no_grad():
        alone = fuser.raw_output(ir[:1], vi[:1])[0]
        monkeypatch.setattr(PerImageBatchNorm2d, "forward",
                            lambda self, x: F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps))
        pooled = fuser.raw_output(ir, vi)[0][:1]
    assert (pooled - alone).abs().max() > 1e-2


@pytest.mark.parametrize("method", METHODS)
def test_channels_last_changes_float_rounding_only(method, weights):
    ir, vi = _pairs(2, 24, 30, seed=5)
    outputs = []
    for channels_last in (False, True):
        fuser = build_fuser(method, "cpu", weights=str(weights[method]), channels_last=channels_last)
        with torch.no_grad():
            outputs.append(fuser.raw_output(ir, vi)[0])
    assert (outputs[0] - outputs[1]).abs().max() < 1e-5
    assert "channels_last" in type(fuser).runtime_params  # a cache made either way is reused


@pytest.mark.parametrize("method", METHODS)
def test_gray_visible_and_gray_output_give_one_channel(method, weights):
    fuser = build_fuser(method, "cpu", weights=str(weights[method]))
    ir, vi = _pairs(2, 17, 23, seed=3, colour=False)
    gray = fuse_with_colour(fuser, ir, vi)
    assert gray.shape == (2, 1, 17, 23) and torch.equal(gray, fuser.fuse(ir, vi))
    ir, vi = _pairs(2, 17, 23, seed=3)
    assert fuse_with_colour(fuser, ir, vi, gray_output=True).shape == (2, 1, 17, 23)


def test_didfuse_l1_norm_rule_is_the_authors_full_kernel_computed_once():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 8, 13, 11, generator=g), torch.randn(2, 8, 13, 11, generator=g)
    kernel = torch.ones(8, 8, 3, 3) / 9  # the authors' conv2d(|x|, ones(C, C, 3, 3) / 9)
    wa, wb = F.conv2d(a.abs(), kernel, padding=1), F.conv2d(b.abs(), kernel, padding=1)
    authors = wa / (wa + wb) * a + wb / (wa + wb) * b
    assert (fuse_features(a, b, "l1_norm") - authors).abs().max() < 1e-5
    assert torch.equal(fuse_features(a, b, "sum"), a + b)


def test_tardal_8_bit_colour_is_opencvs():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (1, 300, 400, 3), dtype=np.uint8)
    rgb[0, 0, :8] = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255],
                     [255, 0, 255]]
    bgr = cv2.cvtColor(rgb[0], cv2.COLOR_RGB2BGR)
    t = torch.from_numpy(rgb).permute(0, 3, 1, 2).to(torch.int32)
    assert np.array_equal(opencv_gray(t)[0, 0].numpy(), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    ycrcb = cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb)
    cr, cb = opencv_crcb(t)
    assert np.array_equal(cr[0].numpy(), ycrcb[..., 1]) and np.array_equal(cb[0].numpy(), ycrcb[..., 2])
    # back from any Y with any chroma (the fused Y is not the visible one)
    y = torch.from_numpy(rng.integers(0, 256, (1, 300, 400), dtype=np.uint8))
    mixed = np.dstack((y[0].numpy(), ycrcb[..., 1], ycrcb[..., 2]))
    ours = opencv_ycrcb_to_rgb(y, cr, cb)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(ours, cv2.cvtColor(cv2.cvtColor(mixed, cv2.COLOR_YCrCb2BGR), cv2.COLOR_BGR2RGB))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("method", METHODS)
def test_cuda_gives_the_cpus_result(method, weights):
    ir, vi = _pairs(2, 48, 64, seed=4)
    cpu = build_fuser(method, "cpu", weights=str(weights[method]))
    gpu = build_fuser(method, "cuda", weights=str(weights[method]))
    with torch.no_grad():
        a, b = cpu.raw_output(ir, vi)[0], gpu.raw_output(ir.cuda(), vi.cuda())[0].cpu()
    assert (a - b).abs().max() < 1e-4
    out = fuse_with_colour(gpu, ir, vi)
    assert out.device.type == "cpu" and (out - fuse_with_colour(cpu, ir, vi)).abs().max() <= 1 / 255 + 1e-6


def test_checkpoint_sha256_is_the_files(weights):
    for method in ("tardal", "seafusion"):
        fuser = build_fuser(method, "cpu", weights=str(weights[method]))
        assert fuser.checkpoint_sha256() == file_sha256(weights[method])
        assert cache_label(method, weights[method]) == f"{method}-{file_sha256(weights[method])[:8]}"
