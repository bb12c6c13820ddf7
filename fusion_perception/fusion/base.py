"""The fuser interface, building a registered method by name, and central colour handling.

A fuser maps batches of IR and visible *luminance* tensors ``(B, 1, H, W)`` in [0, 1], on
any device, to fused luminance of the same shape. Colour is handled once, here: a colour
visible image is fused on its Y channel and recombined with its Cr/Cb.

A new method is one registered class in one file (the registry, :data:`FUSERS`, lives in
:mod:`fusion_perception.registry`; the tools load a file outside the package with ``--import``)::

    @FUSERS.register_module(name="mymethod")  # its ``name`` attribute becomes "mymethod"
    class MyFuser(Fuser):
        def fuse(self, ir, vi, names=None):
            return torch.maximum(ir, vi)
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from fusion_perception.data.image_io import BT601
from fusion_perception.errors import ConfigError, did_you_mean
from fusion_perception.outputs import path_segment
from fusion_perception.registry import FUSERS


class Fuser:
    """Base class of every fusion method.

    Subclasses implement :meth:`fuse`. ``color_output`` says whether the result is
    recombined with the visible image's chroma (``False`` for the ``ir`` baseline, whose
    output must stay a thermal image).
    """

    name: str = "fuser"  # set to the registered name by ``FUSERS.register_module``
    color_output: bool = True
    # Raised when a method's output changes for the same parameters (a fixed bug), so caches
    # made by the old code no longer match.
    revision: int = 1
    # Parameters that change how the method computes but not its result beyond float rounding
    # (memory layout, compilation): a cached fused dataset made with other values is reused.
    runtime_params: frozenset[str] = frozenset()

    def __init__(self, device: str | torch.device = "cpu", **params: Any):
        self.device = torch.device(device)
        self.params: dict[str, Any] = dict(params)

    def fuse(self, ir: torch.Tensor, vi: torch.Tensor, names: Sequence[str] | None = None) -> torch.Tensor:
        """Fuse ``(B, 1, H, W)`` IR and visible luminance in [0, 1]; ``names`` are file stems."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description of the method and its parameters (for manifests)."""
        cfg = {"method": self.name, "params": {k: _jsonable(v) for k, v in self.params.items()}}
        return {**cfg, "revision": self.revision} if self.revision > 1 else cfg

    def checkpoint_sha256(self) -> str | None:
        """sha256 of the weights file the method loaded, where it has one."""
        return None

    @classmethod
    def resolve_weights(cls, weights: str | Path | None, data_root: str | Path | None) -> Path | None:
        """The weights this method fuses ``data_root`` with (``None``: the synthetic default) when the
        user gave ``weights``: those, as a path. A learned method with a default of its own (EMMA's
        checkpoint on the synthetic scenes) or a download (``official``) says so here."""
        return None if weights is None else Path(weights).expanduser()

    @classmethod
    def cache_label(cls, label: str, weights: Path | None, sha256: str | None) -> str:
        """The shared cache's folder for ``label`` fused with ``weights``: the label itself without
        weights, ``<label>-<first 8 hex of their sha256>`` with them, so that images of other weights
        neither replace nor collide with each other (a learned method names its default's folder)."""
        return label if weights is None or not sha256 else f"{label}-{sha256[:8]}"

    def to(self, device: str | torch.device) -> "Fuser":
        self.device = torch.device(device)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, params={self.params})"


@contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads raised to ``n`` for the block (left alone for ``None``): a learned
    fuser takes every core the process has, also where the fuse stage leaves cores to its threads."""
    before = torch.get_num_threads()
    if n is not None and n > before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return str(v)


def registered_methods() -> list[str]:
    """Names ``build_fuser`` accepts (``folder:NAME=PATH`` comes on top)."""
    return sorted(FUSERS.names())


def parse_method_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"mean"`` -> ("mean", {}); ``"folder:CDDFuse=/p"`` -> ("folder", {"label": "CDDFuse", "root": "/p"})."""
    if spec == "folder":
        raise ConfigError("method 'folder' reads another method's results: write folder:NAME=PATH "
                          "(e.g. folder:CDDFuse=/results/CDDFuse)")
    if spec.startswith("folder:"):
        body = spec[len("folder:"):]
        if "=" not in body or not body.split("=", 1)[0] or not body.split("=", 1)[1]:
            raise ConfigError(f"method {spec!r}: a folder method is written folder:NAME=PATH")
        label, root = body.split("=", 1)
        return "folder", {"label": path_segment(label, "method name"), "root": root}
    return spec, {}


def method_label(spec: str) -> str:
    """The name a method goes by in tables and output folders (``folder:X=...`` -> ``X``): one
    folder name, never a path (:func:`~fusion_perception.outputs.path_segment`)."""
    name, extra = parse_method_spec(spec)
    return path_segment(extra.get("label", name), "method name")


def build_fuser(spec: str, device: str | torch.device = "cpu", **params: Any) -> Fuser:
    """Build a registered fuser from a method spec such as ``"emma"`` or ``"folder:CDDFuse=PATH"``.

    Unknown names raise :class:`ConfigError` listing the registered ones.
    """
    name, extra = parse_method_spec(spec)
    return fuser_class(name)(device=device, **extra, **params)


def fuser_class(name: str) -> type[Fuser]:
    """The class registered as method ``name``; an unknown name is a ConfigError listing the known ones."""
    cls = FUSERS.get(name)
    if cls is None:
        known = registered_methods()
        raise ConfigError(f"unknown fusion method {name!r}{did_you_mean(name, known)}; registered methods: "
                          f"{', '.join(known)} (or folder:NAME=PATH for precomputed results)")
    return cls


def fuse_with_colour(
    fuser: Fuser,
    ir: torch.Tensor,
    vi: torch.Tensor,
    names: Sequence[str] | None = None,
    gray_output: bool = False,
) -> torch.Tensor:
    """Fuse a batch where the visible images may be colour.

    ``ir``: ``(B, 1, H, W)``; ``vi``: ``(B, 1, H, W)`` gray or ``(B, 3, H, W)`` RGB, in [0, 1].
    Returns ``(B, 3, H, W)`` RGB when ``vi`` is colour and the method keeps colour (and
    ``gray_output`` is false), else ``(B, 1, H, W)``.

    A fuser whose results carry their own colour (the ``folder`` method reading another
    method's colour outputs) may define ``fuse_colour(ir, vi, names, gray_output)``.
    """
    own_colour = getattr(fuser, "fuse_colour", None)
    if own_colour is not None:
        return own_colour(ir, vi, names, gray_output)
    if vi.shape[1] == 3:
        ycrcb = rgb_to_ycrcb(vi)
        fused_y = fuser.fuse(ir, ycrcb[:, :1], names)
        if fuser.color_output and not gray_output:
            ycrcb[:, :1] = fused_y  # the visible image's chroma with the fused luminance
            return ycrcb_to_rgb(ycrcb)
        return fused_y
    return fuser.fuse(ir, vi, names)


# ----------------------------------------------------------------------------- colour conversions
_KR, _KG, _KB = BT601


def rgb_to_ycrcb(rgb: torch.Tensor) -> torch.Tensor:
    """``(..., 3, H, W)`` RGB in [0, 1] to YCrCb (OpenCV's convention, chroma offset 0.5)."""
    r, g, b = rgb.unbind(-3)
    out = torch.empty_like(rgb, memory_format=torch.contiguous_format)
    y, cr, cb = out.unbind(-3)
    # Written into one output, operation for operation ``y = KR r + KG g + KB b``,
    # ``cr = (r - y) 0.713 + 0.5``, ``cb = (b - y) 0.564 + 0.5`` (the same roundings), no stack.
    torch.mul(r, _KR, out=y).add_(g * _KG).add_(b * _KB)
    torch.sub(r, y, out=cr).mul_(0.713).add_(0.5)
    torch.sub(b, y, out=cb).mul_(0.564).add_(0.5)
    return out


def ycrcb_to_rgb(ycrcb: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycrcb`; the result is clamped to [0, 1]."""
    y, cr, cb = ycrcb.unbind(-3)
    cr, cb = cr - 0.5, cb - 0.5
    out = torch.empty_like(ycrcb, memory_format=torch.contiguous_format)
    r, g, b = out.unbind(-3)
    # r = y + 1.403 cr, g = y - 0.714 cr - 0.344 cb, b = y + 1.773 cb (centred chroma), in place
    torch.add(y, cr * 1.403, out=r)
    torch.sub(y, cr * 0.714, out=g).sub_(cb * 0.344)
    torch.add(y, cb * 1.773, out=b)
    return out.clamp_(0.0, 1.0)
