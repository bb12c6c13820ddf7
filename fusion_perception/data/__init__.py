"""Paired IR/visible datasets: typed records, readers with validation, image I/O.

- ``records``: the typed records every later stage consumes (pairs, boxes, fused datasets);
- ``readers``: ``load_dataset(root)`` reads and validates a dataset of any registered layout
  (MSRS, M3FD and its TarDAL re-layout, plain pair folders; one registered class per file in
  :mod:`fusion_perception.data.layouts`), ``describe(ds)`` summarises what it found;
- ``annotations``: VOC XML and YOLO text boxes; ``validate``: file headers and masks;
- ``image_io``: decoding and encoding images, colour conversions.

Import what you use from its module; importing this package loads nothing.
"""
