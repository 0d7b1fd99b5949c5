"""Raw feature values of a patient at a decision time t0 (see :mod:`planner.features`)."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..areas import Area, code_matches, load_area
from ..errors import ConfigError
from ..medication_intervals import Interval, medication_intervals, regimen_at
from ..record import PatientRecord, PgxResult, Regimen
from ..status import GeneStatus

if TYPE_CHECKING:
    from ..safety.phenotype import GeneKnowledge

__all__ = ["features_at", "pgx_phenotype", "feature_units", "current_regimen", "default_gene_knowledge"]


@functools.lru_cache(maxsize=1)
def default_gene_knowledge() -> GeneKnowledge:
    """The PGx knowledge of the default rules folder (``$PLANNER_RULES_DIR`` or the packaged rules).

    Callers that were given a rules folder pass its knowledge (``RuleSet.load(path).knowledge``) instead."""
    from ..rule_files import rules_dir
    from ..safety.phenotype import GeneKnowledge

    return GeneKnowledge(rules_dir(None).resolve())


def pgx_phenotype(results: Sequence[PgxResult], gene: str, knowledge: GeneKnowledge | None = None) -> str:
    """One gene's feature value: its CPIC phenotype (``"A / B"`` in conflict), else its test status.

    ``not-tested`` without results and ``indeterminate`` when they cannot be translated (the
    :class:`~planner.status.GeneStatus` values); a gene the knowledge does not cover gives its reported
    phenotype, or ``"reported"``."""
    if not results:
        return GeneStatus.NOT_TESTED.value
    kn = default_gene_knowledge() if knowledge is None else knowledge
    return _pgx_phenotype(kn, tuple(results), gene)


@functools.lru_cache(maxsize=4096)
def _pgx_phenotype(kn: GeneKnowledge, results: tuple[PgxResult, ...], gene: str) -> str:
    if gene in kn.genes:
        res = kn.interpret(gene, results)
        status = GeneStatus(res.status)
        if status in (GeneStatus.TESTED, GeneStatus.CONFLICT):
            return res.phenotype or GeneStatus.INDETERMINATE.value
        return status.value
    phen = [r.phenotype for r in results if r.phenotype]
    if phen:
        return " / ".join(dict.fromkeys(phen))
    return "reported"


def _as_date(t0: Any) -> dt.date:
    if isinstance(t0, dt.datetime):
        return t0.date()
    if isinstance(t0, dt.date):
        return t0
    if isinstance(t0, (pd.Timestamp, np.datetime64)):
        return pd.Timestamp(t0).date()
    if isinstance(t0, str):
        try:
            return dt.date.fromisoformat(t0)
        except ValueError:
            pass
    raise ConfigError("invalid decision date", field="t0", value=t0, expected="a date such as 2024-01-31")


def _condition_on(record: PatientRecord, codes: tuple[str, ...], t0: dt.date) -> bool:
    for c in record.conditions:
        if c.verification_status in {"refuted", "entered-in-error"}:
            continue
        start = c.onset or c.recorded
        if start is not None and start > t0:
            continue
        if c.abatement is not None and c.abatement <= t0:
            continue
        all_codes = [c.code] + [x.code for x in c.codings]
        if any(x and code_matches(x, codes) for x in all_codes):
            return True
    return False


def _latest_value(record: PatientRecord, quantity: str, t0: dt.date, lookback: int) -> float | None:
    series = record.observations.get(quantity, ())
    best = None
    for m in series:
        if m.date > t0:
            break
        if (t0 - m.date).days <= lookback:
            best = m
    return None if best is None else float(best.value)


def current_regimen(
    record: PatientRecord, area: Area, t0: dt.date, *, intervals: list[Interval] | None = None
) -> Regimen:
    """The area drugs active on the day before t0 (episode medication rules)."""
    ivs = medication_intervals(record, area) if intervals is None else intervals
    return regimen_at(ivs, t0 - dt.timedelta(days=1))


def feature_units(area: Area) -> dict[str, str]:
    """Column -> unit of the featurizer's output (dimensionless: ``"1"``; categories: ``""``)."""
    units: dict[str, str] = {}
    for f in area.features:
        if f.kind == "age":
            units[f.name] = f.unit or "years"
            units[f.name + "_missing"] = "1"
        elif f.kind == "sex":
            units[f.name] = "1"
        elif f.kind in ("quantity", "baseline"):
            units[f.name] = f.unit or area.outcome.unit
            units[f.name + "_missing"] = "1"
        elif f.kind == "condition":
            units[f.name] = "1"
        elif f.kind == "pgx":
            units[f.name] = ""
    for cid in area.class_ids:
        units[f"cur_{cid}"] = "1"  # dose / reference dose
    units["cur_n_drugs"] = "1"
    return units


def features_at(
    record: PatientRecord,
    area: "Area | str",
    t0: Any,
    *,
    intervals: list[Interval] | None = None,
    knowledge: GeneKnowledge | None = None,
) -> dict[str, Any]:
    """Raw feature values at ``t0`` (None when missing), from data dated on or before t0 only.

    ``intervals``: the record's :func:`planner.medication_intervals.medication_intervals` when already computed;
    ``knowledge``: the PGx knowledge of the rules in use (default: :func:`default_gene_knowledge`)."""
    if isinstance(area, str):
        area = load_area(area)
    day = _as_date(t0)
    out: dict[str, Any] = {}
    for f in area.features:
        if f.kind == "age":
            age = record.age(day)
            out[f.name] = age
            out[f.name + "_missing"] = 1.0 if age is None else 0.0
        elif f.kind == "sex":
            out[f.name] = None if record.sex not in ("male", "female") else float(record.sex == "female")
        elif f.kind in ("quantity", "baseline"):
            lookback = (
                f.lookback_days if f.kind == "quantity" else min(f.lookback_days, area.outcome.baseline_window_days)
            )
            v = _latest_value(record, f.quantity or "", day, lookback)
            out[f.name] = v
            out[f.name + "_missing"] = 1.0 if v is None else 0.0
        elif f.kind == "condition":
            out[f.name] = 1.0 if _condition_on(record, f.codes, day) else 0.0
        elif f.kind == "pgx":
            gene = f.gene or ""
            res = [r for r in record.pgx_for(gene) if r.date is None or r.date <= day]
            out[f.name] = pgx_phenotype(res, gene, knowledge)
    reg = current_regimen(record, area, day, intervals=intervals)
    for cid in area.class_ids:
        out[f"cur_{cid}"] = 0.0
    for d in reg.drugs:
        entry = area.drug(d.ingredient)
        ratio = 1.0 if d.dose_mg_day is None else d.dose_mg_day / entry.reference_dose
        out[f"cur_{entry.drug_class}"] = float(ratio)
    out["cur_n_drugs"] = float(len(reg.drugs))
    return out
