"""EMMA training: the transform group, the loss, patch datasets, mmengine models and runners.

Importing :mod:`fusion_perception.emma.training.runner` registers the mmengine pieces
(``SensingModel``, ``EMMAModel``, ``SensingPatchDataset``, ``EMMAPatchDataset``,
``LossHistoryHook``); ``transforms`` and ``losses`` are plain tensor functions.
"""

from fusion_perception.emma.training.losses import emma_loss, freeze, fusion_loss, sobel_gradient, weighted_total
from fusion_perception.emma.training.transforms import equivariant_batch, flips, random_shifts, rotate, rotations

__all__ = [
    "emma_loss", "equivariant_batch", "flips", "freeze", "fusion_loss", "random_shifts", "rotate",
    "rotations", "sobel_gradient", "weighted_total",
]
