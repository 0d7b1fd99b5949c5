"""One module per rule kind, behind one small protocol: patient context + the list a regimen leaves -> findings.

Every kind implements :class:`RuleKind` (``findings(ctx, plan)``). Kinds whose findings belong to one drug of
the list (gene-drug, drug-allergy, drug-condition, drug-lab, maximum dose) derive from :class:`DrugKind` and
also answer ``drug_findings(ctx, plan, drug, dose)``, so the screen loop can memoize a drug's findings across
the candidate regimens of one patient. The other kinds look at the whole list: drug-drug pairs, duplicate
therapy, and current drugs whose effect a plan drug changes (phenoconversion).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from ...record import Finding
from ..context import PatientContext
from ..findings import replace

__all__ = ["ScreenInput", "RuleKind", "DrugKind", "cap"]


class ScreenInput(NamedTuple):
    """The medication list one regimen leaves the patient on, as every rule kind sees it."""

    drugs: tuple[tuple[str, float | None], ...]  # the regimen's (ingredient, mg/day)
    ingredients: tuple[str, ...]
    ingredient_set: frozenset[str]
    others: tuple[str, ...]  # current drugs kept beside the regimen (outside its area), sorted
    all_drugs: frozenset[str]  # regimen + others
    starts: frozenset[str]  # regimen drugs being started
    kept: frozenset[str] = frozenset()  # ``others`` as a set


class RuleKind(Protocol):
    """One kind of safety rule."""

    kind: str

    def findings(self, ctx: PatientContext, plan: ScreenInput) -> list[Finding]:
        """The findings this kind gives for the list ``plan`` leaves the patient on."""
        ...


class DrugKind:
    """A rule kind whose findings each concern one drug of the list (and at most the drugs that modify it)."""

    kind = ""

    def applies(self, drug: str) -> bool:
        """Whether a rule of this kind can name ``drug`` (``""``: any drug), from the rule data alone."""
        return True

    def drug_findings(self, ctx: PatientContext, plan: ScreenInput, drug: str, dose: float | None) -> list[Finding]:
        raise NotImplementedError

    def findings(self, ctx: PatientContext, plan: ScreenInput) -> list[Finding]:
        out: list[Finding] = []
        for d, dose in plan.drugs:
            out += self.drug_findings(ctx, plan, d, dose)
        return out


def cap(f: Finding, dose: float | None) -> Finding:
    """A dose cap applied to the regimen's dose: adjusted when above it, ``info`` when within it."""
    if f.action != "adjust_dose" or f.max_dose_mg_day is None or dose is None:
        return f
    if dose <= f.max_dose_mg_day:
        return replace(f, action="info")
    return replace(f, adjusted_dose_mg_day=f.max_dose_mg_day)
