"""Segmentation downstream of fusion: DeepLabV3+ on the fused MSRS images, IoU per class (Table 4).

One package per task, of the same shape as :mod:`fusion_perception.detection`:

- ``task``: the registered :class:`~fusion_perception.segmentation.task.SegmentationTask` and
  :func:`~fusion_perception.segmentation.task.run_segmentation`, the protocol through the run skeleton;
- ``config``: the recipe (``configs/seg``, the tools' overrides, the run's paths);
- ``data``: the source, the fused split as an mmengine dataset, augmentation;
- ``model``: smp's DeepLabV3+ as an mmengine model, encoder freezing;
- ``train``: mmengine's Runner, on one device or under torchrun;
- ``metric``: the split-wide IoU metric (mmengine's), pictures in the dataset's palette;
- ``evaluate``: the run's test and re-scoring a checkpoint (``tools/eval_seg.py``);
- ``report``: the Table 4 row, ``results.json``, palette pictures.
"""
