"""One run of a downstream task, one way: the skeleton every task goes through.

    source -> fuse -> prepare -> skip if done -> train -> evaluate -> results

:func:`run_task` is the skeleton; a :class:`Task` (registered in
:data:`~fusion_perception.registry.TASKS`, as ultralytics' ``TASK2DATA``/``TASK2MODEL``/
``TASK2METRIC`` tables name what a task needs) fills in the steps. The skeleton owns the run's
folder and its record (:mod:`fusion_perception.record`): one writer at a time; a finished run with
the same settings is reused, an unfinished one continues, one made with other settings is refused
in words unless asked (``--overwrite``). A task declares what its run depends on
(:meth:`Task.settings`, and :meth:`Task.data_settings` for what only the data tells) and the files
it writes (:attr:`Task.run_files`); it trains and evaluates.
"""

from __future__ import annotations

import dataclasses
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from fusion_perception.errors import ConfigError, did_you_mean
from fusion_perception.record import (
    LOG_FILE, MARKDOWN_FILE, RESULTS_FILE, RUN_FILE, StoredRun, clear_run, describe_changes, fingerprint,
    folder_lock, jsonable, refuse_to_replace, same_settings, stored_run, write_record)


@dataclass
class RunRequest:
    """What a person asks of a task: which data, fused by which method, trained how, written where.

    ``data=None`` is the synthetic default; ``out=None`` the task's ``work_dirs`` folder;
    ``fused_dir=None`` the shared fused cache; ``device=None`` the GPU when there is one;
    ``options`` the task's own (:attr:`Task.options_type`).
    """

    data: str | Path | None = None
    layout: str = "auto"  # how ``data`` is read: a layout spec (data.layouts), e.g. auto:label_view=fusion
    method: str = "mean"
    out: str | Path | None = None
    config: Any = None
    seed: int = 0
    weights: str | Path | None = None  # the fusion weights (EMMA's checkpoint, say)
    device: str | None = None
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
    method: Any  # the fusion method, resolved once (fusion.method.FusionMethod)
    settings: dict[str, Any]  # what the run depends on, known before the data is read
    device: str = "cpu"  # where it trains, resolved (fusion_perception.devices)
    fuse_device: str = "cpu"
    log_file: Path | None = None  # where the libraries' output goes (None: nowhere, a non-leader rank)
    leader: bool = True  # the process that writes the folder (rank 0 of a torchrun job)
    times: dict[str, float] = field(default_factory=dict)
    # found in the folder (check_folder) and decided from it
    stored: StoredRun | None = None
    resume: bool = False  # continue the unfinished run there
    clear: bool = False  # remove the run there before training (asked for, or made with other settings)
    # filled in as the run goes: the source read, the fused folder, whether its cache was complete
    source: Any = None
    fused_dir: Path | None = None
    fused_reused: bool = False
    data_settings: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        """The method's name in tables and folders."""
        return self.method.label

    @property
    def weights(self) -> str | None:
        """The fusion weights the run fuses with, resolved."""
        return None if self.method.weights is None else str(self.method.weights)


def fused_folder(plan: RunPlan, source: Any) -> Path:
    """Where the run's fused images go: the folder asked for, else the shared cache's folder of the
    method (and its weights) for this source (:mod:`fusion_perception.fusion.cache`)."""
    from fusion_perception.fusion.cache import default_fused_dir

    if plan.request.fused_dir is not None:
        return Path(plan.request.fused_dir).expanduser()
    root = source if isinstance(source, (str, Path)) else source.root  # a folder, or a dataset read from one
    return Path(default_fused_dir(root, plan.method.cache_label)).expanduser()


def fuse_for_run(plan: RunPlan, source: Any, layout: str = "auto") -> Any:
    """Fuse ``source`` (a folder or a read dataset) into :func:`fused_folder`; returns the fused
    dataset and notes in ``plan`` where it is and whether the cache was complete already.
    ``layout``: the task's own (the request's ``layout`` names another or adds options)."""
    from fusion_perception.data.layouts import merge_layout_spec
    from fusion_perception.fusion.manifest import MANIFEST
    from fusion_perception.fusion.stage import fuse_dataset

    request = plan.request
    plan.fused_dir = fused_folder(plan, source)
    before = _file_stamp(plan.fused_dir / MANIFEST)
    fused = fuse_dataset(source, plan.method, plan.fused_dir, layout=merge_layout_spec(request.layout, layout),
                         device=plan.fuse_device, batch_size=request.fuse_batch_size, skip_bad=request.skip_bad,
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

    A task defines :meth:`train` and :meth:`evaluate` (which returns the results), what its run
    depends on (:meth:`settings`; the default records the request, the fusion method and the
    task's options) and where its results go in the comparison's table (:attr:`columns`, the
    headline :attr:`metric` last). The skeleton does the rest: the folder, its record, reuse,
    resume and refusal.
    """

    name: str = ""  # set by the registry: "det", "seg"
    noun: str = ""  # in messages: "a finished <noun> run" (default: the name)
    title: str = ""  # the comparison's plot title
    metric: str = ""  # the headline column (the bar chart's)
    plot_stem: str = ""  # plots/<name>_<plot_stem>.png
    columns: tuple[str, ...] = ()  # the comparison table's columns, the metric last (or from the results' classes)
    options_type: type = dict  # the task's own options (a dataclass)
    fuse_layout: str = "auto"  # the layout the fuse stage reads the source as
    synthetic_default: str = "both"  # which of the synthetic default to make: "det", "seg" or "both"
    synthetic_part: str = "msrs"  # the synthetic default's dataset this task reads
    gpu_ids: bool = False  # takes GPU-id lists ("0,1") as its device; otherwise the comparison gives it the first
    cpu_config_note: str | None = None  # the comparison's word when it picks the CPU config
    data_help: str = ""  # the compare command's --<name>-data help ("": one said from synthetic_part)
    config_help: str = ""  # its --<name>-config help ("": a generic one)
    # What a run writes in its folder besides its record and results (removed when it is replaced).
    run_files: tuple[str, ...] = ()
    run_dirs: tuple[str, ...] = ()
    run_patterns: tuple[str, ...] = ()
    resume_option: str | None = None  # the option that continues a run whose settings were not recorded

    def run(self, request: RunRequest) -> dict[str, Any]:
        return run_task(self, request)

    # ------------------------------------------------------------------ what a run is
    def plan(self, request: RunRequest) -> RunPlan:
        """Every argument checked; the settings the run depends on."""
        from fusion_perception.devices import resolve_device
        from fusion_perception.fusion.method import resolve_method
        from fusion_perception.outputs import check_output_dir

        method = resolve_method(request.method, request.weights, request.data)
        device = resolve_device(request.device)
        out = request.out if request.out is not None else \
            Path("work_dirs") / self.name / f"{method.label}_seed{request.seed}"
        out = check_output_dir(out, done=RESULTS_FILE).resolve()
        return RunPlan(request, out, method, self.settings(request, method), device=device, fuse_device=device,
                       log_file=out / LOG_FILE)

    def settings(self, request: RunRequest, method: Any) -> dict[str, Any]:
        """What a run depends on, known before the data is read: a run in the folder with other
        settings is not this one."""
        options = request.options
        return jsonable({"task": self.name, "method": request.method, "seed": int(request.seed),
                         "data": request.data, "config": request.config, **method.settings(),
                         "options": dataclasses.asdict(options) if dataclasses.is_dataclass(options) else options})

    def data_settings(self, plan: RunPlan, prepared: Any) -> dict[str, Any] | None:
        """What a run depends on that only the prepared data tells (detection: the fused images and
        the split), or ``None``: the run is then reused before any data is read."""
        return None

    def has_work(self, out: Path) -> bool:
        """Whether ``out`` holds this task's work without a record (checkpoints of an older version)."""
        return False

    def record_info(self, plan: RunPlan, prepared: Any) -> dict[str, Any]:
        """What ``run.json`` holds besides the settings (what an evaluation tool reads back)."""
        return {"task": self.name, "method": plan.request.method, "label": plan.label, "seed": plan.request.seed}

    # ------------------------------------------------------------------ the folder (the skeleton's)
    def check_folder(self, plan: RunPlan) -> dict[str, Any] | None:
        """Before any work: a finished run with the same settings (returned as it is); a run with
        other settings (refused unless ``overwrite``); else what to do with what is there."""
        request, has_work = plan.request, self.has_work(plan.out)
        stored = plan.stored = stored_run(plan.out, has_work=has_work)
        if stored is None:
            return None
        same = stored.settings is not None and same_settings(stored.settings, plan.settings)
        unrecorded_resume = stored.settings is None and not stored.finished and self.resume_asked(plan)
        # an unfinished run that trained nothing yet (it failed at once: a typo, too little memory)
        # holds nothing to keep: the corrected command replaces it
        nothing_trained = not stored.finished and not has_work
        if same and stored.finished and not request.force and not self._data_dependent():
            self.say_reused(plan)
            return stored.results
        if not same and not request.overwrite and not unrecorded_resume and not nothing_trained:
            what = f"{'a finished' if stored.finished else 'an unfinished'} {self.noun or self.name} run"
            why = describe_changes(stored.settings, plan.settings) if stored.settings else "settings not recorded" + (
                f"; {self.resume_option} continues it" if self.resume_option else "")
            raise refuse_to_replace(plan.out, what, why)
        plan.resume = not stored.finished and (same or unrecorded_resume)
        plan.clear = not plan.resume and not (same and stored.finished and self._data_dependent()
                                              and not request.force)
        return None

    def finished(self, plan: RunPlan, prepared: Any) -> dict[str, Any] | None:
        """After preparing, before training: a task whose settings depend on the data compares them
        (a finished run of the same data is reused, one of other data refused); then whatever the
        folder holds that this run replaces is removed, now that the data is known to be good."""
        request, stored = plan.request, plan.stored
        plan.data_settings = self.data_settings(plan, prepared)
        if stored is not None and plan.data_settings is not None:
            same_data = (same_settings(stored.data_settings, plan.data_settings) if stored.data_settings is not None
                         else stored.data_key in (None, fingerprint(plan.data_settings)))
            if not same_data and not request.overwrite:
                why = (describe_changes(stored.data_settings or {}, plan.data_settings) if stored.data_settings
                       else "the data changed")
                raise refuse_to_replace(plan.out, f"a {self.noun or self.name} run", why + (
                    " (the fused images or the split changed since it trained, e.g. edited sources)"))
            if same_data and stored.finished and not request.force and not plan.clear:
                self.say_reused(plan)
                return stored.results
            if not same_data:  # replaced, as asked: its model was trained on other data
                plan.resume, plan.clear = False, True
        if plan.leader and stored is not None:
            if plan.clear:
                clear_run(plan.out, (RESULTS_FILE, MARKDOWN_FILE, RUN_FILE, *self.run_files), self.run_dirs,
                          self.run_patterns)
            else:  # an unfinished run continues: stale results must not mark it finished
                (plan.out / RESULTS_FILE).unlink(missing_ok=True)
        return None

    def write_record(self, plan: RunPlan, prepared: Any) -> None:
        """``run.json``: the settings, then what an evaluation tool reads back (the leader writes it)."""
        if plan.leader:
            write_record(plan.out, plan.settings, plan.data_settings, **self.record_info(plan, prepared),
                         times_s=plan.times)

    def resume_asked(self, plan: RunPlan) -> bool:
        """Whether the request asks to continue a run whose settings were not recorded."""
        return bool(getattr(plan.request.options, "resume", False))

    def _data_dependent(self) -> bool:
        return type(self).data_settings is not Task.data_settings

    def say_reused(self, plan: RunPlan) -> None:
        from fusion_perception.console import stage

        if plan.request.progress and plan.leader:
            stage(f"{self.name} {plan.label} seed {plan.request.seed}: finished earlier in {plan.out} with the same "
                  "settings; its results are reused (--force retrains)")

    # ------------------------------------------------------------------ the steps
    def announce(self, plan: RunPlan) -> None:
        from fusion_perception.console import stage

        if plan.request.progress and plan.leader:
            stage(f"{self.name} {plan.label} seed {plan.request.seed} -> {plan.out}"
                  + ("" if plan.request.verbose or plan.log_file is None else f" (log: {plan.log_file})"))

    def read_source(self, plan: RunPlan) -> Any:
        """The dataset to fuse: a folder (the fuse stage reads it) or a read dataset."""
        return self.source_root(plan.request.data)

    def fuse(self, plan: RunPlan, source: Any) -> Any:
        return fuse_for_run(plan, source, self.fuse_layout)

    def prepare(self, plan: RunPlan, fused: Any) -> Any:
        return fused

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

    def table_columns(self, results: list[Mapping[str, Any]]) -> tuple[str, ...]:
        """The comparison table's columns for these runs: :attr:`columns`, or the classes the
        results name (the dataset's, from its layout) then the headline metric."""
        if self.columns:
            return self.columns
        classes = next((r["classes"] for r in results if r.get("classes")), [])
        return (*classes, self.metric)

    def table_values(self, result: Mapping[str, Any]) -> dict[str, float]:
        """The table's columns of one run's results (fractions; NaN where undefined)."""
        return {c: math.nan if result.get(c) is None else float(result[c]) for c in self.table_columns([result])}

    def image_scores(self, result: Mapping[str, Any]) -> Any:
        """A finished run's per-image results, which a comparison's paired bootstrap resamples
        (a :class:`fusion_perception.metrics.bootstrap.ImageScores`); a task that keeps none says so."""
        raise NotImplementedError(f"the {self.name} task keeps no per-image results")

    def summary(self, result: Mapping[str, Any]) -> str:
        """``"mAP@0.5 42.3"``: the headline of one run, in percent."""
        from fusion_perception.console import percent

        return f"{self.metric} {percent(self.table_values(result)[self.metric])}"


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
    if plan.leader:
        plan.out.mkdir(parents=True, exist_ok=True)
    with folder_lock(plan.out, what=f"{task.name} run") if plan.leader else nullcontext():
        done = task.check_folder(plan)  # again, holding the folder: a run that held it may have finished it
        if done is not None:
            return done
        with chatter_to(plan.log_file, request.verbose):
            started = time.time()
            plan.source = task.read_source(plan)
            prepared = task.prepare(plan, task.fuse(plan, plan.source))
            plan.times["prepare"] = round(time.time() - started, 2)
            done = task.finished(plan, prepared)
            if done is not None:
                return done
            task.write_record(plan, prepared)
            task.train(plan, prepared)
            task.write_record(plan, prepared)  # with the training's time
            return task.evaluate(plan, prepared)


def get_task(name: str) -> Task:
    """The registered task ``name`` (``"det"``, ``"seg"``); ConfigError listing them otherwise."""
    from fusion_perception.registry import TASKS

    cls = TASKS.get(name)
    if cls is None:
        raise ConfigError(f"unknown task {name!r}{did_you_mean(name, TASKS.names())}; registered tasks: "
                          f"{', '.join(TASKS.names())}")
    return cls()


__all__ = ["RunPlan", "RunRequest", "Task", "fuse_for_run", "fused_folder", "get_task", "run_task"]
