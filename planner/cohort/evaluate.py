"""``planner cohort evaluate``: how the recommended policy would have done, and how sure we are.

``evaluate(results)`` returns a JSON-ready dict: counts; agreement with the observed regimen; off-policy value
of the recommended policy against the observed policy (:mod:`planner.cohort.ope`); calibration against the
observed follow-ups and safety (:mod:`planner.cohort.metrics`); all of it by subgroup. On a simulated cohort
(``truth``: a ``planner simulate`` folder, found beside the run's input when not given) also the TRUE value of
both policies (mean true expected follow-up over the same decision points), the regret of each against the
best regimen the truth file and the two policies offer, and whether each estimate's interval holds the truth.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..units import unit_display
from .metrics import agreement, calibration, safety, subgroup_columns
from .ope import SPLITS, bootstrap_mean, off_policy, subset_values
from .run import SCHEMA, read_results

__all__ = ["evaluate", "find_truth", "true_values"]

MIN_SUBGROUP = 20  # decision points below which a subgroup gets counts only


def find_truth(results: Path) -> Path | None:
    """The simulate folder of a run whose input was ``<sim>/fhir`` (truth.parquet beside it), if any."""
    try:
        meta = json.loads((results / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    inp = Path(meta.get("input", ""))
    for cand in (inp.parent, inp):
        if (cand / "truth.parquet").is_file() and (cand / "truth_params.yaml").is_file():
            return cand
    return None


def _regimen(text: Any) -> Any:
    from ..record import DrugDose, Regimen

    drugs = json.loads(text) if isinstance(text, str) else []
    return Regimen.of(
        [DrugDose(ingredient=d["drug"], rxcui=d.get("rxnorm") or "", dose_mg_day=d.get("dose_mg_day")) for d in drugs]
    )


def true_values(rows: pd.DataFrame, truth_dir: Path, area: Any) -> pd.DataFrame:
    """True expected follow-up under the recommended and the observed regimen, and the oracle best, per row."""
    import yaml

    from ..simulate import TruthParams, expected_outcome

    params = TruthParams.from_dict(yaml.safe_load((truth_dir / "truth_params.yaml").read_text(encoding="utf-8")))
    table = pd.read_parquet(truth_dir / "truth.parquet")
    table["t0"] = pd.to_datetime(table["t0"]).dt.normalize()
    keyed = rows.assign(t0=pd.to_datetime(rows["as_of"]).dt.normalize())[["patient_id", "t0"]]
    joined = keyed.reset_index().merge(table, on=["patient_id", "t0"], how="left").set_index("index").loc[rows.index]
    missing = int(joined["latent_untreated"].isna().sum())
    if missing:
        raise ConfigError(
            "decision points not in the truth file",
            field="truth",
            value=missing,
            expected="the simulate folder these bundles came from",
        )
    d = 1.0 if area.outcome.direction == "lower" else -1.0
    rec = np.full(len(rows), np.nan)
    recs = rows["rec_regimen_json"].to_numpy()
    for text in pd.unique(recs):
        m = recs == text
        rec[m] = expected_outcome(area, joined[m], [_regimen(text)], truth_params=params)[:, 0]
    obs = joined["true_expected"].to_numpy(dtype=float)
    cols = [c for c in table.columns if c.startswith("truth:")]
    grid = joined[cols].to_numpy(dtype=float) if cols else np.empty((len(rows), 0))
    best = np.nanmin(d * np.column_stack([grid, rec, obs]), axis=1) * d
    return pd.DataFrame({"true_rec": rec, "true_obs": obs, "true_best": best}, index=rows.index)


def _truth_block(rows: pd.DataFrame, truth: pd.DataFrame, area: Any, boot: dict[str, Any]) -> dict[str, Any]:
    groups = rows["patient_id"].astype(str).to_numpy()
    d = 1.0 if area.outcome.direction == "lower" else -1.0
    t = truth.loc[rows.index]
    regret = (d * (t["true_rec"] - t["true_best"])).to_numpy()
    return {
        "recommended": float(t["true_rec"].mean()),
        "observed": float(t["true_obs"].mean()),
        "regret_recommended": float(regret.mean()),
        "regret_observed": float((d * (t["true_obs"] - t["true_best"])).mean()),
        "regret_interval_recommended": bootstrap_mean(regret, groups, **boot),
    }


def _policy_block(
    rows: pd.DataFrame,
    area: Any,
    *,
    n_boot: int,
    level: float,
    seed: int,
    truth: pd.DataFrame | None,
    splits: int = SPLITS,
) -> tuple[dict[str, Any], dict[str, Any]]:
    ope = off_policy(rows, area, n_boot=n_boot, level=level, seed=seed, splits=splits)
    scores = ope.pop("_scores")
    if truth is not None:
        tv = _truth_block(rows, truth, area, dict(n_boot=n_boot, level=level, seed=seed))
        for est in ope["recommended"].values():
            est["covers_truth"] = bool(est["lower"] <= tv["recommended"] <= est["upper"])
        ope["observed"]["covers_truth"] = bool(ope["observed"]["lower"] <= tv["observed"] <= ope["observed"]["upper"])
        ope["truth"] = tv
    return ope, scores


def evaluate(
    results: str | Path,
    *,
    truth: str | Path | None = None,
    n_boot: int = 1000,
    level: float = 0.9,
    seed: int = 0,
    subgroups: bool = True,
    splits: int = SPLITS,
) -> dict[str, Any]:
    """The evaluation of a finished run (see the module docstring), as a JSON-ready dict."""
    from ..areas import load_area

    out_dir = Path(results)
    df = read_results(out_dir, columns=[c for c in SCHEMA.names if c != "plans_json"])  # plans: not needed here
    meta = json.loads((out_dir / "run.json").read_text(encoding="utf-8")) if (out_dir / "run.json").is_file() else {}
    area_id = meta.get("area") or (df["area"].dropna().iloc[0] if df["area"].notna().any() else None)
    if area_id is None:
        raise ConfigError("results hold no area", field="RESULTS", value=str(out_dir))
    area = load_area(area_id, meta.get("rules"))
    truth_dir = Path(truth) if truth is not None else find_truth(out_dir)
    ep = df[(df["kind"] == "episode") & df["followup"].notna() & df["rec_regimen"].notna()]
    truth_df = true_values(ep, truth_dir, area) if truth_dir is not None and len(ep) else None
    report: dict[str, Any] = {
        "area": area.id,
        "outcome": {
            "quantity": area.outcome.quantity,
            "unit": area.outcome.unit,  # UCUM, for machines
            "unit_display": unit_display(area.outcome.unit, meta.get("rules")),  # as a clinician reads it
            "direction": area.outcome.direction,
        },
        "counts": {
            "units": int(df["unit"].nunique()),
            "rows": int(len(df)),
            "patients": int(df["patient_id"].dropna().nunique()),
            "error_rows": int((df["status"] == "error").sum()),
            "not_in_area": int((df["status"] == "not-in-area").sum()),
            "decision_points_with_follow_up": int(len(ep)),
            "errors_by_class": {
                str(k): int(v) for k, v in df.loc[df["status"] == "error", "error_class"].value_counts().items()
            },
        },
        "agreement": agreement(ep),
        "calibration": calibration(ep),
        "safety": safety(df),
        "truth": None if truth_dir is None else str(truth_dir),
    }
    scores = None
    if len(ep) >= 10 and ep["patient_id"].nunique() >= 4:
        report["policy"], scores = _policy_block(
            ep, area, n_boot=n_boot, level=level, seed=seed, truth=truth_df, splits=splits
        )
    if subgroups:
        report["subgroups"] = _subgroups(df, ep, area, scores, n_boot=n_boot, level=level, seed=seed, truth=truth_df)
    return _clean(report)


def _subgroups(
    df: pd.DataFrame,
    ep: pd.DataFrame,
    area: Any,
    scores: dict[str, Any] | None,
    *,
    n_boot: int,
    level: float,
    seed: int,
    truth: pd.DataFrame | None,
) -> dict[str, list[dict[str, Any]]]:
    """Every measure by subgroup; policy values from the whole cohort's cross-fitted nuisances restricted to
    the subgroup (fitted once), with the same patient bootstrap and outcome-model error term."""
    boot: dict[str, Any] = {"n_boot": n_boot, "level": level, "seed": seed}
    out: dict[str, list[dict[str, Any]]] = {}
    labels_ep = subgroup_columns(ep) if len(ep) else {}
    labels_all = subgroup_columns(df)
    for name, lab in labels_all.items():
        rows = []
        for value in sorted(lab.unique()):
            sub_all = df[lab == value]
            entry: dict[str, Any] = {
                "group": value,
                "patients": int(sub_all["patient_id"].nunique()),
                "safety_patients_with_findings": safety(sub_all).get("patients_with_findings", 0),
            }
            if name in labels_ep:
                sub = ep[labels_ep[name] == value]
                entry["decision_points"] = int(len(sub))
                entry["agreement_top1"] = agreement(sub).get("top1")
                cal = calibration(sub)
                entry["coverage90"] = (cal.get("coverage") or {}).get("90")
                entry["crps"] = cal.get("crps")
                entry["ece"] = (cal.get("p_target") or {}).get("ece")
                if scores is not None and len(sub) >= MIN_SUBGROUP and sub["patient_id"].nunique() >= 4:
                    entry["observed_value"], entry["dr_value"] = subset_values(scores, sub.index, **boot)
                    if truth is not None:
                        tv = _truth_block(sub, truth, area, boot)
                        entry["true_value"] = tv["recommended"]
                        entry["true_observed_value"] = tv["observed"]
                        entry["regret"] = tv["regret_recommended"]
                        entry["dr_covers_truth"] = bool(
                            entry["dr_value"]["lower"] <= tv["recommended"] <= entry["dr_value"]["upper"]
                        )
            rows.append(entry)
        out[name] = rows
    return out


def _clean(obj: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
