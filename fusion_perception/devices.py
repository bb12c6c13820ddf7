"""The one ``--device`` rule, for every tool: the GPU when this machine has one, else the CPU.

- :func:`resolve_device`: ``--device`` as given (``cpu``, ``cuda``, ``cuda:N``, ultralytics' GPU ids
  ``0`` / ``0,1``) checked against the machine, or, when none is given, the default above;
- :func:`torch_device` (:func:`process_device` once resolved): the one torch device of a process
  for such a string (GPU ids become ``cuda:<id>``: a torchrun process's own, else the first).

Both take the machine's GPU count as an argument (``None``: ask torch), so the rule is tested
with the machines it describes, not by patching torch.
"""

from __future__ import annotations

import os
import re

from fusion_perception.errors import ConfigError

_GPU_IDS = re.compile(r"^\d+(,\d+)*$")


def gpu_count() -> int:
    """The CUDA GPUs torch sees on this machine."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _has_mps() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(device: str | int | None = None, gpus: int | None = None, option: str = "--device") -> str:
    """The device a tool runs on: ``device`` as given, lower-cased and checked against a machine with
    ``gpus`` CUDA GPUs (``None``: this one), or, when ``device`` is None or empty, ``"cuda"`` on a
    machine with a GPU and ``"cpu"`` otherwise. A device the machine lacks is a :class:`ConfigError`
    saying what is missing."""
    text = "" if device is None else str(device).strip().lower()
    if text == "":
        gpus = gpu_count() if gpus is None else gpus
        return "cuda" if gpus > 0 else "cpu"
    if text == "cpu":
        return text
    if text == "mps":
        if not _has_mps():
            raise ConfigError(f"{option} mps: no Apple GPU here; use {option} cpu")
        return text
    if text == "cuda":
        ids = [0]
    elif text.startswith("cuda:") and text[5:].isdigit():
        ids = [int(text[5:])]
    elif _GPU_IDS.match(text):
        ids = [int(i) for i in text.split(",")]
    else:
        raise ConfigError(f"{option} {device!r} is not a device: use cpu, cuda, cuda:N or GPU ids such as 0 or 0,1")
    gpus = gpu_count() if gpus is None else gpus
    if gpus == 0:
        raise ConfigError(f"{option} {device}: torch sees no CUDA GPU on this machine; use {option} cpu")
    absent = [i for i in ids if i >= gpus]
    if absent:
        raise ConfigError(f"{option} {device}: GPU {absent[0]} asked for but this machine has {gpus} "
                          f"(ids 0..{gpus - 1})")
    return text


def torch_device(device: str | int | None = None, gpus: int | None = None, option: str = "--device") -> str:
    """The torch device of one process for ``device``, resolved first (:func:`resolve_device`): see
    :func:`process_device`."""
    return process_device(resolve_device(device, gpus, option), option)


def process_device(device: str, option: str = "--device") -> str:
    """The torch device of one process for a resolved ``device``: GPU ids become ``cuda:<id>``,
    under torchrun the id of this process's ``LOCAL_RANK``, else the first (as ultralytics'
    prediction does); any other device stays as it is."""
    if not _GPU_IDS.match(device):
        return device
    ids = device.split(",")
    if len(ids) > 1 and "LOCAL_RANK" in os.environ:
        rank = int(os.environ["LOCAL_RANK"])
        if rank >= len(ids):
            raise ConfigError(f"{option} {device}: no GPU id for local process {rank}; give one id per process")
        return f"cuda:{ids[rank]}"
    return f"cuda:{ids[0]}"


__all__ = ["gpu_count", "process_device", "resolve_device", "torch_device"]
