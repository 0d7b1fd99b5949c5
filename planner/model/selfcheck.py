"""``planner fit`` checks itself: cross-validated calibration on the cohort's own observed follow-ups.

No truth is needed. Patients are split into ``folds`` groups (all episodes of a patient in one fold); a model
with the same options is fitted on the other folds and predicts each held-out episode's follow-up under the
regimen it received (``kind="predictive"``: parameter, patient-level and measurement uncertainty), from the
regimen active at its baseline. From the held-out draws:

* ``coverage90``: share of observed follow-ups inside the central 90% predictive interval (expected 0.90);
* ``pit``: the probability integral transform ``u = P(Y <= y_obs)`` of each follow-up (randomized over ties,
  as lab values are rounded); ``pit_hist`` its 10-bin histogram (shares, each 0.10 when calibrated) and
  ``pit_max_dev`` the largest bin's distance from 0.10;
* ``ece_p_target``: expected calibration error (10 equal-width bins) of P(target) -- the share of draws meeting
  the episode's target -- against whether the observed follow-up met it.

:data:`RANGES` are the bounds outside which ``planner fit`` warns; the result is saved with the model
(``meta.json`` ``self_check``) and printed.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

__all__ = ["RANGES", "self_check", "ece", "warnings_for"]

RANGES = {"coverage90": (0.85, 0.95), "ece_p_target": (0.0, 0.05), "pit_max_dev": (0.0, 0.05)}
Progress = Callable[[int, int, int, float], None]  # (fold, step, total, loss)


def ece(p: np.ndarray, hit: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of probabilities ``p`` against outcomes or true probabilities ``hit``."""
    p, hit = np.asarray(p, float), np.asarray(hit, float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    return float(
        sum((idx == b).mean() * abs(p[idx == b].mean() - hit[idx == b].mean()) for b in range(bins) if (idx == b).any())
    )


def self_check(
    make_model: Callable[[], Any],
    X: pd.DataFrame,
    regimens: Sequence[Any],
    y: np.ndarray,
    current: Sequence[Any] | None,
    targets: np.ndarray,
    groups: Sequence[Any],
    *,
    folds: int = 3,
    seed: int = 0,
    max_rows: int = 20_000,
    direction: str = "lower",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Cross-validated predictive calibration (see the module docstring). ``make_model()`` returns an unfitted
    model with the options of the real one; at most ``max_rows`` episodes (whole patients) take part."""
    rng = np.random.default_rng([seed, 4049])
    g = pd.Series(list(groups)).astype(str)
    ids = np.array(sorted(g.unique()))
    rng.shuffle(ids)
    if len(g) > max_rows:  # whole patients, until max_rows episodes
        sizes = g.value_counts()
        keep = ids[np.cumsum(sizes.loc[ids].to_numpy()) <= max_rows]
        ids = keep if len(keep) else ids[:1]
    if len(ids) < folds:
        return {"skipped": f"too few patients for {folds}-fold cross-validation ({len(ids)})"}
    fold_of = dict(zip(ids, np.arange(len(ids)) % folds))
    fold = g.map(fold_of).to_numpy(dtype=float)  # NaN: not in the check
    y = np.asarray(y, float)
    pit, cover, pt, hit = [], [], [], []
    for k in range(folds):
        tr = [int(i) for i in np.nonzero((fold != k) & np.isfinite(fold))[0]]
        te = np.nonzero(fold == k)[0]
        m = make_model()
        cb = None if progress is None else (lambda s, t, loss, k=k: progress(k, s, t, loss))
        m.fit(
            X.iloc[tr],
            [regimens[i] for i in tr],
            y[tr],
            current=None if current is None else [current[i] for i in tr],
            progress=cb,
        )
        keys = pd.Series([_key(regimens[int(i)]) for i in te])
        for _, pos in keys.groupby(keys).indices.items():
            rows = te[np.asarray(pos)]
            d = m.sample(
                X.iloc[rows],
                [regimens[int(rows[0])]],
                kind="predictive",
                seed=seed + 7 + k,
                current=None if current is None else [current[int(i)] for i in rows],
            )[:, :, 0]  # (S, n)
            yo = y[rows]
            below, tie = (d < yo).mean(0), (d == yo).mean(0)
            pit.append(below + tie * rng.random(len(rows)))
            lo, hi = np.quantile(d, [0.05, 0.95], axis=0)
            cover.append((yo >= lo) & (yo <= hi))
            tg = targets[rows]
            meets = (d <= tg) if direction == "lower" else (d >= tg)
            pt.append(meets.mean(0))
            hit.append((yo <= tg) if direction == "lower" else (yo >= tg))
    u = np.concatenate(pit)
    hist = np.histogram(u, bins=10, range=(0.0, 1.0))[0] / max(len(u), 1)
    res = {
        "folds": folds,
        "episodes": int(len(u)),
        "patients": int(len(ids)),
        "coverage90": float(np.concatenate(cover).mean()),
        "pit_hist": [round(float(h), 4) for h in hist],
        "pit_max_dev": float(np.abs(hist - 0.1).max()),
        "ece_p_target": ece(np.concatenate(pt), np.concatenate(hit)),
        "ranges": {k: list(v) for k, v in RANGES.items()},
    }
    res["warnings"] = warnings_for(res)
    return res


def warnings_for(res: dict[str, Any]) -> list[str]:
    out = []
    for key, (lo, hi) in RANGES.items():
        v = res.get(key)
        if v is not None and not lo <= v <= hi:
            out.append(
                f"{key} {v:.3f} outside [{lo:g}, {hi:g}] on held-out follow-ups: intervals or P(target) "
                "are miscalibrated for this cohort"
            )
    return out


def _key(r: Any) -> str:
    return r.key() if hasattr(r, "key") else "+".join(sorted(map(str, r))) or "none"
