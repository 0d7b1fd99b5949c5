"""Drug-condition and drug-age rules (labels, Beers): a drug with one of the patient's condition sets (heart
failure, pregnancy, liver disease, ...) or from an age; ``adjust_dose`` rules cap the regimen's dose."""

from __future__ import annotations

from ...record import Finding
from ..context import PatientContext
from ..findings import fit, new_finding, replace
from ..loader import RuleData
from ..schema import ConditionRule
from . import DrugKind, ScreenInput

__all__ = ["ConditionKind"]


class ConditionKind(DrugKind):
    kind = "drug-condition"

    def __init__(self, rules: RuleData) -> None:
        self.rules = rules
        # per drug, the finding of each of its rules (in rule order), built once per rule set
        self.built: dict[str, tuple[Finding, ...]] = {
            d: tuple(self._finding(rule, d) for rule, _drugs in rs) for d, rs in rules.condition_rules_of.items()
        }
        # a capping finding within its cap (``info``) and above it (adjusted to the cap): :func:`cap` of it
        self.capped: dict[int, tuple[Finding, Finding, float]] = {
            id(f): (replace(f, action="info"), replace(f, adjusted_dose_mg_day=f.max_dose_mg_day), f.max_dose_mg_day)
            for fs in self.built.values()
            for f in fs
            if f.action == "adjust_dose" and f.max_dose_mg_day is not None
        }

    def applies(self, drug: str) -> bool:
        return drug in self.rules.condition_rules_of

    def drug_findings(self, ctx: PatientContext, plan: ScreenInput, drug: str, dose: float | None) -> list[Finding]:
        if drug not in self.rules.condition_rules_of:
            return []
        key = ("condition", drug)
        hit = ctx.cache.get(key)
        if hit is None:
            hit = ctx.cache[key] = self._findings(ctx, drug)
        if not hit or dose is None:
            return hit
        out = []
        for f in hit:
            c = self.capped.get(id(f))
            out.append(f if c is None else c[1] if dose > c[2] else c[0])
        return out

    def _findings(self, ctx: PatientContext, d: str) -> list[Finding]:
        out: list[Finding] = []
        for (rule, _drugs), f in zip(self.rules.condition_rules_of.get(d, ()), self.built.get(d, ())):
            if rule.condition is not None:
                if rule.condition not in ctx.conditions:
                    continue
            elif rule.min_age is not None and (ctx.age is None or ctx.age < rule.min_age):
                continue
            out.append(f)
        return out

    def _finding(self, rule: ConditionRule, d: str) -> Finding:
        return new_finding(
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
