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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from ..record import Finding, PatientRecord, Regimen
from .context import PatientContext
from .engine import RuleSet, apply_findings

__all__ = ["PlanScreen", "screen_plan", "merge_findings"]

_ACTING = frozenset({"exclude", "adjust_dose"})


@dataclass(frozen=True)
class PlanScreen:
    """The verdict on one regimen: its findings and the regimen after dose adjustments (None: excluded)."""

    regimen: Regimen
    final: Regimen | None
    findings: tuple[Finding, ...]
    adjusted_by: dict[str, str] = field(default_factory=dict)  # drug -> rule id that adjusted its dose

    @property
    def excluded(self) -> bool:
        return self.final is None

    @property
    def exclusions(self) -> tuple[Finding, ...]:
        """The findings that exclude the regimen (all findings if it was excluded as unstable)."""
        return tuple(f for f in self.findings if f.action == "exclude") or (self.findings if self.excluded else ())


def merge_findings(a: Sequence[Finding], b: Sequence[Finding]) -> list[Finding]:
    """``a`` then the findings of ``b`` that ``a`` lacks (same rule, target and action)."""
    keys = {(f.rule_id, f.target_drug, f.action) for f in a}
    return list(a) + [f for f in b if (f.rule_id, f.target_drug, f.action) not in keys]


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
    ctx = (
        record_or_context if isinstance(record_or_context, PatientContext) else rs.prepare(record_or_context, area=area)
    )
    starts = None if new_start is None else set(new_start)
    found = rs.screen_tuple(ctx, regimen, new_start=starts)
    # findings come most severe action first: the first one says whether anything excludes or adjusts
    if not found or found[0].action not in _ACTING:  # nothing excludes or adjusts: the regimen stands
        return PlanScreen(regimen, regimen, found)
    if found[0].action == "exclude":  # what apply_findings would say: excluded, nothing adjusted
        return PlanScreen(regimen, None, found, {})
    findings: Sequence[Finding] = found
    final = apply_findings(regimen, [f for f in found if f.action in _ACTING])
    if final is not None and final is not regimen:  # dose adjusted: the adjusted plan must pass as well
        again = rs.screen_tuple(ctx, final, new_start=starts)
        redo = apply_findings(final, again)
        if redo is not final and (redo is None or redo.key() != final.key()):
            final = None
        findings = merge_findings(findings, again)
    adjusted_by = {f.target_drug: f.rule_id for f in findings if f.action == "adjust_dose" and f.target_drug}
    return PlanScreen(
        regimen=regimen, final=final, findings=tuple(findings), adjusted_by={} if final is None else adjusted_by
    )
