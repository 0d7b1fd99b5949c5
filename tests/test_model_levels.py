"""The follow-up's own spread (planner.model.levels): measured on same-patient, same-regimen lab pairs, it is one
measurement's variance where the level does not move (the first simulator) and more where the level wanders
(the independent simulator's mean-reverting fluctuation); with it the model's residual variance moves from
``kind="mean"`` to ``kind="predictive"`` and the predictive spread stays the likelihood's."""

from __future__ import annotations

import numpy as np
import pytest

from planner.areas import load_area
from planner.model import ResponseModel
from planner.model.levels import within_patient_variance
from planner.simulate import simulate_cohort
from planner.simulate.independent import simulate_independent


@pytest.fixture(scope="module")
def hypertension():
    return load_area("hypertension")


def test_static_level_gives_one_measurements_variance(hypertension):
    cohort = simulate_cohort("hypertension", 250, seed=11)
    est = within_patient_variance(cohort.records(), hypertension, seed=0)
    assert est is not None and est["pairs"] >= 500 and est["patients"] >= 100
    noise2 = hypertension.outcome.noise_sd**2  # lab noise of the first simulator; its level only drifts slowly
    assert 0.85 * noise2 < est["var"] < 1.2 * noise2
    assert 0 < est["se"] < 0.15 * est["var"]


def test_wandering_level_adds_its_change_over_the_horizon(hypertension):
    cohort = simulate_independent(hypertension, 250, seed=11)
    est = within_patient_variance(cohort.records(), hypertension, seed=0)
    assert est is not None
    noise2 = hypertension.outcome.noise_sd**2  # its lab noise has the area's variance, the level fluctuates too
    ou2 = cohort.params["world"]["ou_sd"] ** 2 * noise2
    assert 1.1 * noise2 < est["var"] < noise2 + ou2


def test_too_few_pairs_give_no_estimate(hypertension):
    assert within_patient_variance(simulate_cohort("hypertension", 3, seed=1).records(), hypertension) is None
    assert within_patient_variance([], hypertension) is None


def test_measured_spread_moves_variance_from_mean_to_predictive(hypertension, tmp_path):
    d = simulate_cohort("hypertension", 300, seed=2).decisions
    ep = d[d["episode"]].reset_index(drop=True)
    feats = [f.name for f in hypertension.features if f.name in ep.columns]
    m = ResponseModel.from_area("hypertension", seed=0, num_steps=200, num_draws=400)
    y = ep["followup"].to_numpy(float)
    m.fit(ep[feats], list(ep["regimen"]), y, current=list(ep["regimen_before"]))
    rows, regs = ep[feats].iloc[:40], [ep["regimen"].iloc[0]]
    cur = list(ep["regimen_before"].iloc[:40])
    wide = {k: m.sample(rows, regs, kind=k, current=cur, seed=1) for k in ("mean", "predictive")}
    resid_var = float(np.var(y - ep["baseline"].to_numpy(float)))
    m.spec_.followup_var, m.spec_.followup_var_se = 0.6 * resid_var, 0.0
    narrow = {k: m.sample(rows, regs, kind=k, current=cur, seed=1) for k in ("mean", "predictive")}
    assert narrow["mean"].std(0).mean() < 0.9 * wide["mean"].std(0).mean()
    ratio = narrow["predictive"].std(0).mean() / wide["predictive"].std(0).mean()
    assert 0.9 < ratio < 1.1  # the likelihood's spread, split differently
    m.save(tmp_path / "m")
    back = ResponseModel.load(tmp_path / "m")
    assert back.spec_.followup_var == pytest.approx(0.6 * resid_var)
    np.testing.assert_allclose(back.sample(rows, regs, kind="mean", current=cur, seed=1), narrow["mean"], rtol=1e-5)
