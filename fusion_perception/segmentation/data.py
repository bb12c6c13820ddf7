"""Segmentation data: the source, its fused split as an mmengine dataset, paired augmentation.

:func:`seg_source` finds the dataset folder to fuse (the synthetic default's MSRS-layout set when
none is given); :class:`SegDataset` reads a fused split: fused image + label map, with the
classes and palette of the source's layout.

Images are the fused colour (RGB) images; gray fused images are replicated to 3 channels.
Training augmentation (albumentations, applied to image and mask together): random scale,
pad to the crop size (image 0, mask ``ignore_index``), random crop, horizontal flip. Each
sample's augmentation is drawn from a generator seeded by (seed, epoch, index), so a run is
reproducible and a resumed run sees the same augmentations as an uninterrupted one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # never phone home for version checks

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.registry import DATASETS, FUNCTIONS  # noqa: E402
from torch.utils.data import Dataset  # noqa: E402

from fusion_perception.data.image_io import read_image, to_float01, to_uint8  # noqa: E402
from fusion_perception.data.records import FusedRecord  # noqa: E402
from fusion_perception.errors import DatasetError  # noqa: E402

__all__ = ["SegDataset", "build_train_transform", "read_label", "read_rgb", "seg_collate", "mix_seed",
           "label_histogram", "median_frequency_weights", "seg_source", "class_weights"]


def seg_source(data_root: str | Path | None, part: str = "msrs") -> Path:
    """The segmentation dataset to fuse: the synthetic default's ``part`` when none is given; a
    multi-task root holding ``part/`` (and no split folders of its own) is accepted as well."""
    if data_root is None:
        from fusion_perception.synthetic.dataset import ensure_default

        return (Path(ensure_default("seg")) / part).resolve()
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise DatasetError(root, "dataset folder not found")
    if (root / part).is_dir() and not (root / "train").is_dir():
        root = root / part
    return root.resolve()


def mix_seed(*values: int) -> int:
    """A well-spread 32-bit seed from a tuple of ints (e.g. seed, epoch, index)."""
    return int(np.random.SeedSequence([int(v) & 0xFFFFFFFF for v in values]).generate_state(1)[0])


def read_rgb(path: str | Path) -> np.ndarray:
    """A fused image as ``HxWx3`` uint8 RGB (gray replicated, 16-bit scaled)."""
    img = read_image(path)
    if img.dtype != np.uint8:
        img = to_uint8(to_float01(img))
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img)


def read_label(path: str | Path | None, num_classes: int, image_shape: tuple[int, int] | None = None,
               image_path: str | Path | None = None, ignore_index: int | None = None) -> np.ndarray:
    """A label map as ``HxW`` uint8 class ids, checked: ids in ``0..num_classes-1``, size = image size.

    Raises :class:`DatasetError` naming the label file for a missing file, ids out of range,
    a colour (non-gray) label or a size that differs from its image's.
    """
    if path is None:
        raise DatasetError(image_path, "no segmentation label for this image")
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "label file not found" + (f" (image {image_path})" if image_path else ""))
    lab = read_image(path)
    if lab.ndim == 3:
        if not (np.array_equal(lab[..., 0], lab[..., 1]) and np.array_equal(lab[..., 1], lab[..., 2])):
            raise DatasetError(path, "label map is a colour image; expected one channel of class ids")
        lab = lab[..., 0]
    if lab.dtype != np.uint8:
        if int(lab.max()) > 255:
            raise DatasetError(path, f"label ids up to {int(lab.max())}; expected 0..{num_classes - 1}")
        lab = lab.astype(np.uint8)
    bad = sorted(int(v) for v in np.unique(lab[lab >= num_classes]) if v != ignore_index)[:8]
    if bad:  # (the dataset's unlabelled value, ``ignore_index``, is not a class id but allowed)
        raise DatasetError(path, f"label ids {bad} outside 0..{num_classes - 1}")
    if image_shape is not None and tuple(lab.shape[:2]) != tuple(image_shape[:2]):
        raise DatasetError(
            path,
            f"label is {lab.shape[1]}x{lab.shape[0]} but its image {image_path} is "
            f"{image_shape[1]}x{image_shape[0]} (width x height)",
        )
    return lab


def build_train_transform(
    crop_size: Sequence[int] = (480, 640),
    scale_range: Sequence[float] = (0.5, 2.0),
    hflip_prob: float = 0.5,
    ignore_index: int = 255,
) -> A.Compose:
    """Paired image/mask augmentation: random scale in ``scale_range``, pad + random crop to
    ``crop_size`` (height, width), horizontal flip. Masks use nearest interpolation; padding is
    image 0 / mask ``ignore_index`` so padded pixels never count in the loss."""
    lo, hi = float(scale_range[0]), float(scale_range[1])
    if not 0 < lo <= hi:
        raise ValueError(f"scale_range must be 0 < lo <= hi, got {scale_range}")
    ch, cw = int(crop_size[0]), int(crop_size[1])
    return A.Compose(
        [
            # RandomScale draws a factor of 1 + U(limit): limits relative to 1.
            A.RandomScale(scale_limit=(lo - 1.0, hi - 1.0), interpolation=cv2.INTER_LINEAR,
                          mask_interpolation=cv2.INTER_NEAREST, p=1.0),
            A.PadIfNeeded(min_height=ch, min_width=cw, position="top_left", border_mode=cv2.BORDER_CONSTANT,
                          fill=0, fill_mask=ignore_index),
            A.RandomCrop(height=ch, width=cw),
            A.HorizontalFlip(p=hflip_prob),
        ]
    )


# "MSRSSegDataset": the name the configs (and the runs they were dumped into) have always used
@DATASETS.register_module(name=["SegDataset", "MSRSSegDataset"])
class SegDataset(Dataset):
    """One split of a fused segmentation dataset (the output of ``fuse_dataset``).

    Args:
        root: the fused dataset folder (holds ``manifest.json``).
        split: ``"train"`` or ``"test"``.
        num_classes: number of label ids (default: the dataset's classes; 9 for MSRS).
        augment: albumentations settings for training (``crop_size``, ``scale_range``,
            ``hflip_prob``); ``None`` for evaluation (whole images, no augmentation).
        ignore_index: mask value for padded pixels.
        seed: base seed of the per-sample augmentation generators.
        cache: keep decoded images and labels in memory after the first read (small sets).

    Each item is ``{"inputs": uint8 (3, H, W), "data_samples": {"mask": uint8 (H, W), "name",
    "img_path"}}``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        num_classes: int | None = None,
        augment: dict[str, Any] | None = None,
        ignore_index: int = 255,
        seed: int = 0,
        cache: bool = False,
    ):
        from fusion_perception.data.layouts import find_layout
        from fusion_perception.fusion.manifest import load_fused_dataset

        fused = load_fused_dataset(root)
        self.root = Path(root)
        self.split = split
        self.records: list[FusedRecord] = sorted(fused.split(split), key=lambda r: r.name)
        if not self.records:
            raise DatasetError(self.root, f"the fused dataset has no {split!r} images (a dataset with train and "
                                          "test splits expected, as MSRS has)")
        classes = tuple(fused.classes)
        self.num_classes = int(num_classes) if num_classes is not None else len(classes)
        self.ignore_index = int(ignore_index)
        self.seed = int(seed)
        self.epoch = 0
        self.transform = build_train_transform(ignore_index=ignore_index, **augment) if augment else None
        self.cache = bool(cache)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        layout = find_layout(fused.source_layout)
        self.unlabelled = layout.ignore_index if layout else None  # the masks' own unlabelled value, if any
        # mmengine hands `metainfo` to the evaluator (class names, colours) and stores it in checkpoints.
        self.metainfo = {"classes": classes, "palette": list(layout.colours(classes)) if layout else None,
                         "method": fused.method, "label": fused.label}

    def set_epoch(self, epoch: int) -> None:
        """Called before each training epoch so augmentation depends on the epoch (see module doc)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def load(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        """The checked (image ``HxWx3``, label ``HxW``) pair of item ``idx``."""
        if idx in self._cache:
            return self._cache[idx]
        rec = self.records[idx]
        img = read_rgb(rec.image_path)
        lab = read_label(rec.mask_path, self.num_classes, img.shape[:2], rec.image_path, self.unlabelled)
        if self.cache:
            self._cache[idx] = (img, lab)
        return img, lab

    def __getitem__(self, idx: int) -> dict[str, Any]:
        img, lab = self.load(idx)
        if self.transform is not None:
            self.transform.set_random_seed(mix_seed(self.seed, self.epoch, idx))
            out = self.transform(image=img, mask=lab)
            img, lab = out["image"], out["mask"]
        rec = self.records[idx]
        return {
            "inputs": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))),
            "data_samples": {
                "mask": torch.from_numpy(np.ascontiguousarray(lab)),
                "name": rec.name,
                "img_path": str(rec.image_path),
            },
        }


@FUNCTIONS.register_module()
def seg_collate(batch: Sequence[dict[str, Any]], ignore_index: int = 255) -> dict[str, Any]:
    """Stack items, padding images (0) and masks (``ignore_index``) bottom/right to the largest
    size in the batch; ``sizes`` keeps each item's own (H, W) so predictions can be cropped back."""
    h = max(int(b["inputs"].shape[1]) for b in batch)
    w = max(int(b["inputs"].shape[2]) for b in batch)
    inputs = torch.zeros((len(batch), 3, h, w), dtype=torch.uint8)
    masks = torch.full((len(batch), h, w), ignore_index, dtype=torch.uint8)
    sizes = []
    for i, b in enumerate(batch):
        bh, bw = int(b["inputs"].shape[1]), int(b["inputs"].shape[2])
        inputs[i, :, :bh, :bw] = b["inputs"]
        masks[i, :bh, :bw] = b["data_samples"]["mask"]
        sizes.append((bh, bw))
    return {
        "inputs": inputs,
        "data_samples": {
            "masks": masks,
            "sizes": sizes,
            "names": [b["data_samples"]["name"] for b in batch],
            "img_paths": [b["data_samples"]["img_path"] for b in batch],
        },
    }


def label_histogram(mask_paths: Sequence[str | Path], num_classes: int, ignore_index: int | None = None) -> np.ndarray:
    """Pixel count per class over label files (checked as :func:`read_label` does)."""
    hist = np.zeros(num_classes, np.int64)
    for path in mask_paths:
        hist += np.bincount(read_label(path, num_classes, ignore_index=ignore_index).ravel(),
                            minlength=num_classes)[:num_classes]
    return hist


def median_frequency_weights(hist: np.ndarray, power: float = 0.5) -> np.ndarray:
    """Cross-entropy class weights ``(median_freq / freq_c) ** power`` (median-frequency balancing,
    Eigen & Fergus 2015; ``power=0.5`` softens it). Classes with no pixels get weight 1."""
    hist = np.asarray(hist, np.float64)
    freq = hist / max(hist.sum(), 1.0)
    present = freq > 0
    if not present.any():
        return np.ones_like(freq)
    med = float(np.median(freq[present]))
    w = np.ones_like(freq)
    w[present] = (med / freq[present]) ** power
    return w


def class_weights(fused: Any, num_classes: int) -> list[float]:
    """The cross-entropy weights of ``class_weight='auto'``: median-frequency weights of the fused
    training split's labels, rounded as the run's config records them."""
    from fusion_perception.data.layouts import find_layout

    layout = find_layout(fused.source_layout)
    hist = label_histogram([r.mask_path for r in fused.split("train")], num_classes,
                           layout.ignore_index if layout else None)
    return [round(float(w), 4) for w in median_frequency_weights(hist)]
