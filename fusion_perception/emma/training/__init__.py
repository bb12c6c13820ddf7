"""EMMA training: the transform group, the loss, patch datasets, mmengine models and runners.

Importing :mod:`fusion_perception.emma.training.runner` registers the mmengine pieces
(``SensingModel``, ``EMMAModel``, ``SensingPatchDataset``, ``EMMAPatchDataset``,
``LossHistoryHook``); ``transforms`` and ``losses`` are plain tensor functions.

Import what you use from its module; importing this package loads nothing.
"""
