"""Detection downstream of fusion: YOLO on the fused M3FD images, scored by pycocotools (Table 3).

One package per task, of the same shape as :mod:`fusion_perception.segmentation`:

- ``task``: the registered :class:`~fusion_perception.detection.task.DetectionTask` and
  :func:`~fusion_perception.detection.task.run_detection`, the protocol through the run skeleton;
- ``config``: the recipe (the paper's, ``configs/det``, the tools' overrides);
- ``data``: the source with boxes, the split, the YOLO layout;
- ``model``: ultralytics kept offline and safe, model files;
- ``train``: YOLO training, resumable;
- ``evaluate``: prediction and pycocotools scores (``tools/eval_det.py``);
- ``report``: the Table 3 row, ``results.json``, the predictions picture.
"""
