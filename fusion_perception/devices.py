"""Devices, resolved in one place: the ``--device`` option checked once before any work (a device
this machine has, or one clear line), and what each library calls it.

- :func:`check_device`: ``cpu``, ``cuda``, ``cuda:N`` or ultralytics' GPU ids (``0``, ``0,1``);
- :func:`torch_device`: the torch device of such a string (``"0,1"`` -> ``"cuda:0"``);
- :func:`resolve_device`: a torch device name for tools that run torch themselves (mmengine),
  CUDA by default when present.
"""

from __future__ import annotations

import re

import torch

from fusion_perception.errors import ConfigError

_GPU_IDS = re.compile(r"^\d+(,\d+)*$")


def check_device(device: str | int | torch.device | None, option: str = "--device") -> str:
    """``device`` ("cpu", "cuda", "cuda:1", or ultralytics' GPU ids "0" / "0,1") as given, after
    checking this machine has it; :class:`ConfigError` saying what is missing otherwise."""
    text = "cpu" if device is None else str(device).strip().lower()
    if text in ("", "cpu"):
        return "cpu"
    if text == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError(f"{option} mps: no Apple GPU here; use {option} cpu")
        return text
    ids: list[int]
    if text == "cuda":
        ids = [0]
    elif text.startswith("cuda:") and text[5:].isdigit():
        ids = [int(text[5:])]
    elif _GPU_IDS.match(text):
        ids = [int(i) for i in text.split(",")]
    else:
        raise ConfigError(f"{option} {device!r} is not a device: use cpu, cuda, cuda:N or GPU ids such as 0 or 0,1")
    if not torch.cuda.is_available():
        raise ConfigError(f"{option} {device}: torch sees no CUDA GPU on this machine; use {option} cpu")
    count = torch.cuda.device_count()
    absent = [i for i in ids if i >= count]
    if absent:
        raise ConfigError(f"{option} {device}: GPU {absent[0]} asked for but this machine has {count} "
                          f"(ids 0..{count - 1})")
    return text


def torch_device(device: str | int | None) -> str:
    """The fusion/inference device for an ultralytics device string (``"0,1"`` -> ``"cuda:0"``)."""
    d = "cpu" if device is None else str(device).strip().lower()
    if d in ("", "cpu", "mps") or d.startswith("cuda"):
        return d or "cpu"
    return f"cuda:{d.split(',')[0]}"


def resolve_device(device: str | None) -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` checked (:func:`check_device`); ``None``: CUDA when present.

    For the tools that hand the device to torch or mmengine as it is (no GPU-id lists)."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"device must be 'cpu' or 'cuda', not {device!r}")
    return check_device(device)


__all__ = ["check_device", "resolve_device", "torch_device"]
