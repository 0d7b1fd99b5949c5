"""ResponseModel: shapes, determinism, save/load, the literature prior, recovery, coverage, NUTS, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError as SkNotFitted

from planner.areas import load_area
from planner.errors import ModelError, PlannerError
from planner.model import NotFittedError, ResponseModel
from planner.record import DrugDose, Regimen

FAST = dict(num_steps=400, num_draws=300)


def _binary(n: int = 800, seed: int = 0, effect: float = 1.0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    t = rng.random(n) < 0.5
    y = 2.0 + 0.5 * X["a"].to_numpy() + t * (effect + 0.5 * X["b"].to_numpy()) + rng.normal(size=n) * 0.5
    regs = [{"treated"} if ti else set() for ti in t]
    return X, regs, y


def _reg(area, *pairs) -> Regimen:
    return Regimen.of(
        [
            DrugDose(ingredient=n, rxcui=area.drug(n).rxcui, dose_mg_day=d, drug_class=area.drug(n).drug_class)
            for n, d in pairs
        ]
    )


@pytest.fixture(scope="module")
def binary_fit():
    X, regs, y = _binary()
    return X, regs, y, ResponseModel(seed=0, basis="none", **FAST).fit(X, regs, y)  # the linear model


# ---- shapes and API ---------------------------------------------------------------------------------------
def test_sample_shapes_and_predict(binary_fit):
    X, regs, y, m = binary_fit
    d = m.sample(X.iloc[:7], [set(), {"treated"}], 50)
    assert d.shape == (50, 7, 2) and d.dtype == np.float32
    p = m.sample(X.iloc[:7], [set(), {"treated"}], kind="predictive")
    assert p.shape == (300, 7, 2)
    assert p.std(0).mean() > 3 * d[:, :, :].std(0).mean() / 50**0  # observation noise widens the draws
    df = m.predict(X.iloc[:3], [set(), {"treated"}], level=0.9)
    assert list(df.columns) == ["row", "regimen", "mean", "lower", "upper"]
    assert len(df) == 6 and (df["lower"] <= df["mean"]).all() and (df["mean"] <= df["upper"]).all()
    assert list(df["regimen"][:2]) == ["none", "treated"]
    assert m.arms_ == ["treated"] and m.n_features_in_ == 2 and list(m.feature_names_in_) == ["a", "b"]
    assert m.training_summary_["episodes"] == len(X) and "patient" not in str(m.training_summary_)


def test_recovers_known_effect_and_interaction(binary_fit):
    X, regs, y, m = binary_fit
    grid = pd.DataFrame({"a": [0.0, 0.0], "b": [0.0, 1.0]})
    d = m.sample(grid, [set(), {"treated"}])
    eff = d[:, :, 1] - d[:, :, 0]
    assert abs(eff[:, 0].mean() - 1.0) < 0.12  # true effect at b=0: 1.0
    assert abs(eff[:, 1].mean() - 1.5) < 0.15  # and at b=1: 1.5
    z = (eff[:, 0].mean() - 1.0) / eff[:, 0].std()
    assert abs(z) < 3 and eff[:, 0].std() < 0.12  # the truth sits inside a narrow posterior


def test_deterministic_for_a_seed():
    X, regs, y = _binary(300, seed=1)
    a = ResponseModel(seed=3, num_steps=150, num_draws=100).fit(X, regs, y).sample(X.iloc[:4], [set(), {"treated"}])
    b = ResponseModel(seed=3, num_steps=150, num_draws=100).fit(X, regs, y).sample(X.iloc[:4], [set(), {"treated"}])
    c = ResponseModel(seed=4, num_steps=150, num_draws=100).fit(X, regs, y).sample(X.iloc[:4], [set(), {"treated"}])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_save_load_roundtrip(binary_fit, tmp_path):
    X, regs, y, m = binary_fit
    m.save(tmp_path / "m")
    back = ResponseModel.load(tmp_path / "m")
    for kind in ("mean", "predictive"):
        np.testing.assert_allclose(
            back.sample(X.iloc[:5], [set(), {"treated"}], kind=kind, seed=2),
            m.sample(X.iloc[:5], [set(), {"treated"}], kind=kind, seed=2),
            rtol=1e-5,
        )
    meta = back.metadata_
    assert meta["seed"] == 0 and meta["versions"]["pyro"] and meta["feature_spec"]["features"] == ["a", "b"]
    assert meta["training"]["episodes"] == len(X)


def test_area_model_save_load_with_categories(tmp_path):
    area = load_area("t2d")
    rng = np.random.default_rng(0)
    n = 300
    X = pd.DataFrame(
        {
            "baseline": rng.normal(8.5, 1, n),
            "egfr": rng.normal(80, 15, n),
            "cyp2c9": rng.choice(["Normal Metabolizer", "Poor Metabolizer", None], n),
        }
    )
    met = _reg(area, ("metformin", 1000.0))
    regs = [met if i % 2 else Regimen() for i in range(n)]
    y = X["baseline"].to_numpy() - 1.0 * (np.arange(n) % 2) + rng.normal(0, 0.4, n)
    m = ResponseModel.from_area("t2d", seed=0, num_steps=200, num_draws=100).fit(X, regs, y)
    assert "cyp2c9=Poor Metabolizer" in m.spec_.features
    m.save(tmp_path / "t2d")
    back = ResponseModel.load(tmp_path / "t2d")
    assert back.area_.id == "t2d" and back.name == "t2d-svi"
    np.testing.assert_allclose(
        back.sample(X.iloc[:3], [Regimen(), met]), m.sample(X.iloc[:3], [Regimen(), met]), rtol=1e-5
    )
    prior_dir = ResponseModel.from_area("t2d").save(tmp_path / "prior")
    assert ResponseModel.load(prior_dir).sample(X.iloc[:1], [met]).shape == (1000, 1, 1)


# ---- the literature prior ---------------------------------------------------------------------------------
def test_prior_model_is_sane_on_t2d():
    area = load_area("t2d")
    m = ResponseModel.from_area("t2d")
    X = pd.DataFrame({"baseline": [8.0, 10.0, 8.0], "egfr": [90.0, 90.0, 40.0]})
    none, met_hi, met_lo = Regimen(), _reg(area, ("metformin", 2000.0)), _reg(area, ("metformin", 500.0))
    empa = _reg(area, ("empagliflozin", 10.0))
    su = _reg(area, ("glipizide", 10.0))
    combo = _reg(area, ("metformin", 2000.0), ("glipizide", 10.0))
    d = m.sample(X, [none, met_hi, met_lo, empa, su, combo]).mean(0)
    eff = d - d[:, :1]
    # metformin at its reference dose and the modifier's centre: the published -1.12
    assert abs(eff[0, 1] - area.class_prior("biguanide").effect) < 0.05
    assert eff[0, 2] > eff[0, 1]  # 500 mg does less than 2000 mg (emax)
    assert eff[1, 1] < eff[0, 1]  # higher baseline, larger fall (modifier)
    assert eff[2, 3] > eff[0, 3] + 0.25  # SGLT2 weaker at low eGFR (-0.008 per mL/min below 90)
    assert eff[0, 4] > eff[0, 5] > eff[0, 1] + eff[0, 4]  # combination adds, sub-additively
    assert abs(d[0, 0] - 8.0) < 0.1  # no drug: expected to stay near the baseline


def test_prior_current_regimen_taken_out_of_baseline():
    area = load_area("t2d")
    m = ResponseModel.from_area("t2d")
    met = _reg(area, ("metformin", 2000.0))
    X = pd.DataFrame({"baseline": [7.5]})
    d = m.sample(X, [Regimen(), met], current=met).mean(0)[0]
    assert abs(d[1] - 7.5) < 0.1  # continuing: stays near baseline
    assert d[0] > 8.4  # stopping loses the metformin effect


def test_prior_model_log_scale_lipids():
    area = load_area("lipids")
    m = ResponseModel.from_area("lipids")
    statin = next(d for d in area.formulary if d.drug_class == area.classes[0].id)
    r = Regimen.of([DrugDose(ingredient=statin.ingredient, rxcui=statin.rxcui, dose_mg_day=statin.reference_dose)])
    d = m.sample(pd.DataFrame({"baseline": [160.0]}), [Regimen(), r]).mean(0)[0]
    ratio = d[1] / d[0]
    assert 0.2 < ratio < 0.95  # a statin lowers LDL-C by a percentage
    with pytest.raises(ModelError, match="positive"):
        m.sample(pd.DataFrame({"baseline": [-5.0]}), [r])


# ---- inference quality ------------------------------------------------------------------------------------
def test_coverage_roughly_right_on_a_small_problem():
    """Many arms with known, feature-dependent effects: 90% intervals of the true expected outcome cover
    roughly 90% of (row, arm) pairs."""
    rng = np.random.default_rng(5)
    n, arms = 1500, [f"arm{k}" for k in range(6)]
    eff = rng.normal(0, 1, len(arms))
    slope = rng.normal(0, 0.3, len(arms))
    X = pd.DataFrame({"u": rng.normal(size=n), "v": rng.normal(size=n)})
    which = rng.integers(-1, len(arms), n)
    regs = [set() if k < 0 else {arms[k]} for k in which]

    def truth(Xf):
        base = 1.0 + 0.8 * Xf["u"].to_numpy()
        return np.stack([base] + [base + eff[k] + slope[k] * Xf["v"].to_numpy() for k in range(len(arms))], 1)

    T = truth(X)
    y = T[np.arange(n), which + 1] + rng.standard_t(6, n) * 0.7
    m = ResponseModel(seed=0, num_steps=800, num_draws=400).fit(X, regs, y)
    Xt = pd.DataFrame({"u": rng.normal(size=300), "v": rng.normal(size=300)})
    d = m.sample(Xt, [set()] + [{a} for a in arms])
    lo, hi = np.quantile(d, [0.05, 0.95], axis=0)
    Tt = truth(Xt)
    cover = ((Tt >= lo) & (Tt <= hi)).mean()
    assert 0.75 <= cover <= 0.99, cover


def test_nuts_agrees_with_svi():
    X, regs, y = _binary(150, seed=2)
    svi = ResponseModel(seed=0, num_steps=500, num_draws=300).fit(X, regs, y)
    nuts = ResponseModel(seed=0, method="nuts", num_warmup=100, num_draws=100).fit(X, regs, y)
    grid = pd.DataFrame({"a": [0.0], "b": [0.0]})
    es = np.diff(svi.sample(grid, [set(), {"treated"}]), axis=2).ravel()
    en = np.diff(nuts.sample(grid, [set(), {"treated"}]), axis=2).ravel()
    assert abs(es.mean() - en.mean()) < 0.1
    assert 0.6 < es.std() / en.std() < 1.6
    assert nuts.method_ == "nuts" and 0 < nuts.diagnostics_["min_ess"] < 1e4


# ---- errors -----------------------------------------------------------------------------------------------
def test_not_fitted_error():
    m = ResponseModel()
    with pytest.raises(NotFittedError, match="not fitted") as ei:
        m.sample(pd.DataFrame({"a": [1.0]}), [set()])
    assert isinstance(ei.value, SkNotFitted) and isinstance(ei.value, PlannerError)


def test_input_errors(binary_fit):
    X, regs, y, m = binary_fit
    with pytest.raises(ModelError, match="'placebo'.*unknown arm.*treated"):
        m.sample(X.iloc[:2], [{"placebo"}])
    with pytest.raises(ModelError, match="differ in length"):
        ResponseModel().fit(X, regs[:-1], y)
    with pytest.raises(ModelError, match="y and X differ"):
        ResponseModel().fit(X, regs, y[:-2])
    with pytest.raises(ModelError, match="DataFrame"):
        ResponseModel().fit(X.to_numpy(), regs, y)
    with pytest.raises(ModelError, match="not finite"):
        ResponseModel().fit(X, regs, np.where(np.arange(len(y)) == 3, np.nan, y))
    with pytest.raises(ModelError, match="'b': missing feature column"):
        m.sample(X[["a"]], [set()])
    with pytest.raises(ModelError, match="num_samples"):
        m.sample(X.iloc[:2], [set()], 10_000)
    with pytest.raises(ModelError, match="not a string"):
        m.sample(X.iloc[:2], ["treated"])
    with pytest.raises(ModelError, match="list of regimens"):
        m.sample(X.iloc[:2], "treated")
    with pytest.raises(PlannerError, match="kind"):
        m.sample(X.iloc[:2], [set()], kind="median")
    area_model = ResponseModel.from_area("t2d")
    with pytest.raises(ModelError, match="'aspirin'.*unknown drug"):
        area_model.sample(pd.DataFrame({"baseline": [8.0]}), [{"aspirin"}])
    with pytest.raises(ModelError, match="baseline"):
        area_model.sample(pd.DataFrame({"egfr": [80.0]}), [set()])
    with pytest.raises(ModelError, match="not a saved model"):
        ResponseModel.load("/nonexistent/folder")


# ---- learned basis (tabular) --------------------------------------------------------------------------------
def _nonlinear(n: int, seed: int):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.normal(size=n)})
    a, b = X["a"].to_numpy(), X["b"].to_numpy()
    p = 1 / (1 + np.exp(-a))  # confounded through a
    t = rng.random(n) < p
    tau = 1.0 + 2.0 * (b > 0) * np.abs(a)  # a step and a kink: not linear in the features
    y = np.sin(2 * a) + a**2 + t * tau + rng.normal(size=n) * 0.5
    return X, [{"treated"} if ti else set() for ti in t], y, tau


@pytest.mark.slow
def test_learned_basis_beats_linear_on_nonlinear_effects_and_covers(tmp_path):
    X, regs, y, _ = _nonlinear(1500, 0)
    Xt, _, _, tau_t = _nonlinear(400, 1)
    out = {}
    for basis in ("auto", "none"):
        m = ResponseModel(seed=0, num_steps=600, num_draws=300, basis=basis).fit(X, regs, y)
        d = m.sample(Xt, [set(), {"treated"}])
        td = d[:, :, 1] - d[:, :, 0]
        lo, hi = np.quantile(td, [0.05, 0.95], axis=0)
        out[basis] = (np.sqrt(np.mean((td.mean(0) - tau_t) ** 2)), np.mean((tau_t >= lo) & (tau_t <= hi)), m)
    assert out["auto"][2].spec_.basis and not out["none"][2].spec_.basis
    assert out["auto"][0] < 0.75 * out["none"][0]  # the data shaped the effect modification
    assert 0.75 <= out["auto"][1] <= 0.99  # and its intervals carry the basis' own uncertainty
    m = out["auto"][2]
    back = ResponseModel.load(m.save(tmp_path / "b"))
    np.testing.assert_allclose(
        back.sample(Xt.iloc[:5], [set(), {"treated"}], seed=3),
        m.sample(Xt.iloc[:5], [set(), {"treated"}], seed=3),
        rtol=1e-5,
    )
    assert list(back.feature_names_in_) == ["a", "b", "c"]
