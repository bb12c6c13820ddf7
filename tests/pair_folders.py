"""Plain ir/vi pair folders of random images, for tests of the fuse stage and the tools."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def random_pairs(root: Path, n: int = 4, size: tuple[int, int] = (48, 32), seed: int = 0,
                 colour_every: int = 0) -> Path:
    """``root/{ir,vi}/p000.png ...``; every ``colour_every``-th visible image is colour (0: none)."""
    rng = np.random.default_rng(seed)
    (root / "ir").mkdir(parents=True)
    (root / "vi").mkdir()
    w, h = size
    for i in range(n):
        cv2.imwrite(str(root / "ir" / f"p{i:03d}.png"), rng.integers(0, 256, (h, w), dtype=np.uint8))
        colour = colour_every and i % colour_every == 0
        cv2.imwrite(str(root / "vi" / f"p{i:03d}.png"),
                    rng.integers(0, 256, (h, w, 3) if colour else (h, w), dtype=np.uint8))
    return root
