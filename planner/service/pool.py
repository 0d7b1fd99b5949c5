"""Planner processes for patient-view: :class:`PlannerPool` (``planner serve --planners N``).

The service process keeps HTTP, tokens, prefetch, records, the per-record plan cache, cards and the audit; the
recommendation work of patients not cached yet (the CPU-heavy part) goes to N processes started at launch
(``spawn``), each with its own :class:`~planner.api.Planner` loaded from the same model, rules and number of
draws. One queue feeds them all, so a busy process never holds back requests another could take (unlike
connections, which stay with the worker process that accepted them). A batch of records crosses as pickles and
comes back as the recommendations :func:`planner.service.batching.plan_records` gives in the service itself:
the same cards (``tests/test_service_pool.py``). Each process exits when the service process is gone.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from ..record import PatientRecord

__all__ = ["PlannerPool", "freeze_heap"]

log = logging.getLogger("planner.service")

_PLANNER: Any = None
_ARGS: tuple[int, int] = (3, 0)


def freeze_heap() -> None:
    """Everything loaded so far out of the garbage collector's view: a full collection no longer walks the
    loaded planner (see :func:`planner.service.server.build`)."""
    gc.collect()
    gc.freeze()


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)  # the service is gone: so is this process


def _init(model: Path | None, rules: Path | None, num_samples: int | None, top: int, seed: int, parent: int) -> None:
    global _PLANNER, _ARGS
    from ..api import Planner

    _PLANNER = Planner.load(model=model, rules=rules, num_samples=num_samples)
    _ARGS = (top, seed)
    freeze_heap()  # the loaded planner out of the collector's view (see planner.service.server.build)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _plan(records: list[PatientRecord]) -> list[Any]:
    from .batching import plan_records

    top, seed = _ARGS
    return plan_records(_PLANNER, records, top=top, seed=seed)


def _ready() -> int:
    return os.getpid()


class PlannerPool:
    """``processes`` planner processes fed from one queue; :meth:`plan` blocks the calling thread until done."""

    def __init__(
        self,
        processes: int,
        *,
        model: Path | None,
        rules: Path | None,
        num_samples: int | None,
        top: int,
        seed: int = 0,
        start_timeout_s: float = 300.0,
    ) -> None:
        self.processes = processes
        self._lock = threading.Lock()
        self._args = (model, rules, num_samples, top, seed, os.getpid())
        self._pool = self._start()
        # start every process now (one task each, so the first requests do not wait for a planner to load)
        for f in [self._pool.submit(_ready) for _ in range(processes)]:
            f.result(timeout=start_timeout_s)

    def _start(self) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process holding threads and torch state
        return ProcessPoolExecutor(self.processes, mp_context=ctx, initializer=_init, initargs=self._args)

    def plan(self, records: list[PatientRecord]) -> list[Any]:
        pool = self._pool
        try:
            return pool.submit(_plan, records).result()
        except BrokenProcessPool:  # a planner process died: this batch fails (500), later ones get new processes
            with self._lock:
                if self._pool is pool:
                    log.error("a planner process exited unexpectedly; starting new planner processes")
                    self._pool = self._start()
            raise RuntimeError("planner process failed") from None

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
