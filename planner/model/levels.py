"""How far a follow-up *measurement* strays from the patient's own expected level, measured on the cohort's data.

An area model's residual variance (``sigma``, per posterior draw) holds two kinds of spread:

* what ``kind="mean"`` must carry: what the noisy baseline did not tell about the patient's level at the
  decision, and stable patient differences the features miss;
* what only a measurement carries (``kind="predictive"``): one lab's noise *and* the level's own change between
  the decision and the area's horizon (fluctuation, drift), which the patient's expected outcome at the horizon,
  given their state at the decision, averages over.

The second part is what two measurements of the same patient on the same regimen, about a horizon apart, differ
by. :func:`within_patient_variance` takes every pair of outcome labs of one patient within one regimen segment
(both at least the area's minimum follow-up time after the segment's start, so that the regimen's effect has
set in), ``lag`` within the area's follow-up window, and fits half their squared difference (model scale;
winsorized at the 99th percentile against heavy-tailed labs) linearly in the lag: its value at the horizon
(``outcome.followup_days``) is the variogram ``gamma(h) = meas^2 + Var(level(t+h) - level(t)) / 2``. On a
level that does not move it is one measurement's variance; on a mean-reverting level it lies between the
change's variance over the horizon given the start, and a half of it, so that ``kind="mean"`` keeps the wider
side. Its standard error comes from a bootstrap over patients. :mod:`planner.model.draws` uses both in place of
the area's guessed noise SD when the cohort has enough pairs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Sequence

import numpy as np

__all__ = ["within_patient_variance", "MIN_PAIRS", "MIN_PATIENTS", "WINSOR_QUANTILE", "BOOTSTRAP"]

MIN_PAIRS = 200  # fewer same-regimen lab pairs in the window: no estimate (the area's noise SD is used)
MIN_PATIENTS = 30
WINSOR_QUANTILE = 0.99  # half squared differences above this quantile are set to it (heavy-tailed labs)
BOOTSTRAP = 100  # patient bootstrap replicates for the standard error


def _pairs(record: Any, area: Any) -> tuple[np.ndarray, np.ndarray]:
    """Lags (days) and half squared differences (model scale) of one patient's same-regimen lab pairs."""
    from ..medication_intervals import medication_intervals, regimen_changes

    out = area.outcome
    series = [m for m in record.observations.get(out.quantity, ()) if np.isfinite(m.value) and m.value > 0]
    if len(series) < 2:
        return np.zeros(0), np.zeros(0)
    starts = sorted(c.t0 for c in regimen_changes(medication_intervals(record, area)))
    lo, hi = out.followup_window
    settle = dt.timedelta(days=int(lo))
    days = np.array([(m.date - dt.date(1970, 1, 1)).days for m in series], dtype=np.float64)
    vals = np.array([m.value for m in series], dtype=np.float64)
    if out.scale == "log":
        vals = np.log(vals)
    # a lab dated on a change day predates the change (as for the baseline): its segment is the changes before it
    seg = np.array([sum(1 for s in starts if s < m.date) for m in series])
    seg_start = [None] + starts
    settled = np.array([seg_start[k] is None or m.date - seg_start[k] >= settle for k, m in zip(seg, series)])
    i, j = np.triu_indices(len(series), 1)
    lag = days[j] - days[i]
    keep = (seg[i] == seg[j]) & settled[i] & settled[j] & (lag >= lo) & (lag <= hi)
    return lag[keep], 0.5 * (vals[j][keep] - vals[i][keep]) ** 2


def _fit_at(lag: np.ndarray, half_sq: np.ndarray, w: np.ndarray, h: float) -> float:
    b, a = np.polyfit(lag, half_sq, 1, w=np.sqrt(w))
    return float(a + b * h)


def within_patient_variance(records: Sequence[Any], area: Any, *, seed: int = 0) -> dict[str, Any] | None:
    """The variance of a follow-up measurement around the patient's expected level at the area's horizon, on
    the model scale (module docstring): ``{"var", "se", "pairs", "patients"}``, or None with too few pairs."""
    lags, sqs, who = [], [], []
    for k, rec in enumerate(records):
        lg, sq = _pairs(rec, area)
        if lg.size:
            lags.append(lg)
            sqs.append(sq)
            who.append(np.full(lg.size, k))
    if not lags:
        return None
    lag, sq, pid = np.concatenate(lags), np.concatenate(sqs), np.concatenate(who)
    _, pid = np.unique(pid, return_inverse=True)
    n_pat = int(pid.max()) + 1
    if lag.size < MIN_PAIRS or n_pat < MIN_PATIENTS:
        return None
    sq = np.minimum(sq, np.quantile(sq, WINSOR_QUANTILE))
    h = float(area.outcome.followup_days)
    est = _fit_at(lag, sq, np.ones_like(sq), h)
    rng = np.random.default_rng([seed, 4409])
    reps = []
    for _ in range(BOOTSTRAP):
        mult = np.bincount(rng.integers(0, n_pat, n_pat), minlength=n_pat).astype(np.float64)[pid]
        if (mult > 0).sum() >= 3:
            reps.append(_fit_at(lag[mult > 0], sq[mult > 0], mult[mult > 0], h))
    if not est > 0:
        return None
    return {
        "var": est,
        "se": float(np.std(reps)) if reps else float("nan"),
        "pairs": int(lag.size),
        "patients": n_pat,
    }
