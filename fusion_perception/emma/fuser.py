"""EMMA as a registered fusion method (``build_fuser("emma", device, weights=PATH)``).

Inference runs any image size in one forward pass: the pair is reflect-padded at the
bottom/right to a multiple of 8 (the U-Fuser's three stride-2 levels), fused, and
cropped back. Batches of same-size images go through together. The public code instead
runs sizes not divisible by 32 as four overlapping corner crops (four passes);
:func:`public_four_crop_fuse` reproduces that for comparisons and the speed benchmark.

Note: the U-Fuser's attention is *channel* attention over the whole image, so any
tiling (the public crops) changes the result slightly everywhere, not only at the seams;
one pass over the whole image is the network's own answer.
"""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from fusion_perception.errors import ConfigError
from fusion_perception.files import file_sha256
from fusion_perception.filters import minmax_per_image
from fusion_perception.fusion.base import Fuser, cpu_threads
from fusion_perception.emma.checkpoint import load_official_checkpoint
from fusion_perception.emma.ufuser import UFuser
from fusion_perception.emma.weights import (
    CHOICES_HELP, DEFAULT_EMMA_WEIGHTS, OFFICIAL, OFFICIAL_EMMA_FILE, emma_cache_dir, fetch_official_emma,
    resolve_emma_weights)
from fusion_perception.registry import FUSERS

NORMALIZE_MODES = ("minmax", "none")
AMP_MODES = {None: None, "none": None, "bf16": torch.bfloat16, "fp16": torch.float16}

_NO_WEIGHTS_HELP = f"EMMA needs trained weights: pass {CHOICES_HELP}"


# ----------------------------------------------------------------------------- tensor functions
def pad_to_multiple(x: torch.Tensor, multiple: int = 8, min_size: int = 16) -> torch.Tensor:
    """Pad ``(B, C, H, W)`` at the bottom/right to multiples of ``multiple`` by reflection.

    Bottom/right keeps the pixel grid aligned with the network's stride-2 sampling, as an
    unpadded top-left crop would be. Sides are padded to at least ``min_size`` (the
    U-Fuser's coarsest level needs 2 pixels for its reflect-padded convolutions); where a
    side is too short to reflect, replication is used.
    """
    h, w = x.shape[-2:]
    ph = max((-h) % multiple, min_size - h)
    pw = max((-w) % multiple, min_size - w)
    if ph <= 0 and pw <= 0:
        return x
    ph, pw = max(ph, 0), max(pw, 0)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def fuse_one_pass(
    model: torch.nn.Module,
    ir: torch.Tensor,
    vi: torch.Tensor,
    *,
    normalize: str = "minmax",
    amp: torch.dtype | None = None,
    channels_last: bool = False,
    multiple: int = 8,
) -> torch.Tensor:
    """Fuse a batch of same-size pairs ``(B, 1, H, W)`` in [0, 1] in one forward pass.

    Returns float32 ``(B, 1, H, W)``. ``amp`` (a dtype) autocasts on CUDA only.
    Call under ``torch.inference_mode()`` for speed.
    """
    h, w = ir.shape[-2:]
    x = pad_to_multiple(torch.cat((ir, vi), dim=1), multiple)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    use_amp = amp is not None and x.device.type == "cuda"
    ctx = torch.autocast(device_type="cuda", dtype=amp) if use_amp else nullcontext()
    with ctx:
        y = model(x[:, :1], x[:, 1:])
    y = y[..., :h, :w].float()
    return minmax_per_image(y) if normalize == "minmax" else y


def public_four_crop_fuse(model: torch.nn.Module, ir: torch.Tensor, vi: torch.Tensor,
                          normalize: str = "minmax", tile: int = 32) -> torch.Tensor:
    """The public test script's execution, for one pair ``(1, 1, H, W)``.

    Sizes divisible by 32 run in one pass. Otherwise four corner crops of
    ``floor(H/32)*32 x floor(W/32)*32`` run separately (fp32, batch 1); the top-left crop
    fills its area and the others only the leftover right/bottom strips; then per-image
    min-max over the stitched result.
    """
    if ir.shape[0] != 1:
        raise ValueError("the public execution style fuses one image at a time")
    h, w = ir.shape[-2:]
    h1, w1 = h - h % tile, w - w % tile
    h2, w2 = h % tile, w % tile
    if h1 == 0 or w1 == 0:
        raise ValueError(f"image {h}x{w} is smaller than one {tile}-pixel tile")
    if h1 == h and w1 == w:
        out = model(ir, vi)
    else:
        out = torch.zeros_like(ir)
        out[..., :h1, :w1] = model(ir[..., :h1, :w1], vi[..., :h1, :w1])
        if w2:
            out[..., :h1, w1:] = model(ir[..., :h1, -w1:], vi[..., :h1, -w1:])[..., -w2:]
        if h2:
            out[..., h1:, :w1] = model(ir[..., -h1:, :w1], vi[..., -h1:, :w1])[..., -h2:, :]
        if h2 and w2:
            out[..., h1:, w1:] = model(ir[..., -h1:, -w1:], vi[..., -h1:, -w1:])[..., -h2:, -w2:]
    return minmax_per_image(out) if normalize == "minmax" else out


# ----------------------------------------------------------------------------- the fuser
@FUSERS.register_module(name="emma")
class EMMAFuser(Fuser):
    """EMMA's U-Fuser as a fusion method.

    Parameters: ``weights`` (path to ``EMMA.pth`` or a checkpoint trained here, or ``"official"``
    for the authors' release fetched once and verified; the fuse stage passes the toolkit's own
    checkpoint on synthetic data, see :func:`resolve_weights`),
    ``normalize`` (``"minmax"`` per image, what the public code saves, or ``"none"``),
    ``amp`` (``None``, ``"bf16"`` or ``"fp16"``; CUDA only), ``channels_last`` (default on:
    oneDNN's and cuDNN's faster layout for these convolutions, ~20 % on a CPU),
    ``compile`` (``torch.compile`` the network; pays back only on thousands of pairs).
    """

    name = "emma"
    color_output = True
    runtime_params = frozenset({"channels_last", "compile"})

    @classmethod
    def resolve_weights(cls, weights: str | Path | None, data_root: str | Path | None) -> Path:
        """The toolkit's checkpoint on the synthetic scenes when none is given (elsewhere the user
        chooses, and is told how); ``official``: the authors' EMMA.pth, fetched once and verified."""
        return resolve_emma_weights(weights, data_root)

    @classmethod
    def cache_label(cls, label: str, weights: Path | None, sha256: str | None) -> str:
        """``emma`` for the toolkit's checkpoint, ``emma-official`` for the authors' EMMA.pth,
        ``emma-<sha256 prefix>`` for any other checkpoint."""
        if weights is not None and weights.resolve() == DEFAULT_EMMA_WEIGHTS.resolve():
            return label
        if weights is not None and weights.resolve() == (emma_cache_dir() / OFFICIAL_EMMA_FILE).resolve():
            return f"{label}-official"
        return super().cache_label(label, weights, sha256)

    def __init__(
        self,
        device: str | torch.device = "cpu",
        weights: str | Path | None = None,
        normalize: str = "minmax",
        amp: str | None = None,
        channels_last: bool = True,
        compile: bool = False,  # noqa: A002 - the documented parameter name
        **unknown: Any,
    ):
        if unknown:
            raise ConfigError(f"emma: unknown parameter(s) {', '.join(sorted(unknown))}; accepted: "
                              "weights, normalize, amp, channels_last, compile")
        if not weights:
            raise ConfigError(_NO_WEIGHTS_HELP)
        path = fetch_official_emma() if str(weights) == OFFICIAL else Path(weights).expanduser()
        if not path.exists() and not path.is_symlink():  # other problems (a folder, ...) are named by the loader
            raise ConfigError(f"emma: weights file not found: {path}. {_NO_WEIGHTS_HELP}")
        if normalize not in NORMALIZE_MODES:
            raise ConfigError(f"emma: normalize must be one of {NORMALIZE_MODES}, got {normalize!r}")
        if amp not in AMP_MODES:
            raise ConfigError(f"emma: amp must be None, 'bf16' or 'fp16', got {amp!r}")
        super().__init__(device, weights=str(path.resolve()), normalize=normalize, amp=amp,
                         channels_last=bool(channels_last), compile=bool(compile))
        self.weights = path.resolve()
        self.normalize = normalize
        self.amp = AMP_MODES[amp]
        self.channels_last = bool(channels_last)
        self.compile = bool(compile)
        model = load_official_checkpoint(self.weights, kind="ufuser", map_location="cpu")  # names a bad file
        # The network takes every core the process has (torch's thread count now), also where
        # the fuse stage leaves cores to its decoding threads: next to the network, decoding and
        # encoding are a few per cent of the time.
        self.cpu_threads = torch.get_num_threads()
        self._sha256 = file_sha256(self.weights)
        assert isinstance(model, UFuser)
        self.model: UFuser = model
        if self.amp is not None and self.device.type != "cuda":
            warnings.warn(f"emma: amp={amp!r} applies on CUDA only; running fp32 on {self.device}", stacklevel=2)
        self._place()

    def _place(self) -> None:
        self.model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.model.eval().requires_grad_(False)
        self._net = torch.compile(self.model, dynamic=None) if self.compile else self.model

    def to(self, device: str | torch.device) -> "EMMAFuser":
        super().to(device)
        self._place()
        return self

    def checkpoint_sha256(self) -> str | None:
        return self._sha256

    def fuse(self, ir: torch.Tensor, vi: torch.Tensor, names: Sequence[str] | None = None) -> torch.Tensor:
        """``(B, 1, H, W)`` IR and visible luminance in [0, 1] -> fused ``(B, 1, H, W)`` in [0, 1]."""
        if ir.ndim != 4 or vi.ndim != 4 or ir.shape[1] != 1 or vi.shape[1] != 1 or ir.shape != vi.shape:
            raise ValueError(f"emma: expected two (B, 1, H, W) tensors of one shape, got "
                             f"{tuple(ir.shape)} and {tuple(vi.shape)}")
        out_device = ir.device
        # no_grad rather than inference_mode: callers may modify the result in place.
        with torch.no_grad(), cpu_threads(self.cpu_threads if self.device.type == "cpu" else None):
            y = fuse_one_pass(
                self._net,
                ir.to(self.device, torch.float32),
                vi.to(self.device, torch.float32),
                normalize=self.normalize,
                amp=self.amp,
                channels_last=self.channels_last,
            )
        return y.to(out_device)
