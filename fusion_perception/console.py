"""What a person sees: a line per stage and a progress bar; library chatter goes to the run's log.

mmengine's logger and hook tables, ultralytics' per-batch bars and deprecation warnings are
useful after a failure and noise before it. :func:`chatter_to` sends everything written to the
process's stdout and stderr (Python streams and the file descriptors, so C libraries and child
processes too) to a log file for the length of a run; :func:`stage` and :func:`progress` keep
writing to the terminal. ``verbose=True`` leaves the terminal as it is, chatter included.
"""

from __future__ import annotations

import contextlib
import errno
import io
import math
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence, TextIO

_CONSOLE: list[TextIO] = []  # the terminal while chatter is redirected (innermost last)


def console() -> TextIO:
    """Where a person reads: the terminal, even while library chatter goes to a log file."""
    return _CONSOLE[-1] if _CONSOLE else sys.stderr


def stage(message: str) -> None:
    """One line of what the toolkit is doing (``fuse emma: 200 images reused from ...``)."""
    print(message, file=console(), flush=True)


def progress(iterable: Any = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             disable: bool = False, leave: bool = False, **kw: Any):
    """A tqdm bar on the terminal (not in the log file); gone when done unless ``leave``."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, file=console(), disable=disable, dynamic_ncols=True,
                leave=leave, **kw)


_PACKAGE = Path(__file__).resolve().parent


@contextlib.contextmanager
def warnings_sorted(verbose: bool = False) -> Iterator[None]:
    """Within the block, Python's warnings are sorted (a tool's whole run is one such block): the
    toolkit's own (a pair skipped, an option ignored) are one plain line ``warning: ...`` for the
    person; a library's (NumPy's, PIL's decompression-bomb guard, a deprecation) are chatter: the
    run's log gets them while one is open (:func:`chatter_to`), the terminal only with ``verbose``."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001 - warnings' hook
        if Path(filename).resolve().is_relative_to(_PACKAGE):
            print(f"warning: {message}", file=console(), flush=True)
        elif _CONSOLE or verbose:  # stderr is the run's log (or, verbose, the terminal)
            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    before = warnings.showwarning
    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = before


@contextlib.contextmanager
def warnings_as_lines(always: type[Warning] = Warning) -> Iterator[None]:
    """Every warning of ``always`` raised inside (even a repeated one) becomes one plain line
    ``warning: <message>`` on stderr, not Python's warning format; printed when the block ends,
    before the error line of an exception that ends it (:func:`~fusion_perception.cli.tool_main`).
    Other warnings are shown as they would have been (a library's: :func:`warnings_sorted`)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", always)
        try:
            yield
        finally:
            others = [w for w in caught if not issubclass(w.category, always)]
            for w in caught:
                if issubclass(w.category, always):
                    print(f"warning: {w.message}", file=sys.stderr)
    for w in others:  # outside the block: the hook in force around it shows them
        warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)


def command_line(tool: str, *args: object, imports: Sequence[str] = ()) -> str:
    """``python tools/<tool>.py ARGS``, each argument quoted for the shell (a path with a space, a
    ``folder:NAME=PATH`` method), with the ``--import`` modules the command needs: a "next:"
    command a person can paste as it is."""
    words = [*(w for m in imports for w in ("--import", m)), *args]
    return " ".join(["python", f"tools/{tool}.py", *(shlex.quote(str(w)) for w in words)])


def percent(fraction: float | None) -> str:
    """A score in 0..1 as a percentage with one decimal (``0.0`` is ``"0.0"``); ``"–"`` where it is
    undefined (None or NaN: a class absent from both prediction and labels)."""
    if fraction is None or (isinstance(fraction, float) and math.isnan(fraction)):
        return "–"
    return f"{100.0 * fraction:.1f}"


def _fd_backed(stream: TextIO) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None  # a test's capture object, say: it stays the console as it is


@contextlib.contextmanager
def chatter_to(log_file: str | Path | None, verbose: bool = False) -> Iterator[Path | None]:
    """Within the block, stdout and stderr go to ``log_file`` (appended); :func:`console` stays the
    terminal. Nested blocks move the chatter to the inner log. ``verbose`` or no ``log_file``:
    nothing is redirected."""
    if verbose or log_file is None:
        yield None
        return
    log_path = Path(log_file)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    err_fd = _fd_backed(sys.stderr)
    owned = not _CONSOLE and err_fd is not None  # a stream of our own on the terminal, closed at the end
    if owned:
        terminal: TextIO = io.TextIOWrapper(os.fdopen(os.dup(err_fd), "wb", buffering=0), write_through=True)
    else:
        terminal = _CONSOLE[-1] if _CONSOLE else sys.stderr
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    saved_streams = (sys.stdout, sys.stderr)
    try:
        log = open(log_path, "a", buffering=1, encoding="utf-8", errors="replace")
    except OSError as e:  # a finished run on read-only storage is read, not written: its chatter is dropped
        if e.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        log = open(os.devnull, "a", encoding="utf-8")
    try:
        for fd in (1, 2):
            os.dup2(log.fileno(), fd)
        sys.stdout = sys.stderr = log
        _CONSOLE.append(terminal)
        yield log_path
    finally:
        _CONSOLE.pop()
        log.flush()
        sys.stdout, sys.stderr = saved_streams
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        log.close()
        if owned:
            with contextlib.suppress(OSError, ValueError):
                terminal.close()


__all__ = ["chatter_to", "command_line", "console", "percent", "progress", "stage", "warnings_as_lines",
           "warnings_sorted"]
