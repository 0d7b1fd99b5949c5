"""The verdict on one regimen's list: its findings, its dose adjustments applied, the adjusted plan screened
again (:class:`PlanScreen`). The layer below :mod:`.engine` and :mod:`.plan`: it needs only a screen function,
so ``RuleSet.screen_plan`` and :func:`planner.safety.screen_plan` share it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from ..record import Finding, Regimen
from .context import PatientContext
from .findings import apply_findings

__all__ = ["PlanScreen", "exclusions_of", "merge_findings", "verdict", "verdict_parts"]

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
        return exclusions_of(self.findings, self.final is None)


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


def verdict(screener: Any, ctx: PatientContext, regimen: Regimen, starts: frozenset[str] | None) -> PlanScreen:
    """Screen ``regimen`` in ``ctx`` with ``screener`` (:class:`~planner.safety.screen.Screener`); apply its
    dose adjustments and screen the adjusted plan again (excluded when the adjustments do not settle): the
    :class:`PlanScreen` of :func:`verdict_parts`."""
    final, findings, adjusted_by = verdict_parts(screener, ctx, regimen, starts)
    return _screened(regimen, final, findings, adjusted_by)


def verdict_parts(
    screener: Any, ctx: PatientContext, regimen: Regimen, starts: frozenset[str] | None
) -> tuple[Regimen | None, tuple[Finding, ...], dict[str, str]]:
    """(the regimen after its dose adjustments, None when excluded; its findings; drug -> rule id that adjusted
    its dose, a new dict) of :func:`verdict`, without the :class:`PlanScreen` (the screening stage builds its
    hand-off from them). The adjusted plan is the regimen's list with other doses: screened as that list (its
    memoized units for the drugs whose dose did not change are looked up, those of the changed doses computed)."""
    kd = tuple([(d.ingredient, d.dose_mg_day) for d in regimen.drugs])
    found, plan = screener.screen_kd(ctx, kd, starts)  # its memo, then its fast path, then the whole list
    # findings come most severe action first: the first one says whether anything excludes or adjusts
    if not found or found[0].action not in _ACTING:  # nothing excludes or adjusts: the regimen stands
        return regimen, found, {}
    if found[0].action == "exclude":  # what apply_findings would say: excluded, nothing adjusted
        return None, found, {}
    fast = screener.adjusted(ctx, regimen, kd, starts, found)  # a regimen of the fast path: per drug
    if fast is not None:
        return fast[0], fast[1], _adjusted_by(fast[1])
    final = apply_findings(regimen, found)  # it reads only the acting findings
    if final is regimen:  # no dose changes: the findings are the regimen's
        return regimen, found, _adjusted_by(found)
    if final is None:  # pragma: no cover - found[0] adjusts, so nothing excludes
        return None, found, {}
    kd2 = tuple([(d.ingredient, d.dose_mg_day) for d in final.drugs])
    again, _ = screener.screen_kd(ctx, kd2, starts, (), None if plan is None else screener.with_doses(plan, kd2))
    # findings come most severe first: none acting means apply_findings would return ``final`` itself
    redo = apply_findings(final, again) if again and again[0].action in _ACTING else final
    findings = tuple(merge_findings(found, again))
    if redo is not final and (redo is None or redo.key() != final.key()):
        return None, findings, {}
    return final, findings, _adjusted_by(findings)


def exclusions_of(findings: tuple[Finding, ...], excluded: bool) -> tuple[Finding, ...]:
    """The findings that exclude a regimen (all its findings if it was excluded as unstable)."""
    return tuple(f for f in findings if f.action == "exclude") or (findings if excluded else ())


def _adjusted_by(findings: Sequence[Finding]) -> dict[str, str]:
    return {f.target_drug: f.rule_id for f in findings if f.action == "adjust_dose" and f.target_drug}
