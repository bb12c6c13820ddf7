"""The fusion-quality metrics: the shared reference values, the scipy/numpy baseline, dtypes, batches."""

from __future__ import annotations

import importlib.util
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from fusion_perception.metrics import fusion_quality as fq
from fusion_perception.metrics.fused_folders import read_gray255

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = {m: 1e-4 for m in fq.METRIC_NAMES} | {"VIF": 1e-3, "SSIM": 1e-3}  # the fixture's bounds


@pytest.fixture(autouse=True)
def one_thread():
    """Single-threaded torch: these are many small ops, and on a shared 2-core machine two
    intra-op threads wait on each other far more than they help (10x slower here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def reference_impl():
    spec = importlib.util.spec_from_file_location("reference_metrics", REPO / "tests" / "reference" / "reference_metrics.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def test_reproduces_the_roadscene_reference_values(shared_data, shared_fixtures):
    """Every value of the fixture, from the mean and max fusions of the 50 RoadScene pairs."""
    ref = json.loads((shared_fixtures / "roadscene_metrics_reference.json").read_text())
    root = shared_data / "roadscene"
    assert set(ref) == {"mean", "max"} and len(ref["mean"]) == 50
    worst = dict.fromkeys(fq.METRIC_NAMES, 0.0)
    for name in ref["mean"]:
        ir = torch.from_numpy(read_gray255(root / "ir" / name))
        vi = torch.from_numpy(read_gray255(root / "vi" / name))
        # the README's round() is numpy's, half to even, like torch.round: (IR+VI)/2 ends in .5 often
        fused = torch.stack((torch.round((ir + vi) / 2), torch.maximum(ir, vi)))
        values = fq.compute_fusion_metrics(ir.expand(2, -1, -1), vi.expand(2, -1, -1), fused)
        for i, fusion in enumerate(("mean", "max")):
            for m in fq.METRIC_NAMES:
                err = _rel(float(values[m][i]), ref[fusion][name][m])
                worst[m] = max(worst[m], err)
                assert err <= TOLERANCE[m], (fusion, name, m, float(values[m][i]), ref[fusion][name][m])
    print("worst relative error per metric:", {m: f"{e:.1e}" for m, e in worst.items()})


def _scene(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A textured 0..255 image with smooth shading, edges and a flat patch (integer valued)."""
    from scipy.ndimage import gaussian_filter

    img = gaussian_filter(rng.normal(0, 1, (h, w)), 2.0) * 400 + 120
    img[h // 4 : h // 2, w // 3 : w // 2] += 60  # a bright block: strong edges
    img[-12:, -12:] = 200  # flat region: the variance clamps of VIF/SSIM come into play
    return np.clip(np.round(img), 0, 255).astype(np.float32)


@pytest.mark.parametrize("fused_kind", ["integer", "float"])
def test_agrees_with_the_scipy_numpy_baseline(reference_impl, fused_kind):
    rng = np.random.default_rng(3)
    h, w = 72, 90
    for _ in range(2):
        ir, vi = _scene(rng, h, w), _scene(rng, h, w)
        fused = 0.6 * ir + 0.4 * vi + rng.normal(0, 3, (h, w))
        if fused_kind == "integer":
            fused = np.round(fused)
        fused = np.clip(fused, 0, 255).astype(np.float32)  # "float": ~all values distinct, no fast paths
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn: "continuous values" for float labels
            expected = reference_impl.reference_metrics(ir, vi, fused)
        got = fq.compute_fusion_metrics(*(torch.from_numpy(x)[None] for x in (ir, vi, fused)))
        for m in fq.METRIC_NAMES:
            tol = {"VIF": 2e-4, "SSIM": 1e-4}.get(m, 1e-5)  # float32 filtering (VIF), float32 skimage (SSIM)
            assert _rel(float(got[m][0]), expected[m]) <= tol, (m, float(got[m][0]), expected[m])


def test_mi_is_exact_on_arbitrary_values():
    """MI over the exact pixel values (no binning): sklearn's contingency-table value."""
    from sklearn.metrics import mutual_info_score

    rng = np.random.default_rng(0)
    a = rng.integers(0, 40, (2, 50, 60)).astype(np.float32)
    b = (a * 0.7 + rng.integers(0, 5, a.shape)).astype(np.float32)
    f = (a + b) / 2 + rng.choice([0.0, 0.25, 1e-3], a.shape).astype(np.float32)  # beyond half-integers
    got = fq.mutual_information(*(torch.from_numpy(x) for x in (a, b, f)))
    for i in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = mutual_info_score(f[i].ravel(), a[i].ravel()) + mutual_info_score(f[i].ravel(), b[i].ravel())
        assert float(got[i]) == pytest.approx(want, rel=1e-12)
    # continuous values: too many distinct value pairs for a dense table (the sparse path)
    x = rng.random((1, 100, 100)).astype(np.float32)
    y = (x + rng.random(x.shape).astype(np.float32)).round(decimals=2)
    got = fq.mutual_information(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = mutual_info_score(x.ravel(), x.ravel()) + mutual_info_score(x.ravel(), y.ravel())
    assert float(got[0]) == pytest.approx(want, rel=1e-12)


def test_same_values_for_every_input_form_and_batch():
    """(B,1,H,W) or (B,H,W), float32/float64/uint8, batched or one by one: the same numbers."""
    rng = np.random.default_rng(1)
    imgs = [np.stack([_scene(rng, 48, 64) for _ in range(3)]) for _ in range(3)]  # ir, vi, fused: (3,H,W)
    base = fq.compute_fusion_metrics(*(torch.from_numpy(x) for x in imgs))
    variants = {
        "B1HW float64": [torch.from_numpy(x).double()[:, None] for x in imgs],
        "uint8": [torch.from_numpy(x.astype(np.uint8)) for x in imgs],
        "non-contiguous": [torch.from_numpy(x).transpose(1, 2).contiguous().transpose(1, 2) for x in imgs],
    }
    for label, args in variants.items():
        got = fq.compute_fusion_metrics(*args)
        for m in fq.METRIC_NAMES:
            assert got[m].dtype == torch.float64 and got[m].shape == (3,)
            torch.testing.assert_close(got[m], base[m], rtol=1e-6, atol=0, msg=f"{label} {m}")
    for i in range(3):
        one = fq.compute_fusion_metrics(*(torch.from_numpy(x[i : i + 1]) for x in imgs))
        for m in fq.METRIC_NAMES:
            assert float(one[m][0]) == pytest.approx(float(base[m][i]), rel=1e-5), (i, m)


def test_one_source_pair_against_several_fused_images():
    """Sources of batch 1 against B fused images (several methods of one pair): the values of
    the expanded batch, and of each image scored alone."""
    rng = np.random.default_rng(4)
    ir, vi = (torch.from_numpy(_scene(rng, 48, 52))[None] for _ in range(2))
    fused = torch.from_numpy(np.stack([_scene(rng, 48, 52) for _ in range(3)]))
    shared = fq.compute_fusion_metrics(ir, vi, fused)
    expanded = fq.compute_fusion_metrics(ir.expand(3, -1, -1), vi.expand(3, -1, -1), fused)
    for m in fq.METRIC_NAMES:
        torch.testing.assert_close(shared[m], expanded[m], rtol=1e-12, atol=0, msg=m)
        for i in range(3):
            alone = fq.compute_fusion_metrics(ir, vi, fused[i:i + 1], (m,))[m]
            assert float(alone[0]) == pytest.approx(float(shared[m][i]), rel=1e-6), (m, i)
    with pytest.raises(ValueError, match="differ in shape"):
        fq.compute_fusion_metrics(ir.expand(2, -1, -1), vi.expand(2, -1, -1), fused)


def test_individual_functions_match_the_combined_call():
    rng = np.random.default_rng(2)
    ir, vi, fu = (torch.from_numpy(_scene(rng, 48, 56))[None] for _ in range(3))
    allm = fq.compute_fusion_metrics(ir, vi, fu)
    single = {"EN": fq.entropy(fu), "SD": fq.std(fu), "SF": fq.spatial_frequency(fu),
              "AG": fq.average_gradient(fu), "MI": fq.mutual_information(ir, vi, fu), "SCD": fq.scd(ir, vi, fu),
              "VIF": fq.vif(ir, vi, fu), "Qabf": fq.qabf(ir, vi, fu), "SSIM": fq.ssim(ir, vi, fu)}
    for m, v in single.items():
        torch.testing.assert_close(v, allm[m], rtol=1e-12, atol=0)
    # VIF in float64 filtering (the reference's precision) agrees with the float32 default
    assert float(fq.vif(ir, vi, fu, dtype=torch.float64)[0]) == pytest.approx(float(allm["VIF"][0]), rel=1e-4)


def test_degenerate_and_bad_inputs():
    flat = torch.full((1, 48, 48), 100.0)
    ramp = torch.arange(48.0).repeat(48, 1)[None] * 4
    # no source detail at all: VIF's 0/0 ratio counts as 1 per source; EN of a constant is 0
    assert float(fq.vif(flat, flat, flat)[0]) == 2.0
    assert float(fq.entropy(flat)[0]) == 0.0
    assert float(fq.ssim(ramp, ramp, ramp)[0]) == pytest.approx(2.0, abs=1e-12)  # identical images
    assert math.isclose(float(fq.mutual_information(ramp, flat, ramp)[0]), math.log(48), rel_tol=1e-12)
    with pytest.raises(ValueError, match="differ in shape"):
        fq.compute_fusion_metrics(flat, flat, torch.zeros(1, 48, 47))
    small = torch.zeros(1, fq.VIF_MIN_SIZE - 1, 64)
    with pytest.raises(ValueError, match="VIF needs images of at least"):
        fq.vif(small, small, small)
    with pytest.raises(ValueError, match="unknown metric"):
        fq.compute_fusion_metrics(flat, flat, flat, names=("PSNR",))
    with pytest.raises(ValueError, match="one channel"):
        fq.compute_fusion_metrics(flat, flat, torch.zeros(1, 3, 48, 48))


@pytest.mark.parametrize("size", [(480, 640), (256, 320), (77, 100)])
def test_scd_of_a_source_itself_is_undefined_not_a_rounding_residue(size):
    """F = VI (or IR) makes F - VI zero, so corr(IR, F - VI) has no value: SCD is undefined. Before, the
    variance of F - VI, expanded from sums of products, was left as a rounding residue and SCD came
    out 0.71 on random images and inf on a real MSRS pair (00416D), which made the table's mean inf.
    A fused image a gray level of noise away from VI still has its SCD."""
    g = torch.Generator().manual_seed(size[0])
    for _ in range(5):
        ir = torch.rand(1, 1, *size, generator=g) * 255
        vi = (torch.rand(1, 1, *size, generator=g) * 255).round()
        assert math.isnan(fq.scd(ir, vi, vi).item()) and math.isnan(fq.scd(ir, vi, ir).item())
        noisy = (vi + torch.rand(1, 1, *size, generator=g) - 0.5).clamp(0, 255)
        assert math.isfinite(fq.scd(ir, vi, noisy).item()) and math.isfinite(fq.scd(ir, vi, (ir + vi) / 2).item())
