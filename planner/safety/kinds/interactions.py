"""Drug-drug rules (ONC high-priority list, FDA labels, CPIC co-medication guidance): every pair of the list
with at least one regimen drug, in both directions; MAOI combinations; dose caps on the target drug (a
current drug keeps its recorded dose). A finding names both drugs and which the plan adds."""

from __future__ import annotations

from ...record import Finding
from ..context import PatientContext
from ..findings import added, fit, keyed
from ..loader import RuleData
from . import ScreenInput

__all__ = ["InteractionKind"]

Keyed = list[tuple[tuple, Finding]]


class InteractionKind:
    kind = "drug-drug"

    def __init__(self, rules: RuleData) -> None:
        self.rules = rules

    def findings(self, ctx: PatientContext, plan: ScreenInput) -> list[Finding]:
        return [f for _k, f in self.keyed_findings(ctx, plan)]

    def keyed_findings(self, ctx: PatientContext, plan: ScreenInput) -> Keyed:
        """Each pair with a regimen drug once; a regimen drug's pairs with the current co-medications are
        memoized on (drug, dose, co-medications)."""
        out: Keyed = []
        empty: frozenset[str] = frozenset()
        cache = ctx.cache
        caps = self.rules.cap_drugs
        partners = self.rules.ddi_partners
        doses = dict(plan.drugs)  # the last dose of each ingredient
        ing_set, all_drugs = plan.ingredient_set, plan.all_drugs
        for x in plan.ingredients:
            near = partners.get(x, empty) & all_drugs
            if not near:
                continue
            cur = near - ing_set
            if cur:
                dx = doses[x] if x in caps or not caps.isdisjoint(cur) else None
                key = ("px", x, dx, cur)
                hit = cache.get(key)
                if hit is None:
                    hit = cache[key] = keyed([f for y in sorted(cur) for f in self._pair_cached(ctx, x, y, dx)])
                out += hit
            for y in near & ing_set:
                if y <= x:
                    continue  # each regimen pair once
                dx = dy = None
                if x in caps or y in caps:
                    dx, dy = doses[x], doses[y]
                kp = cache.get(("kpair", x, y, dx, dy))
                if kp is None:
                    kp = cache[("kpair", x, y, dx, dy)] = keyed(self._pair_cached(ctx, x, y, dx, dy, both=True))
                out += kp
        return out

    def _pair_cached(
        self, ctx: PatientContext, x: str, y: str, dx: float | None, dy: float | None = None, *, both: bool = False
    ) -> list[Finding]:
        """One pair's findings; ``y`` is a current co-medication (its recorded dose) unless ``both``."""
        if not both:
            cur = ctx.current.get(y)  # a current drug outside the regimen keeps its recorded dose
            dy = cur.dose_mg_day if cur is not None else None
        hit = ctx.cache.get(("pair", x, y, dx, dy))
        return hit if hit is not None else self._pair(ctx, x, y, dx, dy)

    def _pair(self, ctx: PatientContext, x: str, y: str, dx: float | None, dy: float | None) -> list[Finding]:
        r = self.rules
        out: list[Finding] = []
        doses = {x: dx, y: dy}
        for i in sorted(set(r.ddi_by_drug.get(x, ())) & set(r.ddi_by_drug.get(y, ()))):
            rule, a, b = r.ddi[i]
            for da, db in ((x, y), (y, x)):
                if da in a and db in b:
                    break
            else:
                continue
            target = {"a": da, "b": db}.get(rule.target or "", rule.target)
            action = rule.action
            adjusted = None
            if action == "adjust_dose" and rule.max_dose_mg_day is not None:
                dose = doses.get(target or "")
                if dose is not None:
                    adjusted = min(dose, rule.max_dose_mg_day)
                    if adjusted == dose:
                        action, adjusted = "info", None
            out.append(
                Finding(
                    rule_id=rule.id,
                    rule_version=rule.version,
                    kind="drug-drug",
                    action=action,
                    strength=rule.strength,
                    message=fit(rule.message.format(a=da, b=db)),
                    source=rule.source,
                    data_version=r.ddi_data_version,
                    drugs=tuple(sorted((da, db))),
                    target_drug=target,
                    max_dose_mg_day=rule.max_dose_mg_day,
                    adjusted_dose_mg_day=adjusted,
                    alternatives=rule.alternatives,
                    plan_adds=added((da, db), ctx.current_names),
                )
            )
        ctx.cache[("pair", x, y, dx, dy)] = out
        return out
