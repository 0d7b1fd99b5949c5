"""``Planner.recommend_many``: the same recommendations as one-at-a-time ``recommend`` for the same seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from planner import Planner
from planner.errors import PlannerError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def planner() -> Planner:
    return Planner.load()


@pytest.fixture(scope="module")
def records():
    from planner.areas import load_area
    from planner.simulate import simulate_cohort

    return simulate_cohort(load_area("t2d"), 12, seed=5).records()


def test_recommend_many_equals_recommend(planner: Planner, records) -> None:
    many = planner.recommend_many(records, area="t2d", top=5, seed=3)
    assert len(many) == len(records)
    for rec, got in zip(records, many):
        one = planner.recommend(rec, area="t2d", top=5, seed=3)
        assert got.to_json() == one.to_json()


def test_recommend_many_keeps_going_past_a_bad_source(planner: Planner, records) -> None:
    srcs = [records[0], b"not json", records[1]]
    out = planner.recommend_many(srcs, area="t2d", errors="return")
    assert isinstance(out[1], PlannerError)
    assert out[0].to_json() == planner.recommend(records[0], area="t2d").to_json()
    assert out[2].to_json() == planner.recommend(records[1], area="t2d").to_json()
    with pytest.raises(PlannerError):
        planner.recommend_many(srcs, area="t2d")
