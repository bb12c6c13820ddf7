#!/usr/bin/env python
"""SeAFusion, TarDAL or DIDFuse over a pair folder the way their authors' test scripts run, as a process.

The baseline of ``benchmarks/benchmark_learned.py`` and an independent check of
``fusion_perception/fusion/{seafusion,tardal,didfuse}.py``: nothing of the package is imported. Each
network is written again here in its authors' module style, and each script's steps are followed
(see ``../shared/fixtures/learned_fusers/README.md``). For each file of ``ir/`` (sorted), one pair
at a time, batch 1, fp32, no overlap of I/O and compute, torch's default threads:

* seafusion: ``PIL convert('RGB')`` / ``convert('L')`` -> ``to_tensor``; float Y, Cr, Cb; net(Y, IR);
  recombination by the 3x3 matrix; clamp; min-max; ``astype(uint8)``; ``PIL.Image.save``.
* tardal: ``cv2.imread`` (IR gray, VI colour -> ``BGR2GRAY``); ``/ 255.`` in float64 -> float32; the
  generator in training mode (each image's own BatchNorm statistics); clip; ``astype(uint8)``;
  recombined with the visible Cr/Cb by ``cv2.cvtColor(YCrCb2BGR)``; ``cv2.imwrite``.
* didfuse: ``np.array(PIL.Image.open(p), 'float32') / 255``; float Y, Cb, Cr; one encoder on IR and
  on Y; the four feature pairs fused by ``--rule`` (``l1_norm``: the authors' full
  ``ones(C, C, 3, 3) / 9`` convolution, or ``sum``); decoder; recombination; clamp;
  ``astype(uint8)``; saved with Pillow (what ``skimage.io.imsave`` uses for PNG).

Outputs are PNG, named after the input's stem.

    python tests/reference/reference_learned.py --method tardal --data ../shared/data/roadscene \\
        --weights ../shared/weights/tardal.pt --out OUT
    python tests/reference/reference_learned.py --method didfuse --data DIR --weights ENCODER.pkl,DECODER.pkl --out OUT
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn


# ----------------------------------------------------------------------------- SeAFusion
class ConvLeakyRelu2d(nn.Module):
    def __init__(self, cin, cout, kernel_size=3, padding=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=kernel_size, padding=padding)

    def forward(self, x):
        return F.leaky_relu(self.conv(x), negative_slope=0.2)


class ConvBnLeakyRelu2d(ConvLeakyRelu2d):
    def __init__(self, cin, cout):
        super().__init__(cin, cout)
        self.bn = nn.BatchNorm2d(cout)  # in the checkpoint, never applied


class Conv1(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=1)

    def forward(self, x):
        return self.conv(x)


class Sobelxy(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.convx = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.convy = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)

    def forward(self, x):
        return torch.abs(self.convx(x)) + torch.abs(self.convy(x))


class DenseBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = ConvLeakyRelu2d(c, c)
        self.conv2 = ConvLeakyRelu2d(2 * c, c)

    def forward(self, x):
        x = torch.cat((x, self.conv1(x)), dim=1)
        return torch.cat((x, self.conv2(x)), dim=1)


class RGBD(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.dense = DenseBlock(cin)
        self.convdown = Conv1(3 * cin, cout)
        self.sobelconv = Sobelxy(cin)
        self.convup = Conv1(cin, cout)

    def forward(self, x):
        x1 = self.convdown(self.dense(x))
        x2 = self.convup(self.sobelconv(x))
        return F.leaky_relu(x1 + x2, negative_slope=0.1)


class FusionNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.vis_conv, self.inf_conv = ConvLeakyRelu2d(1, 16), ConvLeakyRelu2d(1, 16)
        self.vis_rgbd1, self.inf_rgbd1 = RGBD(16, 32), RGBD(16, 32)
        self.vis_rgbd2, self.inf_rgbd2 = RGBD(32, 48), RGBD(32, 48)
        self.decode4, self.decode3 = ConvBnLeakyRelu2d(96, 64), ConvBnLeakyRelu2d(64, 32)
        self.decode2, self.decode1 = ConvBnLeakyRelu2d(32, 16), ConvBnLeakyRelu2d(16, 1)

    def forward(self, image_vis, image_ir):
        x_vis = self.vis_rgbd2(self.vis_rgbd1(self.vis_conv(image_vis[:, :1])))
        x_inf = self.inf_rgbd2(self.inf_rgbd1(self.inf_conv(image_ir)))
        x = self.decode2(self.decode3(self.decode4(torch.cat((x_vis, x_inf), dim=1))))
        return torch.tanh(self.decode1.conv(x)) / 2 + 0.5


def rgb2ycrcb(rgb):
    """(1, 3, H, W) -> (1, 3, H, W) Y, Cr, Cb, the benchmark's float formulas, clamped."""
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cr = (r - y) * 0.713 + 0.5
    cb = (b - y) * 0.564 + 0.5
    return torch.cat((y.clamp(0.0, 1.0), cr.clamp(0.0, 1.0), cb.clamp(0.0, 1.0)), dim=1)


def ycrcb2rgb(ycrcb):
    """(1, 3, H, W) Y, Cr, Cb -> RGB by the benchmark's matrix product, clamped."""
    _, _, h, w = ycrcb.shape
    flat = ycrcb.transpose(1, 3).transpose(1, 2).reshape(-1, 3)
    mat = torch.tensor([[1.0, 1.0, 1.0], [1.403, -0.714, 0.0], [0.0, -0.344, 1.773]], device=ycrcb.device)
    bias = torch.tensor([0.0 / 255, -0.5, -0.5], device=ycrcb.device)
    rgb = (flat + bias).mm(mat).reshape(1, h, w, 3).transpose(1, 3).transpose(2, 3)
    return rgb.clamp(0.0, 1.0)


def run_seafusion(args, names, device):
    net = FusionNet()
    net.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
    net.to(device)  # never switched to eval() by the authors' script; nothing in it depends on the mode
    with torch.no_grad():
        for name in names:
            vi = Image.open(args.data / "vi" / name).convert("RGB")
            ir = Image.open(args.data / "ir" / name).convert("L")
            vi_t = torch.from_numpy(np.array(vi, np.float32) / 255.0).permute(2, 0, 1)[None].to(device)
            ir_t = torch.from_numpy(np.array(ir, np.float32) / 255.0)[None, None].to(device)
            ycrcb = rgb2ycrcb(vi_t)
            y = net(ycrcb, ir_t)
            rgb = ycrcb2rgb(torch.cat((y, ycrcb[:, 1:2], ycrcb[:, 2:3]), dim=1))
            rgb = (rgb - rgb.min()) / (rgb.max() - rgb.min())
            out = (rgb[0].permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)
            Image.fromarray(out).save(args.out / f"{Path(name).stem}.png")


# ----------------------------------------------------------------------------- TarDAL
class Generator(nn.Module):
    def __init__(self, dim=32, depth=3):
        super().__init__()
        self.depth = depth
        self.encoder = nn.Sequential(nn.Conv2d(2, dim, 3, padding=1), nn.BatchNorm2d(dim), nn.ReLU())
        self.dense = nn.ModuleList([nn.Sequential(nn.Conv2d(dim * (i + 1), dim, 3, padding=1), nn.BatchNorm2d(dim),
                                                  nn.ReLU()) for i in range(depth)])
        w = dim * (depth + 1)
        self.fuse = nn.Sequential(
            nn.Sequential(nn.Conv2d(w, w, 3, padding=1), nn.ReLU()),
            nn.Sequential(nn.Conv2d(w, w // 2, 3, padding=1), nn.BatchNorm2d(w // 2), nn.ReLU()),
            nn.Sequential(nn.Conv2d(w // 2, w // 4, 3, padding=1), nn.BatchNorm2d(w // 4), nn.ReLU()),
            nn.Sequential(nn.Conv2d(w // 4, 1, 3, padding=1), nn.Tanh()))

    def forward(self, ir, vi):
        x = self.encoder(torch.cat([ir, vi], dim=1))
        for i in range(self.depth):
            x = torch.cat([x, self.dense[i](x)], dim=1)
        return self.fuse(x)


def run_tardal(args, names, device):
    net = Generator()
    net.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
    net.to(device).train()  # the authors' mode for tardal.pt: each image's own BatchNorm statistics
    with torch.no_grad():
        for name in names:
            ir = cv2.imread(str(args.data / "ir" / name), cv2.IMREAD_GRAYSCALE)
            bgr = cv2.imread(str(args.data / "vi" / name), cv2.IMREAD_COLOR)
            vi = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
            ir_t = torch.from_numpy(ir / 255.0).float()[None, None].to(device)
            vi_t = torch.from_numpy(vi / 255.0).float()[None, None].to(device)
            fus = net(ir_t, vi_t).clip(0, 1)[0, 0].cpu().numpy()
            y8 = (fus * 255).astype(np.uint8)
            crcb = cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb)[..., 1:]
            out = cv2.cvtColor(np.dstack((y8, crcb)), cv2.COLOR_YCrCb2BGR)
            cv2.imwrite(str(args.out / f"{Path(name).stem}.png"), out)


# ----------------------------------------------------------------------------- DIDFuse
class Block(nn.Module):
    """``self.<name>``: the authors' ``Cov1`` ... ``Cov7`` modules, one Sequential each."""

    def __init__(self, name, cin, cout, act, reflect=False):
        super().__init__()
        self.name = name
        layers = ([nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3, padding=0)] if reflect
                  else [nn.Conv2d(cin, cout, 3, padding=1)])
        setattr(self, name, nn.Sequential(*layers, nn.BatchNorm2d(cout), act))

    def forward(self, x):
        return getattr(self, self.name)(x)


class AE_Encoder(nn.Module):
    def __init__(self, channel=64):
        super().__init__()
        self.cov1 = Block("cov1", 1, channel, nn.PReLU(), reflect=True)
        self.cov2 = Block("cov2", channel, channel, nn.PReLU())
        self.cov3 = Block("cov3", channel, channel, nn.Tanh())
        self.cov4 = Block("cov4", channel, channel, nn.Tanh())

    def forward(self, x):
        f1 = self.cov1(x)
        f2 = self.cov2(f1)
        return f1, f2, self.cov3(f2), self.cov4(f2)


class AE_Decoder(nn.Module):
    def __init__(self, channel=64):
        super().__init__()
        self.cov5 = Block("cov5", 2 * channel, channel, nn.PReLU())
        self.cov6 = Block("cov6", 2 * channel, channel, nn.PReLU())
        self.cov7 = Block("cov7", 2 * channel, 1, nn.Sigmoid(), reflect=True)

    def forward(self, f1, f2, background, detail):
        x = self.cov5(torch.cat([background, detail], 1))
        x = self.cov6(torch.cat([x, f2], 1))
        return self.cov7(torch.cat([x, f1], 1))


def l1_addition(a, b):
    kernel = (torch.ones(a.shape[1], a.shape[1], 3, 3) / 9).to(a.device)
    wa = F.conv2d(a.abs(), kernel, padding=1)
    wb = F.conv2d(b.abs(), kernel, padding=1)
    return wa / (wa + wb) * a + wb / (wa + wb) * b


def run_didfuse(args, names, device):
    enc_path, dec_path = (Path(p) for p in str(args.weights).split(","))
    encoder, decoder = AE_Encoder(), AE_Decoder()
    encoder.load_state_dict(torch.load(enc_path, map_location="cpu", weights_only=True)["weight"])
    decoder.load_state_dict(torch.load(dec_path, map_location="cpu", weights_only=True)["weight"])
    encoder.to(device).eval()
    decoder.to(device).eval()
    rule = (lambda a, b: a + b) if args.rule == "sum" else l1_addition
    with torch.no_grad():
        for name in names:
            ir = np.array(Image.open(args.data / "ir" / name).convert("L"), dtype="float32") / 255
            vi = np.array(Image.open(args.data / "vi" / name).convert("RGB"), dtype="float32") / 255
            ir_t = torch.from_numpy(ir)[None, None].to(device)
            ycrcb = rgb2ycrcb(torch.from_numpy(vi.transpose(2, 0, 1))[None].to(device))
            fused = [rule(a, b) for a, b in zip(encoder(ir_t), encoder(ycrcb[:, :1]))]
            y = decoder(*fused)
            rgb = ycrcb2rgb(torch.cat((y, ycrcb[:, 1:]), dim=1))
            out = (rgb[0].permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)
            Image.fromarray(out).save(args.out / f"{Path(name).stem}.png")


RUNS = {"seafusion": run_seafusion, "tardal": run_tardal, "didfuse": run_didfuse}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--method", required=True, choices=sorted(RUNS))
    ap.add_argument("--data", type=Path, required=True, help="pair folder with ir/ and vi/")
    ap.add_argument("--weights", required=True,
                    help="the authors' weights file (didfuse: ENCODER.pkl,DECODER.pkl)")
    ap.add_argument("--out", type=Path, required=True, help="output folder of the fused PNGs")
    ap.add_argument("--rule", default="l1_norm", choices=("l1_norm", "sum"), help="didfuse's fusion rule")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    names = sorted(os.listdir(args.data / "ir"))
    RUNS[args.method](args, names, torch.device(args.device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
