"""The stage's I/O pipeline: decode pairs in threads, fuse them in batches, encode in threads.

:class:`Pipeline` fuses a list of ``(pair record, output path)`` with one fuser on one device.
Decoding and encoding run in thread pools so the device that fuses (a GPU when asked) is not kept
waiting; pairs of one size and colour-ness are batched; every image is written atomically
(:func:`fusion_perception.data.image_io.write_image`), so after a crash or a kill it is either
whole or absent.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from fusion_perception.data.image_io import is_gray, luminance01, read_image, to_float01, write_image
from fusion_perception.data.records import PairRecord, SkippedItem
from fusion_perception.errors import ConfigError, DatasetError, is_out_of_memory, memory_limit_note
from fusion_perception.fusion.base import Fuser, fuse_with_colour

# ----------------------------------------------------------------------------- decode


@dataclass
class _Pair:
    rec: PairRecord
    path: Path  # output file
    ir: np.ndarray  # (1, H, W): uint8 (scaled to [0, 1] on the device), or float32 in [0, 1]
    vi: np.ndarray  # (1 or 3, H, W), likewise


def _decode(rec: PairRecord, path: Path) -> _Pair:
    ir_img = read_image(rec.ir_path)
    vi_img = read_image(rec.vi_path)
    if ir_img.shape[:2] != vi_img.shape[:2]:
        raise DatasetError(
            rec.vi_path,
            f"visible image is {vi_img.shape[1]}x{vi_img.shape[0]} but its IR image {rec.ir_path} is "
            f"{ir_img.shape[1]}x{ir_img.shape[0]} (the pair must be registered)",
        )
    return _Pair(rec, path, _gray_input(ir_img), _gray_input(vi_img) if is_gray(vi_img) else _colour_input(vi_img))


def _gray_input(img: np.ndarray) -> np.ndarray:
    """``(1, H, W)`` luminance: 8-bit stays 8-bit (a quarter of the bytes to batch and move; the
    division by 255 happens on the device, to the same float32 values), anything else float32."""
    if img.dtype == np.uint8 and (img.ndim == 2 or is_gray(img)):
        return np.ascontiguousarray(img if img.ndim == 2 else img[..., 0])[None]
    return np.ascontiguousarray(luminance01(img), dtype=np.float32)[None]


def _colour_input(img: np.ndarray) -> np.ndarray:
    """``(3, H, W)`` RGB: uint8 as is, 16-bit scaled to float32 in [0, 1]."""
    x = img if img.dtype == np.uint8 else to_float01(img)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def _prefetch(pool: ThreadPoolExecutor, fn, items: Iterable, depth: int) -> Iterator[tuple[Any, Future]]:
    """Submit ``fn(*item)`` ahead, at most ``depth`` in flight; yield (item, future) in order."""
    it = iter(items)
    queue: deque = deque((x, pool.submit(fn, *x)) for x in islice(it, depth))
    while queue:
        item, fut = queue.popleft()
        nxt = next(it, None)
        if nxt is not None:
            queue.append((nxt, pool.submit(fn, *nxt)))
        yield item, fut


def _batches(pairs: Iterable[_Pair], batch_size: int, max_pending: int) -> Iterator[list[_Pair]]:
    """Group decoded pairs into batches of one size and colour-ness, keeping few pending."""
    buckets: dict[tuple, list[_Pair]] = defaultdict(list)
    pending = 0
    for p in pairs:
        key = (p.ir.shape[-2:], p.vi.shape[0], p.ir.dtype, p.vi.dtype)
        buckets[key].append(p)
        pending += 1
        if len(buckets[key]) >= batch_size:
            pending -= len(buckets[key])
            yield buckets.pop(key)
        elif pending > max_pending:  # many sizes: flush the fullest bucket rather than hoard images
            key = max(buckets, key=lambda k: len(buckets[k]))
            pending -= len(buckets[key])
            yield buckets.pop(key)
    for key in list(buckets):
        yield buckets.pop(key)


# ----------------------------------------------------------------------------- fuse


def _to_device01(arrays: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """Stack one batch's arrays and move them to ``device`` as float32 in [0, 1]."""
    x = torch.from_numpy(np.stack(arrays))
    x = x.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else x.to(device)
    return x.to(torch.float32).div_(255.0) if x.dtype == torch.uint8 else x


def _fuse_batch(fuser: Fuser, batch: list[_Pair], device: torch.device, gray_output: bool) -> np.ndarray:
    """Fuse one batch on ``device``; returns uint8 ``(B, H, W, C)`` on the host."""
    ir = _to_device01([p.ir for p in batch], device)
    vi = _to_device01([p.vi for p in batch], device)
    names = [p.rec.name for p in batch]
    fused = fuse_with_colour(fuser, ir, vi, names, gray_output)
    b, _, h, w = ir.shape
    if fused.ndim != 4 or fused.shape[0] != b or fused.shape[1] not in (1, 3) or tuple(fused.shape[-2:]) != (h, w):
        raise ConfigError(f"fusion method {fuser.name!r} returned shape {tuple(fused.shape)} for a batch of "
                          f"{tuple(ir.shape)}; a fuser returns (B, 1, H, W) for (B, 1, H, W) inputs")
    # one reduction instead of an elementwise isfinite: a NaN or inf anywhere makes the sum so
    if not torch.isfinite(fused.sum()):
        raise DatasetError(batch[0].rec.ir_path, f"fusion method {fuser.name!r} produced NaN or infinite values "
                                                 f"for {', '.join(names)} (its parameters: {fuser.params or 'none'})")
    # quantise on the device: a quarter of the bytes to copy back; in place, the result is ours
    u8 = fused.float().clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
    return u8.permute(0, 2, 3, 1).cpu().numpy()


@contextlib.contextmanager
def _compute_threads(device: torch.device, workers: int) -> Iterator[None]:
    """On the CPU, leave cores to the decode/encode threads: torch's intra-op threads spin-wait
    when a core they need is busy, which costs far more than one thread fewer."""
    before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(max(1, min(before, (os.cpu_count() or 1) - workers)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _out_of_memory(batch: list[_Pair], label: str, device: torch.device) -> DatasetError:
    h, w = batch[0].ir.shape[-2:]
    what = f"{len(batch)} {w}x{h} pairs at once" if len(batch) > 1 else f"this {w}x{h} pair"
    advice = ("run the same command with --batch-size 1 (finished images are kept)" if len(batch) > 1
              else "free memory, or fuse on a machine with more")
    return DatasetError(batch[0].rec.ir_path, f"out of memory fusing {what} with {label} on {device}"
                                              f"{memory_limit_note()}; {advice}")


# ----------------------------------------------------------------------------- encode


def _write(path: Path, img: np.ndarray) -> None:
    write_image(path, img[..., 0] if img.shape[-1] == 1 else img)


# ----------------------------------------------------------------------------- the pipeline


@dataclass
class Pipeline:
    """Read–batch–write with one fuser on one device. After :meth:`run` (even one that raised),
    ``fused`` counts the images written and ``bad`` holds the pairs left out under ``skip_bad``."""

    fuser: Fuser
    device: torch.device
    label: str  # the method's label, in messages
    batch_size: int = 4
    workers: int = 2  # decode threads and, separately, encode threads
    gray_output: bool = False
    skip_bad: bool = False  # leave out pairs that fail to decode instead of failing
    fused: int = field(default=0, init=False)
    bad: dict[str, SkippedItem] = field(default_factory=dict, init=False)

    def run(self, items: Iterable[tuple[PairRecord, Path]], bar: Any) -> None:
        """Fuse every ``(record, output path)`` of ``items``; ``bar`` (a tqdm) counts each pair done."""
        decode_pool = ThreadPoolExecutor(self.workers, thread_name_prefix="fuse-decode")
        write_pool = ThreadPoolExecutor(self.workers, thread_name_prefix="fuse-encode")
        writes: deque[Future] = deque()
        try:
            with torch.inference_mode(), _compute_threads(self.device, self.workers):
                for batch in _batches(self._decoded(decode_pool, items, bar), self.batch_size,
                                      max_pending=4 * self.batch_size):
                    images = self._fuse(batch)
                    for pair, img in zip(batch, images):
                        writes.append(write_pool.submit(_write, pair.path, img))
                    self._drain(writes, bar, limit=4 * self.batch_size)
            self._drain(writes, bar, limit=0)
        finally:
            decode_pool.shutdown(wait=True, cancel_futures=True)
            write_pool.shutdown(wait=True, cancel_futures=True)

    def _decoded(self, pool: ThreadPoolExecutor, items: Iterable[tuple[PairRecord, Path]],
                 bar: Any) -> Iterator[_Pair]:
        depth = 2 * self.batch_size + 2 * self.workers
        for (rec, _), fut in _prefetch(pool, _decode, items, depth=depth):
            try:
                yield fut.result()
            except DatasetError as e:
                if not self.skip_bad:
                    raise
                self.bad[rec.name] = SkippedItem(e.path or rec.ir_path, e.problem)
                warnings.warn(f"skipped {e.path}: {e.problem}", UserWarning, stacklevel=2)
                bar.update(1)

    def _fuse(self, batch: list[_Pair]) -> np.ndarray:
        try:
            return _fuse_batch(self.fuser, batch, self.device, self.gray_output)
        except Exception as e:  # noqa: BLE001 - only an allocation failure is turned into advice
            if not is_out_of_memory(e):
                raise
            raise _out_of_memory(batch, self.label, self.device) from None

    def _drain(self, writes: deque[Future], bar: Any, limit: int) -> None:
        while writes and (len(writes) > limit or writes[0].done()):
            writes.popleft().result()  # re-raises a failed write
            self.fused += 1
            bar.update(1)
