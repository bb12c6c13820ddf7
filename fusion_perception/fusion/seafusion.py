"""SeAFusion, run as its authors' test script runs it, with their weights.

L. Tang, J. Yuan, J. Ma, "Image fusion in the loop of high-level vision tasks: A semantic-aware
real-time infrared and visible image fusion network", Information Fusion 82 (2022) 28-42.
Weights: the authors' ``fusionmodel_final.pth`` (github.com/Linfeng-Tang/SeAFusion,
``model/Fusion/``; the VIF benchmark ships the same network as ``SeAFusion.pth``). Never shipped here.

The network (two encoders of residual dense gradient blocks, a four-layer decoder) is written
from the paper and the checkpoint's names and shapes. The authors' path: the visible image's Y,
Cr, Cb in float32 (``Y = 0.299 R + 0.587 G + 0.114 B``, ``Cr = (R - Y) 0.713 + 0.5``,
``Cb = (B - Y) 0.564 + 0.5``, each clamped to [0, 1]); the network on (Y, IR);
``tanh / 2 + 0.5``; recombined with Cr/Cb as a 3x3 matrix product, clamped; min-max per image
over all channels; ``uint8(x * 255)``, truncated. The gray result (a gray visible image,
``--gray``) is the network's output min-max normalised and truncated the same way.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fusion_perception.fusion.base import rgb_to_ycrcb
from fusion_perception.fusion.learned import AuthorsFuser, load_strict, read_weights, truncate_u8
from fusion_perception.registry import FUSERS

EXPECTED = ("the authors' SeAFusion weights (fusionmodel_final.pth of github.com/Linfeng-Tang/SeAFusion, "
            "model/Fusion/; SeAFusion.pth in the VIF benchmark github.com/Linfeng-Tang/VIF-Benchmark)")
# YCrCb -> RGB as the authors' script computes it: [Y, Cr - 0.5, Cb - 0.5] (N, 3) @ this matrix
_YCRCB_TO_RGB = torch.tensor([[1.0, 1.0, 1.0], [1.403, -0.714, 0.0], [0.0, -0.344, 1.773]])


# ----------------------------------------------------------------------------- the network
class _Conv(nn.Module):
    """One convolution under the name ``conv`` (the checkpoint's ``*.conv.weight``)."""

    def __init__(self, cin: int, cout: int, k: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _Dense(nn.Module):
    """Two 3x3 convolutions, each on everything before it: C -> 3C channels."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1, self.conv2 = _Conv(c, c), _Conv(2 * c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat((x, F.leaky_relu(self.conv1(x), 0.2)), 1)
        return torch.cat((x, F.leaky_relu(self.conv2(x), 0.2)), 1)


class _Gradient(nn.Module):
    """``|dwconv(x; kx)| + |dwconv(x; ky)|``: depthwise 3x3 kernels that started as Sobel's and were trained."""

    def __init__(self, c: int):
        super().__init__()
        self.convx = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.convy = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convx(x).abs() + self.convy(x).abs()


class _RGBD(nn.Module):
    """Residual dense gradient block ``C -> O``: dense branch (1x1 down) plus gradient branch (1x1 up)."""

    def __init__(self, c: int, o: int):
        super().__init__()
        self.dense, self.convdown = _Dense(c), _Conv(3 * c, o, 1)
        self.sobelconv, self.convup = _Gradient(c), _Conv(c, o, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.convdown(self.dense(x)) + self.convup(self.sobelconv(x)), 0.1)


class _Decode(_Conv):
    """A decoder convolution; its ``bn`` is in the checkpoint (at its initial values) but unused."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout)
        self.bn = nn.BatchNorm2d(cout)


class SeAFusionNet(nn.Module):
    """``net(vi_y, ir)`` -> fused luminance in (0, 1): both (B, 1, H, W), visible first."""

    def __init__(self) -> None:
        super().__init__()
        for side in ("vis", "inf"):
            setattr(self, f"{side}_conv", _Conv(1, 16))
            setattr(self, f"{side}_rgbd1", _RGBD(16, 32))
            setattr(self, f"{side}_rgbd2", _RGBD(32, 48))
        self.decode4, self.decode3, self.decode2, self.decode1 = _Decode(96, 64), _Decode(64, 32), \
            _Decode(32, 16), _Decode(16, 1)

    def _encode(self, side: str, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(getattr(self, f"{side}_conv")(x), 0.2)
        return getattr(self, f"{side}_rgbd2")(getattr(self, f"{side}_rgbd1")(x))

    def forward(self, vi_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        x = torch.cat((self._encode("vis", vi_y[:, :1]), self._encode("inf", ir)), 1)
        for layer in (self.decode4, self.decode3, self.decode2):
            x = F.leaky_relu(layer(x), 0.2)
        return torch.tanh(self.decode1(x)) / 2 + 0.5


# ----------------------------------------------------------------------------- the authors' colour path
def seafusion_ycrcb(vi: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` Y, Cr, Cb of RGB (or gray, taken as R = G = B) in [0, 1], each clamped to [0, 1]."""
    return rgb_to_ycrcb(vi.expand(-1, 3, -1, -1)).clamp_(0.0, 1.0)


def seafusion_rgb(y: torch.Tensor, ycrcb: torch.Tensor) -> torch.Tensor:
    """Fused ``y`` (B, 1, H, W) with the visible Cr/Cb back to RGB, the authors' matrix product, clamped."""
    b, _, h, w = y.shape
    x = torch.cat((y, ycrcb[:, 1:] - 0.5), 1).permute(0, 2, 3, 1).reshape(-1, 3)
    rgb = x.mm(_YCRCB_TO_RGB.to(x.device)).reshape(b, h, w, 3).permute(0, 3, 1, 2)
    return rgb.clamp(0.0, 1.0)


def minmax_u8(x: torch.Tensor) -> torch.Tensor:
    """Per image, over every channel and pixel: ``(x - min) / (max - min)``, then truncated to 8 bits."""
    from fusion_perception.filters import minmax_per_image

    return truncate_u8(minmax_per_image(x))


@FUSERS.register_module(name="seafusion")
class SeAFusionFuser(AuthorsFuser):
    """SeAFusion with its authors' weights (``weights=PATH``) and ``channels_last`` (default on)."""

    expected = EXPECTED

    def load_network(self, weights: Path) -> nn.Module:
        state = read_weights(weights, "SeAFusion", EXPECTED)
        return load_strict(SeAFusionNet(), state, weights, "SeAFusion", EXPECTED)

    def raw_output(self, ir: torch.Tensor, vi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's output ``tanh / 2 + 0.5`` and the visible YCrCb, for ``u8 / 255`` inputs."""
        ycrcb = seafusion_ycrcb(vi)
        return self.model(ycrcb[:, :1], ir), ycrcb

    def fuse_u8(self, ir: torch.Tensor, vi: torch.Tensor, gray: bool) -> torch.Tensor:
        y, ycrcb = self.raw_output(ir, vi)
        return minmax_u8(y.clamp(0.0, 1.0) if gray else seafusion_rgb(y, ycrcb))
