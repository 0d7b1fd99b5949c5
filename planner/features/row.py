"""The features stage: ``PatientRecord -> FeatureRow`` (features with units, and the record's facts on the day).

The row holds what later stages need from the record besides its medications, genotypes, labs and allergies
(which the safety screen reads from the record itself): the outcome's baseline value, the current regimen, the
regimen the baseline was measured under, the patient's target and the labs missing for the features.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from ..areas import Area, fill_doses
from ..handoffs import FeatureRow
from ..ingest.quality import record_gaps, record_warnings
from ..medication_intervals import medication_intervals, regimen_at
from ..record import PatientRecord
from .values import feature_units, features_at

if TYPE_CHECKING:
    from ..safety.phenotype import GeneKnowledge

__all__ = ["feature_row", "target_for"]


def target_for(area: Area, record: PatientRecord) -> tuple[float, str]:
    """The patient's target and why (the area's target rules, by active condition codes and age)."""
    codes = {code for c in record.active_conditions() for code in (c.code, *(k.code for k in c.codings)) if code}
    rule = area.target_rule_for(codes, record.age())
    return (area.outcome.target, "default target") if rule is None else (rule.value, rule.label)


def feature_row(record: PatientRecord, area: Area, *, knowledge: GeneKnowledge | None = None) -> FeatureRow:
    """The patient's :class:`~planner.handoffs.FeatureRow` on ``record.as_of`` for ``area``.

    ``knowledge``: the PGx knowledge of the rules in use (``RuleSet.knowledge``; default: the default rules).
    When no outcome value is recent, the baseline column takes the last value on record (and says so)."""
    on = record.as_of
    ivs = medication_intervals(record, area)  # once: the features' and the rows' regimens read the same intervals
    raw = features_at(record, area, on, knowledge=knowledge, intervals=ivs)
    units = feature_units(area)
    if set(raw) != set(units):  # a bug in the featurizer, not bad input
        raise AssertionError(f"feature columns {sorted(set(raw) ^ set(units))} lack a value or a unit")
    values = {k: raw[k] for k in units}
    o = area.outcome
    recent = record.latest(o.quantity, within_days=o.baseline_window_days)
    last = record.latest(o.quantity) if recent is None else None
    baseline = next((f.name for f in area.features if f.kind == "baseline"), None)
    from_last = bool(baseline and values.get(baseline) is None and last is not None)
    if from_last and baseline and last is not None:
        values[baseline] = last.value  # predictions start from the last known value; a data gap says how old
    current = regimen_at(ivs, on)
    measured = recent or last
    # the baseline value carries the effect of the regimen active when it was measured
    under = current if measured is None else regimen_at(ivs, measured.date - dt.timedelta(days=1))
    target, label = target_for(area, record)
    labs_missing = tuple(
        f.name
        for f in area.features
        if f.kind == "quantity" and f.quantity and record.latest(f.quantity, within_days=f.lookback_days) is None
    )
    return FeatureRow(
        patient_id=record.patient_id,
        area=area.id,
        area_version=area.version,
        as_of=on,
        values=values,
        units=units,
        baseline_feature=baseline,
        outcome_recent=recent,
        outcome_last=last,
        baseline_from_last=from_last,
        current=current,
        measured_under=fill_doses(under, area),
        target=target,
        target_label=label,
        labs_missing=labs_missing,
        record_gaps=tuple(record_gaps(record, quantity=o.quantity)),
        record_warnings=record_warnings(record),
        deceased=record.is_deceased,
    )
