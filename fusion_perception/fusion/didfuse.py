"""DIDFuse, run as the VIF benchmark's colour test script runs it, with its authors' weights.

Z. Zhao, S. Xu, C. Zhang, J. Liu, J. Zhang, P. Li, "DIDFuse: Deep Image Decomposition for Infrared
and Visible Image Fusion", IJCAI 2020, 970-976. Weights: the authors' two files,
``Models/Encoder_weight_IJCAI.pkl`` and ``Models/Decoder_weight_IJCAI.pkl`` of
github.com/Zhaozixiang1228/IVIF-DIDFuse. Never shipped here.

**Weights** (one form everywhere): ``--weights FOLDER``, a folder holding exactly one
``*encoder*.pkl`` and one ``*decoder*.pkl`` (case-insensitive; the authors' names match), or the
path of one of the two with its partner beside it. The sha256 recorded for them is that of the
encoder file's bytes followed by the decoder file's (``cat ENC DEC | sha256sum``).

The network (an encoder that splits an image into background and detail features, a decoder that
joins them with the encoder's skip features) is written from the paper and the checkpoints' names
and shapes; BatchNorm in eval mode. The same encoder runs on the IR image and on the visible
image's float Y (SeAFusion's formulas); the four feature pairs are fused by the ``rule``:
``"l1_norm"`` (the default, the benchmark's colour script: weights from the 3x3 box sum of the
channel sum of ``|feature|``) or ``"sum"`` (the authors' original ``'Sum'``: ``a + b``). The decoder's
sigmoid output is recombined with the visible Cr/Cb (SeAFusion's matrix), clamped and truncated to 8
bits; no min-max. The gray result is the decoder output truncated to 8 bits.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fusion_perception.errors import ConfigError, DatasetError, check_input_file
from fusion_perception.fusion.learned import AuthorsFuser, load_strict, read_weights, truncate_u8
from fusion_perception.fusion.seafusion import seafusion_rgb, seafusion_ycrcb
from fusion_perception.registry import FUSERS

EXPECTED = ("a folder holding the authors' two DIDFuse files, Encoder_weight_IJCAI.pkl and Decoder_weight_IJCAI.pkl "
            "(Models/ of github.com/Zhaozixiang1228/IVIF-DIDFuse; Encoder.pkl and Decoder.pkl in the VIF benchmark), "
            "or the path of one of them with the other beside it")
RULES = ("l1_norm", "sum")
_ROLES = ("encoder", "decoder")


# ----------------------------------------------------------------------------- the two files
def didfuse_files(weights: str | Path) -> tuple[Path, Path]:
    """``(encoder, decoder)`` files of ``weights``: a folder with exactly one ``*encoder*.pkl`` and one
    ``*decoder*.pkl`` (case-insensitive), or one of the two files with its partner beside it."""
    path = Path(weights).expanduser().absolute()
    if path.is_dir():
        folder, given = path, None
    else:
        check_input_file(path, "DIDFuse weights file")
        folder, given = path.parent, path
        if _role(path.name) is None:
            raise DatasetError(path, f"names neither an encoder nor a decoder; expected {EXPECTED}")
    found = {role: sorted(p for p in folder.iterdir() if p.is_file() and _role(p.name) == role) for role in _ROLES}
    if given is not None:
        found[_role(given.name)] = [given]
    for role in _ROLES:
        if len(found[role]) != 1:
            names = "" if not found[role] else f" ({', '.join(p.name for p in found[role])})"
            raise DatasetError(folder, f"holds {len(found[role]) or 'no'} *{role}*.pkl files{names}, where DIDFuse "
                                       f"needs exactly one; expected {EXPECTED}")
    return found["encoder"][0], found["decoder"][0]


def _role(name: str) -> str | None:
    lower = name.lower()
    roles = [r for r in _ROLES if r in lower] if lower.endswith(".pkl") else []
    return roles[0] if len(roles) == 1 else None


def _state(path: Path) -> object:
    """The state dict in one file: the authors' ``{'weight': state dict, 'epoch': N}`` (or a bare one)."""
    obj = read_weights(path, "DIDFuse", EXPECTED)
    return obj["weight"] if isinstance(obj, dict) and "weight" in obj else obj


# ----------------------------------------------------------------------------- the network
def _block(cin: int, cout: int, act: nn.Module, reflect: bool = False) -> nn.Sequential:
    """(ReflectionPad 1,) conv 3x3, BatchNorm, activation; zero padding 1 unless ``reflect``."""
    conv = nn.Conv2d(cin, cout, 3, padding=0 if reflect else 1)
    return nn.Sequential(*([nn.ReflectionPad2d(1)] if reflect else []), conv, nn.BatchNorm2d(cout), act)


class _Named(nn.Module):
    """A block under its own name again (the checkpoint's ``cov1.cov1.*``)."""

    def __init__(self, name: str, block: nn.Sequential):
        super().__init__()
        self.name = name
        setattr(self, name, block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, self.name)(x)


class DIDFuseEncoder(nn.Module):
    """Image ``(B, 1, H, W)`` -> features ``[F1, F2, background, detail]``, 64 channels each."""

    def __init__(self, c: int = 64):
        super().__init__()
        self.cov1 = _Named("cov1", _block(1, c, nn.PReLU(), reflect=True))
        self.cov2 = _Named("cov2", _block(c, c, nn.PReLU()))
        self.cov3 = _Named("cov3", _block(c, c, nn.Tanh()))
        self.cov4 = _Named("cov4", _block(c, c, nn.Tanh()))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f1 = self.cov1(x)
        f2 = self.cov2(f1)
        return [f1, f2, self.cov3(f2), self.cov4(f2)]


class DIDFuseDecoder(nn.Module):
    """``[F1, F2, background, detail]`` -> image ``(B, 1, H, W)`` in (0, 1) (sigmoid)."""

    def __init__(self, c: int = 64):
        super().__init__()
        self.cov5 = _Named("cov5", _block(2 * c, c, nn.PReLU()))
        self.cov6 = _Named("cov6", _block(2 * c, c, nn.PReLU()))
        self.cov7 = _Named("cov7", _block(2 * c, 1, nn.Sigmoid(), reflect=True))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        f1, f2, background, detail = features
        x = self.cov5(torch.cat((background, detail), 1))
        x = self.cov6(torch.cat((x, f2), 1))
        return self.cov7(torch.cat((x, f1), 1))


class DIDFuseNet(nn.Module):
    """The encoder and decoder together; ``net(ir, vi_y, rule)`` -> the decoder's output."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder, self.decoder = DIDFuseEncoder(), DIDFuseDecoder()

    def forward(self, ir: torch.Tensor, vi_y: torch.Tensor, rule: str = "l1_norm") -> torch.Tensor:
        b = ir.shape[0]
        both = self.encoder(torch.cat((ir, vi_y), 0))  # one pass over the IR and visible images
        return self.decoder([fuse_features(f[:b], f[b:], rule) for f in both])


def fuse_features(a: torch.Tensor, b: torch.Tensor, rule: str) -> torch.Tensor:
    """DIDFuse's fusion of an IR feature ``a`` and a visible one ``b`` by ``rule``.

    ``l1_norm``: ``A/(A+B) a + B/(A+B) b`` with ``A = conv2d(|a|, ones(C, C, 3, 3) / 9, padding=1)``,
    whose every output channel is the same map: the 3x3 box sum (zero padded) of the channel sum of
    ``|a|``, divided by 9, computed here once instead of C times.
    """
    if rule == "sum":
        return a + b
    kernel = torch.full((1, 1, 3, 3), 1.0 / 9.0, dtype=a.dtype, device=a.device)
    wa = F.conv2d(a.abs().sum(1, keepdim=True), kernel, padding=1)
    wb = F.conv2d(b.abs().sum(1, keepdim=True), kernel, padding=1)
    total = wa + wb
    return wa / total * a + wb / total * b


@FUSERS.register_module(name="didfuse")
class DIDFuseFuser(AuthorsFuser):
    """DIDFuse with its authors' weights (``weights=FOLDER``, see the module doc), its fusion
    ``rule`` (``"l1_norm"``, the default, or ``"sum"``) and ``channels_last`` (default on)."""

    expected = EXPECTED
    defaults = {"rule": "l1_norm", "channels_last": True}

    @classmethod
    def weights_path(cls, weights: str | Path | None) -> Path:
        path = super().weights_path(weights)
        didfuse_files(path)  # names what is wrong with the folder before any work
        return path

    @classmethod
    def weights_sha256(cls, weights: str | Path) -> str:
        h = hashlib.sha256()
        for path in didfuse_files(cls.weights_path(weights)):
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        return h.hexdigest()

    def __init__(self, device: str | torch.device = "cpu", weights: str | Path | None = None, **params: object):
        rule = params.get("rule", "l1_norm")
        if rule not in RULES:
            raise ConfigError(f"didfuse: rule must be one of {', '.join(RULES)}, not {rule!r}")
        super().__init__(device, weights, **params)
        self.rule = str(rule)

    def load_network(self, weights: Path) -> nn.Module:
        net = DIDFuseNet()
        for part, path in zip((net.encoder, net.decoder), didfuse_files(weights)):
            load_strict(part, _state(path), path, f"DIDFuse {type(part).__name__[7:].lower()}", EXPECTED)
        return net

    def raw_output(self, ir: torch.Tensor, vi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder's output and the visible YCrCb, for ``u8 / 255`` inputs."""
        ycrcb = seafusion_ycrcb(vi)
        return self.model(ir, ycrcb[:, :1], self.rule), ycrcb

    def fuse_u8(self, ir: torch.Tensor, vi: torch.Tensor, gray: bool) -> torch.Tensor:
        y, ycrcb = self.raw_output(ir, vi)
        return truncate_u8(y.clamp(0.0, 1.0) if gray else seafusion_rgb(y, ycrcb))
