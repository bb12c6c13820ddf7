"""Random-weight checkpoints of the three learned fusers in their authors' formats, for tests that
need nothing shared."""

from __future__ import annotations

from pathlib import Path

import torch

from fusion_perception.fusion.didfuse import DIDFuseNet
from fusion_perception.fusion.seafusion import SeAFusionNet
from fusion_perception.fusion.tardal import TarDALGenerator

METHODS = ("didfuse", "tardal", "seafusion")


def _randomise_norms(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """BatchNorm affine and running statistics off their defaults, so that using them shows."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = 1 + 0.3 * torch.randn(n, generator=g)
            m.bias.data = 0.1 * torch.randn(n, generator=g)
            m.running_mean = 0.1 * torch.randn(n, generator=g)
            m.running_var = 0.5 + torch.rand(n, generator=g)
    return net


def write_weights(method: str, folder: Path, seed: int = 0) -> Path:
    """A random-weight checkpoint of ``method`` in its authors' format: SeAFusion a legacy-format state
    dict, TarDAL a zip-format one, DIDFuse a folder of two legacy files ``{'weight': ..., 'epoch': N}``."""
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    if method == "seafusion":
        path = folder / "fusionmodel_final.pth"
        torch.save(SeAFusionNet().state_dict(), path, _use_new_zipfile_serialization=False)
    elif method == "tardal":
        path = folder / "tardal.pt"
        torch.save(_randomise_norms(TarDALGenerator(), seed).state_dict(), path)
    else:
        path = folder
        net = _randomise_norms(DIDFuseNet(), seed)
        for part, name in ((net.encoder, "Encoder_weight_IJCAI.pkl"), (net.decoder, "Decoder_weight_IJCAI.pkl")):
            torch.save({"weight": part.state_dict(), "epoch": 120}, folder / name, _use_new_zipfile_serialization=False)
    return path


def reference_weights(method: str, weights: Path) -> str:
    """``weights`` as ``tests/reference/reference_learned.py`` takes them (DIDFuse: ``ENCODER,DECODER``)."""
    if method != "didfuse":
        return str(weights)
    return f"{weights / 'Encoder_weight_IJCAI.pkl'},{weights / 'Decoder_weight_IJCAI.pkl'}"
