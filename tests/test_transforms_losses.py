"""EMMA's transform group and loss: shapes, exactness where the maths is exact, gradient flow."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fusion_perception.emma.ufuser import UFuser
from fusion_perception.emma.sensing_unet import SensingUNet
from fusion_perception.emma.training.losses import emma_loss, freeze, fusion_loss, weighted_total
from fusion_perception.filters import sobel_gradient
from fusion_perception.emma.training.transforms import (
    equivariant_batch,
    flips,
    group_size,
    random_shifts,
    rotate,
    rotations,
)


def _img(b: int = 2, h: int = 12, w: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 1, h, w, generator=torch.Generator().manual_seed(seed))


def test_equivariant_batch_grows_10x_with_identity_first():
    x = _img()
    out = equivariant_batch(x, generator=torch.Generator().manual_seed(1))
    assert out.shape == (20, 1, 12, 16)
    assert torch.equal(out[:2], x)
    assert group_size() == 10


def test_equivariant_batch_counts_configurable():
    x = _img()
    out = equivariant_batch(x, shifts=1, angles=(45.0,), flips=("h",))
    assert out.shape[0] == 2 * group_size(1, (45.0,), ("h",)) == 8
    assert equivariant_batch(x, shifts=0, angles=(), flips=()).shape[0] == 2


def test_shifts_are_circular_rolls_by_nonzero_offsets():
    x = _img(b=1, h=6, w=7)
    out = random_shifts(x, n=3, generator=torch.Generator().manual_seed(3))
    assert out.shape == (3, 1, 6, 7)
    for copy in out:
        matches = [(r, c) for r in range(6) for c in range(7)
                   if torch.equal(torch.roll(x[0], (r, c), dims=(-2, -1)), copy)]
        assert len(matches) == 1  # a pure circular roll: nothing lost, nothing interpolated
        r, c = matches[0]
        assert r != 0 and c != 0


def test_shifts_follow_the_generator():
    x = _img()
    a = random_shifts(x, 3, generator=torch.Generator().manual_seed(5))
    b = random_shifts(x, 3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_flips_exact_and_involutive():
    x = _img()
    h, v, hv = flips(x).split(2)
    assert torch.equal(h, x.flip(-1)) and torch.equal(v, x.flip(-2)) and torch.equal(hv, x.flip(-2, -1))
    for kind in ("h", "v", "hv"):
        assert torch.equal(flips(flips(x, (kind,)), (kind,)), x)
        assert not torch.equal(flips(x, (kind,)), x)
    with pytest.raises(ValueError):
        flips(x, ("diagonal",))


def test_rotation_by_180_equals_double_flip_and_90_equals_rot90():
    x = _img(h=12, w=16)  # non-square: the grid is conjugated by the aspect ratio
    assert torch.allclose(rotate(x, 180.0), x.flip(-2, -1), atol=1e-5)
    sq = _img(h=9, w=9)
    # counter-clockwise as displayed, like torch.rot90 over (H, W)
    assert torch.allclose(rotate(sq, 90.0), torch.rot90(sq, 1, dims=(-2, -1)), atol=1e-5)
    assert torch.allclose(rotate(rotate(sq, 90.0), -90.0), sq, atol=1e-5)


def test_rotations_zero_fill_and_keep_centre():
    x = torch.ones(1, 1, 33, 33)
    out = rotations(x, (10.0, 130.0, 250.0))
    assert out.shape == (3, 1, 33, 33)
    assert torch.all(out[:, :, 16, 16] > 0.999)  # the centre is fixed
    assert torch.all(out[:, :, 0, 0] < 1e-6)  # a corner comes from outside: zero fill


def test_sobel_gradient_is_normalised_with_replicate_padding():
    ramp = torch.arange(8.0).repeat(8, 1)[None, None] / 8  # grows along x by 1/8 per pixel
    g = sobel_gradient(ramp)
    assert g.shape == (1, 2, 8, 8)
    # Sobel / 8: (1 + 2 + 1) * (2 * slope) / 8 = slope inside; replicate padding halves it at x = 0, 7
    assert torch.allclose(g[0, 0, :, 1:-1], torch.full((8, 6), 1 / 8))
    assert torch.allclose(g[0, 0, :, 0], torch.full((8,), 1 / 16))
    assert torch.allclose(g[0, 0, :, -1], torch.full((8,), 1 / 16))
    assert torch.allclose(g[0, 1], torch.zeros(8, 8))
    assert torch.count_nonzero(sobel_gradient(torch.full((1, 1, 5, 5), 0.3))) == 0


def test_fusion_loss_hand_computed():
    # x: a single bright pixel in the middle of a 3x3 zero image; y: zeros.
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 1, 1] = 1.0
    y = torch.zeros_like(x)
    # l1 term: 1/9. Gradient of x (cross-correlation with the Sobel x kernel / 8, replicate
    # padding): the columns left and right of the centre see -(1,2,1)/8 and +(1,2,1)/8 of it
    # -> x component abs sum 2 * (1 + 2 + 1) / 8 = 1, likewise y; mean over 2 * 9 values = 2 / 18.
    expected = 1 / 9 + 2 / 18
    assert fusion_loss(x, y).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("kind", ["random", "smooth"])
def test_fusion_loss_equals_public_code(kind):
    """The public code: l1(x, y) + l1(G x, G y) with G = kornia.filters.SpatialGradient() (defaults)."""
    import kornia  # the test extra: the library the public code takes its gradient from

    gen = torch.Generator().manual_seed(3)
    if kind == "random":
        x, y = torch.rand(2, 1, 37, 29, generator=gen), torch.rand(2, 1, 37, 29, generator=gen)
    else:
        yy, xx = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 48), indexing="ij")
        x = (torch.sin(3 * xx) * torch.cos(2 * yy))[None, None].repeat(2, 1, 1, 1)
        y = x * 0.7 + 0.1 * xx
    grad = kornia.filters.SpatialGradient()
    public = F.l1_loss(x, y) + F.l1_loss(grad(x), grad(y))
    assert fusion_loss(x, y).item() == pytest.approx(public.item(), rel=1e-6)
    assert torch.allclose(sobel_gradient(x), grad(x).flatten(1, 2), atol=1e-7)


def test_fusion_loss_orders_structure():
    x, y = _img(seed=1), _img(seed=2)
    assert fusion_loss(x, x) == 0
    assert fusion_loss(x, y) > 0
    # the gradient term matters: same mean error, different structure
    assert fusion_loss(x, x + 0.1) < fusion_loss(x, x + 0.1 * torch.randn_like(x).sign())


def test_gradient_reaches_fuser_through_frozen_sensing_nets():
    torch.manual_seed(0)
    fuser = UFuser(channels=(4, 4, 4, 4), heads=2)
    a_i, a_v = freeze(SensingUNet((4, 4, 4, 4, 4))), freeze(SensingUNet((4, 4, 4, 4, 4)))
    before = {k: v.clone() for k, v in a_i.state_dict().items()}
    ir, vi = _img(2, 16, 16, 1), _img(2, 16, 16, 2)
    opt = torch.optim.Adam([p for p in fuser.parameters()], lr=1e-2)
    terms = emma_loss(fuser, a_i, a_v, ir, vi, lambda f: equivariant_batch(f, shifts=1, angles=(130.0,), flips=("h",)))
    assert set(terms) == {"loss_ir", "loss_vi", "loss_eq"}
    total = weighted_total(terms, 1.0, 0.1)
    opt.zero_grad()
    total.backward()
    opt.step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in fuser.last.parameters())
    assert all(p.grad is None for p in (*a_i.parameters(), *a_v.parameters()))
    assert not a_i.training and not a_v.training
    after = a_i.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running stats untouched too


def test_no_equivariance_still_measures_eq_without_graph():
    fuser = UFuser(channels=(4, 4, 4, 4), heads=2)
    a_i, a_v = freeze(SensingUNet((4, 4, 4, 4, 4))), freeze(SensingUNet((4, 4, 4, 4, 4)))
    ir, vi = _img(1, 16, 16, 1), _img(1, 16, 16, 2)
    terms = emma_loss(fuser, a_i, a_v, ir, vi, equivariant_batch, equivariance=False)
    assert terms["loss_eq"].grad_fn is None and terms["loss_eq"] > 0
    assert terms["loss_ir"].grad_fn is not None
    assert torch.equal(weighted_total(terms, 1.0, 0.1, equivariance=False), terms["loss_ir"] + terms["loss_vi"])


class _Mean(torch.nn.Module):
    """A fuser whose output is known: the mean of its inputs."""

    def forward(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        return (ir + vi) / 2


class _Scale(torch.nn.Module):
    """A sensing net whose output is known: its input times ``k``."""

    def __init__(self, k: float):
        super().__init__()
        self.k = k

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.k * f


def test_each_term_of_emma_loss_is_the_formula_on_known_networks():
    """Pinned (issue 24): f = F(i, v); loss_ir = L(A_i(f), i), loss_vi = L(A_v(f), v) and the
    equivariance term L(f_t, F(A_i(f_t), A_v(f_t))) with f_t = T f, the transform of the fused image."""
    ir, vi = _img(2, 16, 16, 1), _img(2, 16, 16, 2)
    fuser, a_i, a_v = _Mean(), _Scale(1.5), _Scale(0.25)
    turn = lambda f: torch.flip(f, dims=(-1,)) * 0.5 + 0.1  # noqa: E731 - a transform whose output is known
    f = (ir + vi) / 2
    f_t = torch.flip(f, dims=(-1,)) * 0.5 + 0.1
    terms = emma_loss(fuser, a_i, a_v, ir, vi, turn)
    torch.testing.assert_close(terms["loss_ir"], fusion_loss(1.5 * f, ir))
    torch.testing.assert_close(terms["loss_vi"], fusion_loss(0.25 * f, vi))
    torch.testing.assert_close(terms["loss_eq"], fusion_loss(f_t, (1.5 * f_t + 0.25 * f_t) / 2))
    torch.testing.assert_close(weighted_total(terms, 0.6, 0.1),
                               terms["loss_ir"] + 0.6 * terms["loss_vi"] + 0.1 * terms["loss_eq"])


def test_each_rotation_turns_the_whole_batch_when_the_batch_size_is_a_multiple_of_3():
    """Pinned (issue 24): with 3 angles and 3 images the copies come angle by angle, each angle's
    block holding the whole batch in order (not image by image, which looks the same for one image)."""
    x = _img(3, 16, 16, seed=4)
    out = rotations(x, (0.0, 90.0, 180.0))
    assert out.shape == (9, 1, 16, 16)
    torch.testing.assert_close(out[0:3], x, rtol=0, atol=1e-5)
    torch.testing.assert_close(out[3:6], torch.rot90(x, 1, dims=(-2, -1)), rtol=0, atol=1e-5)
    torch.testing.assert_close(out[6:9], torch.flip(x, dims=(-2, -1)), rtol=0, atol=1e-5)
    group = equivariant_batch(x, shifts=0, angles=(0.0, 90.0, 180.0), flips=())
    torch.testing.assert_close(group[3:], out)
