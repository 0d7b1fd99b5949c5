"""A learned basis for tabular studies: cross-fitted tree-ensemble estimates of the untreated outcome, of each
arm's effect and of the propensity, used as covariates of the Bayesian model (see :mod:`planner.model.model`).

Why: the Bayesian model's prognostic part and its arm x feature interactions are linear in the features. Where
the truth is not (ACIC 2016), the data can shape them through these covariates: ``_prog`` (E[y | x, no arm]),
``_eff:<arm>`` (E[y | x, arm] - E[y | x, no arm], a T-learner) and ``_prop:<arm>`` (P(arm | x), as in BCF).
The Pyro model gives each arm's own ``_eff`` column a prior centred at 1 (on the raw scale) and everything else
its usual priors, so that it can correct, shrink or ignore them.

Cross-fitting: with ``K`` folds, fold model ``k`` is trained on the other ``K - 1`` folds. Training rows get the
out-of-fold value (the Bayesian stage never sees a basis fitted on its own outcome); new rows get the average of
the ``K`` fold models, and the spread of the fold models there measures the basis' own sampling error. For an
estimator whose variance falls like 1/m in its training size, two fold models share ``(K-2)/K`` of the rows and
``Var(f_j - f_k) = 2 s^2 (n/K) / m^2`` with ``m = (K-1) n / K``; the full-data estimator has ``s^2 / n``, so
its SD is ``(K - 1) / sqrt(K)`` times the between-fold SD (1.79 for K = 5). :meth:`LearnedBasis.transform`
returns that scaled spread as per-fold deviations, which prediction propagates through the model's coefficients
(errors in the covariates), so CATE intervals carry the basis' uncertainty, not only the linear stage's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ModelError

__all__ = ["LearnedBasis", "MIN_ROWS", "PROG", "EFF", "PROP"]

MIN_ROWS = 200  # below this many rows (or rows of the reference group) there is no learned basis
MIN_ARM_ROWS = 50  # an arm with fewer single-arm rows gets no effect column
KEEP_RATIO = 0.95  # the basis is kept when its held-out outcome MSE is below 95% of a linear model's
PROG, EFF, PROP = "_prog", "_eff:", "_prop:"
TREE = {"n_estimators": 300, "max_depth": 4, "learning_rate": 0.05, "subsample": 1.0}
PROP_TREE = {"n_estimators": 200, "max_depth": 3, "learning_rate": 0.05}


def _xgboost():  # noqa: ANN202 - the xgboost module
    """xgboost, an optional dependency (the ``xgboost`` extra): a clear error when it is not installed."""
    try:
        import xgboost
    except ImportError:
        raise ModelError(
            "the learned basis needs xgboost, which is not installed",
            field="basis",
            value="auto",
            expected="pip install 'planner[xgboost]' (the CPU build), or ResponseModel(basis='none')",
        ) from None
    return xgboost


class LearnedBasis:
    """Cross-fitted basis columns of a tabular study (build with :meth:`fit`)."""

    def __init__(self, names: list[str], arms: list[str], folds: int, seed: int) -> None:
        self.names = names
        self.arms = arms  # arms with an effect column, in order
        self.folds = folds
        self.seed = seed
        self.models: list[dict[str, object]] = []  # per fold: "ref", "arm:<a>", "prop:<a>" -> booster
        self.cv_mse_: dict[str, float] = {}  # held-out outcome MSE: "trees" vs "linear" (why it was kept)

    @property
    def spread_factor(self) -> float:
        return (self.folds - 1) / np.sqrt(self.folds)

    @classmethod
    def fit(
        cls, x: np.ndarray, keys: Sequence[str], y: np.ndarray, *, seed: int, folds: int = 5
    ) -> "tuple[LearnedBasis, np.ndarray] | None":
        """Fit on features ``x`` (n, p; NaN allowed), regimen labels ``keys`` ("none" = no arm; "a" single arm;
        other labels are combinations and only train the propensity) and outcome ``y``. Returns the basis and
        its out-of-fold columns for the training rows (n, q), or None when the data are too few."""
        xgb = _xgboost()

        lab = np.asarray(list(keys), dtype=object)
        n = len(y)
        ref = np.asarray(lab == "none", dtype=bool)
        if n < MIN_ROWS or int(ref.sum()) < MIN_ARM_ROWS:
            return None
        arms = sorted(
            str(k) for k in set(lab.tolist()) if k != "none" and "+" not in k and int(np.sum(lab == k)) >= MIN_ARM_ROWS
        )
        if not arms:
            return None
        names = [PROG] + [EFF + a for a in arms] + [PROP + a for a in arms]
        basis = cls(names, arms, folds, seed)
        rng = np.random.default_rng(seed)
        fold_of = rng.permutation(np.arange(n) % folds)
        oof = np.zeros((n, len(names)))
        for k in range(folds):
            tr, va = fold_of != k, fold_of == k
            ms: dict[str, object] = {}
            ms["ref"] = xgb.XGBRegressor(**TREE, n_jobs=1, random_state=seed + k).fit(x[tr & ref], y[tr & ref])
            for a in arms:
                s = tr & (lab == a)
                ms["arm:" + a] = xgb.XGBRegressor(**TREE, n_jobs=1, random_state=seed + k).fit(x[s], y[s])
                ms["prop:" + a] = xgb.XGBClassifier(**PROP_TREE, n_jobs=1, random_state=seed + k).fit(
                    x[tr], (lab[tr] == a).astype(int)
                )
            basis.models.append(ms)
            oof[va] = basis._columns(ms, x[va])
        basis.cv_mse_ = _cv_mse(basis, oof, x, lab, y, fold_of)
        if basis.cv_mse_["trees"] >= KEEP_RATIO * basis.cv_mse_["linear"]:
            return None  # chosen by measurement: the trees do not predict held-out outcomes better than linear
        return basis, oof

    def _columns(self, ms: dict[str, object], x: np.ndarray) -> np.ndarray:
        ref = ms["ref"].predict(x)  # type: ignore[attr-defined]
        cols = [ref]
        cols += [ms["arm:" + a].predict(x) - ref for a in self.arms]  # type: ignore[attr-defined]
        cols += [ms["prop:" + a].predict_proba(x)[:, 1] for a in self.arms]  # type: ignore[attr-defined]
        return np.stack(cols, axis=1).astype(np.float64)

    def transform(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Basis columns of new rows (n, q) (the fold average) and the scaled per-fold deviations (K, n, q)
        whose Gaussian combination (weights N(0, 1/(K-1))) has the SD of the full-data estimator."""
        per = np.stack([self._columns(ms, x) for ms in self.models])  # (K, n, q)
        mean = per.mean(0)
        return mean, (per - mean) * self.spread_factor

    # ---- persistence -------------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"names": self.names, "arms": self.arms, "folds": self.folds, "seed": self.seed}
        (directory / "basis.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        for k, ms in enumerate(self.models):
            for j, name in enumerate(_model_names(self.arms)):  # files by position: arm names may be any text
                ms[name].save_model(directory / f"fold{k}_{j}.ubj")  # type: ignore[attr-defined]

    @classmethod
    def load(cls, directory: Path) -> "LearnedBasis":
        xgb = _xgboost()

        meta = json.loads((directory / "basis.json").read_text(encoding="utf-8"))
        b = cls(list(meta["names"]), list(meta["arms"]), int(meta["folds"]), int(meta["seed"]))
        for k in range(b.folds):
            ms: dict[str, object] = {}
            for j, name in enumerate(_model_names(b.arms)):
                m = xgb.XGBClassifier() if name.startswith("prop:") else xgb.XGBRegressor()
                m.load_model(directory / f"fold{k}_{j}.ubj")
                ms[name] = m
            b.models.append(ms)
        return b


def _cv_mse(
    basis: LearnedBasis, oof: np.ndarray, x: np.ndarray, lab: np.ndarray, y: np.ndarray, fold_of: np.ndarray
) -> dict[str, float]:
    """Held-out (same folds) MSE of the observed outcome of rows with no arm or one basis arm: the trees'
    prediction (``_prog`` + the row's ``_eff``) against a linear regression per group (the linear model's
    structure: prognostic slopes plus arm x feature slopes)."""
    from sklearn.linear_model import Ridge

    groups = ["none"] + basis.arms
    use = np.isin(lab, groups)
    tree = oof[:, 0].copy()
    for j, a in enumerate(basis.arms):
        tree = np.where(lab == a, oof[:, 0] + oof[:, 1 + j], tree)
    xf = np.where(np.isfinite(x), x, np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0))
    xf = np.nan_to_num(xf)
    lin = np.zeros(len(y))
    for k in range(basis.folds):
        tr, va = fold_of != k, fold_of == k
        for a in groups:
            s, t = tr & (lab == a), va & (lab == a)
            if t.any():
                lin[t] = Ridge(alpha=1.0).fit(xf[s], y[s]).predict(xf[t])
    return {"trees": float(np.mean((y[use] - tree[use]) ** 2)), "linear": float(np.mean((y[use] - lin[use]) ** 2))}


def _model_names(arms: list[str]) -> list[str]:
    return ["ref"] + [f"{p}:{a}" for a in arms for p in ("arm", "prop")]


def basis_priors(spec, basis: LearnedBasis) -> None:  # noqa: ANN001 - ModelSpec (no import cycle)
    """Set the priors of the basis columns in a tabular spec: arm ``a`` x its own ``_eff:a`` column has a slope
    centred at 1 on the raw scale (SD 0.5: the data may shrink or correct it); every other arm x basis slope
    keeps the shared shrinkage prior, and ``_prog`` / ``_prop`` the prognostic slopes' prior."""
    spec.basis = list(basis.names)
    arm_index = {c.id: i for i, c in enumerate(spec.classes)}
    for a in basis.arms:
        j = spec.features.index(EFF + a)
        c = arm_index[a]
        unit = float(spec.feat_scale[j]) / float(spec.y_scale)  # slope 1 on the raw scale, standardized
        spec.mod_mean[c][j] = unit
        spec.mod_sd[c][j] = 0.5 * unit
        spec.mod_given[c][j] = 1.0
