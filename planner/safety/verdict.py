"""The verdict on one regimen's list: its findings, its dose adjustments applied, the adjusted plan screened
again (:class:`PlanScreen`). The layer below :mod:`.engine` and :mod:`.plan`: it needs only a screen function,
so ``RuleSet.screen_plan`` and :func:`planner.safety.screen_plan` share it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..record import Finding, Regimen
from .context import PatientContext
from .findings import apply_findings

__all__ = ["PlanScreen", "merge_findings", "verdict"]

_ACTING = frozenset({"exclude", "adjust_dose"})

ScreenTuple = Callable[..., tuple[Finding, ...]]  # (ctx, regimen, *, new_start) -> sorted findings


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


_new = object.__new__


def _screened(
    regimen: Regimen, final: Regimen | None, findings: tuple[Finding, ...], adjusted_by: dict[str, str]
) -> PlanScreen:
    """``PlanScreen(regimen, final, findings, adjusted_by)`` without the frozen dataclass's per-field
    ``object.__setattr__`` calls (one verdict per candidate regimen): the same fields, an equal object."""
    new = _new(PlanScreen)
    new.__dict__.update(regimen=regimen, final=final, findings=findings, adjusted_by=adjusted_by)
    return new


def verdict(screen: ScreenTuple, ctx: PatientContext, regimen: Regimen, starts: set[str] | None) -> PlanScreen:
    """Screen ``regimen`` in ``ctx`` with ``screen``; apply its dose adjustments and screen the adjusted plan
    again (excluded when the adjustments do not settle)."""
    found = screen(ctx, regimen, new_start=starts)
    # findings come most severe action first: the first one says whether anything excludes or adjusts
    if not found or found[0].action not in _ACTING:  # nothing excludes or adjusts: the regimen stands
        return _screened(regimen, regimen, found, {})
    if found[0].action == "exclude":  # what apply_findings would say: excluded, nothing adjusted
        return _screened(regimen, None, found, {})
    findings: Sequence[Finding] = found
    final = apply_findings(regimen, [f for f in found if f.action in _ACTING])
    if final is not None and final is not regimen:  # dose adjusted: the adjusted plan must pass as well
        again = screen(ctx, final, new_start=starts)
        # findings come most severe first: none acting means apply_findings would return ``final`` itself
        redo = apply_findings(final, again) if again and again[0].action in _ACTING else final
        if redo is not final and (redo is None or redo.key() != final.key()):
            final = None
        findings = merge_findings(findings, again)
    adjusted_by = {f.target_drug: f.rule_id for f in findings if f.action == "adjust_dose" and f.target_drug}
    return PlanScreen(
        regimen=regimen, final=final, findings=tuple(findings), adjusted_by={} if final is None else adjusted_by
    )
