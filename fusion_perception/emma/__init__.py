"""EMMA (Equivariant Multi-Modality imAge fusion, CVPR 2024) in one package.

- the networks exactly as published: ``ufuser`` (the U-Fuser), ``sensing_unet`` (the pseudo-sensing
  U-Net ``A_i``/``A_v``), ``blocks`` (their Restormer-CNN blocks);
- their weights: ``checkpoint`` (reading and writing the published format), ``weights`` (which
  file ``--weights`` names: a path, ``official`` fetched and hash-checked, or the project's own
  ``pretrained/emma_synthetic.pth`` with its model card);
- ``fuser``: EMMA as the registered fusion method ``emma`` that every tool uses;
- ``training/``: the paper's two training steps on mmengine (patches, loss, transforms, hooks).

Importing this package loads the networks and checkpoint I/O only (torch, no mmengine).

Import what you use from its module; importing this package loads nothing.
"""
