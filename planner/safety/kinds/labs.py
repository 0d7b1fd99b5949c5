"""Drug-lab rules: the latest lab within the rule's window against its band (eGFR thresholds, renal dose caps
by eGFR band); a lab a rule needs but the record lacks is a data gap, never a silent pass."""

from __future__ import annotations

from ...record import Finding
from ..context import PatientContext
from ..findings import fit, new_finding
from ..loader import RuleData
from . import DrugKind, ScreenInput, cap

__all__ = ["LabKind"]


class LabKind(DrugKind):
    kind = "drug-lab"

    def __init__(self, rules: RuleData) -> None:
        self.rules = rules

    def applies(self, drug: str) -> bool:
        return drug in self.rules.lab_rules_of

    def drug_findings(self, ctx: PatientContext, plan: ScreenInput, drug: str, dose: float | None) -> list[Finding]:
        if drug not in self.rules.lab_rules_of:
            return []
        is_new = drug in plan.starts
        key = ("lab", drug, is_new)
        hit = ctx.cache.get(key)
        if hit is None:
            hit = ctx.cache[key] = self._findings(ctx, drug, is_new)
        return [cap(f, dose) for f in hit] if hit else hit

    def _findings(self, ctx: PatientContext, d: str, is_new: bool) -> list[Finding]:
        r = self.rules
        out: list[Finding] = []
        gap_done: set[str] = set()
        for rule, _drugs in r.lab_rules_of.get(d, ()):
            if rule.when == "new_start" and not is_new or rule.when == "continuing" and is_new:
                continue
            value = ctx.labs.get((rule.quantity, rule.within_days))
            if value is None:
                if rule.quantity not in gap_done:
                    gap_done.add(rule.quantity)
                    label = r.lab_labels.get(rule.quantity, rule.quantity)
                    out.append(
                        new_finding(
                            rule_id=f"gap.lab.{rule.quantity}",
                            rule_version=rule.version,
                            kind="data-gap",
                            action="caution",
                            message=fit(
                                f"No {label} in the last {rule.within_days} days; "
                                f"{d} needs it to be checked before use."
                            ),
                            source=rule.source,
                            data_version=r.lab_data_version,
                            drugs=(d,),
                            target_drug=d,
                        )
                    )
                continue
            if rule.below is not None and not value < rule.below:
                continue
            if rule.at_least is not None and not value >= rule.at_least:
                continue
            out.append(
                new_finding(
                    rule_id=rule.id,
                    rule_version=rule.version,
                    kind="drug-lab",
                    action=rule.action,
                    strength=rule.strength,
                    message=fit(rule.message.format(drug=d, value=f"{value:g}")),
                    source=rule.source,
                    data_version=r.lab_data_version,
                    drugs=(d,),
                    target_drug=d,
                    phenotype=f"{rule.quantity}={value:g}",
                    max_dose_mg_day=rule.max_dose_mg_day,
                )
            )
        return out
