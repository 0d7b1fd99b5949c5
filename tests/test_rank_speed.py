"""What the ranking and hand-off speed-ups must keep: the same numbers, bit for bit, and no stale kept values.

* utility terms computed once per distinct column give exactly what the per-regimen arrays gave (the same sums:
  numpy adds a C-order 2-D array's rows in turn and a single column pairwise);
* ``Regimen.key()``/``.ingredients`` and ``FeatureRow.frame()`` are kept per object, never across a copy with
  other values, never compared, dumped or pickled;
* ``benchmarks/ranking.py`` runs end to end (its A/B path against a tree: here this one).
"""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from planner.guidelines.evaluate import _broadcast_mean, _Columns, _means_at
from planner.record import DrugDose, Regimen
from planner.safety.findings import replace

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("m,n", [(1, 1), (1, 5), (2, 1), (2, 2), (3, 80), (12, 80), (5, 3)])
def test_columns_mean_is_the_full_arrays_mean_bit_for_bit(m: int, n: int) -> None:
    rng = np.random.default_rng(m * 100 + n)
    values = rng.standard_normal((1000, m)) * np.exp(3 * rng.standard_normal((1000, m)))
    at = rng.integers(0, m, n)
    cols = _Columns(values, at)
    full = np.stack([values[:, j] for j in at], axis=1)  # what the per-regimen code built
    assert cols.full().flags.c_contiguous
    assert np.array_equal(cols.full(), full)
    assert np.array_equal(cols.mean(), full.mean(axis=0))
    assert np.array_equal(cols.scaled(-0.3).mean(), (-0.3 * full).mean(axis=0))
    one = _Columns(values[:, :1].copy(), np.zeros(n, dtype=np.intp))  # a single distinct column
    for some in ([0], [n - 1, 0], list(range(0, n, 3)), list(range(n))):  # a few plans' means: the same bits
        got = cols.mean_at(some)
        assert np.array_equal(got[some].view(np.uint64), full.mean(axis=0)[some].view(np.uint64))
        together = _means_at([cols, one, cols.scaled(-0.3)], some)  # all in one reduction
        for c, mean in zip([cols, one, cols.scaled(-0.3)], together):
            assert np.array_equal(mean[some].view(np.uint64), c.full().mean(axis=0)[some].view(np.uint64))


@pytest.mark.parametrize("row", [[0.0, -0.5, 0.0, -0.5], [-0.15], [0.0, -0.0, -0.1], [-0.06, -0.12, -0.18, -0.06, 0.0]])
def test_broadcast_mean_is_the_broadcast_arrays_mean_bit_for_bit(row: list[float]) -> None:
    r = np.asarray(row)
    want = np.broadcast_to(r, (1000, len(r))).mean(axis=0)
    got = _broadcast_mean(r, 1000)
    assert got.tobytes() == want.tobytes()  # also the sign of a zero


def _reg(*drugs: tuple[str, float | None]) -> Regimen:
    return Regimen.of([DrugDose(ingredient=i, rxcui=str(k), dose_mg_day=d) for k, (i, d) in enumerate(drugs)])


def test_regimen_key_kept_per_regimen_never_across_copies_with_other_drugs() -> None:
    r = _reg(("metformin", 1000.0), ("sitagliptin", None))
    assert r.key() == "metformin@1000+sitagliptin" and r.ingredients == ("metformin", "sitagliptin")
    other = (DrugDose(ingredient="glipizide", rxcui="9", dose_mg_day=5.0),)
    assert r.model_copy(update={"drugs": other}).key() == "glipizide@5"
    assert replace(r, drugs=other).key() == "glipizide@5"  # a copy of the instance dict, as the screen makes
    assert replace(r, drugs=other).ingredients == ("glipizide",)
    assert Regimen().key() == "none"
    twin = _reg(("metformin", 1000.0), ("sitagliptin", None))  # nothing kept yet
    assert r == twin and twin == r and hash(r) == hash(twin)
    assert dict(r) == dict(twin) and r.model_dump_json() == twin.model_dump_json()
    assert pickle.loads(pickle.dumps(r)).key() == r.key() and copy.deepcopy(r) == r


def test_feature_row_frame_built_once_each_caller_its_own_copy() -> None:
    from planner.handoffs import FeatureRow

    row = FeatureRow(
        patient_id=None,
        area="t2d",
        area_version="1",
        as_of="2024-01-01",
        values={"age": 61.0, "egfr": None, "cyp2c9": "normal"},
        units={"age": "a", "egfr": "mL/min/{1.73_m2}", "cyp2c9": ""},
        target=7.0,
        target_label="HbA1c < 7%",
    )
    twin = row.model_copy()
    a = row.frame()
    assert a.shape == (1, 3) and np.isnan(a.loc[0, "egfr"]) and a.attrs["units"]["egfr"] == "mL/min/{1.73_m2}"
    a.loc[0, "age"] = -1.0
    a["extra"] = 1
    a.attrs["units"]["age"] = "changed"
    b = row.frame()
    assert b.loc[0, "age"] == 61.0 and "extra" not in b and b.attrs["units"]["age"] == "a"
    assert row == twin and twin == row  # the kept frame is not compared
    assert pickle.loads(pickle.dumps(row)) == row and copy.deepcopy(row).frame().equals(b)
    assert "_frame" not in dict(row) and row.model_dump_json() == twin.model_dump_json()


@pytest.mark.slow
def test_ranking_benchmark_runs_ab() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = ["--patients", "6", "--batch", "3", "--repeat", "1", "--rounds", "1", "--against", str(ROOT)]
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "ranking.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    for figure in ("recommend_many", "rank_plans", "handoffs", "ratio", "load average"):
        assert figure in out.stdout


@pytest.mark.parametrize("k,count", [(1, 1), (1, 2), (5, 1000), (3, 7), (8, 200), (2, 999)])
def test_linear_quantiles_are_numpys_bit_for_bit(k: int, count: int) -> None:
    from planner.draw_stats import linear_quantiles
    from planner.rank import QUANTILE_LEVELS

    rng = np.random.default_rng(k * 1000 + count)
    given = [rng.normal(7.0, 1.5, (k, count)), np.round(rng.normal(130, 15, (k, count)), 1)]
    for rows in [*given, *(r.astype(np.float32) for r in given)]:  # the sampler's draws are float32
        for levels in ([0.05, 0.95], [0.05, 0.95, *QUANTILE_LEVELS], [0.0, 1.0, 0.5], [0.025, 0.975]):
            got, want = linear_quantiles(rows, levels), np.quantile(rows, levels, axis=1)
            assert got.shape == want.shape and np.array_equal(got.view(np.uint64), want.view(np.uint64))
    with_nan = rng.normal(size=(3, 50))
    with_nan[1, 7] = np.nan  # numpy's NaN rule: that row's quantiles are NaN, the others unchanged
    assert np.array_equal(linear_quantiles(with_nan, [0.1, 0.9]), np.quantile(with_nan, [0.1, 0.9], axis=1), True)


@pytest.mark.parametrize("num", [1, 7, 1000])
def test_effect_set_sums_are_numpys_row_sums_bit_for_bit(num: int) -> None:
    from planner.guidelines.evaluate import _set_sums

    rng = np.random.default_rng(num)
    n_eff = 12
    z = rng.standard_normal((n_eff, num))
    loc, scale = rng.normal(0, 2, n_eff), np.exp(2 * rng.standard_normal(n_eff))
    eff = np.add(loc, scale * z.T, order="C")  # (num, effects): how the draws were laid out before
    rows = z * scale[:, None] + loc[:, None]  # (effects, num): how _draw_effects lays them out now
    assert np.array_equal(rows.T.view(np.uint64), eff.view(np.uint64))
    sets = [(), (3,), (0, 1), (4, 2, 9), (1, 1), tuple(range(n_eff)), (11, 0, 5, 7, 2, 8, 6, 3, 10)]
    got = _set_sums(rows, sets)
    for j, idx in enumerate(sets):
        want = eff[:, list(idx)].sum(axis=1) if idx else np.zeros(num)
        assert np.array_equal(got[j].view(np.uint64), want.view(np.uint64)), idx


def test_utility_total_by_column_combination_is_the_per_term_sum_bit_for_bit() -> None:
    from planner.guidelines.evaluate import Term, UtilityTerms, _added, _row_columns

    rng = np.random.default_rng(7)
    num, n = 300, 40
    terms = []
    for j, (m, kind) in enumerate([(6, "secondary"), (30, "secondary"), (0, "indication"), (3, "secondary"), (0, "p")]):
        if m:
            cols = _Columns(rng.standard_normal((num, m)) * 10.0 ** rng.integers(-3, 3), rng.integers(0, m, n))
            terms.append(Term(f"t{j}", "t", "u", cols, np.zeros(n), kind))
        else:
            row = np.where(rng.random(n) < 0.5, 0.0, -0.4 * (j + 1))
            terms.append(Term(f"t{j}", "t", "u", _row_columns(row, num), np.zeros(n), kind, row=row))
            assert np.array_equal(terms[-1].columns.full(), np.broadcast_to(row, (num, n)))
    u = UtilityTerms(terms=tuple(terms), applicable=(), met=np.zeros((0, n), dtype=bool))
    want = _added([t.draws for t in terms])  # what adding each term's (S, n) draws in turn gives
    got = u.total()
    assert isinstance(got, np.ndarray) and isinstance(want, np.ndarray)
    assert got.shape == (num, n) and np.array_equal(got.view(np.uint64), want.view(np.uint64))
    some = u.total(kinds=frozenset({"p"}))
    assert isinstance(some, np.ndarray) and np.array_equal(some, terms[-1].draws)


def _twins(obj: object) -> int:
    """Check every model in ``obj`` equals the model validated from its own fields (same values, value types and
    fields-set); return how many were checked."""
    from pydantic import BaseModel

    if isinstance(obj, (tuple, list)):
        return sum(_twins(o) for o in obj)
    if not isinstance(obj, BaseModel):
        return 0
    given = {k: getattr(obj, k) for k in obj.model_fields_set}
    twin = type(obj)(**given)
    assert twin == obj and twin.model_fields_set == obj.model_fields_set, type(obj).__name__
    for k in type(obj).model_fields:
        assert type(getattr(twin, k)) is type(getattr(obj, k)), (type(obj).__name__, k)
    assert twin.model_dump_json() == obj.model_dump_json()
    return 1 + sum(_twins(getattr(obj, k)) for k in type(obj).model_fields)


@pytest.mark.parametrize("prefer", [None, ["avoid-weight-gain", "fewest-pills"]])
def test_plans_built_without_revalidation_equal_their_validated_twins(prefer: list[str] | None) -> None:
    from planner import Planner
    from planner.testing import BundleBuilder

    b = BundleBuilder(patient_id="twin-t2d", birth_date="1962-03-01", sex="female", as_of="2024-06-01")
    b.condition("44054006", display="Type 2 diabetes mellitus", onset="2016-01-01")
    b.condition("84114007", display="Heart failure", onset="2021-01-01")
    b.medication("metformin", dose_mg_day=1000, start="2019-01-01")
    b.observation("hba1c", 8.4, date="2024-05-01")
    b.observation("egfr", 55, date="2024-05-01")
    rec = Planner.load(num_samples=200).recommend(b.record(), area="t2d", top=5, preferences=prefer)
    assert rec.plans and any(p.tradeoffs for p in rec.plans)
    assert _twins(rec.plans) >= len(rec.plans) * 3


def test_winners_by_draw_are_the_rank_ordered_argmax_ties_nan_and_infinities_included() -> None:
    from planner.draw_stats import winners_by_draw

    rng = np.random.default_rng(3)
    for trial in range(300):
        num, n = int(rng.integers(1, 50)), int(rng.integers(1, 30))
        u = np.round(rng.normal(size=(num, n)), int(rng.integers(0, 3)))  # rounded: many ties
        if trial % 5 == 0:
            u[rng.random((num, n)) < 0.05] = np.nan
        if trial % 7 == 0:
            u[:] = 1.0
        if trial % 11 == 0:
            u[rng.random((num, n)) < 0.2] = -np.inf
        if trial % 13 == 0:
            u[rng.random((num, n)) < 0.2] = np.inf
        order = rng.permutation(n)
        before = u.copy()
        want = order[np.argmax(np.take(u, order, axis=1), axis=1)]
        assert np.array_equal(winners_by_draw(u, order), want), trial
        assert np.array_equal(u, before, equal_nan=True)  # put back as it was


def test_order_is_by_rounded_utility_then_key_ties_and_nan_included() -> None:
    from planner.rank import _order

    rng = np.random.default_rng(5)
    regs = [_reg((f"drug{i}", float(i + 1))) for i in range(40)]
    for trial in range(300):
        n = int(rng.integers(1, 40))
        u = np.round(rng.normal(size=n), int(rng.integers(0, 4))) if trial % 2 else rng.normal(size=n)
        if trial % 17 == 0:
            u[0] = np.nan
        cands = [regs[j] for j in rng.permutation(40)[:n]]
        want = sorted(range(n), key=lambda i: (-round(float(u[i]), 12), cands[i].key()))
        assert _order(u, cands) == want, trial


def test_plan_drug_built_without_validation_is_the_validated_model() -> None:
    from planner.construct import plan_drug
    from planner.dosing import dosage
    from planner.recommendation import PlanDrug

    cases = [
        dict(drug="metformin", rxnorm="6809", drug_class="biguanide", dose_mg_day=1000.0, change="continue"),
        dict(drug="metformin", rxnorm="6809", dose_mg_day=2000.0, change="dose-change", previous_dose_mg_day=1000.0),
        dict(drug="glipizide", rxnorm="4821", drug_class=None, dose_mg_day=None, change="stop"),
        dict(drug="metformin", rxnorm="6809", dose_mg_day=1000.0, change="add", dosage=dosage("metformin", 1000.0)),
    ]
    for values in cases:
        got, want = plan_drug(**values), PlanDrug(**values)
        assert got == want and got.model_fields_set == want.model_fields_set
        assert got.model_dump_json() == want.model_dump_json()
    coerced = plan_drug(drug="metformin", rxnorm="6809", dose_mg_day=1000, change="add")  # an int: validated
    assert type(coerced.dose_mg_day) is float
    with pytest.raises(ValueError):
        plan_drug(drug="metformin", rxnorm="6809", change="double")  # an unknown change still fails
