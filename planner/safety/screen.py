"""The screen loop: one regimen's list (the regimen + the current drugs it keeps) through every rule kind.

Per regimen: which current drugs the regimen replaces (its area's, or every area a regimen drug is in) and
which it keeps, which drugs it starts; then, for each regimen drug, the findings of the per-drug kinds
(gene-drug after phenoconversion, allergy, condition, lab, maximum dose), memoized per drug, dose, start and
the inhibitors present; then the list kinds (current drugs a regimen drug phenoconverts; drug-drug pairs and
duplicate therapy, only when some drug links to another one present). Findings are returned sorted (most
severe action first, then kind, rule id, drugs); results are memoized per regimen inside the context, so
screening the ~200 candidates of one patient costs little more than the distinct drugs among them.

The fast path (:meth:`Screener._fast`): a regimen that replaces no current drug keeps the context's current
drugs, so its list needs no building; per drug and dose, a slot of the context holds the drug's bit, the bits of
the drugs it links to (compiled per rule set) and its units, and a regimen whose drugs link to none of each
other is its slots' units concatenated (with the phenoconversion findings of its inhibitors on the kept drugs,
memoized per set of inhibitors). The findings are those :meth:`Screener.compose` gives, in its order.
"""

from __future__ import annotations

from typing import Iterable

from ..record import Finding, Regimen
from .context import PatientContext
from .findings import finding_of, key_of, keyed, replace
from .kinds import DrugKind, ScreenInput
from .kinds.current_effects import CurrentEffectKind
from .kinds.duplicates import DuplicateKind
from .kinds.interactions import InteractionKind
from .loader import RuleData

__all__ = ["Screener"]

_NO_INFO: tuple[None, None, None] = (None, None, None)
_NO_INFO4: tuple[None, None, None, None] = (None, None, None, None)
_EMPTY: frozenset[str] = frozenset()
_SAME = ()  # an :meth:`Screener._adjust` record: the unit leaves the drug's dose as it is
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
        # per drug, how its dose enters its unit: True where a rule adjusts it (CPIC dose rule, condition or lab
        # cap, drug-drug cap on either side); else its labelled maximum (only a dose above it gives a finding);
        # a drug not listed here gives the same findings at every dose
        exact = rules.cap_drugs.union(
            [d for d, rs in rules.gene_drug.items() if any(r.action == "adjust_dose" for r in rs)],
            [d for d, rs in rules.condition_rules_of.items() if any(r.action == "adjust_dose" for r, _ in rs)],
            [d for d, rs in rules.lab_rules_of.items() if any(r.action == "adjust_dose" for r, _ in rs)],
        )
        self.dose_use: dict[str, float | bool] = {d: mx for d, (mx, _src) in rules.max_dose.items()}
        self.dose_use.update(dict.fromkeys(exact, True))
        # per drug, in one look-up: (inhibitors of its genes, drug-drug partners, duplicate-class partners, dose use)
        self.info: dict[str, tuple] = {
            d: (*rules.drug_info.get(d, _NO_INFO), self.dose_use.get(d))
            for d in set(rules.drug_info) | set(self.dose_use)
        }
        # the fast path's tables (:meth:`_fast`): a bit per drug any rule or formulary names; per drug, the bits
        # of the drugs it links to (its genes' inhibitors, drug-drug partners, duplicate-class partners) and the
        # current drugs a regimen of it replaces (its areas' formularies)
        universe = sorted(named.union(rules.drug_areas, self.info))
        self.bit: dict[str, int] = {d: 1 << i for i, d in enumerate(universe)}
        self.links: dict[str, int] = {
            d: self._mask(x for part in info[:3] if part for x in part) for d, info in self.info.items()
        }
        self.inh_mask = self._mask(rules.inhibitor_drugs)
        self.stops: dict[str, frozenset[str]] = {d: rules.replaced_by((d,)) for d in rules.drug_areas}

    def _mask(self, drugs: Iterable[str]) -> int:
        bit = self.bit
        return sum({bit[x] for x in drugs if x in bit})

    def plan_of(
        self,
        ctx: PatientContext,
        kd: tuple[tuple[str, float | None], ...],
        new_start: Iterable[str] | None,
        stopping: Iterable[str],
    ) -> ScreenInput:
        """The list a regimen leaves: its drugs, the current drugs it keeps, the drugs it starts."""
        ings = tuple([x for x, _ in kd])
        ing_set = frozenset(ings)
        current = ctx.current_names
        if not current:
            starts = ing_set if new_start is None else frozenset(new_start)
            return _input(ScreenInput, (kd, ings, ing_set, (), ing_set, starts, _EMPTY))
        stop = ctx.replaced
        if stop is None:
            stop = self.rules.replaced_cache.get(ings)
            if stop is None:
                stop = self.rules.replaced_by(ings)
        if stopping:
            stop = stop.union(stopping)
        # the current drugs a replaced set keeps, sorted, once per context and set (a few sets per patient)
        kept_sorted = ctx.kept.get(stop)
        if kept_sorted is None:
            kept_sorted = ctx.kept[stop] = (kept := current.difference(stop)), tuple(sorted(kept))
        kept, others = kept_sorted
        if not kept.isdisjoint(ing_set):  # a regimen drug that is also a kept current drug: not kept beside it
            rest = kept.difference(ing_set)
            others, kept = tuple(sorted(rest)), rest
        if new_start is not None:
            starts = frozenset(new_start)
        else:
            starts = ing_set if current.isdisjoint(ing_set) else ing_set.difference(current)
        all_drugs = ing_set.union(kept) if others else ing_set
        return _input(ScreenInput, (kd, ings, ing_set, others, all_drugs, starts, kept if others else _EMPTY))

    def screen(
        self, ctx: PatientContext, regimen: Regimen, *, new_start: set[str] | None = None, stopping: Iterable[str] = ()
    ) -> list[Finding]:
        return list(self.screen_tuple(ctx, regimen, new_start=new_start, stopping=stopping))

    def screen_tuple(
        self, ctx: PatientContext, regimen: Regimen, *, new_start: set[str] | None = None, stopping: Iterable[str] = ()
    ) -> tuple[Finding, ...]:
        """The sorted findings as the memo holds them (a tuple shared by every caller: do not copy it here)."""
        kd = tuple([(d.ingredient, d.dose_mg_day) for d in regimen.drugs])
        return self.screen_kd(ctx, kd, new_start, stopping)[0]

    def screen_kd(
        self,
        ctx: PatientContext,
        kd: tuple[tuple[str, float | None], ...],
        new_start: Iterable[str] | None,
        stopping: Iterable[str] = (),
        plan: ScreenInput | None = None,
    ) -> tuple[tuple[Finding, ...], ScreenInput | None]:
        """(sorted findings, the list screened; None when the memo had the findings) of the regimen ``kd``.
        ``plan``: the list, when the caller has it (a dose-adjusted regimen: the same drugs, other doses)."""
        cache = ctx.cache
        if stopping:
            plan = self.plan_of(ctx, kd, new_start, stopping)
            key: tuple = (kd, plan.others, plan.starts)
        else:  # the list follows from the drugs (and the starts) alone: look the result up before building it
            key = kd if new_start is None else (kd, frozenset(new_start))
        hit = cache.get(key)
        if hit is not None:
            return hit, plan
        if plan is None:
            if not stopping:
                fast = self._fast(ctx, kd, new_start)
                if fast is not None:
                    if len(cache) < 50_000:
                        cache[key] = fast
                    return fast, None
            plan = self.plan_of(ctx, kd, new_start, stopping)
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
        return result, plan

    def with_doses(self, plan: ScreenInput, kd: tuple[tuple[str, float | None], ...]) -> ScreenInput | None:
        """``plan`` with the doses of ``kd`` (the same drugs in the same order), or None when ``kd`` lists
        other drugs: what a dose-adjusted regimen leaves differs from the regimen's list only in doses."""
        if tuple([x for x, _ in kd]) != plan.ingredients:
            return None
        return _input(ScreenInput, (kd, *plan[1:]))

    def compose(self, ctx: PatientContext, plan: ScreenInput) -> list[tuple[tuple, Finding]]:
        """The (sort key, finding) pairs of the list ``plan``, gathered from memoized units in one pass over the
        regimen's drugs: each drug's unit (its per-drug block and its pairs with the kept current drugs,
        memoized on drug, dose, start, the inhibitors of its genes present and the kept drugs), its pairs with
        later regimen drugs; then, only when they can find something, current drugs a regimen drug
        phenoconverts and duplicate therapy."""
        cache = ctx.cache
        info = self.info
        drugs, _ings, ing_set, _others, all_drugs, starts, kept_set = plan
        twice = len(ing_set) < len(drugs)  # a drug listed twice: pairs as the kind gives them (last dose)
        kept = None if twice else kept_set
        out: list[tuple[tuple, Finding]] = []
        dups = False
        doses: dict[str, float | None] | None = None
        for d, dose in drugs:
            inh, ddi_near, dup_near, use = info.get(d, _NO_INFO4)
            # the dose as far as it can change the unit's findings (:attr:`dose_use`)
            kdose = dose if use is True or (use is not None and dose is not None and dose > use) else None
            # the inhibitors of its genes present: those kept (``kept`` is in the key) and those of the regimen
            if inh is not None:
                inh = inh & all_drugs if twice else None if inh.isdisjoint(ing_set) else inh & ing_set
            ukey = ("unit", d, kdose, d in starts, inh, kept)
            unit = cache.get(ukey)
            if unit is None:
                unit = cache[ukey] = self._unit(ctx, plan, d, dose, kdose, ddi_near, dup_near, kept)
            out += unit[0]
            if ddi_near is not None and not twice and not ddi_near.isdisjoint(ing_set):
                if doses is None:
                    doses = dict(drugs)
                for y in ddi_near & ing_set:
                    if y > d:
                        out += self.pairs.regimen_pair(ctx, d, y, dose, doses[y])
            if not dups and (
                unit[1] or dup_near is not None and not dup_near.isdisjoint(ing_set if kept else all_drugs)
            ):
                dups = True  # a drug of its class in the regimen, or (unit[1]) among the kept drugs
        if twice:
            out += self.pairs.keyed_findings(ctx, plan)
        if plan.others and not self.rules.inhibitor_drugs.isdisjoint(ing_set):
            out += self.current.keyed_findings(ctx, plan)  # a regimen drug may phenoconvert a kept current drug
        if dups:
            out += self.duplicates.keyed_findings(ctx, plan)
        return out

    def _unit(
        self,
        ctx: PatientContext,
        plan: ScreenInput,
        d: str,
        dose: float | None,
        kdose: float | None,
        ddi_near: frozenset[str] | None,
        dup_near: frozenset[str] | None,
        kept: frozenset[str] | None,
    ) -> tuple[tuple[tuple[tuple, Finding], ...], bool]:
        """Drug ``d``'s unit: (its per-drug kinds' findings and, unless ``kept`` is None, its pairs with the kept
        current drugs; whether a kept drug shares a duplicate-therapy class with it). ``kdose``: ``dose`` where
        it can change them (:attr:`dose_use`), else None: the unit is then shared by every dose of ``d``."""
        inh = self.rules.drug_info.get(d, _NO_INFO)[0]
        bkey = ("block", d, kdose, d in plan.starts, None if inh is None else inh & plan.all_drugs)
        block = ctx.cache.get(bkey)
        if block is None:
            block = ctx.cache[bkey] = keyed(
                [f for k in self.kinds_of.get(d, self.other_kinds) for f in k.drug_findings(ctx, plan, d, dose)]
            )
        if kept and ddi_near is not None:
            cur = ddi_near & kept
            if cur:
                block = block + self.pairs.with_current(ctx, d, dose, cur)
        return block, bool(kept and dup_near is not None and not dup_near.isdisjoint(kept))

    # ---- the fast path -------------------------------------------------------------------------------------
    def _fast(
        self, ctx: PatientContext, kd: tuple[tuple[str, float | None], ...], new_start: Iterable[str] | None
    ) -> tuple[Finding, ...] | None:
        """The sorted findings of ``kd`` when no drug of it links to another one (no gene inhibitor, drug-drug
        partner or duplicate-class partner among them, no drug listed twice) and it replaces no current drug:
        then its list is every regimen's list (the kept current drugs of :meth:`_base`) and its findings are its
        drugs' units (as :meth:`compose` memoizes them), the current drugs its inhibitors phenoconvert and
        duplicates with kept drugs, in :meth:`compose`'s order; None otherwise (:meth:`compose` then screens it).
        Per drug and dose, a slot (:meth:`_slot`) holds what the drug brings: its bit, its links, its units."""
        slots = ctx.slots
        mask = links = 0
        out: list[tuple[tuple, Finding]] = []
        missing = False
        for pair in kd:
            s = slots.get(pair)
            if s is None:
                s = slots[pair] = self._slot(ctx, pair)
            bit = s[0]
            if not bit or mask & bit:  # a drug the fast path does not take, or one listed twice
                return None
            mask |= bit
            links |= s[1]
            unit = s[4] if (s[2] if new_start is None else pair[0] in new_start) else s[3]
            if unit is None:
                missing = True
            elif not missing:
                out += unit
        base = ctx.base
        if base is None:  # no drug (an empty regimen): set by the first slot otherwise
            base = ctx.base = self._base(ctx)
        if links & mask:  # drugs that link to each other: every kind of the list, as :meth:`compose` gathers it
            out = self.compose(ctx, self._plan(ctx, kd, new_start, base))
            if len(out) > 1:
                out.sort(key=key_of)
            return tuple(map(finding_of, out))
        if missing:  # build the units the slots lack (no other drug of the regimen changes them)
            out = []
            for pair in kd:
                s = slots[pair]
                start = s[2] if new_start is None else pair[0] in new_start
                unit = s[3 + start]
                out += self._fill(ctx, s, pair, start) if unit is None else unit
        if base[1] and mask & self.inh_mask:  # a regimen drug may phenoconvert a kept current drug
            ce = base[2].get(mask & self.inh_mask)
            if ce is None:
                plan = self._plan(ctx, kd, new_start, base)
                ce = base[2][mask & self.inh_mask] = tuple(self.current.keyed_findings(ctx, plan))
            out += ce
        if len(out) > 1:
            out.sort(key=key_of)
        return tuple(map(finding_of, out))

    def _plan(
        self,
        ctx: PatientContext,
        kd: tuple[tuple[str, float | None], ...],
        new_start: Iterable[str] | None,
        base: tuple[frozenset[str], tuple[str, ...], dict],
    ) -> ScreenInput:
        """:meth:`plan_of` of a regimen of the fast path: it keeps the current drugs of :meth:`_base`."""
        ings = tuple([x for x, _ in kd])
        ing_set = frozenset(ings)
        current = ctx.current_names
        if new_start is not None:
            starts = frozenset(new_start)
        else:
            starts = ing_set if current.isdisjoint(ing_set) else ing_set.difference(current)
        kept, others = base[0], base[1]
        if not others:
            return _input(ScreenInput, (kd, ings, ing_set, (), ing_set, starts, _EMPTY))
        return _input(ScreenInput, (kd, ings, ing_set, others, ing_set.union(kept), starts, kept))

    def _slot(self, ctx: PatientContext, pair: tuple[str, float | None]) -> list:
        """[bit (0: not for the fast path), links, started by default, unit when not started, unit when
        started, then :meth:`_adjust`'s record of each unit] of one drug and dose in ``ctx``: a drug the fast path takes is one that is not a kept current
        drug and whose regimens replace no current drug (or the context's area says what they replace)."""
        base = ctx.base
        if base is None:
            base = ctx.base = self._base(ctx)
        d = pair[0]
        bit = self.bit.get(d, 0)
        if d in base[0] or (ctx.replaced is None and not self.stops.get(d, _EMPTY).isdisjoint(ctx.current_names)):
            bit = 0
        return [bit, self.links.get(d, 0), d not in ctx.current_names, None, None, None, None]

    def _base(self, ctx: PatientContext) -> tuple[frozenset[str], tuple[str, ...], dict]:
        """(the current drugs a regimen that replaces none of them keeps (the area's when ``ctx`` has one),
        the same sorted, the memo of phenoconversion findings per set of regimen inhibitors)."""
        kept = ctx.current_names if ctx.replaced is None else ctx.current_names.difference(ctx.replaced)
        return kept, tuple(sorted(kept)), {}

    def _fill(self, ctx: PatientContext, s: list, pair: tuple[str, float | None], start: bool) -> tuple:
        """The fast path's findings of one slot (``start``: the drug is started), kept in it: the drug's unit (as
        :meth:`compose` memoizes it) and its duplicates with kept drugs. On the fast path no other drug of the
        regimen changes them (none inhibits its genes, pairs or shares a class with it), so they are those of
        the drug alone beside the kept current drugs; :meth:`_fast` sorts the findings of all its slots."""
        d, dose = pair
        base = ctx.base if ctx.base is not None else self._base(ctx)
        kept, others = base[0], base[1]
        _inh, ddi_near, dup_near, use = self.info.get(d, _NO_INFO4)
        kdose = dose if use is True or (use is not None and dose is not None and dose > use) else None
        ing = frozenset((d,))
        plan = _input(
            ScreenInput,
            (
                ((d, dose),),
                (d,),
                ing,
                others,
                ing.union(kept) if others else ing,
                ing if start else _EMPTY,
                kept if others else _EMPTY,
            ),
        )
        ukey = ("unit", d, kdose, start, None, plan.kept)
        unit = ctx.cache.get(ukey)
        if unit is None:
            unit = ctx.cache[ukey] = self._unit(ctx, plan, d, dose, kdose, ddi_near, dup_near, plan.kept)
        found = unit[0] + tuple(self.duplicates.keyed_findings(ctx, plan)) if unit[1] else unit[0]
        s[3 + start] = found
        return found

    # ---- the fast path of a dose-adjusted regimen ------------------------------------------------------------
    def adjusted(
        self,
        ctx: PatientContext,
        regimen: Regimen,
        kd: tuple[tuple[str, float | None], ...],
        starts: frozenset[str] | None,
        found: tuple[Finding, ...],
    ) -> tuple[Regimen, tuple[Finding, ...]] | None:
        """(the regimen after its dose adjustments, its findings merged with the adjusted plan's) for a regimen
        of the fast path whose findings ``found`` adjust and exclude nothing, as the verdict's general path gives
        them; None when that path must answer (a drug not on the fast path, drugs linked to each other, a unit
        not built yet, an adjusted plan that does not settle, drugs out of order).

        Why per drug: on the fast path every finding that can change a regimen drug's dose is in that drug's
        unit (the other units, the phenoconversion findings of kept drugs and duplicate therapy target other
        drugs or carry no dose), and the adjusted plan is the same list with other doses, so its findings are the
        regimen's with the changed drugs' units at their new doses; what those units add is per (drug, dose,
        start), kept in the slot (:meth:`_adjust`)."""
        slots = ctx.slots
        mask = links = 0
        drugs: list | None = None
        extras: list[tuple[tuple, tuple[tuple, Finding]]] = []
        prev = ""
        for i, pair in enumerate(kd):
            s = slots.get(pair)
            if s is None or not s[0] or mask & s[0] or pair[0] < prev:  # (out of order: apply_findings sorts)
                return None
            prev = pair[0]
            mask |= s[0]
            links |= s[1]
            start = s[2] if starts is None else pair[0] in starts
            a = s[5 + start]
            if a is None:
                a = self._adjust(ctx, s, pair, start)
                if a is None:
                    return None
            if a is _SAME:
                continue
            if a[2] is False:  # the adjusted dose's unit adjusts or excludes again: the general path says
                return None
            if drugs is None:
                drugs = list(regimen.drugs)
            drugs[i] = replace(drugs[i], dose_mg_day=a[0])
            extras += a[1]
        if links & mask:
            return None
        if drugs is None:
            return regimen, found
        final = replace(regimen, drugs=tuple(drugs))
        if not extras:
            return final, found
        keys = {(f.rule_id, f.target_drug, f.action) for f in found}
        more = [kf for k, kf in extras if k not in keys]
        if len(more) > 1:
            more.sort(key=key_of)
        return final, found + tuple(map(finding_of, more))

    def _adjust(self, ctx: PatientContext, s: list, pair: tuple[str, float | None], start: bool) -> tuple | None:
        """What drug ``pair[0]``'s unit (``start``) does to its dose ``pair[1]``, kept in its slot: ``_SAME`` (no
        change) or (the new dose, the findings of the unit at the new dose whose rule, target and action the
        unit lacks, each with that key, whether that unit leaves the new dose as it is); None while a unit is not
        built yet."""
        unit = s[3 + start]
        if unit is None:
            return None
        d, cur = pair
        kept = ctx.base[0] if ctx.base is not None else _EMPTY
        changed = False
        for _k, f in unit:  # apply_findings on this drug's findings (none excludes: the caller checked)
            adj = f.adjusted_dose_mg_day
            if f.action == "adjust_dose" and adj is not None:
                if f.target_drug != d:
                    if f.target_drug in kept:  # a kept current drug's dose: not the regimen's
                        continue
                    s[5 + start] = general = (cur, (), False)  # another regimen drug's dose: the general path
                    return general
                if cur is None or adj < cur:
                    cur, changed = adj, True
        if not changed:
            s[5 + start] = _SAME
            return _SAME
        pair2 = (d, cur)
        s2 = ctx.slots.get(pair2)
        if s2 is None:
            s2 = ctx.slots[pair2] = self._slot(ctx, pair2)
        unit2 = s2[3 + start]
        if unit2 is None:
            unit2 = self._fill(ctx, s2, pair2, start)
        had = {(f.rule_id, f.target_drug, f.action) for _k, f in unit}
        extra = tuple([(k, kf) for kf in unit2 if (k := (kf[1].rule_id, kf[1].target_drug, kf[1].action)) not in had])
        # the adjusted plan settles when nothing of the new unit excludes or changes a regimen dose again
        settled = not any(
            f.action == "exclude"
            or f.action == "adjust_dose"
            and f.adjusted_dose_mg_day is not None
            and (
                f.target_drug != d and f.target_drug not in kept or f.target_drug == d and f.adjusted_dose_mg_day < cur
            )
            for _k, f in unit2
        )
        s[5 + start] = record = (cur, extra, settled)
        return record
