"""One model, one maths: the expected outcome that prediction uses is the Pyro model's own mean (its return
value under ``Predictive``), computed by the one function ``planner.model.model.regimen_effect``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from pyro.infer import Predictive

from planner.areas import load_area
from planner.model import ResponseModel
from planner.model.model import Batch, Priors, batch_mean, derived, response_model
from planner.simulate import simulate_cohort


def _pyro_mean(m, X, regs, cur):
    spec, draws = m._state()
    pr = Priors(spec)
    x, off = m._matrix(spec, X)
    batch = Batch.build(x, off, spec.encode_change(regs, cur))
    pred = Predictive(lambda b: response_model(pr, b, None, None), posterior_samples=draws, return_sites=["_RETURN"])
    return pred(batch)["_RETURN"].detach().numpy(), pr, draws, batch


def _prediction_mean(m, X, regs, cur):
    spec, draws = m._state()
    par = m._fast(spec, draws)
    x, off = m._matrix(spec, X)
    mean, *_ = m._expected(
        spec,
        par,
        torch.as_tensor(x, dtype=torch.float32),
        torch.as_tensor(off, dtype=torch.float32),
        spec.encode(regs),
        cur,
    )
    n = len(X)
    return mean[:, np.arange(n), np.arange(n)].numpy()  # row i under regimen i


@pytest.mark.slow
@pytest.mark.parametrize("area_id", ["t2d", "lipids"])
def test_prediction_mean_is_the_models_mean_under_predictive(area_id):
    area = load_area(area_id)
    d = simulate_cohort(area_id, 120, seed=4).decisions
    ep = d[d["episode"]].reset_index(drop=True)
    feats = [f.name for f in area.features if f.name in ep.columns]
    m = ResponseModel.from_area(area_id, seed=0, num_steps=150, num_draws=150)
    m.fit(ep[feats], list(ep["regimen"]), ep["followup"].to_numpy(), current=list(ep["regimen_before"]))
    rows = ep.iloc[:12].reset_index(drop=True)
    regs, cur = list(rows["regimen"]), list(rows["regimen_before"])
    ref, pr, draws, batch = _pyro_mean(m, rows[feats], regs, cur)
    got = _prediction_mean(m, rows[feats], regs, cur)
    assert ref.shape == got.shape == (150, 12)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    # batch_mean over all draws at once (the vectorized path) is the same as draw by draw
    par = derived(pr, draws)
    mean_all, het_all = batch_mean(pr, par, batch)
    np.testing.assert_allclose(mean_all.numpy(), ref, rtol=1e-10, atol=1e-10)
    one = {k: v[3] for k, v in par.items()}
    np.testing.assert_allclose(batch_mean(pr, one, batch)[1].numpy(), het_all[3].numpy(), rtol=1e-12)
    # and the untrained prior model too
    p = ResponseModel.from_area(area_id, num_draws=100)
    ref0, *_ = _pyro_mean(p, rows[feats], regs, cur)
    np.testing.assert_allclose(
        _prediction_mean(p, rows[feats], regs, cur), ref0, rtol=1e-4, atol=1e-4 * np.abs(ref0).max()
    )


def test_tabular_prediction_mean_is_the_models_mean():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    arms = ["x", "y"]
    regs = [set() if k < 0 else {arms[k]} for k in rng.integers(-1, 2, 200)]
    y = X["a"].to_numpy() + np.array([len(r) for r in regs]) * (1 + X["b"].to_numpy()) + rng.normal(size=200)
    m = ResponseModel(seed=0, num_steps=150, num_draws=120, basis="none").fit(X, regs, y)
    ref, *_ = _pyro_mean(m, X.iloc[:9], regs[:9], None)
    np.testing.assert_allclose(_prediction_mean(m, X.iloc[:9], regs[:9], None), ref, rtol=1e-4, atol=1e-4)


def test_effective_sample_size_of_known_chains():
    from planner.model.infer import effective_sample_size

    rng = np.random.default_rng(0)
    n = 4000
    assert 0.8 * n < effective_sample_size(rng.normal(size=n)) < 1.2 * n  # independent draws
    ar = np.zeros(n)
    for t in range(1, n):
        ar[t] = 0.9 * ar[t - 1] + rng.normal()
    assert 0.6 * n / 19 < effective_sample_size(ar) < 1.5 * n / 19  # AR(1): n (1 - phi) / (1 + phi)
    assert np.isnan(effective_sample_size(np.ones(50)))
