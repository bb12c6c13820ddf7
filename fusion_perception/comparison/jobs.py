"""Running a comparison's fusions and runs: in this process, or in worker processes that share the
CPU's threads and die with their parent (a killed comparison leaves no orphan training behind)."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Sequence


class Jobs:
    """Runs keyed jobs in this process (``jobs=1``) or in ``jobs`` spawned worker processes, each
    with its share of the CPU threads, with a progress bar and a line per finished job."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        self.pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> "Jobs":
        if self.jobs > 1:
            # Idle OpenMP threads must sleep, not spin, when processes share the cores; torch reads this
            # when it loads, so the (spawned, clean) workers inherit it from the environment.
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            threads = max(1, (os.cpu_count() or 1) // self.jobs)
            self.pool = ProcessPoolExecutor(
                max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker, initargs=(threads, logging.getLogger().level or logging.INFO, os.getpid()))
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)  # finish the running jobs, start no more

    def run(self, fn, items: Sequence[tuple[tuple, Any]], desc: str, unit: str, progress: bool, line) -> dict:
        from fusion_perception.console import progress as progress_bar

        done: dict[Any, Any] = {}
        with progress_bar(total=len(items), desc=desc, unit=unit, disable=not progress) as bar:
            def finish(key: Any, value: Any) -> None:
                done[key] = value
                bar.update(1)
                if progress:
                    bar.write(line(key, value), file=bar.fp)

            if self.pool is None:
                for args, key in items:
                    finish(key, fn(*args))
                return done
            futures = {self.pool.submit(fn, *args): key for args, key in items}
            for fut in as_completed(futures):
                finish(futures[fut], fut.result())
        return done


def init_worker(threads: int, level: int, parent: int | None = None) -> None:
    import torch

    from fusion_perception.cli_plugins import IMPORT_ENV, import_plugins

    if parent is not None:  # the pool's workers: they end with the comparison's process
        _end_with(parent)
    torch.set_num_threads(threads)
    logging.basicConfig(level=level, format="[%(processName)s] %(message)s")
    import_plugins(m for m in os.environ.get(IMPORT_ENV, "").split(",") if m)  # the --import modules, here too


def _end_with(parent: int) -> None:
    """End this worker when the comparison's process ``parent`` dies, even by SIGKILL (which runs
    none of its clean-up): the kernel's parent-death signal where there is one (Linux), and a thread
    that watches the parent everywhere (and covers a parent that died before the signal was set)."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux: the thread alone
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


__all__ = ["Jobs", "init_worker"]
