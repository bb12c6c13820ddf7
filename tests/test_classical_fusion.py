"""Classical fusion methods: shapes, ranges, the properties each rule promises, references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fusion_perception.errors import ConfigError
from fusion_perception import filters as C
from fusion_perception.fusion import classical_rules as rules
from fusion_perception.fusion.base import build_fuser, fuse_with_colour, registered_methods

METHODS = ("ir", "vi", "mean", "max", "laplacian", "dwt", "gff")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _pair(b=2, h=37, w=53, seed=0):
    g = torch.Generator().manual_seed(seed)
    # smooth structure plus noise, so that pyramid levels and saliency have something to pick
    base = F.interpolate(torch.rand(b, 1, 6, 8, generator=g), size=(h, w), mode="bilinear", align_corners=False)
    ir = (0.7 * base + 0.3 * torch.rand(b, 1, h, w, generator=g)).clamp(0, 1)
    vi = (0.5 * (1 - base) + 0.5 * torch.rand(b, 1, h, w, generator=g)).clamp(0, 1)
    return ir, vi


def _blob_scene(size=96):
    """IR: a bright disc on a flat background; visible: a texture without the disc."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    d2 = (yy - size // 2) ** 2 + (xx - 40) ** 2
    blob = (d2 <= 64).float()
    ir = (0.25 + 0.6 * blob)[None, None]
    vi = (0.5 + 0.2 * torch.sin(xx / 2.0) * torch.sin(yy / 3.0))[None, None].float()
    return ir, vi, d2 <= 64, (d2 > 144) & (d2 < 400)


def test_all_classical_methods_are_registered():
    assert set(METHODS) <= set(registered_methods())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", METHODS)
def test_shape_range_and_params(name, device):
    ir, vi = _pair()
    fuser = build_fuser(name, device)
    out = fuser.fuse(ir.to(device), vi.to(device))
    assert out.shape == ir.shape and out.dtype == torch.float32 and out.device.type == device
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    cfg = fuser.config()
    assert cfg["method"] == name and cfg["params"] == fuser.params
    if device == "cuda":  # device-agnostic: the same numbers as on the CPU
        torch.testing.assert_close(out.cpu(), build_fuser(name).fuse(ir, vi), atol=1e-4, rtol=0)


def test_simple_rules():
    ir, vi = _pair()
    assert torch.equal(build_fuser("ir").fuse(ir, vi), ir) and not build_fuser("ir").color_output
    assert torch.equal(build_fuser("vi").fuse(ir, vi), vi)
    assert torch.equal(build_fuser("mean").fuse(ir, vi), (ir + vi) / 2)
    mx = build_fuser("max").fuse(ir, vi)
    assert (mx >= ir).all() and (mx >= vi).all() and ((mx == ir) | (mx == vi)).all()


@pytest.mark.parametrize("spec,params", [("laplacian", {"levels": 1}), ("laplacian", {"levels": 5}),
                                         ("dwt", {"wavelet": "haar", "levels": 3}),
                                         ("dwt", {"wavelet": "db2", "levels": 2}),
                                         ("dwt", {"wavelet": "sym4", "levels": 4})])
def test_multiscale_identical_inputs_reconstruct_the_input(spec, params):
    x = _pair(h=61, w=47)[0]  # odd sizes exercise the padding
    torch.testing.assert_close(build_fuser(spec, **params).fuse(x, x.clone()), x, atol=2e-6, rtol=0)


def test_laplacian_pyramid_is_invertible_and_band_pass():
    x = _pair(h=64, w=48)[0].double()
    pyr = C.laplacian_pyramid(x, 3)
    assert [p.shape[-2:] for p in pyr] == [(64, 48), (32, 24), (16, 12), (8, 6)]
    torch.testing.assert_close(C.reconstruct_laplacian(pyr), x, atol=1e-12, rtol=0)
    assert pyr[0].mean().abs() < 0.02  # detail bands carry no DC


@pytest.mark.parametrize("size", [(1, 1), (7, 5), (37, 53), (64, 48)])
def test_laplacian_of_a_constant_pair_is_their_mean_up_to_the_borders(size):
    """F1: the upsampling step's border gain put a black frame on every image (a 1x1 pair
    218/41 fused to 19): two constants must fuse to their mean everywhere, borders included."""
    ir = torch.full((1, 1, *size), 218 / 255)
    vi = torch.full((1, 1, *size), 41 / 255)
    out = build_fuser("laplacian").fuse(ir, vi)
    assert (out * 255 - 129.5).abs().max() < 1.0
    same = build_fuser("laplacian").fuse(ir, ir.clone())
    assert (same - ir).abs().max() < 1 / 255


def test_laplacian_has_no_frame_along_the_edges():
    """F1: on average the pyramid fusion sits at the level of the mean fusion in the 4-pixel strip
    along each edge as it does inside (the old upsampling darkened the top/left strips and
    brightened the bottom/right ones by ~0.15)."""
    ir, vi = _pair(h=64, w=80)
    diff = (build_fuser("laplacian").fuse(ir, vi) - build_fuser("mean").fuse(ir, vi))[:, 0]
    strips = {"top": diff[:, :4], "bottom": diff[:, -4:], "left": diff[:, :, :4], "right": diff[:, :, -4:]}
    for edge, strip in strips.items():
        assert abs(strip.mean().item()) < 0.05, edge


@pytest.mark.parametrize("levels", [1, 3, 4])
def test_laplacian_fusion_of_two_different_images_matches_a_scipy_reference(levels):
    """Fusion of two different inputs against an independent implementation (scipy.ndimage):
    average of the two base levels, max-absolute detail coefficients, Burt & Adelson's 5-tap
    kernel, replicated borders going down, normalised zero insertion going up."""
    from scipy import ndimage

    k = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0

    def blur(x, mode):
        return ndimage.correlate1d(ndimage.correlate1d(x, k, axis=0, mode=mode, cval=0.0), k, axis=1,
                                   mode=mode, cval=0.0)

    def up(x, shape):
        z, share = np.zeros(shape), np.zeros(shape)
        z[::2, ::2] = x[: (shape[0] + 1) // 2, : (shape[1] + 1) // 2]
        share[::2, ::2] = 1.0
        return blur(z, "constant") / blur(share, "constant")

    def pyramid(x):
        bands = []
        for _ in range(levels):
            down = blur(x, "nearest")[::2, ::2]
            bands.append(x - up(down, x.shape))
            x = down
        return bands, x

    ir, vi = (t[0, 0].double().numpy() for t in _pair(b=1, h=45, w=58, seed=5))
    (da, ba), (db, bb) = pyramid(ir), pyramid(vi)
    fused = (ba + bb) / 2
    for a, b in reversed(list(zip(da, db))):
        fused = np.where(np.abs(a) >= np.abs(b), a, b) + up(fused, a.shape)
    ours = build_fuser("laplacian", levels=levels).fuse(*(torch.from_numpy(t)[None, None].float() for t in (ir, vi)))
    np.testing.assert_allclose(ours[0, 0].numpy(), np.clip(fused, 0, 1), atol=2e-6)


def test_dwt_matches_pywavelets():
    pywt = pytest.importorskip("pywt")
    ir, vi = (t.double() for t in _pair(b=1, h=64, w=48, seed=3))
    a = pywt.wavedec2(ir[0, 0].numpy(), "db2", mode="periodization", level=3)
    b = pywt.wavedec2(vi[0, 0].numpy(), "db2", mode="periodization", level=3)
    fused = [(a[0] + b[0]) / 2] + [
        tuple(np.where(np.abs(x) >= np.abs(y), x, y) for x, y in zip(da, db)) for da, db in zip(a[1:], b[1:])
    ]
    ref = pywt.waverec2(fused, "db2", mode="periodization")
    ours = rules.fuse_dwt(ir, vi, "db2", 3)[0, 0].numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-10)
    # the single-level coefficients match too (the same filter bank and alignment)
    ca, (ch, cv, cd) = pywt.dwt2(ir[0, 0].numpy(), "db2", mode="periodization")
    co = C.dwt2(ir, C.wavelet_filters("db2", dtype=torch.float64))[0, 0].numpy()
    np.testing.assert_allclose(co[0], ca, atol=1e-12)
    for band in (ch, cv, cd):
        assert min(np.abs(co[k] - band).max() for k in (1, 2, 3)) < 1e-12


def test_box_filters_match_direct_windows():
    x = torch.rand(2, 1, 23, 31, dtype=torch.float64)
    direct = F.avg_pool2d(x, 7, stride=1, padding=3, count_include_pad=False)
    torch.testing.assert_close(C.box_mean(x, 3), direct)
    padded = F.pad(x, (5, 5, 5, 5), mode="replicate")
    torch.testing.assert_close(C.average_filter(x, 11), F.avg_pool2d(padded, 11, stride=1))


def test_guided_filter_limits():
    x = _pair(h=40, w=40)[0].double()
    # tiny eps with the image as its own guide keeps the image (edge-preserving) ...
    torch.testing.assert_close(C.guided_filter(x, x, 4, 1e-9), x, atol=1e-5, rtol=0)
    # ... a huge eps degenerates to (twice) box filtering
    torch.testing.assert_close(C.guided_filter(x, x, 4, 1e9), C.box_mean(C.box_mean(x, 4), 4), atol=1e-6, rtol=0)


def test_gff_stays_in_range_and_keeps_a_salient_ir_target():
    ir, vi, inside, ring = _blob_scene()
    out = build_fuser("gff").fuse(ir, vi)
    lo, hi = torch.minimum(ir, vi), torch.maximum(ir, vi)
    assert ((out >= lo - 0.05) & (out <= hi + 0.05)).float().mean() > 0.99

    def contrast(f):
        return (f[0, 0][inside].mean() - f[0, 0][ring].mean()).item()

    mean_contrast = contrast(build_fuser("mean").fuse(ir, vi))
    assert contrast(out) > mean_contrast + 0.05, (contrast(out), mean_contrast)
    assert contrast(out) <= contrast(ir) + 1e-6


def test_colour_is_handled_centrally():
    ir, _ = _pair(b=2, h=16, w=20)
    rgb = torch.rand(2, 3, 16, 20)
    assert fuse_with_colour(build_fuser("mean"), ir, rgb).shape == (2, 3, 16, 20)
    assert fuse_with_colour(build_fuser("mean"), ir, rgb, gray_output=True).shape == (2, 1, 16, 20)
    assert fuse_with_colour(build_fuser("ir"), ir, rgb).shape == (2, 1, 16, 20)
    # the visible baseline gives the visible image back, colour included (to well under 1/255)
    assert (fuse_with_colour(build_fuser("vi"), ir, rgb) - rgb).abs().max() < 0.5 / 255


def test_colour_output_carries_the_fused_luminance_and_the_visible_chroma():
    """The recombination: Y of the output is the method's fused Y, Cr/Cb are the visible image's."""
    from fusion_perception.fusion.base import rgb_to_ycrcb

    g = torch.Generator().manual_seed(1)
    ir = torch.rand(2, 1, 16, 20, generator=g)
    rgb = 0.3 + 0.4 * torch.rand(2, 3, 16, 20, generator=g)  # moderate colours: no clamping in the round trip
    out = fuse_with_colour(build_fuser("mean"), ir, rgb)
    y, crcb = rgb_to_ycrcb(out)[:, :1], rgb_to_ycrcb(out)[:, 1:]
    vi_ycrcb = rgb_to_ycrcb(rgb)
    unclamped = ((out > 0) & (out < 1)).all(dim=1, keepdim=True)
    assert unclamped.float().mean() > 0.95
    torch.testing.assert_close(y[unclamped], ((ir + vi_ycrcb[:, :1]) / 2)[unclamped], atol=2e-3, rtol=0)
    torch.testing.assert_close(crcb[unclamped.expand_as(crcb)], vi_ycrcb[:, 1:][unclamped.expand_as(crcb)],
                               atol=2e-3, rtol=0)


def test_parameters_are_checked():
    with pytest.raises(ConfigError, match="levels"):
        build_fuser("mean", levels=3)
    with pytest.raises(ConfigError, match="no weights"):
        build_fuser("gff", weights="x.pth")
    with pytest.raises(ConfigError, match="wavelet"):
        build_fuser("dwt", wavelet="nope")
    with pytest.raises(ConfigError, match="orthogonal"):
        build_fuser("dwt", wavelet="bior2.2")
    with pytest.raises(ConfigError, match="int"):
        build_fuser("laplacian", levels="many")
    assert build_fuser("gff", r1=30, eps1=1).params["eps1"] == 1.0
    with pytest.raises(ConfigError, match="registered methods: .*gff"):
        build_fuser("no_such_method")


def test_the_default_laplacian_has_4_levels_as_the_readme_says():
    """Pinned (issue 24): the default is the README's (target retention table: "4 levels, the default")."""
    ir, vi = _pair(1, 64, 80, seed=2)
    default = build_fuser("laplacian")
    assert default.config()["params"]["levels"] == 4
    torch.testing.assert_close(default.fuse(ir, vi), build_fuser("laplacian", levels=4).fuse(ir, vi), rtol=0, atol=0)
    for other in (3, 5):
        assert not torch.allclose(default.fuse(ir, vi), build_fuser("laplacian", levels=other).fuse(ir, vi))
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "laplacian (4 levels, the default)" in readme
