"""Fusion methods and the preprocessing stage that fuses whole datasets.

- ``base``: the fuser interface, building a registered method, central colour handling;
- ``method``: a method resolved once for a run (its weights, their hash, its cache folder);
- ``classical`` (+ ``classical_rules``), ``folder``: the built-in methods (EMMA lives in
  :mod:`fusion_perception.emma`);
- ``stage``, ``manifest``, ``pipeline``, ``ranks``, ``cache``: the fuse stage (``fuse_dataset``).

Import what you use from its module; importing this package loads nothing.
"""
