"""What every tool does with its output folder before it starts work there.

- :func:`check_output_dir`: the folder can be created and written (it is not a file, not under a
  file, not read-only or immutable), checked before anything is read or computed; it leaves
  nothing behind;
- :func:`path_segment`: a name a user gave (a method's) is one folder name, never a path elsewhere.

(A folder that holds results made with other settings is the run record's to refuse:
:mod:`fusion_perception.record`.)
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from fusion_perception.errors import ConfigError, OutputError


def check_output_dir(path: str | Path, option: str = "--out", done: str | None = None) -> Path:
    """The absolute output folder ``path`` once a run could write there; :class:`OutputError` otherwise.

    Folders it has to create to find out are removed again, so a run refused later leaves no trace.
    ``done``: the file that marks a finished result (``results.json``, a fused dataset's
    ``manifest.json``); a folder holding it may be read-only, since a finished result is only read
    (read-only storage, an archive). A folder under one an environment variable names (the
    fused-image cache, say) is called by that variable in the messages: the user never typed its path.
    """
    out = Path(path).expanduser().absolute()
    option = _named_by_environment(out) or option
    if out.is_symlink() and not out.exists():
        raise OutputError(out, f"{option} is a broken symbolic link")
    if out.exists() and not out.is_dir():
        raise OutputError(out, f"exists and is a file, not a folder; give {option} a folder (new or existing)")
    for attempt in range(3):
        try:
            _probe_writable(out, option)
            break
        except OutputError:
            if done is not None and (out / done).is_file():
                return out
            raise
        except FileNotFoundError:  # another process removed a parent it had just created to probe
            if attempt == 2:
                raise OutputError(out, f"{option} cannot be written: its parent folders keep vanishing") from None
    return out


# The folders the toolkit writes into that an environment variable may set.
_FOLDER_VARIABLES = ("FUSION_PERCEPTION_FUSED", "FUSION_PERCEPTION_DATA", "FUSION_PERCEPTION_CACHE")


def _named_by_environment(out: Path) -> str | None:
    """``"the folder FUSION_PERCEPTION_FUSED names"`` when ``out`` is in one a variable sets."""
    for variable in _FOLDER_VARIABLES:
        value = os.environ.get(variable)
        if value and out.is_relative_to(Path(value).expanduser().absolute()):
            return f"the folder {variable} names"
    return None


def _probe_writable(out: Path, option: str) -> None:
    """Create the missing folders up to ``out``, write and delete a file there, remove what was created.

    Other processes may probe sibling folders at the same time (parallel runs of a comparison): a
    folder one of them created meanwhile is used, not an error, and is theirs to remove.
    """
    missing: list[Path] = []
    anc = out
    while not anc.exists():
        missing.append(anc)
        anc = anc.parent
    if not anc.is_dir():
        raise OutputError(anc, f"is a file, so {option} {out} cannot be created under it")
    created: list[Path] = []
    try:
        for d in reversed(missing):
            try:
                d.mkdir()
                created.append(d)
            except FileExistsError:
                if not d.is_dir():
                    raise
        fd, probe = tempfile.mkstemp(prefix=".write_test.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise OutputError(out, f"{option} cannot be written ({e.strerror or e}); choose a writable folder") from None
    finally:
        for d in reversed(created):
            with contextlib.suppress(OSError):
                d.rmdir()  # only if still empty: another process may be using it by now


def path_segment(text: str, what: str) -> str:
    """``text`` when it can name one file or folder inside another (a method's name becomes the
    folder of its fused images and runs); a ConfigError otherwise: empty, ``.`` or ``..``, a slash,
    a backslash, a control character, or a leading ``~`` or ``-`` would put the path elsewhere or
    read as something else."""
    bad = (not text or text in (".", "..") or any(c in text for c in "/\\") or text[0] in "~-"
           or any(ord(c) < 32 or ord(c) == 127 for c in text))
    if bad:
        raise ConfigError(f"{what} {text!r} cannot name a folder: use letters, digits, '.', '-' or '_' "
                          "(no '/', and not '.' or '..')")
    return text


__all__ = ["check_output_dir", "path_segment"]
