"""Every registry of the project, in one module that imports nothing of the project.

- :data:`FUSERS`: the fusion methods (``build_fuser("laplacian")``);
- :data:`DATASET_LAYOUTS`: the dataset layouts on disk (``load_dataset(root)`` detects them);
- :data:`TASKS`: the downstream tasks (``det``, ``seg``: what the comparison, the tables and the
  run skeleton ask of a task, :class:`fusion_perception.runs.Task`).

Registration is lazy, as mmengine's ``Registry(locations=...)`` does it: a registry knows the
modules that hold its built-in entries and imports them the first time a name is looked up or
listed. The modules import this one, never the reverse, so there is no import circle, and the
entry point of a module (the fuse stage, a tool) starts without loading what it does not use.

A new entry is one file whose name is written once, in its decorator::

    from fusion_perception.fusion.base import Fuser
    from fusion_perception.registry import FUSERS

    @FUSERS.register_module(name="mymethod")  # the class's ``name`` becomes "mymethod"
    class MyFuser(Fuser):
        def fuse(self, ir, vi, names=None):
            return torch.maximum(ir, vi)

Inside the package such a file is found where its registry looks (``fusion_perception/fusion/``
for methods, and EMMA's ``fusion_perception/emma/fuser.py``; ``fusion_perception/data/layouts/``
for layouts; the ``task`` module of a task's own package, ``fusion_perception/<task>/task.py``,
for tasks); outside it, the tools import it with ``--import MODULE`` (:func:`import_plugins`).
mmengine's own registries stay for what mmengine builds (models, datasets, hooks): the fuse stage
and the tools around it start without mmengine's import and run where only torch and OpenCV are.
"""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
import threading
from pathlib import Path
from typing import Callable, Iterable, TypeVar

T = TypeVar("T", bound=Callable)


class Registry:
    """Names to classes: ``@REGISTRY.register_module(name="x")`` adds one, ``REGISTRY.get("x")`` finds it.

    The calls and errors of mmengine's ``Registry`` that the project uses: a name registered twice
    is a ``KeyError`` unless ``force=True``; ``name`` may be a list of names. ``locations``: the
    modules imported (once, in order) before the first lookup, so that their entries register;
    ``"package.*"`` stands for every module of that package (in name order), ``"package.*.module"``
    for that module of every sub-package that has one, and a location whose module is absent (a
    partial install) is passed over. ``name_attr``: the class attribute a
    registered class gets its (first) registered name in, unless its body sets it.
    """

    def __init__(self, name: str, locations: Iterable[str] = (), name_attr: str | None = None):
        self.name = name
        self.locations: tuple[str, ...] = tuple(locations)
        self.name_attr = name_attr
        self.module_dict: dict[str, Callable] = {}
        self._imported = False
        self._importing = False
        self._lock = threading.RLock()  # two threads looking up at once import the locations once

    def register_module(self, name: str | list[str] | None = None, force: bool = False,
                        module: T | None = None) -> T | Callable[[T], T]:
        def register(cls: T) -> T:
            if not callable(cls):
                raise TypeError(f"module must be Callable, but got {type(cls)}")
            names = [cls.__name__] if name is None else [name] if isinstance(name, str) else list(name)
            for key in names:
                if not force and key in self.module_dict:
                    raise KeyError(f"{self.name} {key!r} is already registered (by "
                                   f"{self.module_dict[key].__module__}); register yours under another name")
                self.module_dict[key] = cls
            if self.name_attr and isinstance(cls, type) and self.name_attr not in vars(cls):
                setattr(cls, self.name_attr, names[0])  # the name is written once, in the decorator
            return cls

        return register(module) if module is not None else register

    def import_locations(self) -> None:
        """Import the modules in ``locations`` (once); their entries register as they load."""
        if self._imported:
            return
        with self._lock:
            if self._imported or self._importing:  # a location looking up while it loads
                return
            self._importing = True
            try:
                for location in self.locations:
                    _import_location(location)
                self._imported = True
            finally:
                self._importing = False

    def get(self, name: str) -> Callable | None:
        self.import_locations()
        return self.module_dict.get(name)

    def names(self) -> list[str]:
        """Registered names: the built-in ones in the order of their locations, then the others
        in the order they registered (a plugin imported before the first lookup comes last too)."""
        self.import_locations()
        return sorted(self.module_dict, key=lambda key: self._location_rank(self.module_dict[key].__module__))

    def _location_rank(self, module: str) -> int:
        """Index of the first location that names ``module`` (itself or its package's ``.*``)."""
        package = module.rpartition(".")[0]
        return next((i for i, location in enumerate(self.locations)
                     if location == module or location == f"{package}.*"
                     or (".*." in location and fnmatch.fnmatchcase(module, location))), len(self.locations))

    def __contains__(self, name: object) -> bool:
        self.import_locations()
        return name in self.module_dict

    def __len__(self) -> int:
        self.import_locations()
        return len(self.module_dict)

    def __repr__(self) -> str:
        return f"Registry(name={self.name!r}, items={sorted(self.module_dict)})"


def _import_location(location: str) -> None:
    if ".*." in location:  # "package.*.module": that module of every sub-package holding one
        package, module_name = location.split(".*.", 1)
        paths = importlib.import_module(package).__path__
        for info in sorted(pkgutil.iter_modules(paths), key=lambda m: m.name):
            # looked for on disk, so that the sub-packages without one are not imported
            if info.ispkg and any((Path(p) / info.name / f"{module_name}.py").is_file() for p in paths):
                importlib.import_module(f"{package}.{info.name}.{module_name}")
        return
    package = location[:-2] if location.endswith(".*") else None
    try:
        module = importlib.import_module(package or location)
    except ModuleNotFoundError as e:
        if e.name is None or not ((package or location) + ".").startswith(e.name + "."):
            raise  # the module is there but something it needs is not: a real error
        return
    if package is not None:  # a new file in the package registers without being listed anywhere
        for info in sorted(pkgutil.iter_modules(module.__path__), key=lambda m: m.name):
            importlib.import_module(f"{package}.{info.name}")


class PluginImportError(ImportError):
    """A module named with ``--import`` could not be imported; the message names it and why."""


def import_plugins(modules: Iterable[str]) -> list[str]:
    """Import the modules a user named (``--import MODULE`` in the tools), in order, so that the
    fusion methods, dataset layouts or tasks they register are usable everywhere.

    The modules are found on ``sys.path`` (``PYTHONPATH``). Returns the names imported. Raises
    :class:`PluginImportError` (an ``ImportError``), whose message reads
    ``--import MODULE: <why>``, for a module that is not found and for one that fails as it loads
    (raises, registers a name taken already); the tools print it as their one-line error.
    """
    imported = []
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise PluginImportError(f"--import {module}: {e}") from None
        except Exception as e:  # noqa: BLE001 - the module's own code failed: its error, named, in one line
            why = e.args[0] if isinstance(e, KeyError) and e.args else f"{type(e).__name__}: {e}"
            raise PluginImportError(f"--import {module}: it fails as it loads ({why})") from e
        imported.append(module)
    return imported


# the generic methods, then EMMA (its fuser lives with its networks and training in one package)
FUSERS = Registry("fuser", name_attr="name", locations=("fusion_perception.fusion.*", "fusion_perception.emma.fuser"))
# The built-in layouts are listed for the order their names are shown in (detection tries them by
# their detect_order); a new file in the package is found by the ".*" without being listed.
DATASET_LAYOUTS = Registry("dataset layout", name_attr="name", locations=(
    "fusion_perception.data.layouts.pairs",
    "fusion_perception.data.layouts.m3fd",
    "fusion_perception.data.layouts.tardal",
    "fusion_perception.data.layouts.msrs",
    "fusion_perception.data.layouts.*",
))
# A task is a package of its own (data, model, train, evaluate, report) whose task.py registers it.
TASKS = Registry("task", name_attr="name", locations=(
    "fusion_perception.detection.task",
    "fusion_perception.segmentation.task",
    "fusion_perception.*.task",
))

__all__ = ["Registry", "FUSERS", "DATASET_LAYOUTS", "TASKS", "PluginImportError", "import_plugins"]
