"""Old path of :mod:`fusion_perception.synthetic.dataset` (the synthetic dataset writer).

This name is the same module object, so ``monkeypatch.setattr(synthetic, ...)`` on it still
reaches the writer's globals.
"""

import sys

from fusion_perception.synthetic import dataset as _dataset

sys.modules[__name__] = _dataset
