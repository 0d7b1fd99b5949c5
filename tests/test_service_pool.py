"""Patient-view planned in planner processes (``planner serve --planners N``): records submitted from many threads
get exactly what ``Planner.recommend_all`` gives each alone in this process, and the audit the same entries."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_service_batching import _audit_rows, _records

from planner import Planner
from planner.service.batching import RecommendBatcher
from planner.service.pool import PlannerPool

pytestmark = pytest.mark.slow


def test_planner_processes_give_each_record_its_own_recommendations(tmp_path: Path) -> None:
    records = _records()
    alone = Planner.load(audit=tmp_path / "alone.sqlite")
    want = [
        [r.to_json() for r in alone.recommend_all(rec, top=3, seed=0, input_digest=f"d{i}")]
        for i, rec in enumerate(records)
    ]
    planner = Planner.load(audit=tmp_path / "pooled.sqlite")
    pool = PlannerPool(2, model=None, rules=None, num_samples=None, top=3)
    try:
        batcher = RecommendBatcher(planner, top=3, seed=0, window_s=0.01, max_batch=3, parallel=2, run=pool.plan)
        with ThreadPoolExecutor(8) as threads:
            got = list(threads.map(lambda ir: batcher.recommend_all(ir[1], digest=f"d{ir[0]}"), enumerate(records)))
        assert [[r.to_json() for r in g] for g in got] == want
        assert _audit_rows(tmp_path / "pooled.sqlite") == _audit_rows(tmp_path / "alone.sqlite")
        # a planner process that dies fails at most the batch it had; later requests get new processes
        victim = next(iter(pool._pool._processes.values()))
        victim.kill()
        victim.join()
        outcomes: list[object] = []
        for _ in range(3):
            try:
                outcomes.append([r.to_json() for r in batcher.recommend_all(records[2], digest="again")])
            except RuntimeError as exc:
                outcomes.append(str(exc))
        assert outcomes[-1] == want[2] and all(o in (want[2], "planner process failed") for o in outcomes)
    finally:
        pool.close()
