"""Command-line pieces the tools share (the tools stay argument parsing plus one call)."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from typing import Callable

from fusion_perception.errors import user_error_message


class ConfigOptionsAction(argparse.Action):
    """``--cfg-options a.b=1 c=[2,3]`` -> ``{"a.b": 1, "c": [2, 3]}``, parsed by mmengine's own
    DictAction, as mmengine's tools do (imported when the option is given: the tools that only
    share this module, such as eval_fusion, do not load mmengine); an item without ``=`` is a
    usage error rather than a traceback."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[override]
        bad = [v for v in values if "=" not in v]
        if bad:
            parser.error(f"{option_string} expects KEY=VALUE, got {bad[0]!r}")
        from mmengine.config import DictAction

        DictAction(self.option_strings, self.dest, nargs=self.nargs)(parser, namespace, values, option_string)


FUSION_WEIGHTS_HELP = (
    "checkpoint of a learned fusion method (emma): a path, or 'official' for the authors' EMMA.pth "
    "(downloaded once into ~/.cache/fusion_perception and verified; the only download the toolkit makes). "
    "Default on the synthetic data: the toolkit's own EMMA checkpoint (see the README's model card)"
)


def add_fusion_weights(p: argparse.ArgumentParser) -> None:
    """``--weights PATH|official``, the same in every tool that fuses."""
    p.add_argument("--weights", metavar="PATH|official", default=None, help=FUSION_WEIGHTS_HELP)


def count(least: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``least`` (a usage error otherwise, not a traceback)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        return value

    return parse


def parse_seeds(p: argparse.ArgumentParser, text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; anything else is a usage error."""
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        p.error(f"--seeds expects comma-separated integers such as 0,1,2, got {text!r}")
        raise  # not reached: error() exits


def add_cfg_options(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument("--cfg-options", nargs="+", action=ConfigOptionsAction, default=None, metavar="KEY=VALUE",
                   help=f"override config entries, e.g. {example}")


def add_patch_training_args(p: argparse.ArgumentParser) -> None:
    """The mmengine run options of tools/train_sensing.py and tools/train_emma.py."""
    p.add_argument("--resume", action="store_true",
                   help="continue from the latest checkpoint in the work dir (implied when the work dir holds "
                        "a run with the same settings: the same command resumes a killed run)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace checkpoints in the work dir made with other settings (default: refuse)")
    p.add_argument("--launcher", choices=("none", "pytorch", "slurm", "mpi"), default="none",
                   help="distributed launcher (pytorch under torchrun)")
    p.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    p.add_argument("--epochs", type=count(1), default=None, help="override the config's epoch count")
    p.add_argument("--max-patches", type=count(1), default=None, help="override the config's patch count")
    p.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)
    add_cfg_options(p, "train_dataloader.batch_size=16")
    add_verbose(p)


def add_verbose(p: argparse.ArgumentParser) -> None:
    """``--verbose``, the same in every tool: library chatter on the terminal as well as in the run's log."""
    p.add_argument("--verbose", action="store_true",
                   help="show the libraries' output (mmengine, ultralytics, warnings) on the terminal too; "
                        "by default it goes to the run's log file")


def tool_main(main: Callable[[list[str] | None], int | None]) -> Callable[[list[str] | None], int]:
    """Wrap a tool's ``main(argv)``: an error the user can fix ends as one line
    ``error: <file>: <problem>`` on stderr with exit code 2 (:func:`user_error_message` decides
    which errors those are); Ctrl-C ends with 130 and a word on resuming. Anything else is a bug
    and keeps its traceback (``FUSION_PERCEPTION_TRACEBACK=1`` keeps it for user errors too)."""

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        try:
            return int(main(argv) or 0)
        except KeyboardInterrupt:
            print("interrupted: finished work is kept; run the same command again to resume", file=sys.stderr)
            return 130
        except Exception as e:  # noqa: BLE001 - sorted below: user errors become one line, bugs re-raise
            message = user_error_message(e)
            if message is None or os.environ.get("FUSION_PERCEPTION_TRACEBACK"):
                raise
            logging.getLogger("fusion_perception").debug("error details", exc_info=True)
            print(f"error: {message}", file=sys.stderr)
            return 2

    return wrapper
