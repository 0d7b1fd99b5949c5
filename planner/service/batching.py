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
from typing import Any

from ..record import PatientRecord

__all__ = ["RecommendBatcher"]


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
    as soon as that batch is done, handing the next batch to the first request still waiting."""

    def __init__(self, planner: Any, *, top: int, seed: int = 0, window_s: float = 0.004, max_batch: int = 8) -> None:
        self.planner = planner
        self.top = top
        self.seed = seed
        self.window_s = window_s
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Slot] = []
        self._leading = False

    def recommend_all(self, record: PatientRecord, *, digest: str) -> list[Any]:
        """The record's recommendations, one per area it is in (the error ``recommend_all`` would raise)."""
        slot = _Slot(record, digest)
        with self._lock:
            self._queue.append(slot)
            lead = not self._leading
            self._leading = True
        if lead:
            time.sleep(self.window_s)  # let the requests arriving together join
            self._lead()
        while not slot.done:
            slot.wake.wait()
            slot.wake.clear()
            if slot.lead and not slot.done:
                slot.lead = False
                self._lead()
        if slot.error is not None:
            raise slot.error
        assert slot.result is not None
        return slot.result

    def _lead(self) -> None:
        with self._lock:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        try:
            self._plan(batch)
        except BaseException as exc:  # noqa: BLE001 - every waiting request gets the failure, none hangs
            for s in batch:
                if not s.done:
                    s.error = exc
                    s.done = True
                    s.wake.set()
        with self._lock:
            if self._queue:  # the first request still waiting plans the next batch
                nxt = self._queue[0]
                nxt.lead = True
                nxt.wake.set()
            else:
                self._leading = False

    def _plan(self, batch: list[_Slot]) -> None:
        from ..batch import Job, recommend_jobs

        jobs: list[Job] = []
        spans: list[tuple[_Slot, int, int]] = []
        for s in batch:
            try:
                areas = self.planner.areas_for(s.record)
            except Exception as exc:  # noqa: BLE001 - this request's error, the others go on
                s.error = exc
                s.done = True
                s.wake.set()
                continue
            spans.append((s, len(jobs), len(jobs) + len(areas)))
            jobs.extend(Job(s.record, a, s.digest) for a in areas)
        prefs = self.planner.ranking.parse_preferences(None)  # as recommend_all without preferences
        recs = recommend_jobs(self.planner, jobs, top=self.top, seed=self.seed, preferences=prefs, audit=False)
        audit = self.planner.audit
        for s, a, b in spans:
            mine: list[Any] = []
            for rec in recs[a:b]:
                if isinstance(rec, Exception):
                    s.error = rec
                    break
                if audit is not None:
                    audit.write(rec, input_sha256=s.digest)
                mine.append(rec)
            if s.error is None:
                s.result = mine
            s.done = True
            s.wake.set()
