"""mmengine models that train EMMA's networks: the sensing U-Nets, then the U-Fuser.

Both are :class:`mmengine.model.BaseModel` subclasses in the ``MODELS`` registry, so
configs name them (``model = dict(type="EMMAModel", ...)``) and mmengine's Runner drives
optimisation, AMP, DDP, checkpoints and logging.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from torch import nn

from fusion_perception.config_files import config_keys
from fusion_perception.emma.ufuser import UFuser
from fusion_perception.emma.sensing_unet import SensingUNet
from fusion_perception.emma.checkpoint import load_official_checkpoint
from fusion_perception.emma.training.losses import emma_loss, freeze, fusion_loss, weighted_total
from fusion_perception.emma.training.transforms import DEFAULT_ANGLES, DEFAULT_FLIPS, equivariant_batch


@MODELS.register_module()
class SensingModel(BaseModel):
    """One pseudo-sensing U-Net (``A_i`` or ``A_v``): fused patch -> sensor patch, MSE loss.

    The network is the attribute ``net``; its plain state dict is the official ``Ai.pth`` /
    ``Av.pth`` format.
    """

    def __init__(self, widths: Sequence[int] = (64, 128, 256, 512, 1024), target: str = "ir",
                 data_preprocessor: dict | None = None, init_cfg: dict | None = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if target not in ("ir", "vi"):
            raise ValueError(f"target must be 'ir' or 'vi', not {target!r}")
        self.target = target
        self.net = SensingUNet(widths=tuple(widths))

    def forward(self, inputs: torch.Tensor, target: torch.Tensor | None = None, mode: str = "tensor") -> Any:
        out = self.net(inputs)
        if mode == "loss":
            return {"loss_mse": F.mse_loss(out.float(), target.float())}
        if mode == "predict":
            return list(out)
        return out


def _sensing_net(spec: str | Path | dict | nn.Module) -> nn.Module:
    """A sensing net from a checkpoint path (official or mmengine format), or fresh from ``dict(widths=...)``."""
    if isinstance(spec, nn.Module):
        return spec
    if isinstance(spec, dict):
        return SensingUNet(widths=tuple(spec.get("widths", (64, 128, 256, 512, 1024))))
    return load_official_checkpoint(spec, "sensing")


@dataclass(frozen=True)
class EMMALossWeights:
    """EMMA's loss settings, the model config's keys ``a1``, ``a2`` and ``equivariance``."""

    a1: float = 1.0  # the visible term's weight (loss_ir + a1 * loss_vi)
    a2: float = 0.1  # the equivariance term's weight (+ a2 * loss_eq)
    equivariance: bool = True  # False is the ablation: the a2 term is measured and logged, not optimised

    def __post_init__(self) -> None:  # config values may arrive as ints or strings of numbers
        object.__setattr__(self, "a1", float(self.a1))
        object.__setattr__(self, "a2", float(self.a2))
        object.__setattr__(self, "equivariance", bool(self.equivariance))


@MODELS.register_module()
class EMMAModel(BaseModel):
    """The U-Fuser ``F`` trained through two frozen sensing nets with EMMA's loss.

    ``sensing_ir`` / ``sensing_vi``: checkpoint paths (or ``dict(widths=...)`` for a fresh,
    untrained net, which only tests want). ``a1``, ``a2``, ``equivariance``: the loss (:class:`EMMALossWeights`).
    ``equivariance=False`` is the ablation: the ``a2`` term leaves the optimisation but is
    still measured and logged as ``loss_eq``. ``transform``: the group's ``shifts`` count,
    rotation ``angles`` and ``flips``.

    State-dict keys: ``fuser.*`` (what ``load_official_checkpoint`` takes), ``sensing_ir.*``,
    ``sensing_vi.*``.
    """

    def __init__(
        self,
        fuser: dict | None = None,
        sensing_ir: str | dict | None = None,
        sensing_vi: str | dict | None = None,
        transform: dict | None = None,
        warm_start: dict | None = None,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
        **loss: Any,
    ):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if sensing_ir is None or sensing_vi is None:
            raise ValueError(
                "EMMAModel needs both sensing nets: pass checkpoint paths (train them first with "
                "tools/train_sensing.py) as sensing_ir= and sensing_vi="
            )
        self.loss_weights = config_keys(EMMALossWeights, loss, "EMMAModel")  # the config's model.a1, model.a2, model.equivariance
        fuser = dict(fuser or {})
        self.fuser = UFuser(channels=tuple(fuser.get("channels", (8, 16, 32, 32))), heads=int(fuser.get("heads", 8)))
        self.sensing_ir = freeze(_sensing_net(sensing_ir))
        self.sensing_vi = freeze(_sensing_net(sensing_vi))
        t = dict(transform or {})
        self.transform_cfg = dict(
            shifts=int(t.get("shifts", 3)),
            angles=tuple(float(a) for a in t.get("angles", DEFAULT_ANGLES)),
            flips=tuple(t.get("flips", DEFAULT_FLIPS)),
        )
        self.warm_start_iters, self._warm_target = _warm_start(warm_start)

    def train(self, mode: bool = True) -> "EMMAModel":
        # The Runner switches the whole model to train mode each epoch; the sensing nets'
        # BatchNorm must keep its running statistics (frozen nets stay in eval mode).
        super().train(mode)
        self.sensing_ir.eval()
        self.sensing_vi.eval()
        return self

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return equivariant_batch(x, **self.transform_cfg)

    def warming_up(self) -> bool:
        """True during the warm start: the Runner's current iteration (mmengine's message hub) is
        below ``warm_start_iters``."""
        if not self.warm_start_iters:
            return False
        return int(MessageHub.get_current_instance().get_info("iter", 0)) < self.warm_start_iters

    def forward(self, ir: torch.Tensor, vi: torch.Tensor, mode: str = "tensor") -> Any:
        if mode == "loss" and self.warming_up():
            with torch.no_grad():
                target = self._warm_target(ir, vi)
            return {"loss_warm": fusion_loss(self.fuser(ir, vi), target)}
        if mode == "loss":
            return emma_loss(self.fuser, self.sensing_ir, self.sensing_vi, ir, vi, self.transform,
                             equivariance=self.loss_weights.equivariance)
        out = self.fuser(ir, vi)
        return list(out) if mode == "predict" else out

    def parse_losses(self, losses: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Log every term unweighted; optimise the weighted sum (without ``loss_eq`` in the ablation)."""
        log_vars = OrderedDict((k, v.mean()) for k, v in losses.items())
        if "loss_warm" in log_vars:  # the warm start optimises its one term
            total = log_vars["loss_warm"]
        else:
            w = self.loss_weights
            total = weighted_total(log_vars, w.a1, w.a2, w.equivariance)
        log_vars = OrderedDict([("loss", total), *log_vars.items()])
        return total, log_vars


def _warm_start(spec: dict | None) -> tuple[int, Any]:
    """``(iters, target)`` of a ``warm_start`` entry; ``target(ir, vi)`` is the registered fusion
    method it names, run on the training batch."""
    if not spec:
        return 0, None
    params = dict(spec)
    iters = int(params.pop("iters", 0))
    if "method" not in params:
        raise ValueError(f"warm_start {spec} names no method (dict(method=..., iters=...))")
    from fusion_perception.fusion.base import build_fuser

    fuser = build_fuser(str(params.pop("method")), **params)
    return iters, lambda ir, vi: fuser.fuse(ir, vi).to(ir.dtype)
