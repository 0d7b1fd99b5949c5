"""Drug-allergy rules: the same ingredient, a drug of an allergy group's classes (exclude), or a cross-reactive
class (the group's ``cross`` action), for each active, not refuted allergy of the patient."""

from __future__ import annotations

from ...record import Finding
from ..context import PatientContext
from ..findings import fit, new_finding
from ..loader import RuleData
from ..schema import ActionName
from . import DrugKind, ScreenInput

__all__ = ["AllergyKind"]


class AllergyKind(DrugKind):
    kind = "drug-allergy"

    def __init__(self, rules: RuleData) -> None:
        self.rules = rules
        # per allergy group, per drug of a class the group cross-reacts with: (action, class), the first of the
        # group's cross-reactive classes (in file order) the drug is in; built once per rule set
        self.cross_of: dict[str, dict[str, tuple[ActionName, str]]] = {}
        for g, cross in rules.allergy_cross.items():
            of: dict[str, tuple[ActionName, str]] = {}
            for d, classes in rules.drug_classes.items():
                for c, act in cross.items():
                    if c in classes:
                        of[d] = (act, c)
                        break
            self.cross_of[g] = of

    def drug_findings(self, ctx: PatientContext, plan: ScreenInput, drug: str, dose: float | None) -> list[Finding]:
        key = ("allergy", drug)
        hit = ctx.cache.get(key)
        if hit is None:
            hit = ctx.cache[key] = self._findings(ctx, drug)
        return hit

    def _match(self, d: str, ing: str | None, groups: frozenset[str]) -> tuple[str | None, ActionName | None, str]:
        r = self.rules
        if ing == d:
            return "same", "exclude", ""
        for g in sorted(groups):
            if d in r.allergy_members[g]:
                return "class", "exclude", g
        for g in sorted(groups):
            hit = self.cross_of[g].get(d)
            if hit is not None:
                return "cross", hit[0], hit[1]
        return None, None, ""

    def _findings(self, ctx: PatientContext, d: str) -> list[Finding]:
        r = self.rules
        out: list[Finding] = []
        for allergen, ing, groups in ctx.allergies:
            kind, action, gname = self._match(d, ing, groups)
            if kind is None or action is None:
                continue
            label = r.classes[gname].label if gname in r.classes else gname
            out.append(
                new_finding(
                    rule_id=f"allergy.{kind}" + (f".{gname}" if gname else ""),
                    rule_version=r.allergy_version,
                    kind="drug-allergy",
                    action=action,
                    strength="allergy",
                    message=fit(r.allergy_messages[kind].format(drug=d, allergen=allergen, group=label)),
                    source=r.allergy_source,
                    data_version=r.allergy_data_version,
                    drugs=(d,),
                    target_drug=d,
                )
            )
        return out
