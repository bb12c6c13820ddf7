"""The fused-image folders an evaluation reads, and the source pairs they are matched to.

A folder of one method's fused images (optionally a fuse-stage run with its ``manifest.json``),
read as the reference values in ``shared/fixtures`` were: 3-channel BGR, float32,
``cv2.COLOR_BGR2GRAY``, rounded, on the 0..255 scale (see
:mod:`fusion_perception.metrics.fusion_eval`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fusion_perception.data.image_io import decode_image_file, to_float01
from fusion_perception.data.layouts.scan import other_formats
from fusion_perception.files import is_image_file
from fusion_perception.data.records import PairDataset
from fusion_perception.errors import ConfigError, DatasetError

MANIFEST = "manifest.json"  # written by the fuse stage (fusion_perception.fusion.stage)
FUSED_DIR = "fused"
_LIST_MISSING = 10  # missing names quoted in an error message


# ------------------------------------------------------------------------------ reading
def read_gray255(path: str | Path) -> np.ndarray:
    """``HxW`` float32 gray image on the 0..255 scale, prepared as the reference values were.

    ``cv2.imread``'s default (3-channel BGR, 8-bit) -> float32 -> ``COLOR_BGR2GRAY`` -> round
    (half to even). A 16-bit file (raw thermal counts) is stretched by its own minimum and
    maximum to 0..255 first, as the fuse stage reads it (:func:`to_float01`), rather than cut to
    its high byte. Raises :class:`ImageReadError` naming the file when it is missing, empty,
    truncated or not an image.
    """
    img = decode_image_file(path, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if img.dtype != np.uint8:
        img = to_float01(img) * 255.0
    return np.round(cv2.cvtColor(img.astype(np.float32), cv2.COLOR_BGR2GRAY))


# ------------------------------------------------------------------------------ method folders
@dataclass
class FusedFolder:
    """One method's fused images: a name for the tables and the images by file stem."""

    name: str
    root: Path
    images: dict[str, Path]
    manifest: dict | None = None


def parse_fused_arg(arg: str) -> tuple[str | None, Path]:
    """``NAME=DIR`` -> (NAME, DIR); a plain ``DIR`` -> (None, DIR) (the name comes later)."""
    name, sep, folder = arg.partition("=")
    if sep and name and not Path(arg).exists():
        return name.strip(), Path(folder).expanduser()
    return None, Path(arg).expanduser()


def _read_manifest(root: Path) -> dict | None:
    path = root / MANIFEST
    if not path.is_file():
        return None
    try:
        m = json.loads(path.read_text())
    except ValueError as e:
        raise DatasetError(path, f"manifest is not valid JSON ({e})") from None
    if not isinstance(m, dict):
        raise DatasetError(path, "manifest is not a JSON object")
    return m


def _image_folders(root: Path) -> list[Path]:
    """Where a method's images are: ``root/fused``, ``root/**/fused`` (split layouts), or ``root``."""
    found = sorted({p for p in root.rglob(FUSED_DIR) if p.is_dir()})
    return found or [root]


def open_fused_folder(folder: str | Path, name: str | None = None) -> FusedFolder:
    """Index a fused folder's images by stem; the name defaults to the manifest's label or the folder name."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DatasetError(root, "fused folder not found")
    # given the fused/ image folder of a fuse-stage output itself: the run folder names it
    named_by = root.resolve().parent if root.resolve().name == FUSED_DIR else root.resolve()
    manifest = _read_manifest(named_by)
    if name is None:
        name = str(manifest.get("label") or "") if manifest else ""
        name = name or named_by.name
    images: dict[str, Path] = {}
    for d in _image_folders(root):
        for p in sorted(d.iterdir()):
            if not (p.is_file() and is_image_file(p)) or p.name.startswith("."):
                continue
            if p.stem in images:
                raise DatasetError(p, f"two fused images named {p.stem!r}: {images[p.stem]} and {p}")
            images[p.stem] = p
    if not images:
        raise DatasetError(root, "no fused images found (looked in fused/, */fused/ and the folder itself)"
                                 + other_formats(*_image_folders(root)))
    return FusedFolder(name=name, root=root, images=images, manifest=manifest)


def _as_folders(fused: Mapping[str, str | Path] | Sequence[str | Path | tuple[str, str | Path] | FusedFolder]
                ) -> list[FusedFolder]:
    items = list(fused.items()) if isinstance(fused, Mapping) else list(fused)
    folders: list[FusedFolder] = []
    for item in items:
        if isinstance(item, FusedFolder):
            folders.append(item)
        elif isinstance(item, tuple):
            folders.append(open_fused_folder(item[1], item[0]))
        else:
            n, d = parse_fused_arg(str(item))
            folders.append(open_fused_folder(d, n))
    if not folders:
        raise ConfigError("no fused folder given")
    names = [f.name for f in folders]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"two fused folders share the name {', '.join(dup)}: give them names with NAME=DIR")
    return folders


# ------------------------------------------------------------------------------ source pairs
def _source_pairs(source: str | Path | PairDataset | None, layout: str, folders: list[FusedFolder]
                  ) -> tuple[str, list[tuple[str, Path, Path, str | None]]]:
    """(description, [(name, ir path, vi path, split)]) of the source dataset."""
    if isinstance(source, PairDataset):
        ds = source
    elif source is not None:
        from fusion_perception.data.readers import load_dataset

        ds = load_dataset(source, layout)
    else:  # the fuse stage's manifest records where each pair came from
        m = next((f.manifest for f in folders if f.manifest), None)
        if m is None:
            raise ConfigError("give the source dataset (--source): no fused folder has a fuse-stage manifest")
        try:
            pairs = [(e["name"], Path(e["source"]["ir"]), Path(e["source"]["vi"]), e.get("split"))
                     for e in m["records"]]
            root = str(m["source"]["root"])
        except (KeyError, TypeError) as e:
            raise DatasetError(next(f.root for f in folders if f.manifest) / MANIFEST,
                               f"manifest lacks the source pairs ({type(e).__name__}: {e})") from None
        return root, pairs
    return str(ds.root), [(r.name, r.ir_path, r.vi_path, r.split) for r in ds.records]


def _missing_error(folder: FusedFolder, missing: list[str], names: list[str]) -> DatasetError:
    """Which pairs lack a fused image, and what the folder holds instead (often the same images
    under other names, such as ``fused_<name>.png``)."""
    shown = ", ".join(missing[:_LIST_MISSING])
    more = f", ... ({len(missing) - _LIST_MISSING} more)" if len(missing) > _LIST_MISSING else ""
    text = f"{len(missing)} of {len(names)} fused images missing for method {folder.name!r}: {shown}{more}"
    known = set(names)
    extra = sorted(stem for stem in folder.images if stem not in known)
    if extra:
        files = ", ".join(folder.images[stem].name for stem in extra[:5]) + (", ..." if len(extra) > 5 else "")
        text += f"; it holds {len(extra)} image(s) named after no pair: {files}"
        pattern = _naming_pattern(extra, missing)
        if pattern:
            text += (f" (named {pattern[0]}<pair>{pattern[1]}: rename them to the pairs' names, "
                     f"e.g. {missing[0]}{folder.images[extra[0]].suffix})")
    return DatasetError(folder.root, text)


def _naming_pattern(extra: list[str], missing: list[str]) -> tuple[str, str] | None:
    """The (prefix, suffix) most found images carry around a missing pair's name, if any."""
    counts: dict[tuple[str, str], int] = {}
    wanted = sorted(missing, key=len, reverse=True)
    for stem in extra:
        for name in wanted:
            i = stem.find(name)
            if i >= 0 and len(stem) > len(name):
                key = (stem[:i], stem[i + len(name):])
                counts[key] = counts.get(key, 0) + 1
                break
    if not counts:
        return None
    best = max(counts, key=counts.get)
    return best if counts[best] * 2 >= len(extra) else None
