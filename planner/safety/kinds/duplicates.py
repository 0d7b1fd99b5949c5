"""Duplicate therapy: two different drugs of one class with a ``duplicate`` action (rules/drugs/classes.yaml
and the area formularies' classes) anywhere in the list a regimen leaves."""

from __future__ import annotations

import itertools
from typing import Sequence

from ...record import Finding
from ..context import PatientContext
from ..findings import added, fit, keyed, new_finding, plan_adds_forms
from ..loader import RuleData
from . import ScreenInput

__all__ = ["DuplicateKind"]

Keyed = tuple[tuple, Finding]


class DuplicateKind:
    kind = "duplicate-therapy"

    def __init__(self, rules: RuleData) -> None:
        self.rules = rules
        # per class, pair of its members (sorted) and member the finding targets: the (sort key, finding) for
        # each of which of the two drugs the plan adds (both, the first, the second, neither), built once per
        # rule set; a class present with three or more members is built when screened
        self.pairs: dict[tuple[str, tuple[str, ...], str], tuple[Keyed, Keyed, Keyed, Keyed]] = {}
        for c in sorted({c for cs in rules.dup_classes.values() for c in cs}):
            for pair in itertools.combinations(sorted(rules.class_members[c]), 2):
                for x in pair:
                    forms = plan_adds_forms(self._finding(c, pair, x, ()), *pair)
                    self.pairs[(c, pair, x)] = keyed(forms)  # type: ignore[assignment]

    def findings(self, ctx: PatientContext, plan: ScreenInput) -> list[Finding]:
        return [f for _k, f in self.keyed_findings(ctx, plan)]

    def keyed_findings(self, ctx: PatientContext, plan: ScreenInput) -> list[tuple[tuple, Finding]]:
        r = self.rules
        out: list[tuple[tuple, Finding]] = []
        seen: set[str] = set()
        current = ctx.current_names
        for x in plan.ingredients:
            for c in r.dup_classes.get(x, ()):
                if c in seen:
                    continue
                present = r.class_members[c] & plan.all_drugs
                if len(present) < 2:
                    continue
                members = tuple(sorted(present))
                seen.add(c)
                built = self.pairs.get((c, members, x)) if len(members) == 2 else None
                if built is not None:
                    out.append(built[(members[0] in current) * 2 + (members[1] in current)])
                    continue
                dkey = ("dup", c, members, x)
                hit = ctx.cache.get(dkey)
                if hit is None:
                    hit = ctx.cache[dkey] = keyed([self._finding(c, members, x, added(members, current))])[0]
                out.append(hit)
        return out

    def _finding(self, c: str, members: Sequence[str], x: str, plan_adds: tuple[str, ...]) -> Finding:
        r = self.rules
        spec = r.classes[c]
        return new_finding(
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
            plan_adds=plan_adds,
        )
