"""The report stage: ``Predictions -> Recommendation`` (rank the kept regimens, list the excluded ones with why,
the data gaps, the record's data-quality warnings and the provenance)."""

from __future__ import annotations

from typing import Sequence

from ..areas import Area
from ..handoffs import Predictions
from ..rank import RankingConfig, describe_changes, rank
from ..recommendation import ExcludedRegimen, OutcomeSummary, Provenance, Recommendation
from ..record import PatientRecord
from ..units import unit_display
from ..version import __version__
from .gaps import GapRules, data_gaps

__all__ = ["report"]


def report(
    predictions: Predictions,
    *,
    area: Area,
    ranking: RankingConfig,
    gaps: GapRules,
    top: int,
    record: PatientRecord | None = None,
    preferences: Sequence[str] = (),
) -> Recommendation:
    """The recommendation: the ``top`` best plans, every excluded candidate, current findings and data gaps.
    ``record`` (for the guideline indications and secondary outcomes) and ``preferences`` go to the ranking."""
    s = predictions.screened
    f = s.features
    o = area.outcome
    plans = (
        []
        if f.deceased
        else rank(predictions, area=area, config=ranking, record=record, preferences=preferences, top=top)
    )
    excluded = tuple(
        ExcludedRegimen(
            key=e.regimen.key(), regimen=describe_changes(f.current, e.regimen, area)[0], findings=e.findings
        )
        for e in s.excluded
    )
    recent = f.outcome_recent
    return Recommendation(
        patient_id=f.patient_id,
        area=area.id,
        area_name=area.name,
        outcome=OutcomeSummary(
            quantity=o.quantity,
            loinc=o.loinc[0],
            unit=o.unit,
            unit_display=unit_display(o.unit, ranking.rules),
            direction=o.direction,
            baseline=None if recent is None else recent.value,
            baseline_date=None if recent is None else recent.date,
            target=f.target,
            target_label=f.target_label,
        ),
        current_regimen=describe_changes(f.current, f.current, area)[0],
        plans=tuple(plans),
        excluded=excluded,
        current_findings=s.current_findings,
        data_gaps=data_gaps(s, area=area, rules=gaps) + f.record_gaps,
        record_warnings=f.record_warnings,
        preferences=tuple(preferences),
        provenance=Provenance(
            planner_version=__version__,
            rules_version=s.rules_version,
            area_version=f.area_version,
            model=predictions.model,
            seed=predictions.seed,
            as_of=f.as_of,
            num_samples=predictions.num_samples,
            candidates_considered=len(s.candidates.candidates),
        ),
    )
