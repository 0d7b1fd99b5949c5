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

_NO_INFO: tuple[None, None] = (None, None)
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

    def plan_of(
        self,
        ctx: PatientContext,
        kd: tuple[tuple[str, float | None], ...],
        new_start: set[str] | None,
        stopping: Iterable[str],
    ) -> ScreenInput:
        """The list a regimen leaves: its drugs, the current drugs it keeps, the drugs it starts."""
        ings = tuple([x for x, _ in kd])
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
        return _input(ScreenInput, (kd, ings, ing_set, others, all_drugs, starts))

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
        if not default:
            hit = cache.get((kd, plan.others, plan.starts))
            if hit is not None:
                return hit
        out = self._drug_blocks(ctx, plan)
        out += self.current.keyed_findings(ctx, plan)
        if self._linked(plan):  # some drug interacts with or duplicates another one present
            caps = self.rules.cap_drugs
            pkey = ("pd", plan.ingredients, plan.others, tuple([dose for d, dose in kd if d in caps]))
            pd = cache.get(pkey)
            if pd is None:  # they depend on the drug set (and on doses only for dose caps)
                pd = cache[pkey] = tuple(
                    self.pairs.keyed_findings(ctx, plan) + self.duplicates.keyed_findings(ctx, plan)
                )
            out += pd
        if len(out) > 1:
            if len(plan.ingredient_set) < len(plan.ingredients):  # a drug listed twice: its findings once
                first: dict[int, tuple[tuple, Finding]] = {}
                for kf in out:
                    first.setdefault(id(kf[1]), kf)
                out = list(first.values())
            out.sort(key=key_of)
        result = tuple(map(finding_of, out))
        if len(cache) < 50_000:
            cache[kd if default else (kd, plan.others, plan.starts)] = result
        return result

    def _drug_blocks(self, ctx: PatientContext, plan: ScreenInput) -> list[tuple[tuple, Finding]]:
        """Each regimen drug's per-drug findings, memoized on what they depend on."""
        cache = ctx.cache
        info = self.rules.drug_info
        out: list[tuple[tuple, Finding]] = []
        for d, dose in plan.drugs:
            inh = info.get(d, _NO_INFO)[0]
            dkey = ("block", d, dose, d in plan.starts, None if inh is None else inh & plan.all_drugs)
            block = cache.get(dkey)
            if block is None:
                block = cache[dkey] = keyed([f for k in self.drug_kinds for f in k.drug_findings(ctx, plan, d, dose)])
            out += block
        return out

    def _linked(self, plan: ScreenInput) -> bool:
        info = self.rules.drug_info
        for d in plan.ingredients:
            near = info.get(d, _NO_INFO)[1]
            if near is not None and not near.isdisjoint(plan.all_drugs):
                return True
        return False
