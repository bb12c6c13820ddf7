"""Semantic-segmentation scores: a confusion matrix over a whole split, IoU per class, mIoU.

Pure batched tensor functions that run on any device. The scores of a split come from ONE
confusion matrix summed over all its pixels (the paper's protocol), not from a mean of
per-image IoUs.

Convention for classes that never occur: a class absent from both the prediction and the
target has ``TP + FP + FN = 0``, so its IoU is undefined; it is reported as ``NaN`` and left
out of the mean (mIoU is the mean over classes whose IoU is defined). A class that occurs in
the target but is never predicted (or the reverse) has IoU 0 and does count.
"""

from __future__ import annotations

import torch

__all__ = ["confusion_matrix", "iou_from_confusion", "IOU_CONVENTION"]

IOU_CONVENTION = (
    "IoU = TP / (TP + FP + FN) from one confusion matrix summed over every pixel of the split; "
    "pixels whose target is ignore_index are left out; a class absent from both prediction and "
    "target has undefined IoU (NaN, null in JSON) and is excluded from mIoU."
)


def confusion_matrix(
    pred: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    ignore_index: int | None = 255,
) -> torch.Tensor:
    """Pixel confusion matrix ``cm[t, p]`` = number of pixels of target class t predicted as p.

    Args:
        pred: integer class ids, any shape (e.g. ``(B, H, W)``), same shape as ``target``.
        target: integer class ids; pixels equal to ``ignore_index`` are skipped.
        num_classes: number of classes C.
        ignore_index: target value to skip (``None``: skip nothing).

    Returns:
        ``(C, C)`` int64 tensor on the inputs' device; rows are targets, columns predictions.

    Raises:
        ValueError: shapes differ, or a non-ignored id lies outside ``0..C-1``.
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    pred = pred.reshape(-1).long()
    target = target.reshape(-1).long()
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    if target.numel():
        bad_t = (target < 0) | (target >= num_classes)
        bad_p = (pred < 0) | (pred >= num_classes)
        if bool(bad_t.any()) or bool(bad_p.any()):
            which = "target" if bool(bad_t.any()) else "prediction"
            vals = torch.unique(torch.cat((target[bad_t], pred[bad_p])))[:8].tolist()
            raise ValueError(f"{which} holds class ids {vals} outside 0..{num_classes - 1}")
    # One bincount over t*C+p is the whole matrix; much faster than a per-class loop.
    flat = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def iou_from_confusion(cm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU per class and mIoU from a ``(C, C)`` confusion matrix (rows target, columns prediction).

    ``IoU_c = cm[c, c] / (row_c + col_c - cm[c, c])``. Classes with an empty union (absent from
    both prediction and target) get ``NaN`` and are excluded from the mean; mIoU is ``NaN`` only
    when no class is defined at all.

    Returns:
        ``(per_class, miou)``: float64 tensors of shape ``(C,)`` and ``()``.
    """
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square (C, C), got {tuple(cm.shape)}")
    cm = cm.double()
    tp = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - tp
    per_class = torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))
    return per_class, per_class.nanmean()
