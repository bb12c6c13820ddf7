"""EMMA's pseudo-sensing networks ``A_i(f) -> i`` and ``A_v(f) -> v``: a five-level U-Net.

Keys reproduce the public ``Ai.pth`` / ``Av.pth`` (``design/official_sensing_unet5_state_dict.tsv``).
The published widths (64 ... 1024, about 39.4 M parameters) are the default; narrow
widths such as ``(8, 16, 32, 64, 128)`` make CPU training practical.
Input height and width must be multiples of 16 (four 2x2 max-pools).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

DEFAULT_WIDTHS: tuple[int, int, int, int, int] = (64, 128, 256, 512, 1024)


class ConvBlock(nn.Module):
    """``conv -> BN -> ReLU -> conv -> BN -> ReLU`` (3x3, zero padding, conv bias)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=True),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=True),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class SensingUNet(nn.Module):
    """Five-level U-Net, 1 channel in, sigmoid 1 channel out."""

    size_multiple: int = 16

    def __init__(self, widths: Sequence[int] = DEFAULT_WIDTHS):
        super().__init__()
        w = tuple(int(x) for x in widths)
        if len(w) != 5 or any(x <= 0 for x in w):
            raise ValueError(f"SensingUNet needs five positive widths, got {widths!r}")
        self.widths = w
        self.down1 = ConvBlock(1, w[0])
        self.down2 = ConvBlock(w[0], w[1])
        self.down3 = ConvBlock(w[1], w[2])
        self.down4 = ConvBlock(w[2], w[3])
        self.down5 = ConvBlock(w[3], w[4])
        self.pool = nn.MaxPool2d(2)
        # Registration order == the published state-dict order.
        self.up_sample5 = _up(w[4], w[3])
        self.up4 = ConvBlock(2 * w[3], w[3])
        self.up_sample4 = _up(w[3], w[2])
        self.up3 = ConvBlock(2 * w[2], w[2])
        self.up_sample3 = _up(w[2], w[1])
        self.up2 = ConvBlock(2 * w[1], w[1])
        self.up_sample2 = _up(w[1], w[0])
        self.up1 = ConvBlock(2 * w[0], w[0])
        self.last = nn.Sequential(nn.Conv2d(w[0], 1, 3, padding=1, bias=True), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` in [0, 1] -> ``(B, 1, H, W)`` in (0, 1)."""
        d1 = self.down1(x)
        d2 = self.down2(self.pool(d1))
        d3 = self.down3(self.pool(d2))
        d4 = self.down4(self.pool(d3))
        d5 = self.down5(self.pool(d4))
        u = self.up4(torch.cat((self.up_sample5(d5), d4), dim=1))
        u = self.up3(torch.cat((self.up_sample4(u), d3), dim=1))
        u = self.up2(torch.cat((self.up_sample3(u), d2), dim=1))
        u = self.up1(torch.cat((self.up_sample2(u), d1), dim=1))
        return self.last(u)

    def extra_repr(self) -> str:
        return f"widths={self.widths}"


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, kernel_size=4, stride=2, padding=1, bias=False), nn.ReLU())
