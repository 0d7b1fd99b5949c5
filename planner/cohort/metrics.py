"""Calibration, agreement, safety and subgroups of cohort results (the parts of ``evaluate`` that fit no model).

Calibration is of the model's predictive distribution for the regimen each patient was *observed* to take,
against the follow-up then measured (values the model never saw): central-interval coverage at 50/80/90/95%,
the PIT histogram (uniform when calibrated), CRPS (outcome units; lower is better) and the expected calibration
error of P(target) against whether the measured follow-up met the target (10 equal-width bins).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from .rows import COVERAGE_LEVELS

__all__ = ["calibration", "agreement", "safety", "subgroup_columns", "AGE_BANDS", "EGFR_BANDS"]

AGE_BANDS = ((0, 45, "<45"), (45, 65, "45-64"), (65, 75, "65-74"), (75, 200, "75+"))
EGFR_BANDS = ((0, 30, "<30"), (30, 45, "30-44"), (45, 60, "45-59"), (60, 90, "60-89"), (90, 1e9, ">=90"))
PIT_BINS = 10
ECE_BINS = 10


def _band(values: pd.Series, bands: tuple[tuple[float, float, str], ...], missing: str) -> pd.Series:
    out = pd.Series(missing, index=values.index, dtype=object)
    v = pd.to_numeric(values, errors="coerce")
    for lo, hi, label in bands:
        out[(v >= lo) & (v < hi)] = label
    return out


def subgroup_columns(rows: pd.DataFrame) -> dict[str, pd.Series]:
    """Subgroup labels per row: sex, age band, eGFR band, race and ethnicity (only where recorded)."""
    groups = {
        "sex": rows["sex"].fillna("not recorded").astype(str),
        "age band": _band(rows["age"], AGE_BANDS, "not recorded"),
        "eGFR band": _band(rows["egfr"], EGFR_BANDS, "not measured"),
    }
    for col in ("race", "ethnicity"):
        if rows[col].notna().any():
            groups[col] = rows[col].fillna("not recorded").astype(str)
    return groups


def calibration(rows: pd.DataFrame) -> dict[str, Any]:
    """Coverage, PIT histogram, CRPS and P(target) calibration on rows with an observed follow-up."""
    r = rows[rows["obs_pit"].notna()]
    n = int(len(r))
    if n == 0:
        return {"n": 0}
    pit = r["obs_pit"].to_numpy(dtype=float)
    hist = np.histogram(pit, bins=PIT_BINS, range=(0.0, 1.0))[0]
    p = r["obs_p_target"].to_numpy(dtype=float)
    hit = r["obs_reached"].to_numpy(dtype=bool)
    bins = np.minimum((p * ECE_BINS).astype(int), ECE_BINS - 1)
    curve, ece = [], 0.0
    for b in range(ECE_BINS):
        m = bins == b
        if m.any():
            conf, freq = float(p[m].mean()), float(hit[m].mean())
            curve.append({"bin": b, "n": int(m.sum()), "predicted": conf, "observed": freq})
            ece += m.sum() / n * abs(conf - freq)
    cov = {f"{int(lv * 100)}": float(r[f"obs_cover{int(lv * 100)}"].astype(bool).mean()) for lv in COVERAGE_LEVELS}
    return {
        "n": n,
        "coverage": cov,
        "pit": {"histogram": hist.tolist(), "mean": float(pit.mean()), "ks": _ks_uniform(pit)},
        "crps": float(r["obs_crps"].mean()),
        "p_target": {
            "ece": float(ece),
            "curve": curve,
            "mean_predicted": float(p.mean()),
            "observed_rate": float(hit.mean()),
        },
    }


def _ks_uniform(u: np.ndarray) -> float:
    x = np.sort(u)
    n = x.size
    i = np.arange(1, n + 1)
    return float(max(np.max(i / n - x), np.max(x - (i - 1) / n))) if n else float("nan")


def agreement(rows: pd.DataFrame) -> dict[str, Any]:
    r = rows[rows["observed_regimen"].notna() & rows["rec_regimen"].notna()]
    if r.empty:
        return {"n": 0}
    return {
        "n": int(len(r)),
        "top1": float(r["agree_top1"].astype(bool).mean()),
        "same_drugs": float(r["agree_drugs"].astype(bool).mean()),
        "in_top_k": float(r["agree_topk"].astype(bool).mean()),
    }


def safety(rows: pd.DataFrame) -> dict[str, Any]:
    """Findings on the current medications per patient (their latest decision point), by kind and action;
    findings on the recommended plans per decision point."""
    ok = rows[rows["status"].isin(["ok", "no-plan"])]
    if ok.empty:
        return {"patients": 0}
    last = ok.sort_values("point").groupby("patient_id", sort=True).tail(1)
    kinds: Counter = Counter()
    with_any: Counter = Counter()
    for text in last["current_findings_json"]:
        counts = json.loads(text) if isinstance(text, str) else {}
        kinds.update(counts)
        for k in counts:
            with_any[k] += 1
    npat = int(len(last))
    plan: Counter = Counter()
    for text in ok["rec_findings_json"].dropna():
        plan.update(json.loads(text))
    return {
        "patients": npat,
        "patients_with_findings": int((last["n_current_findings"].fillna(0) > 0).sum()),
        "current_findings_per_patient": {k: v / npat for k, v in sorted(kinds.items())},
        "patients_with_kind": {k: v / npat for k, v in sorted(with_any.items())},
        "plan_findings_per_decision": {k: v / len(ok) for k, v in sorted(plan.items())},
    }
