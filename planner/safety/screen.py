"""The screen loop: one regimen's list (the regimen + the current drugs it keeps) through every rule kind.

Per regimen: which current drugs the regimen replaces (its area's, or every area a regimen drug is in) and
which it keeps, which drugs it starts; then, for each regimen drug, the findings of the per-drug kinds
(gene-drug after phenoconversion, allergy, condition, lab, maximum dose), memoized per drug, dose, start and
the inhibitors present; then the list kinds (current drugs a regimen drug phenoconverts; drug-drug pairs and
duplicate therapy, only when some drug links to another one present). Findings are returned sorted (most
severe action first, then kind, rule id, drugs); results are memoized per regimen inside the context, so
screening the ~200 candidates of one patient costs little more than the distinct drugs among them.
"""

from __future__ import annotations

from typing import Iterable

from ..record import Finding, Regimen
from .context import PatientContext
from .findings import finding_of, key_of, keyed
from .kinds import DrugKind, ScreenInput
from .kinds.current_effects import CurrentEffectKind
from .kinds.duplicates import DuplicateKind
from .kinds.interactions import InteractionKind
from .loader import RuleData

__all__ = ["Screener"]

_NO_INFO: tuple[None, None, None] = (None, None, None)
_input = tuple.__new__  # ScreenInput from its six fields without the NamedTuple keyword __new__ (hot loop)


class Screener:
    """The memoized screen loop over the rule kinds of one :class:`RuleData`."""

    def __init__(
        self,
        rules: RuleData,
        drug_kinds: tuple[DrugKind, ...],
        current: CurrentEffectKind,
        pairs: InteractionKind,
        duplicates: DuplicateKind,
    ) -> None:
        self.rules = rules
        self.drug_kinds = drug_kinds
        self.current = current
        self.pairs = pairs
        self.duplicates = duplicates
        # per drug, once per rule set: the per-drug kinds that have a rule able to name it
        named = rules.named_drugs().union(
            rules.drug_info, rules.loci, rules.condition_rules_of, rules.lab_rules_of, rules.max_dose
        )
        self.kinds_of: dict[str, tuple[DrugKind, ...]] = {
            d: tuple(k for k in drug_kinds if k.applies(d)) for d in named
        }
        self.other_kinds = tuple(k for k in drug_kinds if k.applies(""))  # kinds for any drug (allergies)

    def plan_of(
        self,
        ctx: PatientContext,
        kd: tuple[tuple[str, float | None], ...],
        new_start: set[str] | None,
        stopping: Iterable[str],
    ) -> ScreenInput:
        """The list a regimen leaves: its drugs, the current drugs it keeps, the drugs it starts."""
        ings = tuple([x for x, _ in kd])
        default = new_start is None and not stopping
        if default:  # the list's drugs follow from the ingredients alone (an adjusted plan has its plan's)
            hit = ctx.cache.get(("plan", ings))
            if hit is not None:
                return _input(ScreenInput, (kd, *hit))
        ing_set = frozenset(ings)
        others: tuple[str, ...] = ()
        if ctx.current:
            stop = ctx.replaced
            if stop is None:
                stop = self.rules.replaced_cache.get(ings)
                if stop is None:
                    stop = self.rules.replaced_by(ings)
            if stopping:
                stop = stop.union(stopping)
            rest = ctx.current_names.difference(ing_set, stop)
            others = tuple(sorted(rest)) if len(rest) > 1 else tuple(rest)
        starts = frozenset(new_start) if new_start is not None else ing_set.difference(ctx.current_names)
        all_drugs = ing_set.union(others) if others else ing_set
        parts = (ings, ing_set, others, all_drugs, starts)
        if default:
            ctx.cache[("plan", ings)] = parts
        return _input(ScreenInput, (kd, *parts))

    def screen(
        self, ctx: PatientContext, regimen: Regimen, *, new_start: set[str] | None = None, stopping: Iterable[str] = ()
    ) -> list[Finding]:
        return list(self.screen_tuple(ctx, regimen, new_start=new_start, stopping=stopping))

    def screen_tuple(
        self, ctx: PatientContext, regimen: Regimen, *, new_start: set[str] | None = None, stopping: Iterable[str] = ()
    ) -> tuple[Finding, ...]:
        """The sorted findings as the memo holds them (a tuple shared by every caller: do not copy it here)."""
        cache = ctx.cache
        kd = tuple([(d.ingredient, d.dose_mg_day) for d in regimen.drugs])
        default = new_start is None and not stopping
        if default:  # the list follows from the drugs alone: look the result up before computing it
            hit = cache.get(kd)
            if hit is not None:
                return hit
        plan = self.plan_of(ctx, kd, new_start, stopping)
        key: tuple = kd
        if not default:
            key = (kd, plan.others, plan.starts)
            hit = cache.get(key)
            if hit is not None:
                return hit
        out = self.compose(ctx, plan)
        if len(out) > 1:
            if len(plan.ingredient_set) < len(kd):  # a drug listed twice: its findings once
                first: dict[int, tuple[tuple, Finding]] = {}
                for kf in out:
                    first.setdefault(id(kf[1]), kf)
                out = list(first.values())
            out.sort(key=key_of)
        result = tuple(map(finding_of, out))
        if len(cache) < 50_000:
            cache[key] = result
        return result

    def compose(self, ctx: PatientContext, plan: ScreenInput) -> list[tuple[tuple, Finding]]:
        """The (sort key, finding) pairs of the list ``plan``, gathered from memoized units in one pass over the
        regimen's drugs: each drug's per-drug block (memoized on drug, dose, start and the inhibitors of its
        genes present), its pairs with the kept current drugs and with later regimen drugs; then, only when
        they can find something, current drugs a regimen drug phenoconverts and duplicate therapy."""
        cache = ctx.cache
        info = self.rules.drug_info
        kinds_of, other_kinds = self.kinds_of, self.other_kinds
        pairs = self.pairs
        caps = self.rules.cap_drugs
        all_drugs, starts, ing_set = plan.all_drugs, plan.starts, plan.ingredient_set
        twice = len(ing_set) < len(plan.drugs)  # a drug listed twice: pairs as the kind gives them (last dose)
        out: list[tuple[tuple, Finding]] = []
        dups = False
        doses: dict[str, float | None] | None = None
        for d, dose in plan.drugs:
            inh, ddi_near, dup_near = info.get(d, _NO_INFO)
            dkey = ("block", d, dose, d in starts, None if inh is None else inh & all_drugs)
            block = cache.get(dkey)
            if block is None:
                block = cache[dkey] = keyed(
                    [f for k in kinds_of.get(d, other_kinds) for f in k.drug_findings(ctx, plan, d, dose)]
                )
            out += block
            if ddi_near is not None and not twice:
                near = ddi_near & all_drugs
                if near:
                    cur = near - ing_set
                    if cur:  # pairs.with_current, its memo looked up in line
                        dx = dose if d in caps or not caps.isdisjoint(cur) else None
                        hit = cache.get(("px", d, dx, cur))
                        out += hit if hit is not None else pairs.with_current(ctx, d, dose, cur)
                    if len(cur) < len(near):
                        if doses is None:
                            doses = dict(plan.drugs)
                        for y in near & ing_set:
                            if y > d:
                                out += pairs.regimen_pair(ctx, d, y, dose, doses[y])
            if not dups and dup_near is not None and not dup_near.isdisjoint(all_drugs):
                dups = True
        if twice:
            out += pairs.keyed_findings(ctx, plan)
        if plan.others and not self.rules.inhibitor_drugs.isdisjoint(ing_set):
            out += self.current.keyed_findings(ctx, plan)  # a regimen drug may phenoconvert a kept current drug
        if dups:
            out += self.duplicates.keyed_findings(ctx, plan)
        return out
