"""EMMA's losses: l1 plus l1 of Sobel gradients, and the three-term training objective."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from fusion_perception.filters import sobel_gradient


def fusion_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``L(x, y) = l1(x, y) + l1(grad x, grad y)`` (means over all elements)."""
    return F.l1_loss(x, y) + F.l1_loss(sobel_gradient(x), sobel_gradient(y))


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode and no parameter gradients: the sensing nets during fusion training."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def emma_loss(
    fuser: nn.Module,
    sensing_ir: nn.Module,
    sensing_vi: nn.Module,
    ir: torch.Tensor,
    vi: torch.Tensor,
    transform: Callable[[torch.Tensor], torch.Tensor],
    equivariance: bool = True,
) -> dict[str, torch.Tensor]:
    """The three terms of EMMA's objective, unweighted, for ``(B, 1, H, W)`` inputs in [0, 1].

    ``loss_ir = L(A_i(f), i)``, ``loss_vi = L(A_v(f), v)``, ``loss_eq = L(f_t, F(A_i(f_t), A_v(f_t)))``
    with ``f = F(i, v)`` and ``f_t = transform(f)``. Gradients reach ``F`` through the
    sensing nets, which the caller keeps frozen (:func:`freeze`). With
    ``equivariance=False`` the third term is still measured, without a graph, so runs with
    and without the prior can be compared on it.
    The caller weights them: ``loss_ir + a1 * loss_vi + a2 * loss_eq``.
    """
    f = fuser(ir, vi)
    terms = {
        "loss_ir": fusion_loss(sensing_ir(f), ir),
        "loss_vi": fusion_loss(sensing_vi(f), vi),
    }
    if equivariance:
        f_t = transform(f)
        terms["loss_eq"] = fusion_loss(f_t, fuser(sensing_ir(f_t), sensing_vi(f_t)))
    else:
        with torch.no_grad():
            f_t = transform(f.detach())
            terms["loss_eq"] = fusion_loss(f_t, fuser(sensing_ir(f_t), sensing_vi(f_t)))
    return terms


def weighted_total(terms: dict[str, torch.Tensor], a1: float, a2: float, equivariance: bool = True) -> torch.Tensor:
    """``loss_ir + a1 * loss_vi (+ a2 * loss_eq when the prior is on)``."""
    total = terms["loss_ir"] + a1 * terms["loss_vi"]
    if equivariance:
        total = total + a2 * terms["loss_eq"]
    return total
