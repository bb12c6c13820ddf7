"""``fusion-perception COMMAND [options]``: one console entry point for every tool.

Each command is a module here with ``build_parser(prog)`` and ``run(args)``; ``tools/<name>.py``
and ``fusion-perception <command>`` both parse with the first (built once the ``--import`` modules
are loaded: :func:`fusion_perception.cli_plugins.parse_args`) and call the second, through
:func:`fusion_perception.cli.tool_main` (one line per user error, exit code 2). The flags they
share come from :mod:`fusion_perception.cli`, with one name and one meaning in every command.

Importing this package loads no torch: the commands that want OpenMP's idle threads to sleep
(:attr:`Command.passive_openmp`) get it set before their module loads torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from fusion_perception import __version__
from fusion_perception.cli import tool_main
from fusion_perception.cli_plugins import parse_args, plugins_for_workers

PROG = "fusion-perception"


@dataclass(frozen=True)
class Command:
    """A subcommand: its module under ``fusion_perception.commands`` (also ``tools/<module>.py``)."""

    module: str
    summary: str
    passive_openmp: bool = False  # idle OpenMP threads sleep instead of spinning (set before torch loads)


COMMANDS: dict[str, Command] = {
    "make-synthetic": Command("make_synthetic", "write the seeded synthetic IR/visible scenes (M3FD, MSRS layouts)"),
    "describe": Command("describe_dataset", "validate a paired IR/visible dataset and print what it holds"),
    "fuse": Command("fuse_dataset", "fuse a paired dataset with one fusion method (the preprocessing stage)",
                    passive_openmp=True),
    "eval-fusion": Command("eval_fusion", "score fused images: nine fusion-quality metrics, target retention",
                           passive_openmp=True),
    "train-sensing": Command("train_sensing", "train EMMA's pseudo-sensing nets A_i and A_v (step 2)"),
    "train-emma": Command("train_emma", "train EMMA's U-Fuser through the sensing nets (step 3)"),
    "train-det": Command("train_det", "fuse, train YOLO on the fused M3FD, score mAP@0.5 (Table 3)"),
    "eval-det": Command("eval_det", "re-evaluate a detection run"),
    "train-seg": Command("train_seg", "fuse, train DeepLabV3+ on the fused MSRS, score mIoU (Table 4)",
                         passive_openmp=True),
    "eval-seg": Command("eval_seg", "re-evaluate a segmentation checkpoint", passive_openmp=True),
    "compare": Command("compare_methods", "method against method: detection and segmentation, every seed"),
    "compare-runs": Command("compare_runs", "two runs (or two sets of seeds) paired over their test images"),
    "demo": Command("demo", "the whole comparison on the built-in synthetic scenes (about 5 minutes)"),
}

ALIASES = {"fuse-dataset": "fuse", "describe-dataset": "describe", "compare-methods": "compare"}


def command_name(text: str) -> str:
    """A command's name from what was typed: ``train_det``, ``fuse-dataset`` (the script's name)
    and ``fuse`` all name theirs; anything else comes back unchanged."""
    name = text.replace("_", "-")
    return ALIASES.get(name, name)


def load_command(name: str) -> ModuleType:
    """The module of command ``name`` (:data:`COMMANDS`), imported after what must be set before
    torch loads; it has ``build_parser(prog=None)`` and ``run(args) -> int``."""
    command = COMMANDS[command_name(name)]
    if command.passive_openmp:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return importlib.import_module(f"{__name__}.{command.module}")


def command_main(name: str, prog: str | None = None) -> Callable[[list[str] | None], int]:
    """``main(argv)`` of command ``name``, what ``tools/<module>.py`` runs: the command's parser
    (``prog`` names it in usage lines; default: the script's name), then its ``run``, user errors
    ending in one line (:func:`~fusion_perception.cli.tool_main`)."""
    module = load_command(name)

    @tool_main
    def main(argv: list[str] | None = None) -> int:
        from fusion_perception.console import warnings_sorted

        with plugins_for_workers():
            args = parse_args(module.build_parser, argv, prog)  # --import modules first
            with warnings_sorted(verbose=getattr(args, "verbose", False)):  # a library's warnings: its chatter
                return module.run(args)

    return main


def run_command(name: str, argv: list[str]) -> int:
    """``fusion-perception NAME ARGV...``: the same as ``tools/<module>.py ARGV...``."""
    return command_main(name, f"{PROG} {command_name(name)}")(argv)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: ``COMMAND`` and the list of commands (their options: ``COMMAND --help``)."""
    listing = "\n".join(f"  {name:<16}{c.summary}" for name, c in COMMANDS.items())
    p = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Does this infrared-visible fusion method help the detector and the segmenter downstream?",
        epilog=f"commands:\n{listing}\n\n{PROG} COMMAND --help shows a command's options; "
               "tools/<module>.py runs the same command (e.g. tools/fuse_dataset.py = fuse).")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("command", metavar="COMMAND", choices=list(COMMANDS),
                   help=f"one of: {', '.join(COMMANDS)}")
    return p


def main(argv: list[str] | None = None) -> int:
    """The ``fusion-perception`` console script: ``COMMAND [options]``, dispatched to the command's
    ``run`` (the function ``tools/<module>.py`` calls)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    head = [command_name(argv[0])] if argv and not argv[0].startswith("-") else argv[:1]
    build_parser().parse_args(head)  # --help, --version, no command or an unknown one end here
    return run_command(head[0], argv[1:])


__all__ = ["COMMANDS", "Command", "build_parser", "command_main", "command_name", "load_command", "main", "run_command"]
