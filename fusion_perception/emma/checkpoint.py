"""Loading and saving EMMA weights in the published format.

A released ``EMMA.pth`` is a plain ``state_dict`` of the U-Fuser; ``Ai.pth``/``Av.pth``
are plain ``state_dict``s of the sensing U-Net. :func:`load_official_checkpoint` reads
those, and also checkpoints trained here (mmengine's ``{"state_dict": ..., "meta": ...}``
whose keys carry a prefix such as ``fuser.``, ``sensing.``, ``net.`` or ``module.``).
Widths are read off the tensor shapes, so narrow checkpoints load without a config.
Files are always read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

import torch
from torch import nn

from fusion_perception.checkpoints import allow_mmengine_checkpoints, why_unreadable
from fusion_perception.errors import ConfigError, DatasetError, check_input_file
from fusion_perception.files import atomic_writer
from fusion_perception.emma.sensing_unet import SensingUNet
from fusion_perception.emma.ufuser import UFuser

Kind = Literal["auto", "ufuser", "sensing"]
_KINDS = ("ufuser", "sensing")
_EXPECTED = "give a U-Fuser or sensing state dict such as EMMA.pth or one trained here"
_LABEL = {"ufuser": "U-Fuser (EMMA.pth)", "sensing": "sensing U-Net (Ai.pth/Av.pth)"}
# Prefixes tried first, in this order, when several would match (an EMMA training
# checkpoint holds the fuser and the frozen sensing nets side by side).
_PREFERRED = {"ufuser": ("", "fuser.", "model.fuser.", "module.", "net.", "model."),
              "sensing": ("", "sensing.", "net.", "module.", "model.")}


# ----------------------------------------------------------------------------- reading
def load_state_dict_file(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read a weights file safely and return every tensor in it under a dotted key.

    Nested dicts (mmengine's ``{"state_dict": {...}}``, ``{"model": {...}}``) are
    flattened, so the keys come out as ``state_dict.fuser.V_en_1.embed.weight``; the
    prefix is resolved by :func:`load_official_checkpoint`.
    """
    path = check_input_file(path, "weights file")
    try:
        with allow_mmengine_checkpoints():
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means "not a checkpoint we can read"
        raise DatasetError(path, why_unreadable(path, e, "EMMA weights", _EXPECTED)) from e
    flat: dict[str, torch.Tensor] = {}
    _flatten(obj, "", flat)
    if not flat:
        raise DatasetError(path, _not_a_state_dict(obj))
    return flat


def _not_a_state_dict(obj: Any) -> str:
    """What a safely loaded file without tensors holds (ultralytics registers its model classes as
    safe once it has loaded a checkpoint, so a YOLO file may load and arrive here)."""
    values = list(obj.values()) if isinstance(obj, Mapping) else [obj]
    kinds = sorted({f"{type(v).__module__}.{type(v).__name__}" for v in values if isinstance(v, nn.Module)})
    if any(k.startswith("ultralytics.") for k in kinds):
        return (f"is an ultralytics YOLO checkpoint, not EMMA weights (it holds {', '.join(kinds[:3])}); give a "
                "U-Fuser or sensing state dict such as EMMA.pth or one trained here")
    return f"contains no tensors (a {type(obj).__name__}), so it is not a state dict"


def _flatten(obj: Any, prefix: str, out: dict[str, torch.Tensor]) -> None:
    if isinstance(obj, torch.Tensor):
        out[prefix[:-1]] = obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            if isinstance(k, str):
                _flatten(v, f"{prefix}{k}.", out)


# ----------------------------------------------------------------------------- matching
def infer_ufuser_config(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """``{"channels": (c1..c4), "heads": h}`` from a U-Fuser state dict's shapes."""
    try:
        chans = tuple(int(sd[f"V_en_{k}.embed.weight"].shape[0]) for k in range(1, 5))
        heads = int(sd["V_en_1.GlobalFeature.attn.scale"].shape[0])
    except (KeyError, IndexError) as e:
        raise KeyError(f"cannot infer U-Fuser widths: {e}") from None
    return {"channels": chans, "heads": heads}


def infer_sensing_widths(sd: Mapping[str, torch.Tensor]) -> tuple[int, ...]:
    """The five widths of a sensing U-Net state dict."""
    try:
        return tuple(int(sd[f"down{k}.conv.0.weight"].shape[0]) for k in range(1, 6))
    except (KeyError, IndexError) as e:
        raise KeyError(f"cannot infer sensing U-Net widths: {e}") from None


def _config_for(kind: str, sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    try:
        return infer_ufuser_config(sd) if kind == "ufuser" else {"widths": infer_sensing_widths(sd)}
    except KeyError:
        return {}


def _build(kind: str, config: Mapping[str, Any]) -> nn.Module:
    return UFuser(**config) if kind == "ufuser" else SensingUNet(**config)


def _expected_shapes(kind: str, config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return dict(_expected_shapes_cached(kind, tuple(sorted(config.items()))))


@lru_cache(maxsize=32)
def _expected_shapes_cached(kind: str, items: tuple) -> tuple[tuple[str, tuple[int, ...]], ...]:
    config = dict(items)
    try:
        with torch.device("meta"):  # shapes only: no memory, no init cost
            model = _build(kind, config)
    except ValueError:
        with torch.device("meta"):
            model = _build(kind, {})
    return tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())


# First key component of every published key, per network: a prefix is whatever precedes one.
_TOP_LEVEL = {
    "ufuser": tuple(f"{p}{k}." for p in ("V_en_", "I_en_", "f_", "de_") for k in range(1, 5))
    + tuple(f"{p}{k}." for p in ("V_down", "I_down") for k in range(1, 4)) + ("up4.", "up3.", "up2.", "last."),
    "sensing": tuple(f"down{k}." for k in range(1, 6)) + tuple(f"up_sample{k}." for k in range(2, 6))
    + tuple(f"up{k}." for k in range(1, 5)) + ("last.",),
}


def _candidate_prefixes(keys: Iterable[str], kind: str) -> list[str]:
    found = {""}
    tops = _TOP_LEVEL[kind]
    for k in keys:
        for i in [0] + [j + 1 for j, ch in enumerate(k) if ch == "."]:
            if k.startswith(tops, i):
                found.add(k[:i])
    pref = [p for p in _PREFERRED[kind] if p in found]
    return pref + sorted(found - set(pref), key=lambda p: (p.count("."), p))


def _sub(sd: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    n = len(prefix)
    return {k[n:]: v for k, v in sd.items() if k.startswith(prefix)}


class _Match:
    def __init__(self, kind: str, prefix: str, sd: dict[str, torch.Tensor]):
        self.kind, self.prefix, self.sd = kind, prefix, sd
        self.config = _config_for(kind, sd)
        expected = _expected_shapes(kind, self.config)
        self.missing = [k for k in expected if k not in sd]
        self.unexpected = [k for k in sd if k not in expected]
        self.wrong_shape = [f"{k} {tuple(sd[k].shape)} != {expected[k]}"
                            for k in expected if k in sd and tuple(sd[k].shape) != expected[k]]
        self.overlap = len(expected) - len(self.missing)

    @property
    def exact(self) -> bool:
        return bool(self.config) and not (self.missing or self.unexpected or self.wrong_shape)


def _first(items: list[str], n: int = 6) -> str:
    shown = ", ".join(items[:n])
    return shown + (f", ... (+{len(items) - n} more)" if len(items) > n else "")


def _describe_failure(best: _Match, kinds: tuple[str, ...]) -> str:
    what = " or ".join(_LABEL[k] for k in kinds)
    where = f" under prefix {best.prefix!r}" if best.prefix else ""
    parts = [f"not a {what} state dict; closest match is {_LABEL[best.kind]}{where}:"]
    if best.missing:
        parts.append(f"{len(best.missing)} missing keys [{_first(best.missing)}]")
    if best.unexpected:
        parts.append(f"{len(best.unexpected)} unexpected keys [{_first(best.unexpected)}]")
    if best.wrong_shape:
        parts.append(f"{len(best.wrong_shape)} keys with the wrong shape [{_first(best.wrong_shape, 3)}]")
    return " ".join(parts)


def resolve_state_dict(
    flat: Mapping[str, torch.Tensor], kind: Kind = "auto", prefix: str | None = None, path: str | Path | None = None
) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    """Find the network in a flat tensor dict: ``(kind, config, state_dict)`` or a DatasetError.

    ``prefix`` (e.g. ``"sensing_v"``) selects the sub-dict whose key prefix ends with it, so
    mmengine's outer ``state_dict.`` need not be spelled out.
    """
    if kind not in ("auto", *_KINDS):
        raise ConfigError(f"kind must be 'auto', 'ufuser' or 'sensing', got {kind!r}")
    kinds: tuple[str, ...] = _KINDS if kind == "auto" else (kind,)
    want = None if prefix is None else (prefix if prefix.endswith(".") or not prefix else prefix + ".")
    best: _Match | None = None
    for kd in kinds:
        exact: list[_Match] = []
        for p in _candidate_prefixes(flat.keys(), kd):
            if want is not None and not (p == want or p.endswith("." + want)):
                continue
            sub = _sub(flat, p)
            m = _Match(kd, p, sub)
            if m.exact:
                exact.append(m)
            elif best is None or m.overlap > best.overlap:
                best = m
        if len(exact) > 1:  # e.g. fuser. and sensing_i. both hold ... : take the conventional name
            names = {n.rstrip(".").rsplit(".", 1)[-1] for n in _PREFERRED[kd] if n}
            named = [m for m in exact if not m.prefix or m.prefix.rstrip(".").rsplit(".", 1)[-1] in names]
            if len(named) > 1:
                # mmengine's EMAHook keeps the moving average, the weights to deploy, in
                # ``state_dict`` and the raw ones in ``ema_state_dict``
                named = [m for m in named if not m.prefix.startswith("ema_state_dict.")] or named
            if len(named) != 1:
                raise DatasetError(path, f"holds {len(exact)} {_LABEL[kd]} networks under the prefixes "
                                         f"{', '.join(repr(m.prefix) for m in exact)}; choose one with prefix=")
            exact = named
        if exact:
            return kd, exact[0].config, exact[0].sd
    if best is None:
        raise DatasetError(path, f"no keys start with prefix {prefix!r}")
    raise DatasetError(path, _describe_failure(best, kinds))


# ----------------------------------------------------------------------------- public API
def load_official_checkpoint(
    path: str | Path,
    kind: Kind = "auto",
    map_location: str | torch.device = "cpu",
    prefix: str | None = None,
) -> nn.Module:
    """Build the network a weights file holds and load it (strictly); returned in eval mode.

    ``kind``: ``"ufuser"`` (EMMA.pth), ``"sensing"`` (Ai.pth/Av.pth) or ``"auto"``.
    Accepts the published plain state dicts and checkpoints trained here (any key prefix,
    e.g. mmengine's ``state_dict.fuser.``); ``prefix`` picks one explicitly when a file
    holds several networks of the same kind. A file that holds no such network raises
    :class:`DatasetError` naming the file and listing missing and unexpected keys.
    """
    flat = load_state_dict_file(path, map_location=map_location)
    kd, config, sd = resolve_state_dict(flat, kind, prefix=prefix, path=path)
    sd = {k: (v.float() if v.is_floating_point() and v.dtype != torch.float32 else v) for k, v in sd.items()}
    with torch.device("meta"):
        model = _build(kd, config)
    try:
        model.load_state_dict(sd, strict=True, assign=True)
    except RuntimeError as e:  # pragma: no cover - shapes were checked above
        raise DatasetError(path, f"state dict does not fit {_LABEL[kd]}: {e}") from e
    return model.to(map_location).eval()


def save_official_state_dict(module: nn.Module | Mapping[str, torch.Tensor], path: str | Path) -> Path:
    """Write a plain state dict under the published key names, atomically (temp file + rename)."""
    path = Path(path)
    sd = module.state_dict() if isinstance(module, nn.Module) else dict(module)
    sd = {k: v.detach().cpu().contiguous().clone() for k, v in sd.items()}
    with atomic_writer(path, sync=True) as f:
        torch.save(sd, f)
    return path
