"""One result row per patient and decision point (and one error row per patient or unit that failed).

Decision points of a record (``at``):

* ``episodes``: every regimen change the episode rules keep (DESIGN.md): the recommendation is made on the
  record as it stood on t0 before the change was recorded (:func:`planner.batch.record_at`), the observed
  regimen is what the clinician chose on t0 and the observed outcome is the follow-up value;
* ``current``: the record's own as-of date (no observed outcome);
* ``all``: both (the default of ``planner cohort run``).

The observed regimen is also scored by the model (its own predictive draws), so the evaluation can check the
intervals and P(target) against what was then measured: PIT, CRPS and coverage at 50/80/90/95% are computed
here from the full draws; ``planner cohort evaluate`` aggregates them.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any, Iterable

import numpy as np
import orjson

from ..errors import PlannerError
from ..record import PatientRecord, Regimen

__all__ = ["RunOptions", "plan_unit", "plan_units", "COVERAGE_LEVELS", "QUANTILES", "error_row"]

COVERAGE_LEVELS = (0.5, 0.8, 0.9, 0.95)
QUANTILES = tuple(round(0.05 * k, 2) for k in range(1, 20))
AT_CHOICES = ("all", "episodes", "current")
_MESSAGE_LIMIT = 300
MODEL_DRAWS = 64  # posterior draws of the expected follow-up kept per row (the same draw indices for every row)


@dataclasses.dataclass(frozen=True)
class RunOptions:
    area: str
    at: str = "all"
    top: int = 5
    seed: int = 0


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _regimen_json(reg: Regimen) -> str:
    return _json([{"drug": d.ingredient, "rxnorm": d.rxcui, "dose_mg_day": d.dose_mg_day} for d in reg.drugs])


def error_row(
    unit: str, exc: BaseException, *, patient_id: str | None = None, area: str = "", point: int = -1
) -> dict[str, Any]:
    """A failed unit or patient: the error's class and message (the message names only what the input gave)."""
    msg = str(exc) if isinstance(exc, PlannerError) else f"{type(exc).__name__}: {exc}"
    return {
        "unit": unit,
        "patient_id": patient_id,
        "area": area,
        "point": point,
        "kind": "error",
        "status": "error",
        "error_class": type(exc).__name__,
        "error_message": msg[:_MESSAGE_LIMIT],
    }


def _demographics(data: bytes) -> dict[str, dict[str, str | None]]:
    """Race and ethnicity (US Core extensions, text or OMB category display) per Patient id in raw input."""
    out: dict[str, dict[str, str | None]] = {}
    # neither extension's URL (nor a \u escape that could spell one): no second parse of the input. One scan for
    # their common part and one for a backslash (a byte search) settle most inputs
    names = b"us-core-" in data and (b"us-core-race" in data or b"us-core-ethnicity" in data)
    if not names and not (b"\\" in data and b"\\u" in data):
        return out
    try:
        docs = [orjson.loads(data)]
    except orjson.JSONDecodeError:
        docs = []
        for line in data.splitlines():
            if b'"Patient"' in line[:200]:
                try:
                    docs.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    continue
    stack = list(docs)
    while stack:
        doc = stack.pop()
        if not isinstance(doc, dict):
            continue
        if doc.get("resourceType") == "Bundle":
            stack.extend(e.get("resource") for e in doc.get("entry") or () if isinstance(e, dict))
            continue
        if doc.get("resourceType") == "Patient" and isinstance(doc.get("id"), str):
            out[doc["id"]] = {"race": _omb(doc, "us-core-race"), "ethnicity": _omb(doc, "us-core-ethnicity")}
    return out


def _omb(patient: dict, name: str) -> str | None:
    for ext in patient.get("extension") or ():
        if not isinstance(ext, dict) or not str(ext.get("url", "")).endswith(name):
            continue
        text = None
        cats = []
        for sub in ext.get("extension") or ():
            if not isinstance(sub, dict):
                continue
            if sub.get("url") == "text" and isinstance(sub.get("valueString"), str):
                text = sub["valueString"]
            if sub.get("url") == "ombCategory" and isinstance(sub.get("valueCoding"), dict):
                cats.append(sub["valueCoding"].get("display") or sub["valueCoding"].get("code"))
        return text or (", ".join(str(c) for c in cats if c) or None)
    return None


def plan_unit(planner: Any, unit: Any, opts: RunOptions) -> list[dict[str, Any]]:
    """Rows for one unit; a unit that cannot be read gives one error row, a patient that fails gives its own."""
    return plan_units(planner, [unit], opts)


def plan_units(planner: Any, units: Iterable[Any], opts: RunOptions) -> list[dict[str, Any]]:
    """Rows for a batch of units, in order: every decision point of the batch goes through one
    :func:`planner.batch.recommend_jobs` call (one sampler call for the batch's posterior draws). A unit that
    cannot be read gives one error row, a patient or decision point that fails its own; the others go on."""
    from ..batch import Job, recommend_jobs

    slots: list[Any] = []  # per unit and patient: a finished list of rows, or the decision points to plan
    points: list[tuple[dict[str, Any], PatientRecord, Any]] = []
    for unit in units:
        for item in _unit_points(planner, unit, opts):
            slots.append(item)
            if isinstance(item, _Pending):
                points.extend(item.points)
    try:  # no digest: the cohort planner keeps no audit of its own
        recs = recommend_jobs(planner, [Job(v, opts.area, "") for _, v, _ in points], top=opts.top, seed=opts.seed)
    except Exception as exc:  # noqa: BLE001 - bad options: every decision point gets the error row
        recs = [exc] * len(points)
    draws = _model_draws(planner, points, recs, opts)
    got = iter(zip(recs, draws))
    rows: list[dict[str, Any]] = []
    for item in slots:
        if not isinstance(item, _Pending):
            rows.extend(item)
            continue
        for base, view, ep in item.points:
            rec, scored = next(got)
            try:
                if isinstance(rec, Exception):
                    raise rec
                rows.append(_point_row(base, view, ep, item.area, rec, scored, planner.ruleset.knowledge))
            except Exception as exc:  # noqa: BLE001 - a failing decision point is an error row; the others go on
                rows.append(error_row(item.unit, exc, patient_id=view.patient_id, area=opts.area, point=base["point"]))
    return rows


def _model_draws(
    planner: Any, points: list[tuple[dict[str, Any], PatientRecord, Any]], recs: list[Any], opts: RunOptions
) -> list[tuple[Any, Any]]:
    """Per decision point: the model's draws at the observed regimen and at the recommended one (None where the
    point has no observed follow-up, no plan or no prediction), the draws of the whole batch in one sampler call
    (:func:`planner.batch.predict_regimens_many`: the same draws as one call each)."""
    from ..batch import predict_regimens_many

    asks: list[tuple[PatientRecord, str, list[Regimen]]] = []
    where: list[Any] = []  # per point: (index of the observed ask, of the recommended ask or None), or an error
    for (_, view, ep), rec in zip(points, recs):
        if ep is None or isinstance(rec, Exception):
            where.append((None, None))
            continue
        try:
            mine = [(view, opts.area, [ep.regimen])]
            if rec.plans:
                mine.append((view, opts.area, [_plan_regimen(rec.plans[0])]))
        except Exception as exc:  # noqa: BLE001 - this point's error row; the others go on
            where.append(exc)
            continue
        where.append((len(asks), len(asks) + 1 if rec.plans else None))
        asks.extend(mine)
    got = predict_regimens_many(planner, asks, seed=opts.seed) if asks else []
    return [
        (w, w)
        if isinstance(w, Exception)
        else (None if w[0] is None else got[w[0]], None if w[1] is None else got[w[1]])
        for w in where
    ]


@dataclasses.dataclass
class _Pending:
    """A patient's decision points waiting for their recommendations."""

    unit: str
    area: Any
    points: list[tuple[dict[str, Any], PatientRecord, Any]]


def _unit_points(planner: Any, unit: Any, opts: RunOptions) -> list[Any]:
    """Per patient of the unit: finished rows (error, not in the area) or its pending decision points."""
    from ..ingest import read_records

    try:
        data = unit.read()
        records = read_records(data)
    except Exception as exc:  # noqa: BLE001 - one bad unit never sinks a batch
        return [[error_row(unit.id, exc, area=opts.area)]]
    demo = _demographics(data)
    out: list[Any] = []
    for record in records:
        try:
            out.append(_record_points(planner, unit.id, record, opts, demo.get(record.patient_id, {})))
        except Exception as exc:  # noqa: BLE001 - one bad patient never sinks a batch
            out.append([error_row(unit.id, exc, patient_id=record.patient_id, area=opts.area)])
    return out


def _in_area(planner: Any, record: PatientRecord, area_id: str) -> bool:
    return area_id in planner.areas_for(record)


def _record_points(
    planner: Any, unit_id: str, record: PatientRecord, opts: RunOptions, demo: dict[str, str | None]
) -> Any:
    from ..areas import load_area
    from ..batch import record_at
    from ..episodes import extract_episodes

    area = load_area(opts.area, planner.rules_path)
    base = {
        "unit": unit_id,
        "patient_id": record.patient_id,
        "area": area.id,
        "sex": record.sex,
        "race": demo.get("race"),
        "ethnicity": demo.get("ethnicity"),
        "age": _num(record.age()),
    }
    if not _in_area(planner, record, area.id):
        return [{**base, "point": 0, "kind": "not-in-area", "status": "not-in-area", "as_of": record.as_of}]
    points: list[tuple[str, PatientRecord, Any]] = []
    if opts.at in ("all", "episodes"):
        for ep in extract_episodes(record, area, with_features=False).episodes:
            points.append(("episode", record_at(record, ep.t0), ep))
    if opts.at in ("all", "current"):
        points.append(("current", record, None))
    return _Pending(
        unit_id, area, [({**base, "point": i, "kind": kind}, view, ep) for i, (kind, view, ep) in enumerate(points)]
    )


def _point_row(
    base: dict[str, Any], view: PatientRecord, ep: Any, area: Any, rec: Any, scored: tuple[Any, Any], knowledge: Any
) -> dict[str, Any]:
    from ..features import features_at

    feats = features_at(view, area, view.as_of, knowledge=knowledge)  # the PGx knowledge of the planner's rules
    row: dict[str, Any] = {
        **base,
        "status": "ok" if rec.plans else "no-plan",
        "as_of": view.as_of,
        "age": _num(view.age()),
        "egfr": _num(feats.get("egfr")),
        "features_json": _json(feats),
        "baseline": rec.outcome.baseline,
        "baseline_date": rec.outcome.baseline_date,
        "target": rec.outcome.target,
        "current_regimen": _key(rec.current_regimen),
        "n_plans": len(rec.plans),
        "n_excluded": len(rec.excluded),
        "candidates": rec.provenance.candidates_considered,
        "plans_json": _json([p.model_dump(mode="json") for p in rec.plans]),  # the JSON form, not parsed back
        "data_gaps": _json(sorted({g.code for g in rec.data_gaps})),
        "n_current_findings": len(rec.current_findings),
        "current_findings_json": _json(_finding_counts(rec.current_findings)),
    }
    if rec.plans:
        p = rec.plans[0]
        row.update(
            {
                "rec_regimen": p.key,
                "rec_regimen_json": _json(
                    [{"drug": d.drug, "rxnorm": d.rxnorm, "dose_mg_day": d.dose_mg_day} for d in p.regimen]
                ),
                "rec_changes": ", ".join(
                    [f"{d.change} {d.drug}" for d in p.regimen if d.change != "continue"]
                    + [f"stop {d.drug}" for d in p.stopped]
                )
                or "continue",
                "rec_mean": p.predicted.mean,
                "rec_lower": p.predicted.lower,
                "rec_upper": p.predicted.upper,
                "rec_obs_lower": p.predicted.obs_lower,
                "rec_obs_upper": p.predicted.obs_upper,
                "rec_p_target": p.p_target,
                "rec_p_best": p.p_best,
                "rec_findings_json": _json(_finding_counts(p.findings)),
            }
        )
    if ep is not None:
        row.update(_observed(ep, area, rec, *scored))
    return row


def _observed(ep: Any, area: Any, rec: Any, draws: Any, rec_draws: Any) -> dict[str, Any]:
    """The observed regimen and outcome of an episode's decision point, scored by the model's draws at the
    observed regimen (``draws``) and at the recommended one (``rec_draws``: the off-policy interval)."""
    for got in (draws, rec_draws):
        if isinstance(got, Exception):
            raise got
    reg = ep.regimen
    out: dict[str, Any] = {
        "observed_regimen": reg.key(),
        "observed_regimen_json": _regimen_json(reg),
        "followup": ep.followup,
        "followup_date": ep.followup_date,
    }
    top_keys = [p.key for p in rec.plans]
    out["agree_top1"] = bool(top_keys) and top_keys[0] == reg.key()
    out["agree_topk"] = reg.key() in top_keys
    out["agree_drugs"] = bool(rec.plans) and {d.drug for d in rec.plans[0].regimen} == set(reg.ingredients)
    if draws is None:
        return out
    mean, pred = draws[0][:, 0], draws[1][:, 0]
    out["obs_mean_draws"] = [float(v) for v in mean[:MODEL_DRAWS]]
    if rec.plans and rec_draws is not None:  # the model's error draws at the recommended regimen
        out["rec_mean_draws"] = [float(v) for v in rec_draws[0][:MODEL_DRAWS, 0]]
    y = float(ep.followup)
    d = 1.0 if area.outcome.direction == "lower" else -1.0
    out.update(
        {
            "obs_mean": float(mean.mean()),
            "obs_pred_mean": float(pred.mean()),
            "obs_pred_q": [float(q) for q in np.quantile(pred, QUANTILES)],
            "obs_p_target": float((d * (rec.outcome.target - pred) > 0).mean()),
            "obs_reached": bool(d * (rec.outcome.target - y) > 0),
            "obs_pit": float((pred < y).mean() + 0.5 * (pred == y).mean()),
            "obs_crps": _crps(pred, y),
        }
    )
    for level in COVERAGE_LEVELS:
        lo, hi = np.quantile(pred, [(1 - level) / 2, (1 + level) / 2])
        out[f"obs_cover{int(level * 100)}"] = bool(lo <= y <= hi)
    return out


def _plan_regimen(plan: Any) -> Regimen:
    from ..record import DrugDose

    return Regimen.of(
        [DrugDose(ingredient=d.drug, rxcui=d.rxnorm or "", dose_mg_day=d.dose_mg_day) for d in plan.regimen]
    )


def _crps(draws: np.ndarray, y: float) -> float:
    """CRPS of the empirical predictive distribution: E|X - y| - E|X - X'| / 2 (sorted-sample formula)."""
    x = np.sort(draws.astype(np.float64))
    n = x.size
    e1 = np.abs(x - y).mean()
    e2 = 2.0 * np.sum(x * (2 * np.arange(1, n + 1) - n - 1)) / (n * n)
    return float(e1 - 0.5 * e2)


def _finding_counts(findings: Iterable[Any]) -> dict[str, int]:
    return dict(Counter(f"{f.kind}:{f.action}" for f in findings))


def _key(drugs: Iterable[Any]) -> str:
    parts = [
        d.drug + ("" if d.dose_mg_day is None else f"@{d.dose_mg_day:g}") for d in sorted(drugs, key=lambda d: d.drug)
    ]
    return "+".join(parts) or "none"


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)
