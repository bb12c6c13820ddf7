"""What the authors' learned fusers (DIDFuse, TarDAL, SeAFusion) share.

- **Weights, never shipped.** The user names the authors' file (``--weights PATH``); it is read
  with ``torch.load(weights_only=True, map_location="cpu")`` and loaded with
  ``load_state_dict(strict=True)``. A missing, unreadable or wrong file (another method's, EMMA's,
  a truncated one, a pickle holding code) stops with one line naming the file the method expects
  and where its authors publish it (:func:`read_weights`, :func:`load_strict`).
- **Each method's own colour and quantisation.** The authors' test scripts differ in how they
  convert colour and all write with ``astype(uint8)``, which truncates. A fuser here computes the
  8-bit image its authors' script writes (:meth:`AuthorsFuser.fuse_u8`) and hands the stage
  ``u8 / 255``, which the stage's writer (``round(x * 255)``) turns back into exactly those values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from fusion_perception.checkpoints import why_unreadable
from fusion_perception.errors import ConfigError, DatasetError, check_input_file
from fusion_perception.files import file_sha256
from fusion_perception.fusion.base import Fuser, cpu_threads

_SHOWN = 3  # keys named in a mismatch message


# ----------------------------------------------------------------------------- weights
def read_weights(path: str | Path, what: str, expected: str) -> Any:
    """The object in a weights file, read safely on the CPU; one-line errors name ``expected``."""
    path = check_input_file(path, f"{what} weights file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means "not weights we can read"
        raise DatasetError(path, why_unreadable(path, e, f"{what} weights", f"expected {expected}")) from e


def load_strict(module: nn.Module, state: Any, path: str | Path, what: str, expected: str) -> nn.Module:
    """``module.load_state_dict(state, strict=True)``, or one line saying how ``state`` differs."""
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DatasetError(path, f"holds a {type(state).__name__}, not a state dict of {what}; expected {expected}")
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [f"{k} {tuple(state[k].shape)} (needs {tuple(own[k].shape)})" for k in own
                if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or reshaped:
        parts = [f"{len(missing)} of the {len(own)} keys it needs are missing (e.g. {', '.join(missing[:_SHOWN])})"
                 if missing else "",
                 f"{len(unexpected)} keys are not its own (e.g. {', '.join(unexpected[:_SHOWN])})" if unexpected else "",
                 f"shapes differ: {', '.join(reshaped[:_SHOWN])}" if reshaped else ""]
        raise DatasetError(path, f"not {what} weights ({'; '.join(p for p in parts if p)}); expected {expected}")
    module.load_state_dict(state, strict=True)
    return module


# ----------------------------------------------------------------------------- pixels
def truncate_u8(x01: torch.Tensor) -> torch.Tensor:
    """``uint8(x * 255)`` of float32 values in [0, 1], truncated as numpy's ``astype(uint8)`` does."""
    return x01.float().mul(255.0).floor_().clamp_(0, 255).to(torch.uint8)


def to_u8(x01: torch.Tensor) -> torch.Tensor:
    """The 8-bit values behind ``u8 / 255`` inputs (exact: ``round`` undoes the division), int32."""
    return x01.mul(255.0).round_().clamp_(0, 255).to(torch.int32)


# ----------------------------------------------------------------------------- the fuser
class AuthorsFuser(Fuser):
    """A learned fusion method run as its authors' test script runs it, with their weights.

    A subclass sets ``expected`` (the file it loads and where the authors publish it), ``defaults``
    (its parameters besides ``weights``; ``channels_last`` in every one), and defines :meth:`load_network` and :meth:`fuse_u8`.
    ``fuse`` gives the method's gray result (the luminance of any caller, e.g. the sensing nets'
    pseudo ground truth); ``fuse_colour``, which the stage calls, the authors' own colour path.
    """

    color_output = True
    expected: str = ""  # "the authors' X.pth (published at ...)"
    # channels_last: oneDNN's and cuDNN's other memory layout, faster for some of these networks on a
    # CPU (DIDFuse ~20 %, SeAFusion ~25 %; TarDAL's per-image norm is slower in it); it changes the
    # output by float rounding only (~1e-6), so a cached result made either way is reused
    defaults: dict[str, Any] = {"channels_last": True}
    runtime_params = frozenset({"channels_last"})

    # -------------------------------------------------------------- weights
    @classmethod
    def resolve_weights(cls, weights: str | Path | None, data_root: str | Path | None = None) -> Path:
        """No default: the weights the user names (:meth:`weights_path`), on any data."""
        return cls.weights_path(weights)

    @classmethod
    def weights_path(cls, weights: str | Path | None) -> Path:
        """``weights`` as an absolute path; without one, the line that says what to pass."""
        if weights is None or not str(weights).strip():
            raise ConfigError(f"{cls.name} needs its authors' weights, which the toolkit does not ship: "
                              f"pass --weights PATH (--weights {cls.name}=PATH where a command takes several "
                              f"methods), {cls.expected}")
        return Path(weights).expanduser().absolute()

    @classmethod
    def weights_sha256(cls, weights: str | Path) -> str:
        """The sha256 recorded for ``weights`` (a fused folder's manifest, its cache label)."""
        return file_sha256(check_input_file(cls.weights_path(weights), f"{cls.name} weights file"))

    def load_network(self, weights: Path) -> nn.Module:
        raise NotImplementedError

    # -------------------------------------------------------------- building
    def __init__(self, device: str | torch.device = "cpu", weights: str | Path | None = None, **params: Any):
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ConfigError(f"{self.name}: unknown parameter(s) {', '.join(unknown)}; accepted: "
                              + ", ".join(["weights", *self.defaults]))
        path = self.weights_path(weights)
        super().__init__(device, weights=str(path), **{**self.defaults, **params})
        self.weights = path
        self.model = self.load_network(path).eval().requires_grad_(False)
        if self.params["channels_last"]:
            self.model.to(memory_format=torch.channels_last)
        self._sha256 = self.weights_sha256(path)
        # the network takes every core the process has, also where the stage leaves cores to its
        # decoding threads (next to the network, decoding is a few per cent of the time)
        self.cpu_threads = torch.get_num_threads()
        self.model.to(self.device)

    def to(self, device: str | torch.device) -> "AuthorsFuser":
        super().to(device)
        self.model.to(self.device)
        return self

    def checkpoint_sha256(self) -> str | None:
        return self._sha256

    # -------------------------------------------------------------- fusing
    def fuse_u8(self, ir: torch.Tensor, vi: torch.Tensor, gray: bool) -> torch.Tensor:
        """The 8-bit image (``(B, 3 or 1, H, W)`` uint8) the authors' script writes for IR
        ``(B, 1, H, W)`` and visible ``(B, 3 or 1, H, W)``, both ``u8 / 255`` float32 on the
        fuser's device; ``gray``: the method's gray result instead of its colour one."""
        raise NotImplementedError

    def fuse_colour(self, ir: torch.Tensor, vi: torch.Tensor, names: Sequence[str] | None = None,
                    gray_output: bool = False) -> torch.Tensor:
        """Used by ``fuse_with_colour``: the authors' colour path (gray for a gray visible image or
        ``gray_output``), as ``u8 / 255`` in float32."""

        if ir.ndim != 4 or ir.shape[1] != 1 or vi.ndim != 4 or vi.shape[1] not in (1, 3) \
                or ir.shape[0] != vi.shape[0] or ir.shape[-2:] != vi.shape[-2:]:
            raise ValueError(f"{self.name}: expected IR (B, 1, H, W) and visible (B, 1 or 3, H, W) of one size, "
                             f"got {tuple(ir.shape)} and {tuple(vi.shape)}")
        cpu = self.device.type == "cpu"
        gray = gray_output or vi.shape[1] == 1
        ir, vi, out_device = ir.to(self.device, torch.float32), vi.to(self.device, torch.float32), ir.device
        with torch.no_grad(), cpu_threads(self.cpu_threads if cpu else None):
            # on a CPU one image at a time: the same result (nothing is shared across a batch), up to
            # 25 % less time (a batch's feature maps outgrow the caches) and a quarter of the memory
            u8 = torch.cat([self.fuse_u8(i, v, gray) for i, v in zip(ir.split(1), vi.split(1))]) if cpu \
                else self.fuse_u8(ir, vi, gray)
        return u8.to(out_device).float().div_(255.0)

    def fuse(self, ir: torch.Tensor, vi: torch.Tensor, names: Sequence[str] | None = None) -> torch.Tensor:
        """The method's gray result for IR and visible luminance ``(B, 1, H, W)`` in [0, 1]."""
        return self.fuse_colour(ir, vi, names, gray_output=True)


__all__ = ["AuthorsFuser", "load_strict", "read_weights", "to_u8", "truncate_u8"]
