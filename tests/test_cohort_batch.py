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


def test_predict_regimens_many_equals_one_call_each(planner: Planner, records) -> None:
    """The cohort's draws at observed and recommended regimens, batched: the same arrays as one call each; an item
    that cannot be predicted is None and one that fails has its error in its place, the others unchanged."""
    import numpy as np

    from planner.batch import predict_regimens, predict_regimens_many
    from planner.record import DrugDose, Regimen

    met = Regimen.of([DrugDose(ingredient="metformin", rxcui="6809", dose_mg_day=1000.0)])
    pair = Regimen.of(
        [
            DrugDose(ingredient="metformin", rxcui="6809", dose_mg_day=2000.0),
            DrugDose(ingredient="empagliflozin", rxcui="1545653", dose_mg_day=10.0),
        ]
    )
    no_outcome = records[2].model_copy(update={"observations": {}})
    items = [
        (records[0], "t2d", [met]),
        (records[0], "t2d", [pair]),  # the same record again: its features are built once
        (no_outcome, "t2d", [met]),
        (records[1], "no-such-area", [met]),
        (records[3], "t2d", [met, pair]),
    ]
    got = predict_regimens_many(planner, items, seed=7)
    assert got[2] is None
    assert isinstance(got[3], PlannerError)
    for k in (0, 1, 4):
        rec, area, regs = items[k]
        one = predict_regimens(planner, rec, area, regs, seed=7)
        assert one is not None and not isinstance(got[k], Exception) and got[k] is not None
        assert np.array_equal(got[k][0], one[0]) and np.array_equal(got[k][1], one[1])
