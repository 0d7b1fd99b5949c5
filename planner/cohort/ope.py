"""Off-policy value of the recommended policy from observed decisions: IPW, self-normalised IPW, doubly robust.

Notation, one row i per decision point with an observed follow-up: features x_i (area features at t0 and the
current regimen), the observed regimen A_i, the follow-up Y_i, and the recommended (rank-1) regimen pi(x_i).
The policy's value is E[Y] had every decision followed pi (outcome units; the area says whether lower is
better). Regimens are compared at the level of their drug classes (``match``): exact regimens with doses are
almost never shared by clinicians and the planner, so M_i = 1[classes(A_i) = classes(pi(x_i))].

* propensity e(x) = P(M = 1 | x, pi(x)): a cross-fitted xgboost classifier, stabilised by a floor
  (``E_FLOOR``: a weight is at most 1/E_FLOOR; how many were floored is reported); w = M / e;
* outcome mu(x, a) = m(x, a) + r(x, a): m is the planner's own model (its predicted expected follow-up of
  the regimen, in the results as ``obs_mean`` / ``rec_mean``) and r a cross-fitted xgboost regressor of the
  residual Y - m on x and the regimen (per-drug dose / reference dose, for the new and the current regimen),
  shallow trees. ``dr_data_only`` and ``dm_data_only`` use xgboost alone (m = 0) for comparison;
* IPW = mean(w Y);  SNIPW = sum(w Y) / sum(w);  AIPW = mean(mu(x, pi(x)) + w (Y - mu(x, A)));
  DR (the reported doubly robust value) is the targeted form: the outcome model is updated by one
  fluctuation eps = sum(w (Y - mu(x, A))) / sum(w) (a weighted least-squares intercept with the clever
  covariate's weights, as in a TMLE), and DR = mean(mu(x, pi(x)) + eps). It stays in the outcome's range
  and is less variable than AIPW when a few weights are large. DM is mean(mu(x, pi(x))).

Cross-fitting: K folds grouped by patient, each row's nuisance predictions from the models fitted without its
patient; repeated over ``splits`` random fold assignments (the value is the median over splits).

Intervals (``level``, percentile): a patient-level (cluster) bootstrap, the same resamples for every
estimator and every split, pooled over the splits so that the spread of the nuisance fits between fold
assignments is in the interval; plus, for the estimators that use the outcome model (DR, AIPW, DM), the
outcome model's own error: the planner's posterior draws of the expected follow-up at the observed and at the
recommended regimen (``obs_mean_draws`` / ``rec_mean_draws``, the same draw indices for every row) give, per
draw k, how far the estimate moves if the model is off by that draw's error:
t_k = mean(d_rec,k) - sum(w d_obs,k) / sum(w) for DR (d = draw - posterior mean), so the part of the model's
error that the matched decisions correct cancels and the part they cannot see stays. Each bootstrap
replicate adds one t_k. With poor overlap that term dominates and the interval is as wide as the model is
unsure; ``overlap`` says so. The observed policy's value is the mean follow-up with the same bootstrap.

Not in the interval: the xgboost nuisance fits are not refitted inside each bootstrap replicate (about 1 s
per refit on a shared core; the split-to-split spread stands in for it), and regimens that share classes
but not doses count as matched (the dose difference is carried by the model, and so by its error term).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from ..optional import require

__all__ = ["design_frames", "off_policy", "bootstrap_mean", "regimen_from_key", "subset_values", "overlap_verdict"]

E_CLIP = 0.01  # propensities below this are treated as this before the floor (the classifier's own range)
E_FLOOR = 0.05  # stabilisation: a matched decision's weight is at most 1 / E_FLOOR
SPLITS = 3  # fold assignments of the repeated cross-fitting
# overlap: the effective sample size of the weights, below which the DR value leans mainly on the outcome model
OVERLAP_GOOD_ESS, OVERLAP_POOR_ESS, OVERLAP_MIN_MATCHED = 100.0, 30.0, 10


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


def _xgb(kind: str, seed: int, n_estimators: int) -> Any:
    """A small, shallow xgboost model for a nuisance fit (``kind``: XGBRegressor or XGBClassifier)."""
    cls = getattr(require("xgboost", extra="xgboost", purpose="the off-policy evaluation"), kind)
    return cls(
        n_estimators=n_estimators,
        max_depth=2,
        learning_rate=0.05,
        subsample=0.8,
        min_child_weight=3,
        n_jobs=1,
        random_state=seed,
        verbosity=0,
    )


def _xgb_reg(seed: int) -> Any:
    return _xgb("XGBRegressor", seed, 300)


def _xgb_clf(seed: int) -> Any:
    return _xgb("XGBClassifier", seed, 150)


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


def _counts(g: int, n_boot: int, seed: int) -> Any:
    """Patient resampling counts (replicates x patients), in chunks so memory stays bounded."""
    rng = np.random.default_rng(seed)
    chunk = max(1, 4_000_000 // max(g, 1))
    for i in range(0, n_boot if g else 0, chunk):
        yield rng.multinomial(g, np.full(g, 1.0 / g), size=min(chunk, n_boot - i))


def _percentile(point: float, reps: np.ndarray, level: float) -> dict[str, float]:
    reps = reps[np.isfinite(reps)]
    a = (1 - level) / 2
    lo, hi = np.quantile(reps, [a, 1 - a]) if reps.size else (float("nan"), float("nan"))
    return {"value": float(point), "lower": float(lo), "upper": float(hi), "level": level}


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
    bn, bd = [], []
    for counts in _counts(g, n_boot, seed):
        bn.append(counts @ sn)
        bd.append(counts @ sd)
    n_, d_ = (np.concatenate(bn), np.concatenate(bd)) if bn else (np.zeros(0), np.zeros(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = np.where(d_ > 0, n_ / d_, np.nan)
    return _percentile(est, reps, level)


_ESTIMATORS = ("ipw", "snipw", "aipw", "dr", "dm")


def _values(s: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every estimator from (replicate-weighted) sums: n rows, y, mu_rec, w, w*y, w*(y - mu_obs)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        w_pos = s["w"] > 0
        eps = np.where(w_pos, s["wres"] / np.where(w_pos, s["w"], 1.0), 0.0)
        dm = s["rec"] / s["n"]
        return {
            "observed": s["y"] / s["n"],
            "ipw": s["wy"] / s["n"],
            "snipw": np.where(w_pos, s["wy"] / np.where(w_pos, s["w"], 1.0), np.nan),
            "aipw": dm + s["wres"] / s["n"],
            "dr": dm + eps,
            "dm": dm,
        }


def _sums(y: np.ndarray, mu_obs: np.ndarray, mu_rec: np.ndarray, w: np.ndarray, gi: np.ndarray, g: int) -> Any:
    cols = {"n": np.ones_like(y), "y": y, "rec": mu_rec, "w": w, "wy": w * y, "wres": w * (y - mu_obs)}
    return {k: np.bincount(gi, weights=v, minlength=g) for k, v in cols.items()}


def _model_terms(w: np.ndarray, d_obs: np.ndarray | None, d_rec: np.ndarray | None) -> dict[str, np.ndarray]:
    """Per posterior draw, how far DR, AIPW and DM move when the outcome model is off by that draw's error."""
    if d_obs is None or d_rec is None:
        return {}
    rec = d_rec.mean(axis=0)
    sw = w.sum()
    corr = (w[:, None] * d_obs).sum(axis=0)
    return {
        "dr": rec - (corr / sw if sw > 0 else 0.0),
        "aipw": rec - corr / len(w),
        "dm": rec,
    }


def _centred_draws(rows: pd.DataFrame, col: str) -> np.ndarray | None:
    """(rows x K) posterior draws minus each row's posterior mean; rows without draws count as 0 (no error)."""
    if col not in rows.columns:
        return None
    lists = [np.asarray(v, dtype=float) if v is not None and len(v) else None for v in rows[col]]
    k = max((len(v) for v in lists if v is not None), default=0)
    if k < 8:
        return None
    out = np.zeros((len(lists), k))
    for i, v in enumerate(lists):
        if v is not None and len(v) == k:
            out[i] = v - v.mean()
    return out


def overlap_verdict(matched: int, ess: float) -> tuple[str, str]:
    """``good`` | ``limited`` | ``poor`` and what it means for the doubly robust value."""
    if matched < OVERLAP_MIN_MATCHED or ess < OVERLAP_POOR_ESS:
        return "poor", (
            f"the clinicians chose the recommended classes at {matched} decision points (weights' "
            f"effective sample size {ess:.1f}); the DR value rests on the outcome model and its interval is "
            "mostly the model's own uncertainty; not a trustworthy estimate of the policy's value"
        )
    if ess < OVERLAP_GOOD_ESS:
        return "limited", (
            f"weights' effective sample size {ess:.1f}: the DR value leans on the outcome model where "
            "the data do not reach; its interval includes the model's uncertainty"
        )
    return "good", f"weights' effective sample size {ess:.1f}"


def _nuisances(
    rows: pd.DataFrame, area: Any, *, seed: int, folds: int, splits: int
) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]], np.ndarray, tuple[Any, ...]]:
    """y, M, the cross-fitted (mu_obs, mu_rec, e) of every split, and the data-only fit of split 0."""
    y = rows["followup"].to_numpy(dtype=float)
    groups = rows["patient_id"].astype(str).to_numpy()
    x_obs, x_rec, x, match = design_frames(rows, area)
    base_obs = rows["obs_mean"].to_numpy(dtype=float)
    base_rec = rows["rec_mean"].to_numpy(dtype=float)
    ok = np.isfinite(base_obs) & np.isfinite(base_rec)
    base_obs, base_rec = np.where(ok, base_obs, 0.0), np.where(ok, base_rec, 0.0)
    fits = [
        cross_fit(
            x_obs, x_rec, x, y, match, groups, k=folds, seed=seed + 7919 * s, base_obs=base_obs, base_rec=base_rec
        )
        for s in range(max(1, splits))
    ]
    data_only = cross_fit(x_obs, x_rec, x, y, match, groups, k=folds, seed=seed)
    return y, match, fits, groups, data_only


def off_policy(
    rows: pd.DataFrame,
    area: Any,
    *,
    n_boot: int = 1000,
    level: float = 0.9,
    seed: int = 0,
    folds: int = 5,
    splits: int = SPLITS,
) -> dict[str, Any]:
    """Values of the observed and the recommended policy (IPW, SNIPW, DR, AIPW, DM) on rows with a follow-up."""
    y, match, fits, groups, data_only = _nuisances(rows, area, seed=seed, folds=folds, splits=splits)
    codes, gi = np.unique(groups, return_inverse=True)
    g = codes.size
    d_obs, d_rec = _centred_draws(rows, "obs_mean_draws"), _centred_draws(rows, "rec_mean_draws")
    per_split: list[dict[str, np.ndarray]] = []
    points: list[dict[str, float]] = []
    weights = []
    for mu_obs, mu_rec, e in [*fits, data_only]:
        w = match / np.maximum(e, E_FLOOR)
        weights.append(w)
        s = _sums(y, mu_obs, mu_rec, w, gi, g)
        points.append({k: float(v[0]) for k, v in _values({k: np.array([v.sum()]) for k, v in s.items()}).items()})
        reps: dict[str, list[np.ndarray]] = {}
        for counts in _counts(g, n_boot, seed):
            for k, v in _values({k: counts @ v for k, v in s.items()}).items():
                reps.setdefault(k, []).append(v)
        per_split.append({k: np.concatenate(v) for k, v in reps.items()})
    rng = np.random.default_rng(seed + 1)
    terms = _model_terms(weights[0], d_obs, d_rec)
    ns = len(fits)
    est: dict[str, Any] = {}
    for name in _ESTIMATORS:
        point = float(np.median([p[name] for p in points[:ns]]))
        pooled = np.concatenate([r[name] for r in per_split[:ns]])
        sampling = _percentile(point, pooled, level)
        if name in terms:
            t = terms[name]
            pooled = pooled + t[rng.integers(0, t.size, pooled.size)]
        est[name] = _percentile(point, pooled, level) | {
            "sampling_interval": [sampling["lower"], sampling["upper"]],
            "model_sd": float(terms[name].std()) if name in terms else None,
        }
    for name in ("dr", "dm"):
        est[f"{name}_data_only"] = _percentile(points[-1][name], per_split[-1][name], level)
    w0 = weights[0]
    out = _summary(y, groups, match, w0, fits, data_only, est, n_boot=n_boot, level=level, seed=seed)
    out["interval"] = _method(
        ns, folds, n_boot, level, have_draws=bool(terms), k=0 if d_rec is None else d_rec.shape[1]
    )
    # DR minus observed: the same resamples for both (paired), the same model-error term
    diff = np.concatenate([r["dr"] - r["observed"] for r in per_split[:ns]])
    if "dr" in terms:
        diff = diff + terms["dr"][rng.integers(0, terms["dr"].size, diff.size)]
    out["difference_dr"] = _percentile(est["dr"]["value"] - out["observed"]["value"], diff, level)
    mu_obs, mu_rec, _ = fits[0]
    out["_scores"] = {
        "frame": pd.DataFrame(
            {"y": y, "mu_rec": mu_rec, "mu_obs": mu_obs, "w": w0, "groups": groups}, index=rows.index
        ),
        "d_obs": d_obs,
        "d_rec": d_rec,
    }
    return out


def _summary(
    y: np.ndarray,
    groups: np.ndarray,
    match: np.ndarray,
    w: np.ndarray,
    fits: list[Any],
    data_only: Any,
    est: dict[str, Any],
    *,
    n_boot: int,
    level: float,
    seed: int,
) -> dict[str, Any]:
    ess = float(w.sum() ** 2 / (w**2).sum()) if (w > 0).any() else 0.0
    verdict, message = overlap_verdict(int(match.sum()), ess)
    e = fits[0][2]
    return {
        "n": int(len(y)),
        "patients": int(np.unique(groups).size),
        "match": {
            "level": "drug classes",
            "matched": int(match.sum()),
            "rate": float(match.mean()),
            "effective_sample_size": ess,
        },
        "overlap": {
            "verdict": verdict,
            "message": message,
            "matched": int(match.sum()),
            "effective_sample_size": ess,
            "effective_share": ess / max(len(y), 1),
            "max_weight_share": float(w.max() / w.sum()) if w.sum() > 0 else None,
            "propensity_floor": E_FLOOR,
            "floored_matched": int((match & (e < E_FLOOR)).sum()),
            "propensity_matched_min": float(e[match].min()) if match.any() else None,
            "propensity_matched_median": float(np.median(e[match])) if match.any() else None,
        },
        "observed": bootstrap_mean(y, groups, n_boot=n_boot, level=level, seed=seed),
        "recommended": est,
        "outcome_model_rmse": float(np.sqrt(np.mean((y - fits[0][0]) ** 2))),
        "outcome_model_rmse_data_only": float(np.sqrt(np.mean((y - data_only[0]) ** 2))),
    }


def _method(splits: int, folds: int, n_boot: int, level: float, *, have_draws: bool, k: int) -> dict[str, Any]:
    text = (
        f"{int(100 * level)}% percentile intervals: patient bootstrap ({n_boot} replicates) pooled over {splits} "
        f"cross-fitting splits of {folds} folds"
    )
    text += (
        f", plus the outcome model's error ({k} posterior draws) for DR, AIPW and DM"
        if have_draws
        else "; the results hold no model draws, so the outcome model's error is NOT in the intervals"
    )
    return {
        "text": text,
        "splits": splits,
        "folds": folds,
        "n_boot": n_boot,
        "level": level,
        "model_error": have_draws,
        "model_draws": k,
        "propensity_floor": E_FLOOR,
    }


def subset_values(
    scores: dict[str, Any], index: pd.Index, *, n_boot: int, level: float, seed: int
) -> tuple[dict[str, float], dict[str, float]]:
    """The observed value and the targeted DR value (with the model-error term) on a subset of the rows,
    from the whole cohort's cross-fitted nuisances (fitted once)."""
    f = scores["frame"]
    pos = f.index.get_indexer(index)
    sub = f.iloc[pos]
    codes, gi = np.unique(sub["groups"].to_numpy(), return_inverse=True)
    g = codes.size
    y, w = sub["y"].to_numpy(), sub["w"].to_numpy()
    s = _sums(y, sub["mu_obs"].to_numpy(), sub["mu_rec"].to_numpy(), w, gi, g)
    point = _values({k: np.array([v.sum()]) for k, v in s.items()})
    reps: dict[str, list[np.ndarray]] = {}
    for counts in _counts(g, n_boot, seed):
        for k, v in _values({k: counts @ v for k, v in s.items()}).items():
            reps.setdefault(k, []).append(v)
    dr = np.concatenate(reps["dr"])
    d_obs, d_rec = scores["d_obs"], scores["d_rec"]
    terms = _model_terms(w, None if d_obs is None else d_obs[pos], None if d_rec is None else d_rec[pos])
    if terms:
        dr = dr + terms["dr"][np.random.default_rng(seed + 1).integers(0, terms["dr"].size, dr.size)]
    observed = _percentile(float(point["observed"][0]), np.concatenate(reps["observed"]), level)
    return observed, _percentile(float(point["dr"][0]), dr, level)
