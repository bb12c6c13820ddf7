"""Image I/O: 8/16-bit PNG/TIFF IR, gray stored as 3 channels, colour VI, YCrCb, bad files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fusion_perception.data.image_io import is_gray, luminance01, read_gray01, read_image, to_float01, to_uint8, write_image
from fusion_perception.fusion.base import rgb_to_ycrcb, ycrcb_to_rgb
from fusion_perception.errors import ImageReadError

RNG = np.random.default_rng(7)


def thermal16(h: int = 24, w: int = 32) -> np.ndarray:
    """Raw 16-bit counts in a narrow band, the way thermal cameras store them."""
    return (28000 + RNG.integers(0, 3000, (h, w))).astype(np.uint16)


@pytest.mark.parametrize("ext", [".png", ".tif", ".tiff"])
def test_8bit_ir_round_trip(tmp_path: Path, ext: str):
    img = RNG.integers(0, 256, (24, 32), dtype=np.uint8)
    write_image(tmp_path / f"ir{ext}", img)
    out = read_image(tmp_path / f"ir{ext}")
    assert out.dtype == np.uint8 and out.shape == (24, 32)
    np.testing.assert_array_equal(out, img)
    np.testing.assert_allclose(read_gray01(tmp_path / f"ir{ext}"), img / 255.0, atol=1e-6)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_ir_keeps_its_depth_and_stretches(tmp_path: Path, ext: str):
    img = thermal16()
    assert cv2.imwrite(str(tmp_path / f"ir{ext}"), img)
    out = read_image(tmp_path / f"ir{ext}")
    assert out.dtype == np.uint16 and out.shape == img.shape
    np.testing.assert_array_equal(out, img)
    g = read_gray01(tmp_path / f"ir{ext}")
    assert g.dtype == np.float32 and g.min() == 0.0 and g.max() == 1.0  # per-image stretch
    lo, hi = float(img.min()), float(img.max())
    np.testing.assert_allclose(g, (img - lo) / (hi - lo), atol=1e-6)
    np.testing.assert_allclose(to_float01(out, "full"), img / 65535.0, atol=1e-6)
    with pytest.raises(ValueError, match="uint16_mode"):
        to_float01(out, "percentile")


def test_gray_stored_as_three_channels(tmp_path: Path):
    gray = RNG.integers(0, 256, (24, 32), dtype=np.uint8)
    assert cv2.imwrite(str(tmp_path / "ir.png"), np.dstack([gray] * 3))
    out = read_image(tmp_path / "ir.png")
    assert out.shape == (24, 32, 3) and is_gray(out)
    # luminance of a gray image is the gray value itself, not a weighted sum that rounds
    np.testing.assert_array_equal(luminance01(out), gray.astype(np.float32) / 255.0)


def test_colour_visible_is_rgb(tmp_path: Path):
    bgr = np.zeros((4, 6, 3), np.uint8)
    bgr[..., 0], bgr[..., 1], bgr[..., 2] = 10, 100, 200  # B, G, R
    assert cv2.imwrite(str(tmp_path / "vi.png"), bgr)
    rgb = read_image(tmp_path / "vi.png")
    assert rgb.shape == (4, 6, 3) and tuple(rgb[0, 0]) == (200, 100, 10) and not is_gray(rgb)
    y = luminance01(rgb)
    ref = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    np.testing.assert_allclose(y, ref, atol=1 / 255)
    # alpha is dropped
    bgra = np.dstack([bgr, np.full((4, 6), 128, np.uint8)])
    assert cv2.imwrite(str(tmp_path / "a.png"), bgra)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgb)
    # write_image takes RGB and writes the file a viewer shows in the same colours
    write_image(tmp_path / "w.png", rgb)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "w.png")), bgr)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_ycrcb_matches_opencv_and_round_trips():
    rgb = torch.rand(2, 3, 16, 20, dtype=torch.float32)
    ycc = rgb_to_ycrcb(rgb)
    assert ycc.shape == rgb.shape
    ref = cv2.cvtColor(rgb[0].permute(1, 2, 0).numpy(), cv2.COLOR_RGB2YCrCb)
    np.testing.assert_allclose(ycc[0].permute(1, 2, 0).numpy(), ref, atol=1e-5)
    back = ycrcb_to_rgb(ycc)
    assert float((back - rgb).abs().max()) < 2e-3
    # fusion replaces Y and keeps the chroma: a gray image stays gray
    gray = torch.rand(1, 1, 8, 8).expand(1, 3, 8, 8)
    g = rgb_to_ycrcb(gray)
    assert torch.allclose(g[:, 1:], torch.full_like(g[:, 1:], 0.5), atol=1e-6)
    assert to_uint8(ycrcb_to_rgb(g)[0]).shape == (8, 8, 3)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_truncated_file(tmp_path: Path, ext: str):
    path = tmp_path / f"ir{ext}"
    assert cv2.imwrite(str(path), RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageReadError, match=rf"ir\{ext}: file is truncated") as e:
        read_image(path)
    assert e.value.path == path


def test_misnamed_and_padded_files_still_read(tmp_path: Path):
    img = RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    ok, jpg = cv2.imencode(".jpg", img)
    (tmp_path / "looks_like.png").write_bytes(jpg.tobytes())  # a JPEG with a .png name
    assert read_image(tmp_path / "looks_like.png").shape == (24, 32, 3)
    (tmp_path / "padded.jpg").write_bytes(jpg.tobytes() + b"\xff\xff\x00\x00\x00")
    assert read_image(tmp_path / "padded.jpg").shape == (24, 32, 3)


@pytest.mark.parametrize("content, problem", [(None, "file not found"), (b"", "file is empty"),
                                              (b"GIF89a nonsense" * 20, "cannot be decoded")])
def test_unreadable_file(tmp_path: Path, content: bytes | None, problem: str):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageReadError, match=rf"bad\.png: {problem}"):
        read_image(path)
