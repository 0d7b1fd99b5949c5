"""Drug-condition and drug-age rules (labels, Beers): a drug with one of the patient's condition sets (heart
failure, pregnancy, liver disease, ...) or from an age; ``adjust_dose`` rules cap the regimen's dose."""

from __future__ import annotations

from ...record import Finding
from ..context import PatientContext
from ..findings import fit, new_finding
from ..loader import RuleData
from . import DrugKind, ScreenInput, cap

__all__ = ["ConditionKind"]


class ConditionKind(DrugKind):
    kind = "drug-condition"

    def __init__(self, rules: RuleData) -> None:
        self.rules = rules

    def applies(self, drug: str) -> bool:
        return drug in self.rules.condition_rules_of

    def drug_findings(self, ctx: PatientContext, plan: ScreenInput, drug: str, dose: float | None) -> list[Finding]:
        if drug not in self.rules.condition_rules_of:
            return []
        key = ("condition", drug)
        hit = ctx.cache.get(key)
        if hit is None:
            hit = ctx.cache[key] = self._findings(ctx, drug)
        return [cap(f, dose) for f in hit] if hit else hit

    def _findings(self, ctx: PatientContext, d: str) -> list[Finding]:
        out: list[Finding] = []
        for rule, _drugs in self.rules.condition_rules_of.get(d, ()):
            if rule.condition is not None:
                if rule.condition not in ctx.conditions:
                    continue
            elif rule.min_age is not None and (ctx.age is None or ctx.age < rule.min_age):
                continue
            out.append(
                new_finding(
                    rule_id=rule.id,
                    rule_version=rule.version,
                    kind="drug-condition",
                    action=rule.action,
                    strength=rule.strength,
                    message=fit(rule.message.format(drug=d)),
                    source=rule.source,
                    data_version=self.rules.condition_data_version,
                    drugs=(d,),
                    target_drug=d,
                    max_dose_mg_day=rule.max_dose_mg_day,
                )
            )
        return out
