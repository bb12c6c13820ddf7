"""EMMA's networks exactly as published: the U-Fuser, the sensing U-Net, checkpoint I/O."""

from fusion_perception.models.blocks import RestormerCNNBlock
from fusion_perception.models.checkpoint import (
    infer_sensing_widths,
    infer_ufuser_config,
    load_official_checkpoint,
    load_state_dict_file,
    save_official_state_dict,
)
from fusion_perception.models.sensing_unet import SensingUNet
from fusion_perception.models.ufuser import UFuser

__all__ = [
    "RestormerCNNBlock",
    "SensingUNet",
    "UFuser",
    "infer_sensing_widths",
    "infer_ufuser_config",
    "load_official_checkpoint",
    "load_state_dict_file",
    "save_official_state_dict",
]
