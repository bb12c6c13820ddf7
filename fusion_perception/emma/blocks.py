"""Building blocks of EMMA's U-Fuser: the Restormer-CNN block and its parts.

Module and parameter names follow the public EMMA code exactly (``embed``,
``GlobalFeature.norm1.body``, ``attn.qkv1`` ...), so a published ``EMMA.pth`` loads
with ``load_state_dict(strict=True)``.

Each block has two execution paths with the same parameters and the same mathematics:

* ``fast=False`` ("reference"): op for op the public code (two convolutions for ``qkv``,
  explicit L2 normalisation of q and k, separate ``proj``). The speed benchmark's baseline
  runs this path.
* ``fast=True`` (default): algebraically identical rewrites that cut the work:
  ``qkv2(qkv1(x))`` is one 3x3 convolution with the product kernel (``qkv1`` is a 1x1
  convolution without bias and ``qkv2`` pads with zeros, so the two commute exactly with
  the padding) -- that removes ~55 % of the block's multiply-adds; q and k are normalised
  through the small ``C x C`` Gram matrix instead of over ``H*W``; ``proj`` is folded into
  the per-head attention matrix so the value tensor is touched once; layer norm runs as
  ``F.layer_norm`` over a channels-last view. Outputs match the reference to float
  rounding (tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class WithBiasLayerNorm(nn.Module):
    """Layer norm over the channel axis at every pixel (biased variance, eps 1e-5)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, H, W)
        # A channels-last view makes C the innermost axis: one fused kernel, no copies when
        # the input is already channels_last, and the result keeps x's memory format.
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """The public code's formulation (to_3d, mean/var over the last axis, to_4d)."""
        b, c, h, w = x.shape
        x3 = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        mu = x3.mean(-1, keepdim=True)
        sigma = x3.var(-1, keepdim=True, unbiased=False)
        y = (x3 - mu) / torch.sqrt(sigma + self.eps) * self.weight + self.bias
        return y.transpose(1, 2).reshape(b, c, h, w)


class LayerNorm(nn.Module):
    """Wrapper that carries the ``body`` level of the public key names."""

    def __init__(self, dim: int):
        super().__init__()
        self.body = WithBiasLayerNorm(dim)

    def forward(self, x: torch.Tensor, fast: bool = True) -> torch.Tensor:
        return self.body(x) if fast else self.body.forward_reference(x)


class AttentionBase(nn.Module):
    """Multi-head *channel* attention (transposed attention, Restormer-style).

    q, k, v are ``(heads, C/heads, H*W)``; q and k are L2-normalised along ``H*W``;
    ``softmax(q k^T * scale) v``. The attention matrix is only ``C/heads x C/heads``.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"channel attention: {dim} channels are not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.scale = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv1 = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=qkv_bias)
        self.qkv2 = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, padding=1, bias=qkv_bias)
        self.proj = nn.Conv2d(dim, dim, kernel_size=1, bias=qkv_bias)

    def forward(self, x: torch.Tensor, fast: bool = True, residual: torch.Tensor | None = None) -> torch.Tensor:
        """Attention output, plus ``residual`` when given (fused into the last matmul)."""
        if not fast or self.qkv1.bias is not None:
            out = self.forward_reference(x)
            return out if residual is None else residual + out
        b, c, h, w = x.shape
        heads, d, n = self.num_heads, c // self.num_heads, h * w
        # qkv2 o qkv1 == one 3x3 conv with kernel W2 @ W1 (exact: no bias, zero padding).
        wf = torch.einsum("oikl,ic->ockl", self.qkv2.weight, self.qkv1.weight[:, :, 0, 0])
        qkv = F.conv2d(x, wf.to(x.dtype), padding=1)
        # Work on (B, C, HW) or, for channels_last tensors, (B, HW, C) views: no copies.
        cl = qkv.dim() == 4 and not qkv.is_contiguous() and qkv.is_contiguous(memory_format=torch.channels_last)
        flat = qkv.permute(0, 2, 3, 1).reshape(b, n, 3 * c) if cl else qkv.reshape(b, 3 * c, n)
        qk = flat[..., : 2 * c] if cl else flat[:, : 2 * c]
        # One Gram matrix of [q; k] gives q k^T and both L2 norms (its diagonal), so q and k
        # are read once; kept in fp32 under autocast (norms of long vectors).
        with torch.autocast(device_type=qk.device.type, enabled=False):
            qk32 = qk.float()
            gram = qk32.transpose(1, 2) @ qk32 if cl else qk32 @ qk32.transpose(1, 2)  # (B, 2C, 2C)
            norms = gram.diagonal(dim1=1, dim2=2).clamp_min(0).sqrt().clamp_min(1e-12)  # F.normalize's eps
            cos = gram[:, :c, c:] / (norms[:, :c, None] * norms[:, None, c:])  # (B, C, C)
            # The per-head d x d diagonal blocks: (B, heads, d, heads, d) -> (B, heads, d, d).
            cos = cos.reshape(b, heads, d, heads, d).diagonal(dim1=1, dim2=3).permute(0, 3, 1, 2)
            attn = (cos * self.scale.float()).softmax(dim=-1)
            # proj(attn @ v) == (P . blockdiag(attn)) @ v: fold the 1x1 projection into attn.
            p = self.proj.weight[:, :, 0, 0].float().reshape(c, heads, d)
            m = torch.einsum("ohj,bhji->bohi", p, attn).reshape(b, c, c)  # (B, C_out, C_in)
        m = m.to(qkv.dtype)
        if cl:
            v = flat[..., 2 * c:]  # (B, HW, C)
            if residual is None:
                out = v @ m.transpose(1, 2)
            else:
                res = residual.permute(0, 2, 3, 1).reshape(b, n, c).to(qkv.dtype)
                out = torch.baddbmm(res, v, m.transpose(1, 2))
            return out.reshape(b, h, w, c).permute(0, 3, 1, 2)
        v = flat[:, 2 * c:]  # (B, C, HW)
        if residual is None:
            out = m @ v
        else:
            out = torch.baddbmm(residual.reshape(b, c, n).to(qkv.dtype), m, v)
        return out.reshape(b, c, h, w)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """Op for op the public implementation."""
        b, c, h, w = x.shape
        qkv = self.qkv2(self.qkv1(x))
        q, k, v = qkv.chunk(3, dim=1)
        q = q.reshape(b, self.num_heads, c // self.num_heads, h * w)
        k = k.reshape(b, self.num_heads, c // self.num_heads, h * w)
        v = v.reshape(b, self.num_heads, c // self.num_heads, h * w)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        out = (attn @ v).reshape(b, c, h, w)
        return self.proj(out)


class Mlp(nn.Module):
    """Gated depthwise MLP: 1x1 in (C -> 2*hidden), grouped 3x3, gelu(x1) * x2, 1x1 out."""

    def __init__(self, in_features: int, ffn_expansion_factor: float = 1.0, bias: bool = False):
        super().__init__()
        hidden = int(in_features * ffn_expansion_factor)
        self.project_in = nn.Conv2d(in_features, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, kernel_size=3, stride=1, padding=1,
                                groups=hidden, bias=bias, padding_mode="reflect")
        self.project_out = nn.Conv2d(hidden, in_features, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class GlobalFeatureExtraction(nn.Module):
    """Transformer branch: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, num_heads: int = 8, ffn_expansion_factor: float = 1.0, qkv_bias: bool = False):
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = AttentionBase(dim, num_heads=num_heads, qkv_bias=qkv_bias)
        self.norm2 = LayerNorm(dim)
        self.mlp = Mlp(dim, ffn_expansion_factor=ffn_expansion_factor)

    def forward(self, x: torch.Tensor, fast: bool = True) -> torch.Tensor:
        x = self.attn(self.norm1(x, fast), fast, residual=x)
        return x + self.mlp(self.norm2(x, fast))


class ResBlock(nn.Module):
    """``conv(reflect) -> ReLU -> conv(reflect)`` plus the input."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=True, padding_mode="reflect"),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=True, padding_mode="reflect"),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + x


class LocalFeatureExtraction(nn.Module):
    """CNN branch: a chain of residual blocks (two in EMMA)."""

    def __init__(self, dim: int, num_blocks: int = 2):
        super().__init__()
        self.Extraction = nn.Sequential(*[ResBlock(dim, dim) for _ in range(num_blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.Extraction(x)


class RestormerCNNBlock(nn.Module):
    """``embed`` conv, then a global (transformer) and a local (CNN) branch, merged by ``FFN``."""

    def __init__(self, in_dim: int, out_dim: int, num_heads: int = 8):
        super().__init__()
        self.embed = nn.Conv2d(in_dim, out_dim, 3, padding=1, bias=False, padding_mode="reflect")
        self.GlobalFeature = GlobalFeatureExtraction(out_dim, num_heads=num_heads)
        self.LocalFeature = LocalFeatureExtraction(out_dim)
        self.FFN = nn.Conv2d(out_dim * 2, out_dim, 3, padding=1, bias=False, padding_mode="reflect")

    def forward(self, x: torch.Tensor, fast: bool = True) -> torch.Tensor:
        x = self.embed(x)
        return self.FFN(torch.cat((self.GlobalFeature(x, fast), self.LocalFeature(x)), dim=1))
