"""One run of a downstream task, one way: the skeleton every task goes through, and its cache.

    source -> fuse -> prepare -> skip if done -> train -> evaluate -> results

:func:`run_task` is the skeleton; a :class:`Task` (registered in
:data:`~fusion_perception.registry.TASKS`, as ultralytics' ``TASK2DATA``/``TASK2MODEL``/
``TASK2METRIC`` tables name what a task needs) fills in the steps. The cache is the same for
every task and for the fuse stage's manifest:

- :func:`fingerprint`: what a run depends on, as one sha256 (canonical JSON);
- :func:`read_json` / :func:`write_json`: settings and manifests, written atomically;
- :func:`write_results`: ``results.md``, then ``results.json`` last, so that its presence means
  the run finished (:func:`read_results`); a finished run with the same settings is reused;
- :func:`refuse_other_run`: a folder holding a run made with other settings is never replaced
  unless asked (``--overwrite``), and the refusal says in words what differs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from fusion_perception.errors import ConfigError, OutputError

RESULTS_FILE = "results.json"
MARKDOWN_FILE = "results.md"
LOG_FILE = "run.log"


# --------------------------------------------------------------------------- the cache


def jsonable(data: Any) -> Any:
    """``data`` as JSON reads it back (tuples as lists, paths as strings): what a file compares to."""
    return json.loads(json.dumps(data, default=str))


def fingerprint(data: Any) -> str:
    """The sha256 of ``data`` as canonical JSON (sorted keys; what JSON cannot hold, as its str)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


# where settings record the fusion weights' sha256: a fused dataset's fingerprint, the run
# skeleton's settings, detection's own
_WEIGHTS_HASH_KEYS = ("checkpoint_sha256", "fusion_checkpoint_sha256", "fusion_weights_sha256")


def comparable(settings: Any) -> Any:
    """Settings (a run's, a fused dataset's fingerprint) as they are compared with others: the
    fusion weights' path left out where their sha256 is recorded, since the same weights at another
    path (a second clone, the toolkit's checkpoint after it moved to ``emma/pretrained/``) make the
    same run and the same pixels."""
    fuser = settings.get("fuser") if isinstance(settings, dict) else None
    hashed = isinstance(fuser, dict) and any(settings.get(k) for k in _WEIGHTS_HASH_KEYS)
    if not (hashed and isinstance(fuser.get("params"), dict)):
        return settings
    params = {k: v for k, v in fuser["params"].items() if k != "weights"}
    return {**settings, "fuser": {**fuser, "params": params}}


def same_settings(a: Any, b: Any) -> bool:
    """Whether two runs' settings make the same run (:func:`comparable`)."""
    return comparable(a) == comparable(b)


def read_json(path: str | Path, unreadable: Any = None) -> Any:
    """The JSON in ``path``; ``None`` when there is no such file, ``unreadable`` when it is not JSON
    (cut by a kill, say: treated as not matching anything)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return unreadable


def write_json(path: str | Path, data: Any, *, indent: int = 2, newline: bool = False) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (a kill leaves the old file or none)."""
    from fusion_perception.data.image_io import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=indent, default=str) + ("\n" if newline else ""))
    return Path(path)


def read_results(out: str | Path) -> dict[str, Any] | None:
    """A finished run's results (``None`` when the run in ``out`` never finished)."""
    return read_json(Path(out) / RESULTS_FILE)


def write_results(out: str | Path, results: Mapping[str, Any], markdown: str, *, newline: bool = False) -> Path:
    """``results.md`` (``markdown``), then ``results.json`` last: its presence marks the run finished."""
    from fusion_perception.data.image_io import atomic_write_text

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


def refuse_other_run(out: str | Path, what: str, old: Mapping[str, Any], new: Mapping[str, Any],
                     words: Mapping[str, str]) -> OutputError:
    """The error for a run that would replace ``what`` made with settings ``old`` by one with ``new``."""
    from fusion_perception.outputs import describe_changes, refuse_to_replace

    return refuse_to_replace(out, what, describe_changes(old, new, words))


# --------------------------------------------------------------------------- a run


@dataclass
class RunRequest:
    """What a person asks of a task: which data, fused by which method, trained how, written where.

    ``data=None`` is the synthetic default; ``out=None`` the task's ``work_dirs`` folder;
    ``fused_dir=None`` the shared fused cache; ``options`` the task's own (:attr:`Task.options_type`).
    """

    data: str | Path | None = None
    method: str = "mean"
    out: str | Path | None = None
    config: Any = None
    seed: int = 0
    weights: str | Path | None = None  # the fusion checkpoint (EMMA's)
    device: str | None = "cpu"
    fused_dir: str | Path | None = None
    fuse_batch_size: int = 4
    skip_bad: bool = False
    force: bool = False  # retrain a finished run with the same settings
    overwrite: bool = False  # replace a run or fused cache made with other settings
    progress: bool = True
    verbose: bool = False
    options: Any = None

    @classmethod
    def from_options(cls, options_type: type, **options: Any) -> "RunRequest":
        """A request from keyword options: this class's fields, the rest the task's ``options_type``
        fields (an unknown name is a TypeError, as for any keyword argument)."""
        own = {f.name for f in dataclasses.fields(cls)} - {"options"}
        request = cls(**{k: v for k, v in options.items() if k in own})
        request.options = options_type(**{k: v for k, v in options.items() if k not in own})
        return request


@dataclass
class RunPlan:
    """A request once every argument is checked, before anything is read or written."""

    request: RunRequest
    out: Path
    label: str  # the method's name in tables and folders
    weights: str | None  # the fusion checkpoint, resolved
    settings: dict[str, Any]  # what the run depends on, known before the data is read
    fuse_device: str = "cpu"
    log_file: Path | None = None  # where the libraries' output goes (None: nowhere, a non-leader rank)
    times: dict[str, float] = field(default_factory=dict)
    # filled in as the run goes: the source read, the fused folder, whether its cache was complete
    source: Any = None
    fused_dir: Path | None = None
    fused_reused: bool = False


def build_run_fuser(method: str, weights: str | Path | None, data: str | Path | None):
    """``(checkpoint, fuser)`` for a run: the method's checkpoint resolved for ``data`` and the fuser
    built on the CPU (an unknown method or a missing checkpoint fails here, before any work)."""
    from fusion_perception.fusion.base import build_fuser, resolve_weights

    weights = resolve_weights(method, weights, data)
    return weights, build_fuser(method, "cpu", **({"weights": weights} if weights is not None else {}))


def fused_folder(plan: RunPlan, source: Any) -> Path:
    """Where the run's fused images go: the folder asked for, else the shared cache's folder of the
    method (and its checkpoint) for this source (:mod:`fusion_perception.fusion.cache`)."""
    from fusion_perception.fusion.cache import cache_label, default_fused_dir

    if plan.request.fused_dir is not None:
        return Path(plan.request.fused_dir).expanduser()
    root = source if isinstance(source, (str, Path)) else source.root  # a folder, or a dataset read from one
    return Path(default_fused_dir(root, cache_label(plan.label, plan.weights))).expanduser()


def fuse_for_run(plan: RunPlan, source: Any, layout: str = "auto") -> Any:
    """Fuse ``source`` (a folder or a read dataset) into :func:`fused_folder`; returns the fused
    dataset and notes in ``plan`` where it is and whether the cache was complete already."""
    from fusion_perception.fusion.stage import MANIFEST, fuse_dataset

    request = plan.request
    plan.fused_dir = fused_folder(plan, source)
    before = _file_stamp(plan.fused_dir / MANIFEST)
    fused = fuse_dataset(source, request.method, plan.fused_dir, layout=layout, device=plan.fuse_device,
                         batch_size=request.fuse_batch_size, weights=plan.weights, skip_bad=request.skip_bad,
                         on_mismatch="replace" if request.overwrite else "error", progress=request.progress)
    plan.fused_reused = before is not None and before == _file_stamp(plan.fused_dir / MANIFEST)
    return fused


def _file_stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
        return st.st_mtime_ns, st.st_size
    except OSError:
        return None


class Task:
    """A downstream task: what the comparison, the tables and the tools need to know of it, and
    the steps :func:`run_task` calls. Register a subclass in ``TASKS`` (its name written once)::

        @TASKS.register_module(name="det")
        class DetectionTask(Task): ...

    The defaults make a simple task: its settings are known before the data (the request, the
    fuser, the task's options), so a finished run with the same settings is reused at once; a
    task defines :meth:`train` and :meth:`evaluate` (which returns the results), and where its
    results go in the comparison's table (:attr:`columns`, the headline :attr:`metric` last).
    """

    name: str = ""  # set by the registry: "det", "seg"
    title: str = ""  # the comparison's plot title
    metric: str = ""  # the headline column (the bar chart's)
    plot_stem: str = ""  # plots/<name>_<plot_stem>.png
    columns: tuple[str, ...] = ()  # the comparison table's columns, the metric last
    options_type: type = dict  # the task's own options (a dataclass)
    fuse_layout: str = "auto"  # the layout the fuse stage reads the source as
    synthetic_default: str = "both"  # which of the synthetic default to make: "det", "seg" or "both"
    synthetic_part: str = "msrs"  # the synthetic default's dataset this task reads
    cpu_config_note: str | None = None  # the comparison's word when it picks the CPU config
    gpu_ids: bool = False  # takes GPU-id lists ("0,1") as its device; otherwise the comparison gives it the first
    data_help: str = ""  # the compare command's --<name>-data help ("": one said from synthetic_part)
    config_help: str = ""  # its --<name>-config help ("": a generic one)

    def run(self, request: RunRequest) -> dict[str, Any]:
        return run_task(self, request)

    # ------------------------------------------------------------------ the steps
    def plan(self, request: RunRequest) -> RunPlan:
        """Every argument checked; the settings the run depends on."""
        from fusion_perception.fusion.base import method_label
        from fusion_perception.outputs import check_output_dir

        label = method_label(request.method)
        weights, fuser = build_run_fuser(request.method, request.weights, request.data)
        out = request.out if request.out is not None else Path("work_dirs") / self.name / f"{label}_seed{request.seed}"
        settings = jsonable({"task": self.name, "method": request.method, "seed": int(request.seed),
                             "data": request.data, "config": request.config, "fuser": fuser.config(),
                             "fusion_checkpoint_sha256": fuser.checkpoint_sha256(),
                             "options": dataclasses.asdict(request.options)
                             if dataclasses.is_dataclass(request.options) else request.options})
        out = check_output_dir(out).resolve()
        return RunPlan(request, out, label, weights, settings, log_file=out / LOG_FILE)

    def check_folder(self, plan: RunPlan) -> dict[str, Any] | None:
        """Before any work: a finished run with the same settings (returned as it is), or a run
        with other settings (refused unless ``overwrite``)."""
        done = read_results(plan.out)
        if done is None:
            return None
        same = same_settings(done.get("settings"), plan.settings)
        if same and not plan.request.force:
            return done
        if not plan.request.overwrite and not same:
            raise refuse_other_run(plan.out, f"a finished {self.name} run", comparable(done.get("settings") or {}),
                                   comparable(plan.settings), {})
        clear_run(plan.out, files=(RESULTS_FILE, MARKDOWN_FILE))
        return None

    def announce(self, plan: RunPlan) -> None:
        from fusion_perception.console import stage

        if plan.request.progress:
            stage(f"{self.name} {plan.label} seed {plan.request.seed} -> {plan.out}")

    def read_source(self, plan: RunPlan) -> Any:
        """The dataset to fuse: a folder (the fuse stage reads it) or a read dataset."""
        return self.source_root(plan.request.data)

    def fuse(self, plan: RunPlan, source: Any) -> Any:
        return fuse_for_run(plan, source, self.fuse_layout)

    def prepare(self, plan: RunPlan, fused: Any) -> Any:
        return fused

    def finished(self, plan: RunPlan, prepared: Any) -> dict[str, Any] | None:
        """After preparing: the results of a finished run with the same settings, for a task
        whose settings depend on the data (the default's are known before: see check_folder)."""
        return None

    def train(self, plan: RunPlan, prepared: Any) -> None:
        raise NotImplementedError

    def evaluate(self, plan: RunPlan, prepared: Any) -> dict[str, Any]:
        raise NotImplementedError

    # ------------------------------------------------------------------ in the comparison
    def source_root(self, data: str | Path | None) -> Path:
        """The dataset root the task reads: ``data``, or its part of the synthetic default."""
        if data is not None:
            return Path(data).expanduser().resolve()
        from fusion_perception.synthetic.dataset import ensure_default

        return (Path(ensure_default(self.synthetic_default)) / self.synthetic_part).resolve()

    def comparison_options(self, out: Path, seed: int) -> dict[str, Any]:
        """The task's options for its runs in a comparison writing under ``out``."""
        return {}

    def table_values(self, result: Mapping[str, Any]) -> dict[str, float]:
        """The table's columns of one run's results (fractions; NaN where undefined)."""
        return {c: math.nan if result.get(c) is None else float(result[c]) for c in self.columns}

    def image_scores(self, result: Mapping[str, Any]) -> Any:
        """A finished run's per-image results, which a comparison's paired bootstrap resamples
        (a :class:`fusion_perception.metrics.bootstrap.ImageScores`); a task that keeps none says so."""
        raise NotImplementedError(f"the {self.name} task keeps no per-image results")

    def summary(self, result: Mapping[str, Any]) -> str:
        """``"mAP@0.5 42.3"``: the headline of one run, in percent."""
        value = self.table_values(result)[self.metric]
        return f"{self.metric} {100 * (0.0 if math.isnan(value) else value):.1f}"


def run_task(task: Task, request: RunRequest) -> dict[str, Any]:
    """One run of ``task``: every argument checked before anything is read or written, then
    source -> fuse -> prepare -> skip if done -> train -> evaluate -> results. A finished run
    with the same settings is returned as it is; the libraries' output goes to the run's log."""
    from fusion_perception.console import chatter_to

    plan = task.plan(request)
    done = task.check_folder(plan)
    if done is not None:
        return done
    task.announce(plan)
    plan.out.mkdir(parents=True, exist_ok=True)
    with chatter_to(plan.log_file, request.verbose):
        started = time.time()
        plan.source = task.read_source(plan)
        fused = task.fuse(plan, plan.source)
        prepared = task.prepare(plan, fused)
        plan.times["prepare"] = round(time.time() - started, 2)
        done = task.finished(plan, prepared)
        if done is not None:
            return done
        task.train(plan, prepared)
        return task.evaluate(plan, prepared)


def get_task(name: str) -> Task:
    """The registered task ``name`` (``"det"``, ``"seg"``); ConfigError listing them otherwise."""
    from fusion_perception.registry import TASKS

    cls = TASKS.get(name)
    if cls is None:
        raise ConfigError(f"unknown task {name!r}; registered tasks: {', '.join(TASKS.names())}")
    return cls()


__all__ = ["RunPlan", "RunRequest", "Task", "build_run_fuser", "clear_run", "fingerprint", "fuse_for_run", "fused_folder",
           "comparable", "get_task", "jsonable", "read_json", "read_results", "refuse_other_run", "run_task", "same_settings", "write_json",
           "write_results"]
