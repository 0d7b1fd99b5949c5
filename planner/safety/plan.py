"""Plan-level screening: the whole medication list a plan leaves the patient on.

The list a plan leaves is the plan's drugs plus every current drug outside the plan's area (the current drugs
of the area are replaced by the plan). :func:`screen_plan` screens that list in both directions: gene-drug
rules of plan drugs after phenoconversion by current drugs, findings on *current* drugs that a plan drug
phenoconverts, drug-drug pairs with a current drug, MAOI combinations and duplicate therapy, then applies dose
adjustments and screens the adjusted plan again. A finding about two drugs names both (``drugs``) and says
which the plan adds (``plan_adds``). ``RuleSet.check`` applies the same rules to the current list.

Callers: ``Planner`` (each candidate regimen), the CDS Hooks service (draft orders beside current medications)
and any stage that needs a regimen's verdict::

    from planner.safety import screen_plan
    result = screen_plan(record, regimen, area="depression")  # or a prepared PatientContext
    result.excluded, result.final, result.findings, result.adjusted_by
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..record import PatientRecord, Regimen
from .context import PatientContext
from .engine import RuleSet
from .verdict import PlanScreen, merge_findings, verdict

__all__ = ["PlanScreen", "screen_plan", "merge_findings"]


def screen_plan(
    record_or_context: "PatientRecord | PatientContext",
    regimen: Regimen,
    *,
    rules: RuleSet | str | Path | None = None,
    area: str | None = None,
    new_start: Iterable[str] | None = None,
) -> PlanScreen:
    """Screen the medication list ``regimen`` leaves the patient on; apply its dose adjustments.

    ``record_or_context``: a :class:`~planner.record.PatientRecord` (current medications, genotypes, labs,
    allergies, conditions) or a context from ``RuleSet.prepare`` (faster when screening many regimens).
    ``area``: the area whose current drugs the regimen replaces (default: every area a regimen drug is in).
    ``new_start``: regimen drugs being started (default: those not currently taken).
    """
    rs = rules if isinstance(rules, RuleSet) else RuleSet.load(rules)
    if type(record_or_context) is PatientContext:  # a prepared context: its verdict directly (one per candidate)
        return verdict(rs._screener, record_or_context, regimen, None if new_start is None else frozenset(new_start))
    return rs.screen_plan(record_or_context, regimen, area=area, new_start=new_start)
