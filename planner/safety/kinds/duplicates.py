"""Duplicate therapy: two different drugs of one class with a ``duplicate`` action (rules/drugs/classes.yaml
and the area formularies' classes) anywhere in the list a regimen leaves."""

from __future__ import annotations

from ...record import Finding
from ..context import PatientContext
from ..findings import added, fit, keyed, new_finding
from ..loader import RuleData
from . import ScreenInput

__all__ = ["DuplicateKind"]


class DuplicateKind:
    kind = "duplicate-therapy"

    def __init__(self, rules: RuleData) -> None:
        self.rules = rules

    def findings(self, ctx: PatientContext, plan: ScreenInput) -> list[Finding]:
        return [f for _k, f in self.keyed_findings(ctx, plan)]

    def keyed_findings(self, ctx: PatientContext, plan: ScreenInput) -> list[tuple[tuple, Finding]]:
        r = self.rules
        out: list[tuple[tuple, Finding]] = []
        seen: set[str] = set()
        for x in plan.ingredients:
            for c in r.dup_classes.get(x, ()):
                if c in seen:
                    continue
                present = r.class_members[c] & plan.all_drugs
                if len(present) < 2:
                    continue
                members = sorted(present)
                seen.add(c)
                dkey = ("dup", c, tuple(members), x)
                hit = ctx.cache.get(dkey)
                if hit is None:
                    spec = r.classes[c]
                    hit = ctx.cache[dkey] = keyed(
                        [
                            new_finding(
                                rule_id=f"duplicate.{c}",
                                rule_version=r.classes_version,
                                kind="duplicate-therapy",
                                action=spec.duplicate or "caution",
                                strength="duplicate therapy",
                                message=fit(f"{' and '.join(members)} are both {spec.label}: use one drug of a class."),
                                source="rules/drugs/classes.yaml (therapeutic duplication); " + r.classes_source,
                                data_version=None,
                                drugs=tuple(members),
                                target_drug=x,
                                plan_adds=added(members, ctx.current_names),
                            )
                        ]
                    )[0]
                out.append(hit)
        return out
