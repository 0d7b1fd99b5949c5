"""Current drugs whose effect a plan drug changes: a regimen drug that phenoconverts the gene of a current
drug kept beside it (e.g. paroxetine added beside codeine) changes that drug's CPIC recommendation; the
finding is the current drug's new CPIC finding, naming both drugs and the one the plan adds (an exclusion
targets the added drug: the plan is what makes the combination)."""

from __future__ import annotations

from ...record import Finding
from ..context import PatientContext
from ..findings import added, fit, keyed, replace
from ..loader import RuleData
from . import ScreenInput
from .gene_drug import GeneDrugKind

__all__ = ["CurrentEffectKind"]

_SHORT = {
    "exclude": "CPIC advises against {c} then.",
    "caution": "use {c} with caution.",
    "adjust_dose": "{c} needs a dose change.",
}


class CurrentEffectKind:
    kind = "gene-drug"

    def __init__(self, rules: RuleData, gene_drug: GeneDrugKind) -> None:
        self.rules = rules
        self.gene_drug = gene_drug

    def findings(self, ctx: PatientContext, plan: ScreenInput) -> list[Finding]:
        return [f for _k, f in self.keyed_findings(ctx, plan)]

    def keyed_findings(self, ctx: PatientContext, plan: ScreenInput) -> list[tuple[tuple, Finding]]:
        if not plan.others:
            return []
        by = self.rules.inhibitor_drugs & plan.ingredient_set
        if not by:
            return []  # no regimen drug can phenoconvert anything
        key = ("ce-list", by, plan.others)  # all the rest follows from the inhibitors added and the kept drugs
        hit = ctx.cache.get(key)
        if hit is None:
            hit = ctx.cache[key] = self._keyed(ctx, plan)
        return hit

    def _keyed(self, ctx: PatientContext, plan: ScreenInput) -> list[tuple[tuple, Finding]]:
        out: list[tuple[tuple, Finding]] = []
        rest: frozenset[str] | None = None
        gdi = self.rules.gd_inhibitors
        ing_set = plan.ingredient_set
        for c in plan.others:
            inh = gdi.get(c)
            if not inh or inh.isdisjoint(ing_set):  # no regimen drug among its inhibitors: nothing changes
                continue
            if rest is None:
                rest = frozenset(plan.others)
            with_plan, without = inh & plan.all_drugs, inh & rest
            if with_plan == without:
                continue
            key = ("ce", c, with_plan, without)
            hit = ctx.cache.get(key)
            if hit is None:
                hit = ctx.cache[key] = keyed(self._effect(ctx, c, with_plan, without))
            out += hit
        return out

    def _effect(self, ctx: PatientContext, c: str, with_plan: frozenset[str], without: frozenset[str]) -> list[Finding]:
        gd = self.gene_drug
        before = {r.id for r, _f in gd.gdm(ctx, c, without, False)[0]}
        by = tuple(sorted(with_plan - without))
        dose = ctx.current[c].dose_mg_day
        out: list[Finding] = []
        for rule, f in gd.gdm(ctx, c, with_plan, False)[0]:
            if rule.id in before or f.action == "info":
                continue
            adjusted = None
            if f.action == "adjust_dose" and dose is not None:
                adjusted = gd.dose_adjusted(rule, f, c, dose).adjusted_dose_mg_day
                if adjusted is None:
                    continue  # the current dose already complies
            head = f"{' and '.join(by)} phenoconverts {'/'.join(rule.genes)} for the current {c}: "
            msg = head + f.message[:1].lower() + f.message[1:]
            if len(msg) > 140:
                msg = head + _SHORT[f.action].format(c=c)
            out.append(
                replace(
                    f,
                    message=fit(msg),
                    drugs=tuple(sorted({c, *by, *f.drugs})),
                    target_drug=by[0] if f.action == "exclude" else c,
                    adjusted_dose_mg_day=adjusted,
                    plan_adds=added(by, ctx.current_names),
                )
            )
        return out
