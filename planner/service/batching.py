"""Micro-batching of concurrent patient-view recommendations: :class:`RecommendBatcher`.

The service answers requests in threads. Requests for patients whose plans are not cached yet are gathered for a
short window and planned together in one :func:`planner.batch.recommend_jobs` call (one sampler call for their
posterior draws), by whichever request thread came first (the leader) while the others wait for their own
result. Nothing a patient gets depends on who else is in the batch: each record's recommendations are the ones
``Planner.recommend_all(record, top=top, seed=seed)`` gives (``tests/test_service_batching.py``), and each
record's audit entries are written as ``recommend_all`` writes them (in area order, up to its first failure).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..record import PatientRecord

__all__ = ["RecommendBatcher", "plan_records"]


@dataclass
class _Slot:
    record: PatientRecord
    digest: str
    wake: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # woken to plan the next batch (its own request among them), not with a result
    done: bool = False
    result: list[Any] | None = None
    error: BaseException | None = None


class RecommendBatcher:
    """``recommend_all`` for records submitted from many threads at once, planned in batches of at most
    ``max_batch`` after waiting ``window_s`` for company. The thread that plans a batch answers its own request
    as soon as that batch is done, handing the next batch to the first request still waiting.

    ``run``: how a batch of records is planned (default: :func:`plan_records` in the calling thread; the service's
    planner processes: :meth:`planner.service.pool.PlannerPool.plan`), and ``parallel`` batches at most are
    planned at once (1 in threads; the number of planner processes with a pool)."""

    def __init__(
        self,
        planner: Any,
        *,
        top: int,
        seed: int = 0,
        window_s: float = 0.004,
        max_batch: int = 8,
        parallel: int = 1,
        run: Callable[[list[PatientRecord]], list[Any]] | None = None,
    ) -> None:
        self.planner = planner
        self.window_s = window_s
        self.max_batch = max_batch
        self.parallel = max(1, parallel)
        self._run = run or (lambda records: plan_records(planner, records, top=top, seed=seed))
        self._lock = threading.Lock()
        self._queue: list[_Slot] = []
        self._leaders = 0  # threads planning a batch now, or woken to

    def recommend_all(self, record: PatientRecord, *, digest: str) -> list[Any]:
        """The record's recommendations, one per area it is in (the error ``recommend_all`` would raise)."""
        slot = _Slot(record, digest)
        with self._lock:
            self._queue.append(slot)
            lead = self._leaders < self.parallel
            self._leaders += lead
        if lead:
            time.sleep(self.window_s)  # let the requests arriving together join
            self._lead()
        while True:
            with self._lock:
                lead, slot.lead = slot.lead, False
            if lead:  # woken to plan the next batch: done even when another batch took this request
                self._lead()
                continue
            if slot.done:
                break
            slot.wake.wait()
            slot.wake.clear()
        if slot.error is not None:
            raise slot.error
        assert slot.result is not None
        return slot.result

    def _lead(self) -> None:
        with self._lock:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        try:
            if batch:
                self._plan(batch)
        except BaseException as exc:  # noqa: BLE001 - every waiting request gets the failure, none hangs
            for s in batch:
                if not s.done:
                    s.error = exc
                    s.done = True
                    s.wake.set()
        with self._lock:
            nxt = next((s for s in self._queue if not s.lead), None)
            if nxt is not None:  # the first request still waiting plans the next batch
                nxt.lead = True
                nxt.wake.set()
            else:
                self._leaders -= 1

    def _plan(self, batch: list[_Slot]) -> None:
        results = self._run([s.record for s in batch])
        audit = self.planner.audit
        for s, got in zip(batch, results):
            if isinstance(got, BaseException):
                s.error = got
            else:
                recs, error = got
                if audit is not None:  # as recommend_all writes them: in area order, up to its first failure
                    for rec in recs:
                        audit.write(rec, input_sha256=s.digest)
                s.result, s.error = recs, error
            s.done = True
            s.wake.set()


def plan_records(planner: Any, records: list[PatientRecord], *, top: int, seed: int) -> list[Any]:
    """Per record: ``(recommendations up to the first failing area, that failure or None)``, or the exception
    ``areas_for`` raised; one :func:`planner.batch.recommend_jobs` call for all (no audit written)."""
    from ..batch import Job, recommend_jobs

    out: list[Any] = [None] * len(records)
    jobs: list[Job] = []
    spans: list[tuple[int, int, int]] = []
    for k, record in enumerate(records):
        try:
            areas = planner.areas_for(record)
        except Exception as exc:  # noqa: BLE001 - this request's error, the others go on
            out[k] = exc
            continue
        spans.append((k, len(jobs), len(jobs) + len(areas)))
        jobs.extend(Job(record, a, "") for a in areas)
    prefs = planner.ranking.parse_preferences(None)  # as recommend_all without preferences
    recs = recommend_jobs(planner, jobs, top=top, seed=seed, preferences=prefs, audit=False)
    for k, a, b in spans:
        mine: list[Any] = []
        error: BaseException | None = None
        for rec in recs[a:b]:
            if isinstance(rec, Exception):
                error = rec
                break
            mine.append(rec)
        out[k] = (mine, error)
    return out
