"""The ``folder`` method: another method's precomputed fused images, read from a directory.

``build_fuser("folder:CDDFuse=/results/CDDFuse")`` gives a fuser labelled ``CDDFuse`` whose
``fuse`` returns, for each pair name, the luminance of the file with that stem (any image
extension). The folder may be a flat directory of results, a directory with a ``fused``
sub-folder, or the output of ``fuse_dataset`` (its manifest says where every image is).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from fusion_perception.data.image_io import is_gray, luminance01, read_image, to_float01
from fusion_perception.data.layouts.scan import other_formats
from fusion_perception.errors import ConfigError, DatasetError
from fusion_perception.files import IMAGE_EXTENSIONS
from fusion_perception.fusion.base import Fuser, rgb_to_ycrcb, ycrcb_to_rgb
from fusion_perception.registry import FUSERS

_MAX_LISTED = 20  # names listed in a "missing" error before "... and N more"


def _list_names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f" ... and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


def index_image_folder(root: Path) -> dict[str, Path]:
    """Map file stem -> image path for a results folder.

    A ``fuse_dataset`` output is read through its manifest; otherwise ``root/fused`` (if
    present) or ``root`` is scanned, flat first and recursively when nothing lies there.
    Two images with the same stem are an error (the match would be ambiguous).
    """
    manifest = root / "manifest.json"
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text())
            return {r["name"]: root / r["image"] for r in data["records"]}
        except (ValueError, KeyError, TypeError) as e:
            raise DatasetError(manifest, f"not a readable fuse_dataset manifest ({e})") from None
    base = root / "fused" if (root / "fused").is_dir() else root
    files = [p for p in base.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if not files:
        files = [p for p in base.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    index: dict[str, Path] = {}
    for p in sorted(files):
        if p.name.startswith("."):  # temp files of an interrupted atomic write
            continue
        if p.stem in index:
            raise DatasetError(p, f"two results share the stem {p.stem!r} (also {index[p.stem]}); keep one")
        index[p.stem] = p
    return index


@FUSERS.register_module(name="folder")
class FolderFuser(Fuser):
    """Precomputed results of another method (``folder:LABEL=PATH``).

    Colour: a colour result file is taken as it is (it already carries that method's
    colour); a gray one gets the visible image's chroma like every other method. With
    ``gray_output`` or a gray visible image the result's luminance is used.
    """

    def __init__(self, device: str | torch.device = "cpu", label: str = "folder", root: str | Path = "",
                 weights: str | None = None, **params: Any):
        if params:
            raise ConfigError(f"method 'folder' takes no parameters besides label and root (got {', '.join(params)})")
        if weights is not None:
            raise ConfigError("method 'folder' has no weights (--weights is for learned methods such as emma)")
        if not str(root).strip():  # Path("") would be the current folder
            raise ConfigError(f"method 'folder' needs its results folder: folder:{label}=PATH")
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DatasetError(root, f"results folder of method {label!r} not found")
        super().__init__(device, label=label, root=str(root.resolve()))
        self.label = label
        self.root = root.resolve()
        self._index: dict[str, Path] | None = None

    @property
    def index(self) -> dict[str, Path]:
        if self._index is None:
            self._index = index_image_folder(self.root)
        return self._index

    def config(self) -> dict[str, Any]:
        return {"method": self.name, "label": self.label, "params": {"root": str(self.root)}}

    def missing(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if n not in self.index or not self.index[n].is_file()]

    def check_names(self, names: Iterable[str]) -> None:
        """Raise one DatasetError listing every name that has no result file (called up front)."""
        names = list(names)
        missing = self.missing(names)
        if missing:
            raise DatasetError(
                self.root,
                f"{len(missing)} of {len(names)} images missing for method {self.label!r} "
                f"(looked for these stems, any image extension): {_list_names(missing)}"
                + other_formats(self.root, self.root / "fused"),
            )

    def _read(self, names: Sequence[str] | None, size: tuple[int, int]) -> list[np.ndarray]:
        if names is None:
            raise ConfigError("method 'folder' needs the pair names to find its result files")
        self.check_names(names)
        images = []
        for n in names:
            path = self.index[n]
            img = read_image(path)
            if img.shape[:2] != size:
                raise DatasetError(
                    path, f"result is {img.shape[1]}x{img.shape[0]} but the pair {n!r} is {size[1]}x{size[0]} (WxH)"
                )
            images.append(img)
        return images

    def fuse(self, ir: torch.Tensor, vi: torch.Tensor, names: Sequence[str] | None = None) -> torch.Tensor:
        images = self._read(names, tuple(ir.shape[-2:]))
        y = np.stack([luminance01(img) for img in images])[:, None]
        return torch.from_numpy(y).to(device=ir.device, dtype=ir.dtype)

    def fuse_colour(self, ir: torch.Tensor, vi: torch.Tensor, names: Sequence[str] | None = None,
                    gray_output: bool = False) -> torch.Tensor:
        """Used by ``fuse_with_colour``: keep a colour result's own colour (see the class doc)."""
        if gray_output or vi.shape[1] != 3:
            return self.fuse(ir, vi, names)
        images = self._read(names, tuple(ir.shape[-2:]))
        out = []
        chroma = rgb_to_ycrcb(vi)[:, 1:]
        for k, img in enumerate(images):
            if img.ndim == 3 and not is_gray(img):
                out.append(torch.from_numpy(to_float01(img)).permute(2, 0, 1).to(device=vi.device, dtype=vi.dtype))
            else:
                y = torch.from_numpy(luminance01(img))[None].to(device=vi.device, dtype=vi.dtype)
                out.append(ycrcb_to_rgb(torch.cat((y, chroma[k]), dim=0)))
        return torch.stack(out)
