"""The run record: how every folder a run writes says what it was made with, in one format.

Three kinds of folder keep a record, each in one file:

- a fused dataset: ``manifest.json`` (its ``fingerprint``: what decides the pixels);
- a task run (detection, segmentation, a plugin's): ``run.json``, then ``results.json`` last;
- an EMMA training step (the sensing nets, the fuser): ``run.json`` in its work dir.

A record's ``settings`` hold what the result depends on, with one key per idea (the fusion
weights' hash is always :data:`WEIGHTS_SHA256`); records written before these names were fixed are
read through :func:`upgraded`. Two records make the same result when :func:`same_settings` says
so; otherwise the folder is never replaced unasked, and :func:`refuse_to_replace` says in words
(:data:`WORDS`, the one table) what differs.

This module is the bottom of the package: it imports nothing of the project but the error types
and the atomic file writer.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from fusion_perception.errors import OutputError
from fusion_perception.files import atomic_write_text

RUN_FILE = "run.json"  # a task run's or a training step's record
RESULTS_FILE = "results.json"  # a finished task run's results, written last
MARKDOWN_FILE = "results.md"
LOG_FILE = "run.log"
MANIFEST_FILE = "manifest.json"  # a fused dataset's record
LEGACY_RUN_FILES = ("run_settings.json",)  # where segmentation and EMMA's training kept it before
RECORD_FORMAT = 2

WEIGHTS_SHA256 = "fusion_weights_sha256"  # the fusion weights' sha256, in every record
# The names earlier versions gave the same facts (read, never written).
_LEGACY_KEYS = {"checkpoint_sha256": WEIGHTS_SHA256, "fusion_checkpoint_sha256": WEIGHTS_SHA256}

# What a setting is called in a refusal ("epochs 10 → 2, weights 3f2a… → 9c1e…"), for every kind of
# record; a key named "" is shown only when nothing else differs.
WORDS: dict[str, str] = {
    # every record
    "method": "method", "seed": "seed", WEIGHTS_SHA256: "weights", "label": "", "fuser.method": "",
    "fuser.label": "label",
    # fused datasets
    "source_root": "source", "source_layout": "layout", "gray_output": "gray output",
    # task runs
    "config_name": "config", "config": "config", "config_sha256": "", "source": "data", "data": "data",
    "config.epochs": "epochs", "config.batch": "batch", "config.imgsz": "imgsz", "config.model": "model",
    "config.lr0": "lr0", "config.optimizer": "optimizer", "model_sha256": "model file",
    "det_weights_sha256": "detector weights", "fused": "fused images", "split": "split",
    "config_values.train_cfg.max_epochs": "epochs", "config_values.train_dataloader.batch_size": "batch",
    "amp": "amp", "encoder_weights_sha256": "encoder weights", "world_size": "processes",
    # EMMA's training steps
    "train_cfg.max_epochs": "epochs", "train_dataloader.batch_size": "batch",
    "train_dataloader.dataset.data_root": "data", "train_dataloader.dataset.pseudo_gt": "pseudo GT",
    "train_dataloader.dataset.max_patches": "patches", "model.sensing_ir": "sensing ir",
    "model.sensing_vi": "sensing vi", "model.equivariance": "equivariance", "model.a1": "a1", "model.a2": "a2",
    "optim_wrapper.optimizer.lr": "lr",
}


# --------------------------------------------------------------------------- JSON on disk


def jsonable(data: Any) -> Any:
    """``data`` as JSON reads it back (tuples as lists, paths as strings): what a file compares to."""
    return json.loads(json.dumps(data, default=str))


def fingerprint(data: Any) -> str:
    """The sha256 of ``data`` as canonical JSON (sorted keys; what JSON cannot hold, as its str)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def read_json(path: str | Path, unreadable: Any = None) -> Any:
    """The JSON object in ``path``; ``None`` when there is no such file, ``unreadable`` when it is not
    a JSON object (cut by a kill, say, or edited: treated as not matching anything)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return unreadable
    return data if isinstance(data, dict) else unreadable


def write_json(path: str | Path, data: Any, *, indent: int = 2, newline: bool = False) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (a kill leaves the old file or none)."""
    atomic_write_text(path, json.dumps(data, indent=indent, default=str) + ("\n" if newline else ""))
    return Path(path)


# --------------------------------------------------------------------------- comparing settings


def upgraded(settings: Any) -> Any:
    """Settings as this version names them: the keys earlier versions used for the same fact renamed."""
    if not isinstance(settings, dict) or not any(k in settings for k in _LEGACY_KEYS):
        return settings
    return {_LEGACY_KEYS.get(k, k): v for k, v in settings.items()}


_HASH = re.compile(r"^[0-9a-f]{32,}$")  # a sha256 (shown shortened in refusals)

# A file recorded by its hash as well as its path: where the hash is there, the path is left out
# of comparisons (the same file at another path, a second clone, makes the same result).
# (detection records a model given by name, not a file, under model_sha256 too: only a hash counts)
_HASHED_PATHS = ((WEIGHTS_SHA256, ("fuser", "params", "weights"), bool),
                 ("model_sha256", ("config", "model"), lambda v: isinstance(v, str) and _HASH.match(v) is not None))


def comparable(settings: Any) -> Any:
    """Settings as they are compared with others (:func:`upgraded`): a file's path left out where
    its sha256 is recorded (the fusion weights, the detector's model file), since the same file
    at another path (a second clone, the toolkit's checkpoint after it moved) makes the same run
    and the same pixels."""
    settings = upgraded(settings)
    if not isinstance(settings, dict):
        return settings
    for hash_key, path, is_hash in _HASHED_PATHS:
        if is_hash(settings.get(hash_key)):
            settings = _without(settings, path)
    return settings


def _without(settings: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """``settings`` with the entry at ``path`` (nested keys) left out, where it is there."""
    head, *rest = path
    inner = settings.get(head)
    if not isinstance(inner, dict) or (not rest and head not in settings):
        return settings
    if not rest:
        return {k: v for k, v in settings.items() if k != head}
    if rest[0] not in inner:
        return settings
    return {**settings, head: _without(inner, tuple(rest)) if len(rest) > 1 else
            {k: v for k, v in inner.items() if k != rest[0]}}


def same_settings(a: Any, b: Any) -> bool:
    """Whether two records' settings make the same result (:func:`comparable`)."""
    return comparable(a) == comparable(b)


_MAX_CHANGES = 8  # differences listed before "and N more"


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

    Nested mappings are compared key by key (``fuser.params.levels``); ``names`` (default
    :data:`WORDS`) gives the words for keys; keys named ``""`` are not shown unless nothing else
    differs.
    """
    names = WORDS if names is None else dict(names)
    a, b = _flatten(comparable(old) or {}), _flatten(comparable(new) or {})
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


# --------------------------------------------------------------------------- a run's folder


@dataclass
class StoredRun:
    """What a run folder holds: the settings it was made with (``None``: not recorded), its
    data-dependent settings and their fingerprint (detection: the fused images and the split), and
    a finished run's results."""

    settings: dict[str, Any] | None = None
    data_settings: dict[str, Any] | None = None
    data_key: str | None = None
    results: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.results is not None


def read_record(out: str | Path) -> dict[str, Any] | None:
    """The record in ``out`` (``run.json``, or the file an earlier version wrote), ``{}`` when it is
    not readable, ``None`` when there is none."""
    for name in (RUN_FILE, *LEGACY_RUN_FILES):
        record = read_json(Path(out) / name, unreadable={})
        if record is not None:
            return record if name == RUN_FILE or not record else {"settings": record}
    return None


def stored_run(out: str | Path, has_work: bool = False) -> StoredRun | None:
    """The run in ``out``: finished (``results.json``), started (its record), or work without a
    record (``has_work``: checkpoints, say); ``None`` for a folder that holds no run."""
    results = read_json(Path(out) / RESULTS_FILE, unreadable=None)
    record = read_record(out) or results  # the record says what it was made with; else the results do
    if record is None:
        return StoredRun() if has_work else None
    if "request" in record:  # detection's record before the format was shared
        return StoredRun(record["request"], record.get("settings"), record.get("settings_key"), results)
    return StoredRun(record.get("settings"), record.get("data_settings"), record.get("data_key"), results)


def write_record(out: str | Path, settings: Mapping[str, Any], data_settings: Mapping[str, Any] | None = None,
                 **info: Any) -> Path:
    """``out/run.json``: the run's settings (and data settings with their key), then ``info``."""
    record = {"format": RECORD_FORMAT, "settings": settings, "data_settings": data_settings,
              "data_key": None if data_settings is None else fingerprint(data_settings), **info}
    return write_json(Path(out) / RUN_FILE, jsonable(record), newline=True)


def read_results(out: str | Path) -> dict[str, Any] | None:
    """A finished run's results (``None`` when the run in ``out`` never finished)."""
    return read_json(Path(out) / RESULTS_FILE)


def write_results(out: str | Path, results: Mapping[str, Any], markdown: str, *, newline: bool = False) -> Path:
    """``results.md`` (``markdown``), then ``results.json`` last: its presence marks the run finished."""
    atomic_write_text(Path(out) / MARKDOWN_FILE, markdown)
    return write_json(Path(out) / RESULTS_FILE, results, newline=newline)


def clear_run(out: str | Path, files: Iterable[str] = (), folders: Iterable[str] = (),
              patterns: Iterable[str] = ()) -> None:
    """Remove what a run wrote into ``out`` (the files, folders and glob ``patterns`` named), not the caches."""
    out = Path(out)
    for name in files:
        (out / name).unlink(missing_ok=True)
    for pattern in patterns:
        for path in out.glob(pattern):
            path.unlink(missing_ok=True)
    for name in folders:
        shutil.rmtree(out / name, ignore_errors=True)


_LOG = logging.getLogger(__name__)
LOCK_FILE = ".run.lock"  # a task run's or a training step's lock (a fused dataset has its own name)


@contextlib.contextmanager
def folder_lock(out: str | Path, name: str = LOCK_FILE, *, wait: bool = False, what: str = "run") -> Iterator[None]:
    """One writer per folder, as an advisory lock the OS drops when its process dies.

    ``wait``: a second writer waits for the first (and then finds its work done); otherwise it is
    refused in one line naming the process that holds the folder. A folder that cannot be written
    (read-only storage holding a finished result) is read without a lock: writing there fails on
    its own, with its own message.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    path = Path(out) / name
    while True:
        try:
            f = open(path, "a+")
        except OSError as e:
            if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                yield
                return
            raise
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            if not wait:
                f.close()
                raise OutputError(out, f"another {what} is writing in this folder ({holder}); wait for it to "
                                       "finish, or give another --out") from None
            _LOG.info("%s: another %s is writing there (%s); waiting for it", out, what, holder)
            fcntl.flock(f, fcntl.LOCK_EX)
        # The holder deletes the lock file on release: a lock on a deleted file guards nothing.
        try:
            if os.fstat(f.fileno()).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        f.close()
    f.seek(0)
    f.truncate()
    f.write(f"process {os.getpid()}")
    f.flush()
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # still held: nobody else can be using it
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


def run_lock(out: str | Path) -> contextlib.AbstractContextManager[None]:
    """The lock of the run in ``out`` (:func:`folder_lock`), for a tool that reads or rewrites a
    run another process may be writing; a folder that is not there holds nothing to guard."""
    return folder_lock(out, what="run") if Path(out).is_dir() else contextlib.nullcontext()


__all__ = ["LOCK_FILE", "LOG_FILE", "MANIFEST_FILE", "RESULTS_FILE", "RUN_FILE", "StoredRun", "WEIGHTS_SHA256", "WORDS",
           "clear_run", "comparable", "describe_changes", "fingerprint", "folder_lock", "jsonable", "read_json", "read_record",
           "read_results", "refuse_to_replace", "run_lock", "same_settings", "stored_run", "upgraded", "write_json",
           "write_record", "write_results"]
