"""The command line's one vocabulary: every flag the tools share is defined here once, with one
name and one meaning, and every tool ends user errors in one line through :func:`tool_main`.

The tools (``tools/*.py`` and the ``fusion-perception`` subcommands of
:mod:`fusion_perception.commands`) stay argument parsing plus one call. Old spellings of a flag
(``--method``, ``--work-dir``, ``--batch``, ``--quiet``) keep working as aliases that ``--help``
does not show. ``--import`` and what it takes (importing before the parser is built, telling
worker processes) live in :mod:`fusion_perception.cli_plugins`.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import re
import sys
from typing import Any, Callable, Sequence

from fusion_perception.cli_plugins import add_import, import_plugins
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


def parser(prog: str | None, description: str, epilog: str | None = None,
           raw: bool = False) -> argparse.ArgumentParser:
    """A command's parser (``prog``: the name in its usage line, by default the script's);
    ``raw`` keeps the line breaks of ``description`` and ``epilog``."""
    return argparse.ArgumentParser(prog=prog, description=description, epilog=epilog,
                                   formatter_class=argparse.RawDescriptionHelpFormatter if raw
                                   else argparse.HelpFormatter)


def begin(args: argparse.Namespace, log_lines: bool = True) -> None:
    """What a command does first, once its arguments are parsed: torch's threads (``--threads``),
    log records as plain lines on stderr (``log_lines``), the ``--import`` modules."""
    set_threads(getattr(args, "threads", None))
    if log_lines:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    import_plugins(getattr(args, "imports", ()))


def option(p: argparse.ArgumentParser, name: str, *aliases: str, **kwargs: Any) -> argparse.Action:
    """``p.add_argument(name, *aliases, **kwargs)`` with the aliases accepted but left out of
    ``--help``, the usage line and error messages, which name ``name`` alone."""
    action = p.add_argument(name, *aliases, **kwargs)
    for alias in aliases:
        action.option_strings.remove(alias)  # argparse still maps the alias to this action
    return action


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


SEED_MAX = 2**32 - 1  # the largest seed numpy's and ultralytics' generators take


def seed_number(text: str) -> int:
    """An argparse type: a seed, an integer in 0 .. 2**32 - 1 (a usage error otherwise, not a
    traceback from the first generator that refuses it)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"a seed is an integer from 0 to {SEED_MAX}, not {value}")
    return value


class SeedsAction(argparse.Action):
    """``--seeds 0,1,2`` -> ``[0, 1, 2]``; anything else, or a seed given twice, is a usage error."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[override]
        try:
            seeds = [seed_number(x) for x in values.split(",")]
        except argparse.ArgumentTypeError as e:
            parser.error(f"--seeds expects comma-separated integers such as 0,1,2, got {values!r} ({e})")
        twice = sorted({s for s in seeds if seeds.count(s) > 1})
        if twice:  # a seed run twice is the same run: counted twice, it would shrink the spread
            parser.error(f"--seeds {values}: seed {', '.join(map(str, twice))} given more than once")
        setattr(namespace, self.dest, seeds)


class MethodWeightsAction(argparse.Action):
    """``--weights emma=EMMA.pth,didfuse=/w/didfuse`` (repeatable) -> ``{"emma": "EMMA.pth", "didfuse":
    "/w/didfuse"}``: a comma starts a new item where ``METHOD=`` follows it; an item without ``=`` is
    a usage error."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[override]
        given = dict(getattr(namespace, self.dest, None) or {})
        for item in re.split(r",(?=[\w.-]+=)", values):
            if "=" not in item:
                parser.error(f"--weights expects METHOD=PATH, got {values!r}")
            method, path = item.split("=", 1)
            given[method] = path
        setattr(namespace, self.dest, given)


# ----------------------------------------------------------------------------- what a tool reads

def add_data(p: argparse.ArgumentParser, help: str, metavar: str = "ROOT", required: bool = False) -> None:
    """``--data ROOT``: the dataset a tool reads (the synthetic default when a tool allows none)."""
    p.add_argument("--data", metavar=metavar, default=None, required=required, help=help)


def add_layout(p: argparse.ArgumentParser, which: str = "the dataset") -> None:
    """``--layout``, ``--label-view`` and ``--split-lists``: how a dataset is read (its layout,
    detected unless forced, and the layout's options; :func:`layout_spec` makes them one spec)."""
    from fusion_perception.data.layouts import layout_names

    p.add_argument("--layout", default="auto", choices=("auto", *layout_names()),
                   help=f"force the layout of {which} instead of detecting it (default: auto)")
    add_layout_options(p, which)


def add_layout_options(p: argparse.ArgumentParser, which: str = "the dataset") -> None:
    """``--label-view`` and ``--split-lists``: the options of the layout ``which`` is read as."""
    from fusion_perception.data.layouts.msrs_det import LABEL_VIEWS

    p.add_argument("--label-view", choices=LABEL_VIEWS, default=None,
                   help=f"which labels are the boxes of {which}, where it has labels per modality (msrs_det): "
                        "union (default: every object either camera shows, once), fusion (drawn on one "
                        "fused image), infrared or visible")
    p.add_argument("--split-lists", metavar="DIR", default=None,
                   help=f"a folder of train.txt, val.txt and test.txt naming the pairs of each split of {which}, "
                        "in place of its own split (e.g. benchmarks/msrs_det_split)")


def layout_spec(args: argparse.Namespace) -> str:
    """The layout spec ``--layout``, ``--label-view`` and ``--split-lists`` ask for (``auto`` when none)."""
    from fusion_perception.data.layouts import layout_spec as spec

    return spec(getattr(args, "layout", "auto"), label_view=args.label_view, split_lists=args.split_lists)


def add_skip_bad(p: argparse.ArgumentParser) -> None:
    """``--skip-bad``: bad items become warnings and a list of what was left out."""
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out unreadable or inconsistent items with a warning (and list them) instead of failing")


def add_run(p: argparse.ArgumentParser, holds: str) -> None:
    """``--run DIR``: the finished run an evaluation tool re-scores."""
    p.add_argument("--run", required=True, metavar="DIR", help=f"the run directory (holds {holds})")


def add_config(p: argparse.ArgumentParser, help: str, default: str | None = None) -> None:
    """``--config FILE|NAME``: a config file, or its name in the tool's configs/ folder."""
    p.add_argument("--config", default=default, metavar="FILE|NAME", help=help)


def add_cfg_options(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument("--cfg-options", nargs="+", action=ConfigOptionsAction, default=None, metavar="KEY=VALUE",
                   help=f"override config entries, e.g. {example}")


# ----------------------------------------------------------------------------- fusion methods

METHODS_HELP = ("a registered fusion method (ir, vi, mean, max, laplacian, dwt, gff, emma, didfuse, tardal, "
                "seafusion, or one an --import "
                "module registers) or folder:NAME=PATH for another method's precomputed fused images")

FUSION_WEIGHTS_HELP = (
    "checkpoint of a learned fusion method. emma: a path, or 'official' for the authors' EMMA.pth "
    "(downloaded once into ~/.cache/fusion_perception and verified; the only download the toolkit makes); "
    "default on the synthetic data: the toolkit's own EMMA checkpoint (see the README's model card). "
    "didfuse (a folder holding its two .pkl files), tardal (tardal.pt), seafusion (its .pth): the authors' "
    "weights, which the toolkit does not ship"
)


def add_fusion(p: argparse.ArgumentParser, default: str = "emma") -> None:
    """``--fusion METHOD`` (alias ``--method``): the one fusion method a tool fuses with; with
    ``--import MODULE`` (:func:`add_import`), which makes add-on methods known."""
    option(p, "--fusion", "--method", default=default, metavar="METHOD", help=f"{METHODS_HELP} (default: {default})")
    add_import(p)


def add_methods(p: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--methods A,B,C``: the fusion methods a comparison runs (required without a default); with
    ``--import MODULE``."""
    p.add_argument("--methods", default=default, required=default is None, metavar="A,B,...",
                   help=f"comma-separated fusion methods, each {METHODS_HELP}"
                        + ("" if default is None else f" (default: {default})"))
    add_import(p)


def add_run_inputs(p: argparse.ArgumentParser, data_help: str, data_metavar: str, config_help: str) -> None:
    """What a downstream training run reads: ``--data``, ``--fusion`` (and ``--import``),
    ``--weights`` and ``--config``."""
    add_data(p, data_help, data_metavar)
    add_fusion(p)
    add_fusion_weights(p)
    add_config(p, config_help)


def add_fusion_weights(p: argparse.ArgumentParser) -> None:
    """``--weights PATH|official``, the same in every tool that fuses with one method."""
    p.add_argument("--weights", metavar="PATH|official", default=None, help=FUSION_WEIGHTS_HELP)


def add_method_weights(p: argparse.ArgumentParser) -> None:
    """``--weights METHOD=PATH`` (repeatable), in the tools that fuse with several methods: a dict."""
    p.add_argument("--weights", action=MethodWeightsAction, default={}, metavar="METHOD=PATH",
                   help="fusion checkpoint of a method, e.g. emma=EMMA.pth or emma=official, several comma-separated "
                        "(tardal=tardal.pt,didfuse=FOLDER) or repeated (default for emma on the synthetic "
                        "data: the toolkit's own checkpoint; didfuse, tardal and seafusion need their "
                        "authors' weights)")


# ----------------------------------------------------------------------------- what a tool writes

def add_out(p: argparse.ArgumentParser, help: str, default: str | None = None, required: bool = False) -> None:
    """``--out DIR`` (alias ``--work-dir``): the one folder a tool writes its results into."""
    option(p, "--out", "--work-dir", default=default, required=required, metavar="DIR", help=help)


def add_overwrite(p: argparse.ArgumentParser, what: str = "results in --out") -> None:
    """``--overwrite``: replace output made with other settings, which is refused otherwise."""
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace {what} made with other settings (default: refuse and say what differs)")


def add_run_outputs(p: argparse.ArgumentParser, out_help: str) -> None:
    """Where a downstream training run writes, and when it trains again: ``--out``, ``--fused-dir``
    (the fused dataset it reads, or writes first), ``--force`` and ``--overwrite``."""
    add_out(p, out_help)
    p.add_argument("--fused-dir", default=None, metavar="DIR",
                   help="fused dataset to use or write (default: the shared cache work_dirs/fused/<method>/<dataset>, "
                        "where tools/fuse_dataset.py writes)")
    add_force(p)
    add_overwrite(p, "a run in --out (or a fused dataset in --fused-dir)")


def add_force(p: argparse.ArgumentParser) -> None:
    """``--force``: redo a finished run even when its settings match (which reuses it otherwise).
    Not ``--overwrite``: a run made with other settings is still refused without that."""
    p.add_argument("--force", action="store_true", help="retrain even when a finished run with the same settings "
                                                        "exists (default: reuse its results)")


def add_no_progress(p: argparse.ArgumentParser) -> None:
    """``--no-progress`` (alias ``--quiet``): no progress bars."""
    option(p, "--no-progress", "--quiet", action="store_true", help="no progress bars")


def add_verbose(p: argparse.ArgumentParser) -> None:
    """``--verbose``, the same in every tool: library chatter on the terminal as well as in the run's log."""
    p.add_argument("--verbose", action="store_true",
                   help="show the libraries' output (mmengine, ultralytics, warnings) on the terminal too; "
                        "by default it goes to the run's log file")


# ----------------------------------------------------------------------------- how a tool runs

DEVICE_HELP = "cpu, cuda, cuda:N, or GPU ids such as 0 or 0,1,2,3 (default: the GPU when this machine has one, else cpu)"


def add_device(p: argparse.ArgumentParser, note: str) -> None:
    """``--device``: ``cpu``, ``cuda``, ``cuda:N`` or ultralytics' GPU ids (``0``, ``0,1,2,3``) in
    every tool, with one default for all of them (:func:`fusion_perception.devices.resolve_device`);
    ``note`` says what the tool does with several ids."""
    p.add_argument("--device", default=None, metavar="DEVICE", help=f"{DEVICE_HELP}; {note}")


def add_batch_size(p: argparse.ArgumentParser, help: str, default: int | None = None,
                   type: Callable[[str], int] = int) -> None:
    """``--batch-size N`` (alias ``--batch``): how many images go through at once."""
    option(p, "--batch-size", "--batch", type=type, default=default, metavar="N", help=help)


def add_workers(p: argparse.ArgumentParser, help: str, least: int | None = 0, default: int | None = None) -> None:
    """``--workers N``: the parallel readers (data-loader processes or I/O threads) of a tool; at
    least ``least`` (any integer when None: the library checks it)."""
    p.add_argument("--workers", type=int if least is None else count(least), default=default, metavar="N", help=help)


def add_threads(p: argparse.ArgumentParser, help: str = "CPU threads for torch (default: torch's)") -> None:
    """``--threads N``: torch's CPU threads (:func:`set_threads`)."""
    p.add_argument("--threads", type=count(1), default=None, metavar="N", help=help)


def set_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)`` when ``--threads`` was given."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def add_seed(p: argparse.ArgumentParser, help: str = "random seed (default: 0)") -> None:
    """``--seed N``: the one seed of a run."""
    p.add_argument("--seed", type=seed_number, default=0, help=help)


def add_seeds(p: argparse.ArgumentParser) -> None:
    """``--seeds 0,1,2``: the training seeds of a comparison, a list of integers."""
    p.add_argument("--seeds", action=SeedsAction, default=[0], help="comma-separated training seeds (default: 0)")


def add_paired(p: argparse.ArgumentParser, reference: bool = True) -> None:
    """The paired bootstrap over test images: ``--reference NAME``, ``--resamples N``, ``--bootstrap-seed N``."""
    if reference:
        p.add_argument("--reference", default=None, metavar="NAME",
                       help="the method every other is compared with, paired over the test images "
                            "(default: the better of ir and vi on the headline metric)")
    p.add_argument("--resamples", type=count(0), default=1000,
                   help="bootstrap resamples of the test images per seed (default: 1000; 0: no intervals)")
    p.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the resampling (default: 0)")


def add_epochs(p: argparse.ArgumentParser, help: str, type: Callable[[str], int] = int) -> None:
    """``--epochs N``: overrides the config's epoch count."""
    p.add_argument("--epochs", type=type, default=None, metavar="N", help=help)


def add_task(p: argparse.ArgumentParser, help: str, tasks: Sequence[str]) -> None:
    """``--task NAME|both``: one of ``tasks`` or ``both``, every one of them."""
    p.add_argument("--task", choices=(*tasks, "both"), default="both", help=help)


def add_resume(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", action="store_true",
                   help="continue from the latest checkpoint in --out (implied when --out holds a run with the "
                        "same settings: the same command resumes a killed run)")


def add_launcher(p: argparse.ArgumentParser, choices: tuple[str, ...] = ("none", "pytorch", "slurm", "mpi")) -> None:
    p.add_argument("--launcher", choices=choices, default="none",
                   help="distributed launcher (pytorch: DDP under torchrun)")
    p.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)


def add_amp(p: argparse.ArgumentParser) -> None:
    p.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")


def add_patch_training_args(p: argparse.ArgumentParser) -> None:
    """The mmengine run options of tools/train_sensing.py and tools/train_emma.py."""
    add_resume(p)
    add_overwrite(p, "checkpoints in --out")
    add_launcher(p)
    add_amp(p)
    add_epochs(p, "override the config's epoch count", type=count(1))
    p.add_argument("--max-patches", type=count(1), default=None, help="override the config's patch count")
    add_cfg_options(p, "train_dataloader.batch_size=16")
    add_no_progress(p)
    add_verbose(p)


# ----------------------------------------------------------------------------- one error path

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
