"""The transform group of EMMA's equivariance prior, as pure batched tensor functions.

Every function takes ``x`` of shape ``(B, C, H, W)`` and returns the transformed copies
stacked along the batch axis (``(n * B, C, H, W)``), in the order the public code uses:
the copies for the first transform come first, each holding the whole batch.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

DEFAULT_ANGLES: tuple[float, ...] = (10.0, 130.0, 250.0)
DEFAULT_FLIPS: tuple[str, ...] = ("h", "v", "hv")

_FLIP_DIMS = {"h": (-1,), "v": (-2,), "hv": (-2, -1)}


def _check_bchw(x: torch.Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}")


def random_shifts(
    x: torch.Tensor, n: int = 3, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n`` circular shifts of the batch, each by a random non-zero row and column offset.

    Offsets are drawn in ``1 .. H-1`` / ``1 .. W-1`` (a roll by ``-k`` equals a roll by
    ``H - k``, so this covers the public code's signed range). Returns ``(n * B, C, H, W)``.
    """
    _check_bchw(x)
    if n <= 0:
        return x[:0]
    h, w = x.shape[-2:]
    if h < 2 or w < 2:
        raise ValueError(f"cannot shift an image of size {h}x{w}: both sides must be at least 2")
    rows = torch.randint(1, h, (n,), generator=generator).tolist()
    cols = torch.randint(1, w, (n,), generator=generator).tolist()
    return torch.cat([torch.roll(x, shifts=(r, c), dims=(-2, -1)) for r, c in zip(rows, cols)], dim=0)


def rotation_matrix(angle_deg: float, height: int, width: int) -> torch.Tensor:
    """The ``affine_grid`` matrix (2x3, normalised coordinates) of a rotation about the centre.

    Positive angles turn the picture counter-clockwise as displayed (y axis down), as
    ``kornia.geometry.rotate`` does. Normalised coordinates are anisotropic for non-square
    images, so the pixel-space rotation is conjugated by the per-axis scale.
    """
    a = math.radians(angle_deg)
    # Output pixel p samples source R^-1 (p - c) + c; the displayed counter-clockwise turn in
    # y-down pixel coordinates is R = [[cos, sin], [-sin, cos]], so R^-1 = [[cos, -sin], [sin, cos]].
    cos, sin = math.cos(a), math.sin(a)
    sx, sy = (width - 1) / 2.0, (height - 1) / 2.0  # align_corners=True half-extents
    sx, sy = max(sx, 1e-12), max(sy, 1e-12)
    return torch.tensor(
        [[cos, -sin * sy / sx, 0.0], [sin * sx / sy, cos, 0.0]], dtype=torch.float64
    )


def rotate(x: torch.Tensor, angle_deg: float) -> torch.Tensor:
    """Rotate a batch about its centre: bilinear, zero fill, same size."""
    _check_bchw(x)
    b, c, h, w = x.shape
    theta = rotation_matrix(angle_deg, h, w).to(device=x.device, dtype=torch.float32)
    grid = F.affine_grid(theta.expand(b, 2, 3), [b, c, h, w], align_corners=True)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.to(x.dtype)


def rotations(x: torch.Tensor, angles: Sequence[float] = DEFAULT_ANGLES) -> torch.Tensor:
    """One rotated copy of the batch per angle (degrees). Returns ``(len(angles) * B, C, H, W)``."""
    _check_bchw(x)
    if len(angles) == 0:
        return x[:0]
    # One grid_sample call over all angles: the batch is repeated and each block gets its matrix.
    b, c, h, w = x.shape
    thetas = torch.stack([rotation_matrix(a, h, w) for a in angles]).to(x.device, torch.float32)
    thetas = thetas.repeat_interleave(b, dim=0)
    xs = x.float().repeat(len(angles), 1, 1, 1)
    grid = F.affine_grid(thetas, list(xs.shape), align_corners=True)
    out = F.grid_sample(xs, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.to(x.dtype)


def flips(x: torch.Tensor, kinds: Sequence[str] = DEFAULT_FLIPS) -> torch.Tensor:
    """Reflections: ``"h"`` (left-right), ``"v"`` (up-down), ``"hv"`` (both). ``(len(kinds) * B, ...)``."""
    _check_bchw(x)
    unknown = [k for k in kinds if k not in _FLIP_DIMS]
    if unknown:
        raise ValueError(f"unknown flip kind(s) {unknown}; use 'h', 'v' or 'hv'")
    if len(kinds) == 0:
        return x[:0]
    return torch.cat([torch.flip(x, dims=_FLIP_DIMS[k]) for k in kinds], dim=0)


def equivariant_batch(
    x: torch.Tensor,
    shifts: int = 3,
    angles: Sequence[float] = DEFAULT_ANGLES,
    flips: Sequence[str] = DEFAULT_FLIPS,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``T_g x`` for the whole group: ``cat([x, shifts(x), rotations(x), flips(x)])`` on the batch axis.

    With the defaults (3 shifts, 3 rotations, 3 flips) the batch grows 10x.
    """
    _check_bchw(x)
    parts = [x]
    if shifts:
        parts.append(random_shifts(x, shifts, generator=generator))
    if len(angles):
        parts.append(rotations(x, angles))
    if len(flips):
        parts.append(_flips(x, flips))
    return torch.cat(parts, dim=0)


_flips = flips  # ``equivariant_batch`` shadows the name with its argument


def group_size(shifts: int = 3, angles: Sequence[float] = DEFAULT_ANGLES, flips: Sequence[str] = DEFAULT_FLIPS) -> int:
    """How many times ``equivariant_batch`` multiplies the batch."""
    return 1 + int(shifts) + len(angles) + len(flips)
