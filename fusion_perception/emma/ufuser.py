"""EMMA's fusion network ``F(i, v) -> f``: the U-Fuser (DESIGN section 3).

Two Restormer-CNN encoders (IR ``I_en_*``, visible ``V_en_*``) with strided-conv
downsampling, a fusion block per level (``f_k`` on ``cat(i_k, v_k)``), and a decoder with
transposed-conv upsampling and skip connections. Attribute names and registration order
reproduce the public ``EMMA.pth`` keys, so ``state_dict()`` lists exactly the keys of
``design/official_ufuser_state_dict.tsv``, in that order.

Input height and width must be multiples of 8 (three stride-2 levels); the ``emma``
fuser pads any size by reflection.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from fusion_perception.emma.blocks import RestormerCNNBlock

DEFAULT_CHANNELS: tuple[int, int, int, int] = (8, 16, 32, 32)


class UFuser(nn.Module):
    """U-Fuser; ``channels`` are the widths of the four levels (published: 8, 16, 32, 32).

    ``heads`` is the number of channel-attention heads of every block (published: 8); each
    level's width must be divisible by it. ``fast`` selects the optimised (default) or
    the op-for-op reference execution of the attention blocks; both give the same output.
    """

    size_multiple: int = 8

    def __init__(self, channels: Sequence[int] = DEFAULT_CHANNELS, heads: int = 8, fast: bool = True):
        super().__init__()
        c = tuple(int(x) for x in channels)
        if len(c) != 4:
            raise ValueError(f"UFuser needs four level widths, got {channels!r}")
        bad = [x for x in c if x <= 0 or x % heads]
        if bad:
            raise ValueError(f"UFuser widths {c} must be positive multiples of heads={heads}")
        self.channels = c
        self.heads = heads
        self.fast = fast
        blk = lambda i, o: RestormerCNNBlock(i, o, num_heads=heads)  # noqa: E731
        # Registration order == the published state-dict order.
        self.V_en_1, self.V_en_2, self.V_en_3, self.V_en_4 = blk(1, c[0]), blk(c[0], c[1]), blk(c[1], c[2]), blk(c[2], c[3])
        self.I_en_1, self.I_en_2, self.I_en_3, self.I_en_4 = blk(1, c[0]), blk(c[0], c[1]), blk(c[1], c[2]), blk(c[2], c[3])
        self.f_1, self.f_2, self.f_3, self.f_4 = (blk(2 * c[k], c[k]) for k in range(4))
        self.V_down1, self.V_down2, self.V_down3 = (_down(c[k]) for k in range(3))
        self.I_down1, self.I_down2, self.I_down3 = (_down(c[k]) for k in range(3))
        self.up4 = _up(c[3], c[2])
        self.up3 = _up(c[2], c[1])
        self.up2 = _up(c[1], c[0])
        self.de_1 = blk(2 * c[0], c[0])
        self.de_2 = blk(2 * c[1], c[1])
        self.de_3 = blk(2 * c[2], c[2])
        self.de_4 = blk(c[3], c[3])
        self.last = nn.Sequential(
            nn.Conv2d(c[0], 1, kernel_size=3, stride=1, padding=1, bias=True, padding_mode="reflect"),
            nn.Sigmoid(),
        )

    def forward(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` IR and visible luminance in [0, 1] -> fused ``(B, 1, H, W)`` in (0, 1)."""
        fast = self.fast
        i1 = self.I_en_1(ir, fast)
        i2 = self.I_en_2(self.I_down1(i1), fast)
        i3 = self.I_en_3(self.I_down2(i2), fast)
        i4 = self.I_en_4(self.I_down3(i3), fast)
        v1 = self.V_en_1(vi, fast)
        v2 = self.V_en_2(self.V_down1(v1), fast)
        v3 = self.V_en_3(self.V_down2(v2), fast)
        v4 = self.V_en_4(self.V_down3(v3), fast)
        f1 = self.f_1(torch.cat((i1, v1), dim=1), fast)
        f2 = self.f_2(torch.cat((i2, v2), dim=1), fast)
        f3 = self.f_3(torch.cat((i3, v3), dim=1), fast)
        f4 = self.f_4(torch.cat((i4, v4), dim=1), fast)
        out = self.up4(self.de_4(f4, fast))
        out = self.up3(self.de_3(torch.cat((out, f3), dim=1), fast))
        out = self.up2(self.de_2(torch.cat((out, f2), dim=1), fast))
        out = self.de_1(torch.cat((out, f1), dim=1), fast)
        return self.last(out)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, heads={self.heads}, fast={self.fast}"


def _down(ch: int) -> nn.Conv2d:
    return nn.Conv2d(ch, ch, kernel_size=3, stride=2, padding=1, bias=False, padding_mode="reflect")


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, kernel_size=4, stride=2, padding=1, bias=False), nn.ReLU())
