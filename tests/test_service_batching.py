"""The service's micro-batching of patient-view recommendations: records submitted from many threads at once get
exactly what ``Planner.recommend_all`` gives each alone (same input + seed: the same cards), and the audit gets
the same entries."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from planner import Planner
from planner.areas import load_area
from planner.service.batching import RecommendBatcher
from planner.simulate import simulate_cohort


def _records() -> list:
    recs = simulate_cohort(load_area("t2d"), 10, seed=8).records()
    recs += simulate_cohort(load_area("hypertension"), 4, seed=9).records()
    return recs


def _audit_rows(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
        rows: list[tuple] = []
        for t in tables:
            cols = [r[1] for r in db.execute(f"pragma table_info({t})")]
            keep = [c for c in cols if c not in ("id", "recorded_at")]
            rows += sorted(db.execute(f"select {', '.join(keep)} from {t}").fetchall(), key=repr)
    return rows


def test_concurrent_requests_get_their_own_recommendations(tmp_path: Path) -> None:
    records = _records()
    alone = Planner.load(audit=tmp_path / "alone.sqlite")
    want = [
        [r.to_json() for r in alone.recommend_all(rec, top=3, seed=0, input_digest=f"d{i}")]
        for i, rec in enumerate(records)
    ]
    assert any(len(w) == 0 for w in want) or all(want)  # patients in no area get no recommendation, not an error
    planner = Planner.load(audit=tmp_path / "batched.sqlite")
    batcher = RecommendBatcher(planner, top=3, seed=0, window_s=0.02, max_batch=5)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda ir: batcher.recommend_all(ir[1], digest=f"d{ir[0]}"), enumerate(records)))
    assert [[r.to_json() for r in g] for g in got] == want
    assert _audit_rows(tmp_path / "batched.sqlite") == _audit_rows(tmp_path / "alone.sqlite")
