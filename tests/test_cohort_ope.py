"""The off-policy estimators and their outcome-model error term, checked against first principles."""

from __future__ import annotations

import numpy as np

from planner.cohort import cli as cohort_cli
from planner.cohort import ope


def _sums(y, mu_obs, mu_rec, w):
    gi = np.arange(len(y))
    return ope._sums(y, mu_obs, mu_rec, w, gi, len(y))


def _point(s):
    return {k: float(v[0]) for k, v in ope._values({k: np.array([v.sum()]) for k, v in s.items()}).items()}


def test_estimators_match_their_formulas() -> None:
    rng = np.random.default_rng(0)
    n = 300
    y, mu_obs, mu_rec = rng.normal(7, 1, n), rng.normal(7, 0.5, n), rng.normal(6.5, 0.5, n)
    match = rng.random(n) < 0.2
    e = rng.uniform(0.1, 0.6, n)
    w = match / e
    v = _point(_sums(y, mu_obs, mu_rec, w))
    assert np.isclose(v["ipw"], np.mean(w * y)) and np.isclose(v["snipw"], (w * y).sum() / w.sum())
    assert np.isclose(v["aipw"], np.mean(mu_rec + w * (y - mu_obs)))
    eps = (w * (y - mu_obs)).sum() / w.sum()  # the targeted update: a weighted intercept on the residuals
    assert np.isclose(v["dr"], np.mean(mu_rec + eps)) and np.isclose(v["dm"], mu_rec.mean())
    # no decision follows the policy: DR is the direct method, SNIPW is undefined
    v0 = _point(_sums(y, mu_obs, mu_rec, np.zeros(n)))
    assert np.isclose(v0["dr"], mu_rec.mean()) and np.isnan(v0["snipw"])


def test_model_error_cancels_where_the_data_correct_it_and_stays_where_they_cannot() -> None:
    rng = np.random.default_rng(1)
    n, k = 200, 64
    shift = rng.normal(0, 0.5, k)  # the model's error: one shared shift per posterior draw
    d = np.tile(shift, (n, 1))
    every = ope._model_terms(np.ones(n), d, d)  # every decision followed the policy: the data correct it all
    assert np.allclose(every["dr"], 0) and np.allclose(every["dm"], shift)
    none = ope._model_terms(np.zeros(n), d, d)  # no decision did: DR is as unsure as the model
    assert np.allclose(none["dr"], shift) and np.allclose(none["aipw"], shift)
    assert ope._model_terms(np.ones(n), None, d) == {}


def test_overlap_verdicts() -> None:
    assert ope.overlap_verdict(5, 4.0)[0] == "poor"
    assert ope.overlap_verdict(40, ope.OVERLAP_POOR_ESS - 1)[0] == "poor"
    verdict, message = ope.overlap_verdict(60, 50.0)
    assert verdict == "limited" and "outcome model" in message
    assert ope.overlap_verdict(300, 150.0)[0] == "good"


def test_cli_default_splits_is_the_evaluators() -> None:
    assert cohort_cli.SPLITS == ope.SPLITS


def test_model_draws_are_centred_per_row_and_missing_ones_say_so() -> None:
    import pandas as pd

    rows = pd.DataFrame({"rec_mean_draws": [np.arange(16.0), None, np.full(16, 3.0)]})
    d = ope._centred_draws(rows, "rec_mean_draws")
    assert d is not None and d.shape == (3, 16)
    assert np.allclose(d[0], np.arange(16.0) - 7.5) and np.allclose(d[1:], 0)
    assert ope._centred_draws(rows, "obs_mean_draws") is None  # results of an older run: no draws
    text = ope._method(3, 5, 100, 0.9, have_draws=False, k=0)["text"]
    assert "NOT in the intervals" in text
