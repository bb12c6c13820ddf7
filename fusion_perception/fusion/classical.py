"""Classical fusion baselines, registered: ir, vi, mean, max, Laplacian pyramid, wavelet (DWT) and
guided-filter fusion (GFF).

The rules themselves are batched torch functions in :mod:`fusion_perception.fusion.classical_rules`
(on the filters of :mod:`fusion_perception.filters`); the registered ``Fuser`` classes below are
thin wrappers that hold the parameters (they go into manifests).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Sequence

import torch

from fusion_perception.errors import ConfigError
from fusion_perception.fusion.base import Fuser
from fusion_perception.filters import wavelet_filters
from fusion_perception.fusion.classical_rules import GFFParams, fuse_dwt, fuse_gff, fuse_laplacian, fuse_max, fuse_mean
from fusion_perception.registry import FUSERS


# ----------------------------------------------------------------------------- registered fusers


def _coerce(method: str, key: str, value: Any, default: Any) -> Any:
    """Give ``value`` the type of the default (3 -> 3.0 for a float; 4.0 -> 4 for an int)."""
    kind = type(default)
    if isinstance(value, kind) and not isinstance(value, bool):
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    raise ConfigError(f"method {method!r}: parameter {key}={value!r} must be {kind.__name__}")


class ClassicalFuser(Fuser):
    """A training-free method: ``defaults`` lists its parameters (unknown ones are rejected)."""

    defaults: dict[str, Any] = {}

    def __init__(self, device: str | torch.device = "cpu", **params: Any):
        if "weights" in params:
            if params["weights"] is not None:
                raise ConfigError(f"method {self.name!r} has no weights "
                                  "(--weights is for learned methods such as emma)")
            params.pop("weights")
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            allowed = ", ".join(self.defaults) or "none"
            raise ConfigError(f"method {self.name!r} has no parameter(s) {', '.join(unknown)}; "
                              f"its parameters: {allowed}")
        merged = dict(self.defaults)
        for key, value in params.items():
            merged[key] = _coerce(self.name, key, value, self.defaults[key])
        super().__init__(device, **merged)
        self.validate()

    def validate(self) -> None:
        """Check parameter values; raise ConfigError."""

    def fuse(self, ir: torch.Tensor, vi: torch.Tensor, names: Sequence[str] | None = None) -> torch.Tensor:
        return self.run(ir, vi, **self.params).clamp_(0.0, 1.0)

    @staticmethod
    def run(ir: torch.Tensor, vi: torch.Tensor, **params: Any) -> torch.Tensor:
        raise NotImplementedError


@FUSERS.register_module(name="ir")
class IRFuser(ClassicalFuser):
    """The infrared image alone (the 'IR' row of the paper's tables); stays a gray thermal image."""

    color_output = False

    @staticmethod
    def run(ir, vi, **params):
        return ir.clone()


@FUSERS.register_module(name="vi")
class VIFuser(ClassicalFuser):
    """The visible image alone; colour comes back through the central Y/CrCb recombination."""

    @staticmethod
    def run(ir, vi, **params):
        return vi.clone()


@FUSERS.register_module(name="mean")
class MeanFuser(ClassicalFuser):
    @staticmethod
    def run(ir, vi, **params):
        return fuse_mean(ir, vi)


@FUSERS.register_module(name="max")
class MaxFuser(ClassicalFuser):
    @staticmethod
    def run(ir, vi, **params):
        return fuse_max(ir, vi)


@FUSERS.register_module(name="laplacian")
class LaplacianFuser(ClassicalFuser):
    """Laplacian-pyramid fusion (Burt & Adelson pyramid; average base, max-abs details)."""

    defaults = {"levels": 4}
    revision = 2  # 2: exact at the borders (revision 1 framed every image)

    def validate(self) -> None:
        if not 1 <= self.params["levels"] <= 12:
            raise ConfigError(f"laplacian: levels must be in 1..12, not {self.params['levels']}")

    @staticmethod
    def run(ir, vi, levels):
        return fuse_laplacian(ir, vi, levels)


@FUSERS.register_module(name="dwt")
class DWTFuser(ClassicalFuser):
    """Wavelet fusion: periodized orthogonal DWT, average low band, max-abs high bands."""

    defaults = {"wavelet": "db2", "levels": 3}

    def validate(self) -> None:
        wavelet_filters(self.params["wavelet"])  # raises ConfigError for an unusable wavelet
        if not 1 <= self.params["levels"] <= 12:
            raise ConfigError(f"dwt: levels must be in 1..12, not {self.params['levels']}")

    @staticmethod
    def run(ir, vi, wavelet, levels):
        return fuse_dwt(ir, vi, wavelet, levels)


@FUSERS.register_module(name="gff")
class GFFFuser(ClassicalFuser):
    """Guided filtering based fusion (Li et al. 2013) with the paper's parameters."""

    defaults = {f.name: f.default for f in fields(GFFParams)}  # r1, eps1, r2, eps2, avg_size, gauss_radius/sigma

    def validate(self) -> None:
        p = self.params
        if p["r1"] < 1 or p["r2"] < 1 or p["gauss_radius"] < 1:
            raise ConfigError("gff: r1, r2 and gauss_radius must be >= 1")
        if p["avg_size"] < 1 or p["avg_size"] % 2 == 0:
            raise ConfigError(f"gff: avg_size must be odd, not {p['avg_size']}")
        if p["eps1"] <= 0 or p["eps2"] <= 0 or p["gauss_sigma"] <= 0:
            raise ConfigError("gff: eps1, eps2 and gauss_sigma must be > 0")

    @staticmethod
    def run(ir, vi, **params):
        return fuse_gff(ir, vi, **params)


# The methods this module registered, in the order above (their names are in the decorators only).
CLASSICAL_METHODS: tuple[str, ...] = tuple(
    key for key, cls in FUSERS.module_dict.items() if cls.__module__ == __name__)

__all__ = ["CLASSICAL_METHODS", "ClassicalFuser"]
