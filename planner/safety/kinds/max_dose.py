"""Maximum daily dose (FDA labels, rules/drugs/max_doses.csv; an area formulary's own maximum for its
indication): a regimen dose above it is capped there."""

from __future__ import annotations

import re

from ...record import Finding
from ..context import PatientContext
from ..findings import fit, new_finding
from ..loader import RuleData
from . import DrugKind, ScreenInput

__all__ = ["MaxDoseKind"]


class MaxDoseKind(DrugKind):
    kind = "max-dose"

    def __init__(self, rules: RuleData) -> None:
        self.rules = rules

    def applies(self, drug: str) -> bool:
        return drug in self.rules.max_dose

    def drug_findings(self, ctx: PatientContext, plan: ScreenInput, drug: str, dose: float | None) -> list[Finding]:
        r = self.rules
        if dose is None or drug not in r.max_dose:
            return []
        mx, src = r.max_dose[drug]
        if dose <= mx:
            return []
        return [
            new_finding(
                rule_id=f"maxdose.{re.sub(r'[^a-z0-9]+', '-', drug)}",
                rule_version=r.max_dose_version,
                kind="max-dose",
                action="adjust_dose",
                strength="label",
                message=fit(f"{drug} {dose:g} mg/day is above the labelled maximum of {mx:g} mg/day; cap it there."),
                source=src,
                data_version=r.max_dose_data_version,
                drugs=(drug,),
                target_drug=drug,
                max_dose_mg_day=mx,
                adjusted_dose_mg_day=mx,
            )
        ]
