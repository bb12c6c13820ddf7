"""What every tool does with its output folder before it starts work there.

- :func:`check_output_dir`: the folder can be created and written (it is not a file, not under a
  file, not read-only or immutable), checked before anything is read or computed; it leaves
  nothing behind.
- :func:`path_segment`: a name a user gave (a method's) is one folder name, never a path elsewhere;
- :func:`describe_changes` and :func:`refuse_to_replace`: a run never replaces results made with
  other settings unless asked (``--overwrite``); the refusal says in words what differs and how to
  keep both.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Mapping

from fusion_perception.errors import ConfigError, OutputError

_MAX_CHANGES = 8  # differences listed before "and N more"
_HASH = re.compile(r"^[0-9a-f]{32,}$")


def check_output_dir(path: str | Path, option: str = "--out") -> Path:
    """The absolute output folder ``path`` once a run could write there; :class:`OutputError` otherwise.

    Folders it has to create to find out are removed again, so a run refused later leaves no trace.
    A folder under one an environment variable names (the fused-image cache, say) is called by that
    variable in the messages: the user never typed its path.
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


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, Mapping):
        return {prefix: d}
    flat: dict[str, Any] = {}
    for k, v in d.items():
        flat.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return flat


def _show(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, str):
        text = v[:10] + "…" if _HASH.match(v) else v
    else:
        text = json.dumps(v, default=str)
    return text if len(text) <= 60 else text[:57] + "…"


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any], names: Mapping[str, str] | None = None) -> str:
    """``"epochs 10 → 2, config small_cpu → yolov5s_m3fd"``: every setting that differs, in words.

    Nested mappings are compared key by key (``fuser.params.levels``); ``names`` gives the words
    for keys (``{"config.epochs": "epochs"}``); keys named ``""`` are not shown unless nothing
    else differs.
    """
    names = dict(names or {})
    a, b = _flatten(old), _flatten(new)
    changed = [k for k in sorted(set(a) | set(b), key=lambda k: (k not in names, k)) if a.get(k) != b.get(k)]
    shown = [k for k in changed if names.get(k, k)] or changed
    parts = [f"{names.get(k) or k} {_show(a.get(k))} → {_show(b.get(k))}" for k in shown[:_MAX_CHANGES]]
    if len(shown) > _MAX_CHANGES:
        parts.append(f"and {len(shown) - _MAX_CHANGES} more")
    return ", ".join(parts) or "no setting differs"


def refuse_to_replace(out: str | Path, what: str, changes: str, option: str = "--out") -> OutputError:
    """The error for a run that would replace ``what`` (e.g. "a finished detection run") in ``out``."""
    return OutputError(out, f"holds {what} made with other settings ({changes}); pass --overwrite to "
                            f"replace it, or give another {option} to keep both")


__all__ = ["check_output_dir", "describe_changes", "path_segment", "refuse_to_replace"]
