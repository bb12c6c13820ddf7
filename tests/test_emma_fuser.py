"""The registered ``emma`` fuser: weights handling, any size in one pass, agreement with the
public code's four-crop execution, colour output through the fuse_dataset CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fusion_perception.errors import ConfigError, OutputError
from fusion_perception.fusion.base import build_fuser, fuse_with_colour
from fusion_perception.files import file_sha256
from fusion_perception.emma.fuser import EMMAFuser, fuse_one_pass, public_four_crop_fuse
from fusion_perception.filters import minmax_per_image
from fusion_perception.emma.ufuser import UFuser
from fusion_perception.emma.checkpoint import save_official_state_dict

REPO = Path(__file__).resolve().parents[1]
NARROW = (8, 8, 16, 16)


def _net(seed: int = 0) -> UFuser:
    torch.manual_seed(seed)
    model = UFuser(NARROW)
    with torch.no_grad():  # attention scales and norms off their constant init
        for name, p in model.named_parameters():
            if "scale" in name or "norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_official_state_dict(_net(), tmp_path_factory.mktemp("emma") / "EMMA_narrow.pth")


def _images(b: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.avg_pool2d(torch.rand(b, 2, h + 6, w + 6, generator=g), 7, stride=1)
    x = (x - x.amin()) / (x.amax() - x.amin())
    return x[:, :1].contiguous(), x[:, 1:].contiguous()


def test_weights_are_required_and_nothing_is_downloaded(tmp_path):
    with pytest.raises(ConfigError, match=r"(?s)--weights PATH.*EMMA\.pth.*train_emma\.py.*--weights official"):
        build_fuser("emma", "cpu")
    with pytest.raises(ConfigError, match="not found"):
        build_fuser("emma", "cpu", weights=tmp_path / "missing.pth")


def test_build_fuser_config_and_checkpoint_sha(weights):
    fuser = build_fuser("emma", "cpu", weights=str(weights), normalize="none")
    assert isinstance(fuser, EMMAFuser)
    assert fuser.checkpoint_sha256() == file_sha256(weights)
    cfg = fuser.config()
    assert cfg["method"] == "emma" and cfg["params"]["normalize"] == "none"
    assert cfg["params"]["weights"] == str(weights.resolve())
    with pytest.raises(ConfigError, match="normalize"):
        build_fuser("emma", "cpu", weights=str(weights), normalize="zscore")
    with pytest.raises(ConfigError, match="unknown parameter"):
        build_fuser("emma", "cpu", weights=str(weights), tile=32)


@pytest.mark.parametrize("size", [(37, 53), (24, 40), (9, 11)])
def test_any_size_in_one_pass_returns_the_input_size(weights, size):
    fuser = build_fuser("emma", "cpu", weights=str(weights))
    ir, vi = _images(2, *size)
    out = fuser.fuse(ir, vi)
    assert out.shape == ir.shape and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    flat = out.flatten(1)  # minmax per image: each spans [0, 1]
    torch.testing.assert_close(flat.amin(1), torch.zeros(2))
    torch.testing.assert_close(flat.amax(1), torch.ones(2))


def test_multiple_of_8_equals_the_unpadded_network(weights):
    net = _net()
    ir, vi = _images(2, 24, 40)
    with torch.no_grad():
        expected = net(ir, vi)
    raw = build_fuser("emma", "cpu", weights=str(weights), normalize="none").fuse(ir, vi)
    torch.testing.assert_close(raw, expected, rtol=0, atol=1e-6)
    norm = build_fuser("emma", "cpu", weights=str(weights)).fuse(ir, vi)
    torch.testing.assert_close(norm, minmax_per_image(expected), rtol=0, atol=1e-5)


def test_a_size_not_a_multiple_of_8_is_the_network_on_the_reflect_padded_input_cropped(weights):
    """Pinned (issue 24): 29x45 is padded by reflection at the bottom and right to 32x48, fused in one
    pass, and the top-left 29x45 kept; written out here with torch's own pad, not the fuser's helper."""
    net = _net()
    ir, vi = _images(2, 29, 45, seed=5)
    with torch.no_grad():
        padded = torch.nn.functional.pad(torch.cat((ir, vi), 1), (0, 3, 0, 3), mode="reflect")
        expected = net(padded[:, :1], padded[:, 1:])[..., :29, :45]
    raw = build_fuser("emma", "cpu", weights=str(weights), normalize="none").fuse(ir, vi)
    torch.testing.assert_close(raw, expected, rtol=0, atol=1e-6)
    replicated = torch.nn.functional.pad(torch.cat((ir, vi), 1), (0, 3, 0, 3), mode="replicate")
    with torch.no_grad():  # the check tells paddings apart
        assert not torch.allclose(net(replicated[:, :1], replicated[:, 1:])[..., :29, :45], expected, atol=1e-4)


def test_batch_and_channels_last_do_not_change_the_result(weights):
    ir, vi = _images(3, 29, 45, seed=3)
    plain = build_fuser("emma", "cpu", weights=str(weights), channels_last=False)
    one_by_one = torch.cat([plain.fuse(ir[i:i + 1], vi[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(plain.fuse(ir, vi), one_by_one, rtol=0, atol=1e-5)
    cl = build_fuser("emma", "cpu", weights=str(weights))  # channels_last by default
    assert cl.channels_last
    torch.testing.assert_close(cl.fuse(ir, vi), one_by_one, rtol=0, atol=1e-5)


def test_one_pass_agrees_with_public_four_crops_away_from_border():
    """Same network, public execution (4 corner crops, reference ops) vs one padded pass.

    Compared on the raw network output inside the top-left crop, a margin away from the
    image border and the crops' seams; the channel attention pools over the crop rather
    than the image, hence a small difference, not float rounding.
    """
    net = _net(seed=4)
    ref = UFuser(NARROW, fast=False)
    ref.load_state_dict(net.state_dict())
    ref.eval()
    h, w, m = 75, 101, 16  # crops 64 x 96
    ir, vi = _images(1, h, w, seed=5)
    with torch.no_grad():
        base = public_four_crop_fuse(ref, ir, vi, normalize="none")
        ours = fuse_one_pass(net, ir, vi, normalize="none")
    assert base.shape == ours.shape == ir.shape
    diff = (base - ours).abs()[..., m:64 - m, m:96 - m]
    assert float(diff.max()) < 1e-3
    # ...and nowhere near float rounding at the border: the styles really differ there.
    assert float((base - ours).abs().max()) > float(diff.max())


def test_public_four_crop_is_exact_when_divisible_by_32():
    net = _net(seed=6)
    ir, vi = _images(1, 32, 64, seed=6)
    with torch.no_grad():
        torch.testing.assert_close(public_four_crop_fuse(net, ir, vi), fuse_one_pass(net, ir, vi), rtol=0, atol=1e-6)


def test_colour_visible_gives_colour_output(weights):
    fuser = build_fuser("emma", "cpu", weights=str(weights))
    ir, _ = _images(1, 30, 42)
    vi_rgb = torch.rand(1, 3, 30, 42, generator=torch.Generator().manual_seed(1))
    out = fuse_with_colour(fuser, ir, vi_rgb)
    assert out.shape == (1, 3, 30, 42)


def test_fuse_dataset_cli_writes_colour_for_colour_inputs(weights, tmp_path, shared_data):
    tool = REPO / "tools" / "fuse_dataset.py"
    if not tool.is_file():
        pytest.skip("tools/fuse_dataset.py not written yet")
    src = shared_data / "roadscene"
    # A few of the RoadScene pairs keep the test fast; the CLI path is the same for all 50.
    data = tmp_path / "roadscene4"
    names = sorted(p.name for p in (src / "vi").iterdir())[:4]
    for sub in ("ir", "vi"):
        (data / sub).mkdir(parents=True)
        for n in names:
            shutil.copy(src / sub / n, data / sub / n)
    out = tmp_path / "out"
    env = dict(os.environ, YOLO_OFFLINE="1", HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1")
    proc = subprocess.run(
        [sys.executable, str(tool), "--method", "emma", "--weights", str(weights), "--data", str(data),
         "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=REPO, env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    from fusion_perception.data.image_io import read_image

    fused = sorted((out / "fused").iterdir())
    assert [p.stem for p in fused] == [Path(n).stem for n in names]
    for p in fused:
        img = read_image(p)
        vi = read_image(data / "vi" / next(n for n in names if Path(n).stem == p.stem))
        assert img.ndim == 3 and img.shape == vi.shape  # colour in, colour out, same size
        assert img.dtype == np.uint8 and int(img.max()) > int(img.min())


def test_runtime_parameters_do_not_invalidate_a_cached_output(weights, tmp_path):
    """channels_last changes how EMMA computes, not what: a fused dataset made without it is
    reused by a run with the default (on); normalize does change the pixels and is refused."""
    from fusion_perception.synthetic.dataset import generate
    from fusion_perception.fusion.stage import fuse_dataset

    generate(tmp_path / "data", task="det", count=3, size=(96, 64), seed=0, progress=False)
    src, out = tmp_path / "data" / "m3fd", tmp_path / "out"
    first = fuse_dataset(src, "emma", out, weights=weights, fuser_params={"channels_last": False}, progress=False)
    assert first.manifest["params"]["channels_last"] is False
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "fused").iterdir()}
    again = fuse_dataset(src, "emma", out, weights=weights, progress=False)
    assert again.manifest["params"]["channels_last"] is False  # the cached run, untouched
    assert {p.name: p.stat().st_mtime_ns for p in (out / "fused").iterdir()} == stamps
    with pytest.raises(OutputError, match="normalize minmax → none\\)"):  # and nothing about channels_last
        fuse_dataset(src, "emma", out, weights=weights, fuser_params={"normalize": "none"}, progress=False)


def test_the_same_weights_at_another_path_reuse_a_cached_output(weights, tmp_path):
    """The weights' sha256 says which they are: the same file at another path (another clone, or the
    toolkit's checkpoint after it moved) reuses the fused images; other weights are refused."""
    import shutil

    from fusion_perception.fusion.stage import fuse_dataset
    from fusion_perception.synthetic.dataset import generate

    generate(tmp_path / "data", task="det", count=3, size=(96, 64), seed=0, progress=False)
    src, out = tmp_path / "data" / "m3fd", tmp_path / "out"
    fuse_dataset(src, "emma", out, weights=weights, progress=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "fused").iterdir()}
    moved = shutil.copy(weights, tmp_path / "moved.pth")
    fuse_dataset(src, "emma", out, weights=moved, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "fused").iterdir()} == stamps
    other = save_official_state_dict(_net(seed=1), tmp_path / "other.pth")
    with pytest.raises(OutputError, match="weights"):
        fuse_dataset(src, "emma", out, weights=other, progress=False)
