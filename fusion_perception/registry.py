"""Registries of named classes, as mmengine's ``Registry`` keeps them, without loading mmengine.

The fusion methods live in one (``fusion_perception.fusion.base.FUSERS``): the fuse stage and the
tools around it start without mmengine's import (its config machinery) and run where only torch
and OpenCV are installed. mmengine's own registries stay for what mmengine builds (models,
datasets, hooks). This module imports nothing of the project.
"""

from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T", bound=Callable)


class Registry:
    """Names to classes: ``@REGISTRY.register_module(name="x")`` adds one, ``REGISTRY.get("x")`` finds it.

    The calls and errors of mmengine's ``Registry`` that the project uses: a name registered twice
    is a ``KeyError`` unless ``force=True``; ``name`` may be a list of names.
    """

    def __init__(self, name: str):
        self.name = name
        self.module_dict: dict[str, Callable] = {}

    def register_module(self, name: str | list[str] | None = None, force: bool = False,
                        module: T | None = None) -> T | Callable[[T], T]:
        def register(cls: T) -> T:
            if not callable(cls):
                raise TypeError(f"module must be Callable, but got {type(cls)}")
            names = [cls.__name__] if name is None else [name] if isinstance(name, str) else list(name)
            for key in names:
                if not force and key in self.module_dict:
                    raise KeyError(f"{key} is already registered in {self.name} at "
                                   f"{self.module_dict[key].__module__}")
                self.module_dict[key] = cls
            return cls

        return register(module) if module is not None else register

    def get(self, name: str) -> Callable | None:
        return self.module_dict.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.module_dict

    def __len__(self) -> int:
        return len(self.module_dict)

    def __repr__(self) -> str:
        return f"Registry(name={self.name!r}, items={sorted(self.module_dict)})"
