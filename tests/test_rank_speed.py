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

from planner.guidelines.evaluate import _broadcast_mean, _Columns
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
