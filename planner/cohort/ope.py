"""Off-policy value of the recommended policy from observed decisions: IPW, self-normalised IPW, doubly robust.

Notation, one row i per decision point with an observed follow-up: features x_i (area features at t0 and the
current regimen), the observed regimen A_i, the follow-up Y_i, and the recommended (rank-1) regimen pi(x_i).
The policy's value is E[Y] had every decision followed pi (outcome units; the area says whether lower is
better). Regimens are compared at the level of their drug classes (``match``): exact regimens with doses are
almost never shared by clinicians and the planner, so M_i = 1[classes(A_i) = classes(pi(x_i))].

* propensity e(x) = P(M = 1 | x, pi(x)): a cross-fitted xgboost classifier (clipped to [0.01, 1]);
* outcome mu(x, a) = m(x, a) + r(x, a): m is the planner's own model (its predicted expected follow-up of
  the regimen, in the results as ``obs_mean`` / ``rec_mean``) and r a cross-fitted xgboost regressor of the
  residual Y - m on x and the regimen (per-drug dose / reference dose, for the new and the current regimen),
  shallow trees. Clinicians rarely choose what the planner recommends (the match rate is reported), so where
  the data have no support mu extrapolates by the model's structure (drug-class effects, dose-response), not
  by trees; ``dr_data_only`` and ``dm_data_only`` use xgboost alone (m = 0) for comparison;
* IPW = mean(M Y / e);  SNIPW = sum(M Y / e) / sum(M / e);
  DR = mean(mu(x, pi(x)) + M / e * (Y - mu(x, A)))   (the direct method DM is the first term alone).

Cross-fitting: K folds grouped by patient, each row's nuisance predictions from the models fitted without its
patient. Intervals: a patient-level (cluster) bootstrap of the per-row scores with the cross-fitted nuisances
held fixed (``n_boot`` replicates, percentile interval at ``level``). The observed policy's value is the mean
follow-up with the same bootstrap.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from ..optional import require

__all__ = ["design_frames", "off_policy", "bootstrap_mean", "regimen_from_key"]

E_CLIP = 0.01


def regimen_from_key(key: Any) -> dict[str, float | None]:
    """``"metformin@1000+sitagliptin"`` -> {"metformin": 1000.0, "sitagliptin": None}."""
    out: dict[str, float | None] = {}
    if not isinstance(key, str) or key in ("", "none"):
        return out
    for part in key.split("+"):
        name, _, dose = part.partition("@")
        out[name] = float(dose) if dose else None
    return out


def _regimen_json(text: Any) -> dict[str, float | None]:
    if not isinstance(text, str):
        return {}
    return {d["drug"]: d.get("dose_mg_day") for d in json.loads(text)}


def design_frames(rows: pd.DataFrame, area: Any) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Feature matrices: (x with the observed regimen, x with the recommended regimen, x alone) and M."""
    feats = pd.DataFrame([json.loads(t) if isinstance(t, str) else {} for t in rows["features_json"]], index=rows.index)
    num = feats.apply(pd.to_numeric, errors="coerce")
    text_cols = [c for c in feats.columns if num[c].isna().all() and feats[c].notna().any()]
    base = num.drop(columns=text_cols)
    if text_cols:
        base = pd.concat([base, pd.get_dummies(feats[text_cols].astype(str), dtype=float)], axis=1)
    ref = {d.ingredient: d.reference_dose for d in area.formulary}
    klass = {d.ingredient: d.drug_class for d in area.formulary}
    drugs = sorted(ref)

    def enc(regs: list[dict[str, float | None]], prefix: str) -> pd.DataFrame:
        m = np.zeros((len(regs), len(drugs)))
        for i, r in enumerate(regs):
            for name, dose in r.items():
                if name in ref:
                    m[i, drugs.index(name)] = 1.0 if dose is None else float(dose) / ref[name]
        return pd.DataFrame(m, columns=[f"{prefix}{d}" for d in drugs], index=rows.index)

    cur = [regimen_from_key(k) for k in rows["current_regimen"]]
    obs = [_regimen_json(t) for t in rows["observed_regimen_json"]]
    rec = [_regimen_json(t) for t in rows["rec_regimen_json"]]
    x = pd.concat([base, enc(cur, "cur:")], axis=1)
    x_obs = pd.concat([x, enc(obs, "act:")], axis=1)
    x_rec = pd.concat([x, enc(rec, "act:")], axis=1)

    def classes(r: dict[str, float | None]) -> tuple[str, ...]:
        return tuple(sorted({klass.get(n, n) for n in r}))

    match = np.array([classes(o) == classes(r) for o, r in zip(obs, rec)], dtype=bool)
    return x_obs, x_rec, x, match


def _folds(groups: np.ndarray, k: int, seed: int) -> np.ndarray:
    uniq = np.unique(groups)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(uniq.size)
    fold_of = {g: int(f) for g, f in zip(uniq[perm], np.arange(uniq.size) % k)}
    return np.array([fold_of[g] for g in groups])


def _xgb_reg(seed: int) -> Any:
    XGBRegressor = require("xgboost", extra="xgboost", purpose="the off-policy evaluation").XGBRegressor

    return XGBRegressor(
        n_estimators=300,
        max_depth=2,
        learning_rate=0.05,
        subsample=0.8,
        min_child_weight=3,
        n_jobs=1,
        random_state=seed,
        verbosity=0,
    )


def _xgb_clf(seed: int) -> Any:
    XGBClassifier = require("xgboost", extra="xgboost", purpose="the off-policy evaluation").XGBClassifier

    return XGBClassifier(
        n_estimators=150,
        max_depth=2,
        learning_rate=0.05,
        subsample=0.8,
        min_child_weight=3,
        n_jobs=1,
        random_state=seed,
        verbosity=0,
    )


def cross_fit(
    x_obs: pd.DataFrame,
    x_rec: pd.DataFrame,
    x: pd.DataFrame,
    y: np.ndarray,
    match: np.ndarray,
    groups: np.ndarray,
    *,
    k: int = 5,
    seed: int = 0,
    base_obs: np.ndarray | None = None,
    base_rec: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cross-fitted mu(x, A), mu(x, pi(x)) and e(x) for every row (mu = base + xgboost on the residual)."""
    n = len(y)
    k = max(2, min(k, np.unique(groups).size))
    fold = _folds(groups, k, seed)
    mu_obs, mu_rec, e = np.empty(n), np.empty(n), np.empty(n)
    b_obs = np.zeros(n) if base_obs is None else base_obs
    b_rec = np.zeros(n) if base_rec is None else base_rec
    xe = pd.concat([x, x_rec.drop(columns=x.columns)], axis=1).to_numpy(dtype=float)
    xo, xr = x_obs.to_numpy(dtype=float), x_rec.to_numpy(dtype=float)
    for f in range(k):
        tr, te = fold != f, fold == f
        if not te.any():
            continue
        reg = _xgb_reg(seed + f).fit(xo[tr], y[tr] - b_obs[tr])
        mu_obs[te], mu_rec[te] = b_obs[te] + reg.predict(xo[te]), b_rec[te] + reg.predict(xr[te])
        m_tr = match[tr]
        if m_tr.all() or not m_tr.any():
            e[te] = float(m_tr.mean()) if m_tr.any() else 0.0
        else:
            clf = _xgb_clf(seed + f).fit(xe[tr], m_tr.astype(int))
            e[te] = clf.predict_proba(xe[te])[:, 1]
    return mu_obs, mu_rec, np.clip(e, E_CLIP, 1.0)


def bootstrap_mean(
    num: np.ndarray,
    groups: np.ndarray,
    *,
    den: np.ndarray | None = None,
    n_boot: int = 1000,
    level: float = 0.9,
    seed: int = 0,
) -> dict[str, float]:
    """Estimate sum(num)/sum(den) (den = 1: the mean) with a patient-cluster bootstrap percentile interval."""
    den = np.ones_like(num) if den is None else den
    codes, gi = np.unique(groups, return_inverse=True)
    g = codes.size
    sn, sd = np.bincount(gi, weights=num, minlength=g), np.bincount(gi, weights=den, minlength=g)
    est = float(sn.sum() / sd.sum()) if sd.sum() > 0 else float("nan")
    rng = np.random.default_rng(seed)
    bn, bd = np.zeros(n_boot), np.zeros(n_boot)
    chunk = max(1, 4_000_000 // max(g, 1))  # replicates at a time: memory bounded for any number of patients
    for i in range(0, n_boot if g else 0, chunk):
        counts = rng.multinomial(g, np.full(g, 1.0 / g), size=min(chunk, n_boot - i))
        bn[i : i + len(counts)], bd[i : i + len(counts)] = counts @ sn, counts @ sd
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = np.where(bd > 0, bn / bd, np.nan)
    reps = reps[np.isfinite(reps)]
    a = (1 - level) / 2
    lo, hi = np.quantile(reps, [a, 1 - a]) if reps.size else (float("nan"), float("nan"))
    return {"value": est, "lower": float(lo), "upper": float(hi), "level": level}


def off_policy(
    rows: pd.DataFrame, area: Any, *, n_boot: int = 1000, level: float = 0.9, seed: int = 0, folds: int = 5
) -> dict[str, Any]:
    """Values of the observed and the recommended policy (IPW, SNIPW, DR, DM) on rows with a follow-up."""
    y = rows["followup"].to_numpy(dtype=float)
    groups = rows["patient_id"].astype(str).to_numpy()
    x_obs, x_rec, x, match = design_frames(rows, area)
    base_obs = rows["obs_mean"].to_numpy(dtype=float)
    base_rec = rows["rec_mean"].to_numpy(dtype=float)
    ok = np.isfinite(base_obs) & np.isfinite(base_rec)
    base_obs, base_rec = np.where(ok, base_obs, 0.0), np.where(ok, base_rec, 0.0)
    mu_obs, mu_rec, e = cross_fit(
        x_obs, x_rec, x, y, match, groups, k=folds, seed=seed, base_obs=base_obs, base_rec=base_rec
    )
    mu_obs0, mu_rec0, _ = cross_fit(x_obs, x_rec, x, y, match, groups, k=folds, seed=seed)
    w = match / e
    dr = mu_rec + w * (y - mu_obs)
    dr0 = mu_rec0 + w * (y - mu_obs0)
    boot: dict[str, Any] = {"n_boot": n_boot, "level": level, "seed": seed}
    ess = float(w.sum() ** 2 / (w**2).sum()) if (w > 0).any() else 0.0
    out = {
        "n": int(len(y)),
        "patients": int(np.unique(groups).size),
        "match": {
            "level": "drug classes",
            "matched": int(match.sum()),
            "rate": float(match.mean()),
            "effective_sample_size": ess,
        },
        "observed": bootstrap_mean(y, groups, **boot),
        "recommended": {
            "ipw": bootstrap_mean(w * y, groups, **boot),
            "snipw": bootstrap_mean(w * y, groups, den=w, **boot),
            "dr": bootstrap_mean(dr, groups, **boot),
            "dm": bootstrap_mean(mu_rec, groups, **boot),
            "dr_data_only": bootstrap_mean(dr0, groups, **boot),
            "dm_data_only": bootstrap_mean(mu_rec0, groups, **boot),
        },
        "difference_dr": bootstrap_mean(dr - y, groups, **boot),
        "outcome_model_rmse": float(np.sqrt(np.mean((y - mu_obs) ** 2))),
        "outcome_model_rmse_data_only": float(np.sqrt(np.mean((y - mu_obs0) ** 2))),
    }
    out["_scores"] = pd.DataFrame({"dr": dr, "y": y, "groups": groups}, index=rows.index)
    return out
