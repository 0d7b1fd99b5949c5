"""Drug-drug rules (ONC high-priority list, FDA labels, CPIC co-medication guidance): every pair of the list
with at least one regimen drug, in both directions; MAOI combinations; dose caps on the target drug (a
current drug keeps its recorded dose). A finding names both drugs and which the plan adds."""

from __future__ import annotations

from ...record import Finding
from ..context import PatientContext
from ..findings import fit, keyed, new_finding, plan_adds_forms, replace
from ..loader import RuleData
from ..schema import DdiRule
from . import ScreenInput

__all__ = ["InteractionKind"]

Keyed = list[tuple[tuple, Finding]]
KeyedTuple = tuple[tuple[tuple, Finding], ...]


class InteractionKind:
    kind = "drug-drug"

    def __init__(self, rules: RuleData) -> None:
        self.rules = rules
        self.by_pair = self._compile()

    def _compile(self) -> dict[tuple[str, str], tuple[tuple[DdiRule, str, str, str | None, Finding], ...]]:
        """Per ordered pair (x, y) of drugs some rule joins, in rule order: (rule, its ``a`` drug, its ``b`` drug,
        target, the finding before doses and the plan are known), built once per rule set. A pair keeps the
        direction x-as-a when the rule allows it, else y-as-a (both when x and y are on both sides)."""
        r = self.rules
        out: dict[tuple[str, str], list[tuple[DdiRule, str, str, str | None, Finding]]] = {}
        for rule, a, b in r.ddi:
            keys = {k for x in a for y in b if x != y for k in ((x, y), (y, x))}
            for x, y in sorted(keys):
                da, db = (x, y) if x in a and y in b else (y, x)
                target = {"a": da, "b": db}.get(rule.target or "", rule.target)
                base = new_finding(
                    rule_id=rule.id,
                    rule_version=rule.version,
                    kind="drug-drug",
                    action=rule.action,
                    strength=rule.strength,
                    message=fit(rule.message.format(a=da, b=db)),
                    source=rule.source,
                    data_version=r.ddi_data_version,
                    drugs=tuple(sorted((da, db))),
                    target_drug=target,
                    max_dose_mg_day=rule.max_dose_mg_day,
                    adjusted_dose_mg_day=None,
                    alternatives=rule.alternatives,
                    plan_adds=(),
                )
                out.setdefault((x, y), []).append((rule, da, db, target, base))
        # the finding of each entry as a patient's current drugs make it (which of its drugs the plan adds: both,
        # only ``a`` (``b`` is current), only ``b``, neither), built once per rule set
        self.variants: dict[int, tuple[Finding, Finding, Finding, Finding]] = {
            id(f): plan_adds_forms(f, da, db) for entries in out.values() for _rule, da, db, _t, f in entries
        }
        return {k: tuple(v) for k, v in out.items()}

    def findings(self, ctx: PatientContext, plan: ScreenInput) -> list[Finding]:
        return [f for _k, f in self.keyed_findings(ctx, plan)]

    def keyed_findings(self, ctx: PatientContext, plan: ScreenInput) -> Keyed:
        """Each pair with a regimen drug once: a regimen drug with the current co-medications kept beside it
        (:meth:`with_current`), and each pair of regimen drugs (:meth:`regimen_pair`)."""
        out: Keyed = []
        empty: frozenset[str] = frozenset()
        partners = self.rules.ddi_partners
        doses = dict(plan.drugs)  # the last dose of each ingredient
        ing_set, all_drugs = plan.ingredient_set, plan.all_drugs
        for x in plan.ingredients:
            near = partners.get(x, empty) & all_drugs
            if not near:
                continue
            cur = near - ing_set
            if cur:
                out += self.with_current(ctx, x, doses[x], cur)
            for y in near & ing_set:
                if y > x:  # each regimen pair once
                    out += self.regimen_pair(ctx, x, y, doses[x], doses[y])
        return out

    def with_current(self, ctx: PatientContext, x: str, dose: float | None, cur: frozenset[str]) -> KeyedTuple:
        """Regimen drug ``x``'s pairs with the current drugs ``cur`` kept beside it (memoized on the drug, its
        dose where a dose cap can apply, and ``cur``)."""
        caps = self.rules.cap_drugs
        dx = dose if x in caps or not caps.isdisjoint(cur) else None
        key = ("px", x, dx, cur)
        hit = ctx.cache.get(key)
        if hit is None:
            hit = ctx.cache[key] = keyed([f for y in sorted(cur) for f in self._pair_cached(ctx, x, y, dx)])
        return hit

    def regimen_pair(
        self, ctx: PatientContext, x: str, y: str, dose_x: float | None, dose_y: float | None
    ) -> KeyedTuple:
        """The findings of two regimen drugs (``x`` < ``y``), memoized on the pair and their doses where a dose
        cap can apply."""
        caps = self.rules.cap_drugs
        dx = dy = None
        if x in caps or y in caps:
            dx, dy = dose_x, dose_y
        key = ("kpair", x, y, dx, dy)
        hit = ctx.cache.get(key)
        if hit is None:
            hit = ctx.cache[key] = keyed(self._pair_cached(ctx, x, y, dx, dy, both=True))
        return hit

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
        out: list[Finding] = []
        doses = {x: dx, y: dy}
        current = ctx.current_names
        variants = self.variants
        for rule, da, db, target, f in self.by_pair.get((x, y), ()):
            # ``f`` with the drugs the plan adds (``added((da, db), current)``), then its dose cap applied
            f = variants[id(f)][(da in current) * 2 + (db in current)]
            if rule.action == "adjust_dose" and rule.max_dose_mg_day is not None:
                dose = doses.get(target or "")
                if dose is not None:
                    adjusted = min(dose, rule.max_dose_mg_day)
                    f = replace(f, action="info") if adjusted == dose else replace(f, adjusted_dose_mg_day=adjusted)
            out.append(f)
        ctx.cache[("pair", x, y, dx, dy)] = out
        return out
