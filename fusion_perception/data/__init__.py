"""Paired IR/visible datasets: typed records, readers with validation, image I/O.

- ``records``: the typed records every later stage consumes (pairs, boxes, fused datasets);
- ``readers``: ``load_dataset(root)`` reads and validates a dataset of any registered layout
  (MSRS for segmentation, and for detection with labels per modality; M3FD and its TarDAL
  re-layout; plain pair folders; one registered class per file in
  :mod:`fusion_perception.data.layouts`), ``describe(ds)`` summarises what it found;
- ``annotations``: VOC XML and YOLO text boxes, class lists; ``modality_labels``: labels made
  separately per modality (the union, which modality shows an object); ``validate``: file
  headers and masks;
- ``image_io``: decoding and encoding images.

Import what you use from its module; importing this package loads nothing.
"""
