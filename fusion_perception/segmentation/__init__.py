"""Segmentation downstream of fusion: DeepLabV3+ on the fused MSRS images, IoU per class (Table 4).

One package per task, of the same shape as :mod:`fusion_perception.detection`:

- ``task``: the registered :class:`~fusion_perception.segmentation.task.SegmentationTask` and
  :func:`~fusion_perception.segmentation.task.run_segmentation`, the protocol through the run skeleton;
- ``config``: the recipe (``configs/seg``, the tools' overrides, the run's paths);
- ``data``: the MSRS source, the fused split as an mmengine dataset, augmentation;
- ``model``: smp's DeepLabV3+ as an mmengine model, encoder freezing;
- ``train``: mmengine's Runner, on one device or under torchrun;
- ``evaluate``: the split-wide IoU metric and re-scoring a checkpoint (``tools/eval_seg.py``);
- ``report``: the Table 4 row, ``results.json``, MSRS-palette pictures.
"""
