"""The verdict on one regimen's list: its findings, its dose adjustments applied, the adjusted plan screened
again (:class:`PlanScreen`). The layer below :mod:`.engine` and :mod:`.plan`: it needs only a screen function,
so ``RuleSet.screen_plan`` and :func:`planner.safety.screen_plan` share it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..record import Finding, Regimen
from .context import PatientContext
from .findings import apply_findings

__all__ = ["PlanScreen", "merge_findings", "verdict", "verdicts"]

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


_set = object.__setattr__
_new = object.__new__


def _standing(regimen: Regimen, final: Regimen | None, found: tuple[Finding, ...]) -> PlanScreen:
    """``PlanScreen(regimen, final, found)`` without the frozen dataclass's per-field ``__setattr__`` calls
    (the same ``__dict__``; the verdict of every regimen that no rule adjusts)."""
    p = _new(PlanScreen)
    _set(p, "__dict__", {"regimen": regimen, "final": final, "findings": found, "adjusted_by": {}})
    return p


def verdicts(
    screen: ScreenTuple, ctx: PatientContext, regimens: Sequence[Regimen], starts: Sequence[set[str] | None] | None
) -> list[PlanScreen]:
    """:func:`verdict` of each regimen (``starts``: each one's ``new_start``, default None for all), with the
    verdicts that need no dose change built in line."""
    out: list[PlanScreen] = []
    append = out.append
    for i, regimen in enumerate(regimens):
        s = None if starts is None else starts[i]
        found = screen(ctx, regimen, new_start=s)
        if not found:
            append(_standing(regimen, regimen, found))
            continue
        action = found[0].action
        if action == "exclude":
            append(_standing(regimen, None, found))
        elif action == "adjust_dose":
            append(verdict(screen, ctx, regimen, s))
        else:
            append(_standing(regimen, regimen, found))
    return out


def verdict(screen: ScreenTuple, ctx: PatientContext, regimen: Regimen, starts: set[str] | None) -> PlanScreen:
    """Screen ``regimen`` in ``ctx`` with ``screen``; apply its dose adjustments and screen the adjusted plan
    again (excluded when the adjustments do not settle)."""
    found = screen(ctx, regimen, new_start=starts)
    # findings come most severe action first: the first one says whether anything excludes or adjusts
    if not found or found[0].action not in _ACTING:  # nothing excludes or adjusts: the regimen stands
        return PlanScreen(regimen, regimen, found)
    if found[0].action == "exclude":  # what apply_findings would say: excluded, nothing adjusted
        return PlanScreen(regimen, None, found, {})
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
