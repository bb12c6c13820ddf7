"""The tools' ``--import MODULE``: add-on modules that register fusion methods, dataset layouts or
tasks, imported before a tool's parser is built and again in each worker process it spawns.

Before the parser, because a parser lists registered names (``--layout``'s choices, the compare
command's ``--<task>-data`` flags): the modules must have registered theirs by then
(:func:`parse_args`, which every tool parses with). The workers, because the processes of
``compare --jobs N`` start without the command's imports: :data:`IMPORT_ENV` names them
(:func:`plugins_for_workers`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import Callable, Iterable, Iterator

IMPORT_ENV = "FUSION_PERCEPTION_IMPORT"
"""Where :func:`import_plugins` lists the modules it imported, so that worker processes spawned
later (``compare_methods.py --jobs N``) import them too; set for one command
(:func:`plugins_for_workers`)."""


def add_import(p: argparse.ArgumentParser) -> None:
    """``--import MODULE`` (repeatable): a module that registers add-on fusion methods, dataset
    layouts or tasks, imported first (:func:`parse_args`, :func:`import_plugins`)."""
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import a Python module first (one that registers extra fusion methods, dataset layouts "
                        "or tasks); repeatable")


def import_plugins(modules: Iterable[str]) -> None:
    """Import each ``--import`` module (one that registers fusion methods, dataset layouts or tasks)
    with :func:`fusion_perception.registry.import_plugins` and list it in
    ``$FUSION_PERCEPTION_IMPORT``, which worker processes spawned later import too; a module that
    cannot be imported is a :class:`~fusion_perception.registry.PluginImportError` naming it
    (one line: ``error: --import MODULE: <why>``)."""
    from fusion_perception.registry import import_plugins as import_modules

    done = [m for m in os.environ.get(IMPORT_ENV, "").split(",") if m]
    done += [m for m in import_modules(list(modules)) if m not in done]
    if done:
        os.environ[IMPORT_ENV] = ",".join(done)


@contextlib.contextmanager
def plugins_for_workers() -> Iterator[None]:
    """The scope of a command's ``--import`` list in :data:`IMPORT_ENV`: the worker processes it
    spawns import those modules too, and the list is as before once it ends (a command called in
    this process leaves no trace in the next)."""
    before = os.environ.get(IMPORT_ENV)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(IMPORT_ENV, None)
        else:
            os.environ[IMPORT_ENV] = before


def parse_args(build_parser: Callable[[str | None], argparse.ArgumentParser], argv: list[str] | None = None,
               prog: str | None = None) -> argparse.Namespace:
    """``build_parser(prog).parse_args(argv)`` with the ``--import`` modules of ``argv`` imported
    first, for a tool that takes ``--import``: the parser is built again once they are, so that
    its lists of registered names (choices, per-task flags, ``--help``) include theirs. A tool
    without ``--import`` parses exactly as before (an ``--import`` there stays a usage error)."""
    p = build_parser(prog)
    if p.get_default("imports") is None:  # no --import flag (add_import's default is a list)
        return p.parse_args(argv)
    modules = _imports_of(argv)
    if modules:
        import_plugins(modules)
        p = build_parser(prog)
    return p.parse_args(argv)


def _imports_of(argv: list[str] | None) -> list[str]:
    """The ``--import`` values of ``argv``, the rest left to the tool's own parser (which also
    reports a malformed ``--import``)."""
    # no abbreviations: "--im" may be another flag of the tool (--imgsz)
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    add_import(pre)
    try:
        return pre.parse_known_args(argv)[0].imports
    except argparse.ArgumentError:  # "--import" without a module: the tool's parser says so
        return []


__all__ = ["IMPORT_ENV", "add_import", "import_plugins", "parse_args", "plugins_for_workers"]
