"""TarDAL (the plain generator, ``tardal.pt``), run as its authors' ``fuse.py --color`` runs it.

J. Liu, X. Fan, Z. Huang, G. Wu, R. Liu, W. Zhong, Z. Luo, "Target-aware Dual Adversarial Learning
and a Multi-scenario Multi-modality Benchmark to Fuse Infrared and Visible for Object Detection",
CVPR 2022, 5802-5811. Weights: the authors' ``weights/tardal.pt`` (github.com/JinyuanLiu-CV/TarDAL
before its v1.0 rewrite, e.g. commit 8ef276f). Never shipped here.

The generator (a dense encoder on the IR/visible pair, a four-layer fusion head) is written from
the paper and the checkpoint's names and shapes. Its BatchNorm layers run as the authors run the
model, in training mode: each image is normalised by its own statistics (mean and biased variance
over its pixels), never the checkpoint's running ones and never those of a batch, so a batch here
gives what one image at a time gives. The authors' path works in 8 bits: the visible image's
OpenCV ``BGR2GRAY`` (integer, ``(9798 R + 19235 G + 3735 B + 16384) >> 15``), ``u8 / 255`` into the
network (IR first), the output clipped to [0, 1] and truncated to 8 bits, and recombined with the
visible image's 8-bit Cr/Cb by OpenCV's integer ``YCrCb2BGR``. The gray result is that 8-bit Y.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fusion_perception.fusion.learned import AuthorsFuser, load_strict, read_weights, to_u8, truncate_u8
from fusion_perception.registry import FUSERS

EXPECTED = ("the authors' TarDAL generator tardal.pt (weights/tardal.pt of github.com/JinyuanLiu-CV/TarDAL "
            "before its v1.0 rewrite, e.g. commit 8ef276f; also Checkpoint/TarDAL/ of the VIF benchmark)")


# ----------------------------------------------------------------------------- the network
class PerImageBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm in training mode with a batch of one, for every image of a batch: each image's own
    per-channel mean and biased variance, then the affine weight and bias. The running statistics
    stay (the checkpoint holds them) but are neither used nor updated."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


def _conv(cin: int, cout: int, norm: bool = True, act: nn.Module | None = None) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 3, padding=1)] + ([PerImageBatchNorm2d(cout)] if norm else [])
    return nn.Sequential(*layers, act if act is not None else nn.ReLU())


class TarDALGenerator(nn.Module):
    """``net(ir, vi)`` -> fused luminance in [-1, 1] (tanh; the authors clip it to [0, 1])."""

    def __init__(self, dim: int = 32, depth: int = 3):
        super().__init__()
        self.encoder = _conv(2, dim)
        self.dense = nn.ModuleList(_conv(dim * (i + 1), dim) for i in range(depth))
        width = dim * (depth + 1)
        self.fuse = nn.Sequential(_conv(width, width, norm=False), _conv(width, width // 2),
                                  _conv(width // 2, width // 4), _conv(width // 4, 1, norm=False, act=nn.Tanh()))

    def forward(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        x = self.encoder(torch.cat((ir, vi), 1))
        for layer in self.dense:
            x = torch.cat((x, layer(x)), 1)
        return self.fuse(x)


# ----------------------------------------------------------------------------- OpenCV's 8-bit colour, as tensors
def opencv_gray(rgb8: torch.Tensor) -> torch.Tensor:
    """``cv2.cvtColor(BGR2GRAY)`` of int32 RGB ``(B, 3, H, W)`` (OpenCV's 15-bit fixed point)."""
    r, g, b = rgb8.unbind(1)
    return ((9798 * r + 19235 * g + 3735 * b + 16384) >> 15).unsqueeze(1)


def opencv_crcb(rgb8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The 8-bit Cr and Cb of ``cv2.cvtColor(BGR2YCrCb)`` for int32 RGB ``(B, 3, H, W)``."""
    r, g, b = rgb8.unbind(1)
    y = (4899 * r + 9617 * g + 1868 * b + 8192) >> 14
    half = 128 * 2**14 + 8192
    return (((r - y) * 11682 + half) >> 14).clamp_(0, 255), (((b - y) * 9241 + half) >> 14).clamp_(0, 255)


def opencv_ycrcb_to_rgb(y: torch.Tensor, cr: torch.Tensor, cb: torch.Tensor) -> torch.Tensor:
    """``cv2.cvtColor(YCrCb2BGR)`` in 8 bits (OpenCV's 14-bit fixed point), as uint8 RGB ``(B, 3, H, W)``."""
    y, cr, cb = y.to(torch.int32), cr - 128, cb - 128
    r = y + ((cr * 22987 + 8192) >> 14)
    g = y + ((cb * -5636 + cr * -11698 + 8192) >> 14)
    b = y + ((cb * 29049 + 8192) >> 14)
    return torch.stack((r, g, b), 1).clamp_(0, 255).to(torch.uint8)


@FUSERS.register_module(name="tardal")
class TarDALFuser(AuthorsFuser):
    """TarDAL's generator with its authors' weights (``weights=PATH``) and ``channels_last`` (default off)."""

    expected = EXPECTED
    defaults = {"channels_last": False}

    def load_network(self, weights: Path) -> nn.Module:
        state = read_weights(weights, "TarDAL", EXPECTED)
        return load_strict(TarDALGenerator(), state, weights, "TarDAL", EXPECTED)

    def raw_output(self, ir: torch.Tensor, vi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The generator's tanh output (before the clip) and the visible image's 8-bit RGB (int32),
        for ``u8 / 255`` inputs; a gray visible image is its own ``BGR2GRAY``."""
        vi8 = to_u8(vi.expand(-1, 3, -1, -1))
        gray8 = opencv_gray(vi8) if vi.shape[1] == 3 else vi8[:, :1]
        return self.model(to_u8(ir).float().div_(255.0), gray8.float().div_(255.0)), vi8

    def fuse_u8(self, ir: torch.Tensor, vi: torch.Tensor, gray: bool) -> torch.Tensor:
        y, vi8 = self.raw_output(ir, vi)
        y8 = truncate_u8(y.clamp(0.0, 1.0))
        return y8 if gray else opencv_ycrcb_to_rgb(y8[:, 0], *opencv_crcb(vi8))
