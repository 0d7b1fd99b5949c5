"""Guideline indications, secondary outcomes and patient preferences as utility terms for the ranking.

:func:`utility_terms` returns, for candidate regimens, the per-draw utility each term adds (negative: a cost),
which indications each candidate meets, and the values behind every term, so each plan can show its
trade-offs. The weights are ``rules/ranking.yaml``'s; the priors and indications ``rules/guidelines/<area>.yaml``'s.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

from ..areas import Area
from ..dosing import Prescribing
from ..record import Regimen
from .columns import _added, _broadcast_mean, _Columns, _means_at, _row_columns
from .context import Course, PatientContext
from .schema import Guidelines, Indication, SecondaryOutcome

__all__ = [
    "Term",
    "Applicable",
    "UtilityTerms",
    "applicable_indications",
    "utility_terms",
    "PREFERENCE_MEASURES",
    "SECONDARY_MEASURE",
]

PREFERENCE_MEASURES = ("injectables", "weight_gain", "doses_per_day", "cost_tier")
SECONDARY_MEASURE = "secondary:"  # a preference on a secondary outcome's expected value: "secondary:<outcome id>"


@dataclasses.dataclass(frozen=True)
class Term:
    """One utility term: its per-draw contribution (S, n) and the per-candidate value shown to the reader."""

    key: str  # "secondary:weight", "indication:t2d.sglt2i-heart-failure", "preference:avoid-injections"
    label: str
    unit: str
    columns: _Columns  # the utility added per draw (negative: a cost) as distinct columns: see :attr:`draws`
    values: np.ndarray | None  # (n,) expected value of the measure (kg, risk, count, ...); None: see ``measure``
    kind: str  # "secondary" | "indication" | "preference"
    utility_mean: np.ndarray | None = None  # (n,) draws.mean(axis=0), when computed with the term (same sums)
    row: np.ndarray | None = None  # (n,) the same utility in every draw (``draws`` is then a broadcast view)
    measure: _Columns | None = None  # the measure's draws, when ``values`` is left to UtilityTerms.means_at

    @property
    def draws(self) -> np.ndarray:
        """(S, n) utility added per draw, gathered when asked for (the ranking adds :attr:`columns` itself)."""
        if self.row is not None:
            return np.broadcast_to(self.row, (self.columns.num, len(self.row)))
        return self.columns.full()


@dataclasses.dataclass(frozen=True)
class Applicable:
    """An indication that applies to this patient, with what triggers it (history: the courses)."""

    indication: Indication
    courses: tuple[Course, ...] = ()  # history: the courses behind it
    drugs: tuple[str, ...] = ()  # include: the drugs that meet it; history: the drugs at issue
    level: tuple[float, float] | None = None  # stepwise: the latest outcome value and the patient's target
    # history no_response with adjunct_drugs: the drugs taken now, when the patient has had enough adequate
    # trials for an adjunct to be an option (empty otherwise)
    adjunct_base: tuple[str, ...] = ()
    # (stepwise: ``drugs`` are the current regimen's; a plan's other drugs are what it starts)
    # deintensify: the current drugs of the indication's classes and their doses (mg/day; None: unknown)
    doses: tuple[tuple[str, float | None], ...] = ()


@dataclasses.dataclass(frozen=True)
class UtilityTerms:
    terms: tuple[Term, ...]
    applicable: tuple[Applicable, ...]
    met: np.ndarray  # (k applicable, n) bool: candidate meets the indication

    def means_at(self, idx: Sequence[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Each term's (n,) expected value and mean utility (``draws.mean(axis=0)``), at least at the regimens
        ``idx`` (the others may be NaN); those left to be computed, in one reduction (the same sums)."""
        lazy: list[_Columns] = []
        for t in self.terms:
            if t.values is None:
                assert t.measure is not None
                lazy.append(t.measure)
            if t.utility_mean is None and t.row is None:
                lazy.append(t.columns)
        got = iter(_means_at(lazy, idx))
        values, means = [], []
        for t in self.terms:
            values.append(next(got) if t.values is None else t.values)
            if t.utility_mean is not None:
                means.append(t.utility_mean)
            else:
                means.append(t.draws.mean(axis=0) if t.row is not None else next(got))
        return values, means

    def total(self, *, kinds: frozenset[str] | None = None) -> np.ndarray | float:
        """The terms' draws added in order, (S, n) (0.0 without terms). Without ``kinds``, the sums run once per
        distinct combination of the terms' columns and are gathered at the end: the same additions per element
        (then a transposed view: each candidate's draws contiguous)."""
        chosen = [t for t in self.terms if kinds is None or t.kind in kinds]
        if kinds is not None or len(chosen) < 2 or any(t.columns.dtype != np.float64 for t in chosen):
            return _added([t.draws for t in chosen])
        combos: dict[tuple[int, ...], int] = {}
        inv = np.array(
            [combos.setdefault(c, len(combos)) for c in zip(*(t.columns.at.tolist() for t in chosen))], dtype=np.intp
        )
        at = np.array(list(combos), dtype=np.intp).reshape(len(combos), len(chosen)).T
        num, m = chosen[0].columns.num, len(combos)
        out: np.ndarray | None = None  # (combination, draw): whole rows gathered and added (the same sums)
        for k, t in enumerate(chosen):  # the same additions per element as (t0 + t1) + t2 + ... on (S, n)
            if t.row is not None:
                part = t.columns.values[0, at[k]][:, None]  # added to every draw (as its broadcast view was)
            else:
                part = t.columns.rows[at[k]]
            if out is None:
                out = part if t.row is None else np.repeat(part, num, axis=1)
            else:
                out += part
        assert out is not None
        return (out if m == len(inv) and (inv == np.arange(m)).all() else out[inv]).T


def applicable_indications(g: Guidelines | None, ctx: PatientContext, area: Area | None = None) -> list[Applicable]:
    """The indications this patient has (first match per group; history ones when a course calls for them;
    stepwise ones, given the ``area``, while the latest outcome value is less than the combination gap from the
    patient's target)."""
    if g is None:
        return []
    out: list[Applicable] = []
    groups: set[str] = set()
    # stepwise and deintensify rules read the latest value and the target (once for all of them): ``off`` is how far
    # the value lies on the wrong side of the target (negative: better than it)
    by_level = area is not None and any(i.kind in ("stepwise", "deintensify") for i in g.indications)
    level = ctx.outcome_level(area) if by_level and area is not None else None
    sign = 1.0 if area is not None and area.outcome.direction == "lower" else -1.0
    off = 0.0 if level is None else (level[0] - level[1]) * sign
    for ind in g.indications:
        if ind.group is not None and ind.group in groups:
            continue
        if ind.kind == "history":
            courses = tuple(c for c in ctx.courses if c.outcome == ind.history)
            if ind.history == "response":  # a drug both responded to and later not tolerated is no preference
                bad = {c.ingredient for c in ctx.courses if c.outcome in ("not_tolerated", "no_response")}
                courses = tuple(c for c in courses if c.ingredient not in bad)
            if courses:
                out.append(
                    Applicable(
                        ind, courses, tuple(sorted({c.ingredient for c in courses})), adjunct_base=_base(ind, g, ctx)
                    )
                )
            continue
        if ind.kind in ("stepwise", "deintensify"):
            # stepwise: less than combination_gap off the target; deintensify: at least below_gap better than it
            near = off < (ind.combination_gap or 0.0) if ind.kind == "stepwise" else -off >= (ind.below_gap or 0.0)
            if level is not None and near and ctx.matches(ind.when, g):
                out.append(Applicable(ind, level=level))
            continue
        if ctx.matches(ind.when, g):
            out.append(Applicable(ind, drugs=ind.drugs))
            if ind.group is not None:
                groups.add(ind.group)
    return out


def _base(ind: Indication, g: Guidelines, ctx: PatientContext) -> tuple[str, ...]:
    """The drugs taken now, when an adjunct to one without response is an option: the patient has had at
    least ``adjunct_after_trials`` courses of an adequate trial's length (CANMAT 2016); () otherwise."""
    if not ind.adjunct_drugs or ind.adjunct_after_trials is None or g.history is None:
        return ()
    trials = sum(1 for c in ctx.courses if c.days >= g.history.adequate_trial_days)
    if trials < ind.adjunct_after_trials:
        return ()
    return tuple(sorted({c.ingredient for c in ctx.courses if c.end is None}))


def adjunct_to(a: Applicable, reg: Regimen) -> bool:
    """Whether ``reg`` keeps a current drug without response and adds another, one of the two an adjunct."""
    names = set(reg.ingredients)
    hit = names & set(a.drugs)
    added = names - set(a.adjunct_base)
    return (
        bool(hit and a.adjunct_base)
        and hit <= set(a.adjunct_base)
        and bool(added)
        and bool(names & set(a.indication.adjunct_drugs))
    )


def _meets(a: Applicable, reg: Regimen, g: Guidelines, p_goal: float, area: Area) -> bool:
    ind = a.indication
    if ind.kind == "goal":
        return p_goal >= 0.5
    if ind.kind == "stepwise":
        return len(set(reg.ingredients) - set(a.drugs)) <= (ind.max_new or 0)
    if ind.kind == "deintensify":
        return any(_lowered(reg, drug, dose) for drug, dose in a.doses)
    if ind.kind == "avoid":
        have = {d.drug_class or area.drug(d.ingredient).drug_class for d in reg.drugs}
        return not set(ind.classes) <= have
    names = set(reg.ingredients)
    if ind.kind == "history":
        hit = bool(names & set(a.drugs))
        return hit if ind.history == "response" else not hit or adjunct_to(a, reg)
    if ind.min_intensity is None:
        return bool(names & set(ind.drugs))
    table = g.intensity
    assert table is not None
    return any(
        d.ingredient in ind.drugs and table.at_least(d.ingredient, d.dose_mg_day, ind.min_intensity) for d in reg.drugs
    )


def _effect_index(
    so: SecondaryOutcome, area: Area, reg: Regimen, memo: dict[tuple[str, str | None], int | None] | None = None
) -> list[int]:
    """Index of the effect that applies to each drug of ``reg`` (drug-specific first, then class). ``memo``:
    the answers per (drug, class) already found for this outcome (many regimens share drugs)."""
    out = []
    for d in reg.drugs:
        mk = (d.ingredient, d.drug_class)
        if memo is not None and mk in memo:
            hit = memo[mk]
        else:
            klass = d.drug_class or area.drug(d.ingredient).drug_class
            hit = next((i for i, e in enumerate(so.effects) if e.drug == d.ingredient), None)
            if hit is None:
                hit = next((i for i, e in enumerate(so.effects) if e.drug_class == klass), None)
            if memo is not None:
                memo[mk] = hit
        if hit is not None:
            out.append(hit)
    return out


def _met(
    a: Applicable,
    regimens: Sequence[Regimen],
    g: Guidelines,
    p_goal: np.ndarray,
    area: Area,
    sigs: tuple[list[_Sig], list[Regimen], np.ndarray],
) -> np.ndarray:
    """Whether each regimen meets the indication; once per (drug, class) list where only that list matters (not a
    goal, which reads the regimen's own draws, nor an intensity, which reads its doses)."""
    ind = a.indication
    if ind.kind in ("goal", "deintensify") or (ind.kind == "include" and ind.min_intensity is not None):
        return np.array([_meets(a, reg, g, float(p_goal[j]), area) for j, reg in enumerate(regimens)], dtype=bool)
    _, reps, at = sigs
    return np.array([_meets(a, reg, g, 0.0, area) for reg in reps], dtype=bool)[at]


def _indication_mean(met: np.ndarray, cost: float, num: int) -> np.ndarray:
    """``np.broadcast_to(np.where(met, 0.0, cost), (num, n)).mean(axis=0)`` from its two values (the same sums)."""
    if len(met) < 2:
        return np.broadcast_to(np.where(met, 0.0, cost), (num, len(met))).mean(axis=0)
    two = np.broadcast_to(np.array([0.0, cost]), (num, 2)).mean(axis=0)
    return np.where(met, two[0], two[1])


_Sig = tuple[tuple[str, str | None], ...]  # a regimen's (drug, class) list


def _signatures(regimens: Sequence[Regimen]) -> tuple[list[_Sig], list[Regimen], np.ndarray]:
    """The distinct (drug, class) lists of ``regimens``, a regimen with each, and the position of each regimen's:
    every secondary outcome depends on a regimen only through that list."""
    first: dict[_Sig, int] = {}
    reps: list[Regimen] = []
    at = np.empty(len(regimens), dtype=np.intp)
    for j, reg in enumerate(regimens):
        sig = tuple((d.ingredient, d.drug_class) for d in reg.drugs)
        k = first.get(sig)
        if k is None:
            k = first[sig] = len(reps)
            reps.append(reg)
        at[j] = k
    return list(first), reps, at


# per secondary outcome (and area): the effect indices of each (drug, class) list seen so far, for all patients
_KNOWN: dict[int, tuple[SecondaryOutcome, Area, dict[_Sig, tuple[int, ...]]]] = {}
_KNOWN_SIZE = 10_000  # lists per outcome before it starts again (bounded on any cohort)


def _effect_sets(
    so: SecondaryOutcome, area: Area, sigs: tuple[list[_Sig], list[Regimen], np.ndarray]
) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """The distinct sets of effect indices of the regimens (first seen first) and, per regimen, the position of
    its set: many regimens share drugs, so each set is summed (and transformed) once."""
    entry = _KNOWN.get(id(so))
    if entry is None or entry[0] is not so or entry[1] is not area or len(entry[2]) >= _KNOWN_SIZE:
        if len(_KNOWN) >= 64:
            _KNOWN.clear()
        entry = _KNOWN[id(so)] = (so, area, {})
    known = entry[2]
    pos: dict[tuple[int, ...], int] = {}
    keys, reps, at = sigs
    of_rep = np.empty(len(reps), dtype=np.intp)
    for k, (sig, reg) in enumerate(zip(keys, reps)):
        idx = known.get(sig)
        if idx is None:
            idx = known[sig] = tuple(_effect_index(so, area, reg))
        of_rep[k] = pos.setdefault(idx, len(pos))
    return list(pos), of_rep[at]


def secondary_draws(
    so: SecondaryOutcome,
    area: Area,
    regimens: Sequence[Regimen],
    ctx: PatientContext,
    g: Guidelines,
    num: int,
    rng: np.random.Generator,
    current: Regimen = Regimen(),
    outcome_draws: np.ndarray | None = None,
) -> np.ndarray:
    """(num, n) draws of the outcome's value per regimen; each effect is drawn once per draw (joint). A change
    outcome (weight) is the change the plan makes against ``current``; a risk is the risk on the plan's drugs,
    raised by the outcome's ``intensity`` rule from ``outcome_draws`` (expected primary outcome per draw)."""
    if not regimens:
        _draw_effects(so, num, rng)
        return np.zeros((num, 0))
    sigs = _signatures(regimens)
    return _secondary_columns(so, area, sigs, ctx, g, num, rng, current, outcome_draws).full()


def _draw_effects(so: SecondaryOutcome, num: int, rng: np.random.Generator) -> np.ndarray:
    """(effects, num) joint draws of the outcome's effects (a change, or a log relative risk): each effect's
    draws contiguous (one call: the same numbers as one call per effect)."""
    z = rng.standard_normal((len(so.effects), num))
    _, loc, scale, _ = _prior_entry(so)
    z *= scale
    z += loc  # loc + scale * z per effect and draw
    return z


# per outcome (identity-checked): its effects' prior locations and scales, and which effects go by intensity
_PRIORS: dict[int, tuple[SecondaryOutcome, np.ndarray, np.ndarray, frozenset[int]]] = {}


def _prior_entry(so: SecondaryOutcome) -> tuple[SecondaryOutcome, np.ndarray, np.ndarray, frozenset[int]]:
    """The outcome, the (effects, 1) location and scale of each effect's prior (a change, or a log relative risk)
    and the effects that go by intensity."""
    hit = _PRIORS.get(id(so))
    if hit is None or hit[0] is not so:
        if so.kind == "change":
            loc = np.array([e.mean for e in so.effects], dtype=float)
            scale = np.array([e.sd for e in so.effects], dtype=float)
        else:
            loc = np.array([np.log(e.rr) for e in so.effects], dtype=float)  # type: ignore[arg-type]
            scale = np.array([e.log_sd for e in so.effects], dtype=float)
        if len(_PRIORS) >= 64:
            _PRIORS.clear()
        loc, scale = loc[:, None], scale[:, None]
        loc.setflags(write=False)
        scale.setflags(write=False)
        by_intensity = frozenset(i for i, e in enumerate(so.effects) if e.by_intensity)
        hit = _PRIORS[id(so)] = (so, loc, scale, by_intensity)
    return hit


def _set_sums(eff: np.ndarray, sets: Sequence[tuple[int, ...]]) -> np.ndarray:
    """(sets, num): each set's effects added in turn from 0.0, as numpy's row sum of the gathered (num, k) columns
    adds them (``eff[:, idx].sum(axis=1)`` on the (num, effects) draws; tests/test_rank_speed.py)."""
    out = np.zeros((len(sets), eff.shape[1]))
    for j, idx in enumerate(sets):
        row = out[j]
        for i in idx:
            row += eff[i]
    return out


def _secondary_columns(
    so: SecondaryOutcome,
    area: Area,
    sigs: tuple[list[_Sig], list[Regimen], np.ndarray],
    ctx: PatientContext,
    g: Guidelines,
    num: int,
    rng: np.random.Generator,
    current: Regimen,
    outcome_draws: np.ndarray | None,
) -> _Columns:
    """:func:`secondary_draws` as distinct columns: one per effect set, and one per regimen the intensity rule
    raises (those depend on the regimen's own outcome draws). Computed a column per row, then transposed."""
    eff = _draw_effects(so, num, rng)
    sets, at = _effect_sets(so, area, sigs)
    sums = _set_sums(eff, sets)
    if so.kind == "change":  # a change happens when the regimen changes: relative to the current regimen
        sums -= _set_sums(eff, [tuple(_effect_index(so, area, current))])
        return _Columns.of_rows(sums, at)
    base = next(b.risk for b in so.baseline if ctx.matches(b.when, g))
    out = np.exp(sums)
    out *= base
    np.minimum(out, 1.0, out=out)
    if so.intensity is None or outcome_draws is None:
        return _Columns.of_rows(out, at)
    by_intensity = _prior_entry(so)[3]
    cols = np.flatnonzero(np.array([not by_intensity.isdisjoint(idx) for idx in sets], dtype=bool)[at])
    if not cols.size:
        return _Columns.of_rows(out, at)
    deep = so.intensity.below - outcome_draws.T[cols]  # (cols, num)
    if area.outcome.direction != "lower":
        np.negative(deep, out=deep)  # sign * (below - Y), sign -1: the same bits
    if not so.intensity.two_sided:
        np.maximum(deep, 0.0, out=deep)
    deep *= so.intensity.log_rr_per_unit
    shifted = sums[at[cols]]
    shifted += deep
    if so.intensity.two_sided:  # less of the drugs' excess above the reference level, never below baseline
        np.maximum(shifted, 0.0, out=shifted)
    np.exp(shifted, out=shifted)
    shifted *= base
    np.minimum(shifted, 1.0, out=shifted)
    raised = at.copy()
    raised[cols] = out.shape[0] + np.arange(cols.size)
    return _Columns.of_rows(np.concatenate([out, shifted], axis=0), raised)


def _preference_values(
    measure: str, regimens: Sequence[Regimen], forms: Prescribing, weight: np.ndarray | None
) -> np.ndarray:
    """(S or 1, n) value of a preference measure per regimen."""
    if measure == "weight_gain":
        if weight is None:
            return np.zeros((1, len(regimens)))
        return np.maximum(weight, 0.0)
    vals: list[float] = []
    for reg in regimens:
        if measure == "injectables":
            vals.append(float(sum(forms.is_injection(d.ingredient) for d in reg.drugs)))
        elif measure == "doses_per_day":
            vals.append(
                sum(
                    forms.administrations_per_day(d.ingredient, d.dose_mg_day)
                    for d in reg.drugs
                    if not forms.is_injection(d.ingredient)
                )
            )
        else:  # cost_tier
            vals.append(sum(((f.cost_tier if (f := forms.form(d.ingredient)) else 1) - 1) for d in reg.drugs))
    return np.asarray(vals, dtype=float)[None, :]


def utility_terms(
    *,
    area: Area,
    regimens: Sequence[Regimen],
    current: Regimen,
    guidelines: Guidelines | None,
    ctx: PatientContext | None,
    forms: Prescribing,
    guideline_weights: Mapping[str, float],
    secondary_weights: Mapping[str, float],
    preferences: Mapping[str, tuple[str, str, str, float]],
    pred_draws: np.ndarray,
    rng: np.random.Generator,
    mean_draws: np.ndarray | None = None,
) -> UtilityTerms:
    """Every non-outcome utility term for ``regimens``. ``preferences``: id -> (measure, label, per, weight)."""
    num, n = pred_draws.shape
    terms: list[Term] = []
    weight: _Columns | None = None
    secondary: dict[str, _Columns] = {}  # outcome id -> its values (what a "secondary:<id>" preference weighs)
    sigs = _signatures(regimens)
    if guidelines is not None and ctx is not None:
        for so in guidelines.secondary_outcomes:
            w = float(secondary_weights.get(so.id, 0.0))
            if not regimens:  # nothing to rank (the effects are still drawn: the later outcomes' draws are the same)
                _draw_effects(so, num, rng)
                vals = _Columns(np.zeros((num, 0)), np.zeros(0, dtype=np.intp))
            else:
                vals = _secondary_columns(so, area, sigs, ctx, guidelines, num, rng, current, mean_draws)
            if so.id == "weight":
                weight = vals
            # what a "secondary:<id>" preference weighs: a risk, or a change's rise only (the patient asks to
            # avoid it; a fall is no reward, as with avoid-weight-gain)
            secondary[so.id] = vals if so.kind == "risk" else vals.map(lambda v: np.maximum(v, 0.0))
            counted = vals
            if so.kind == "change" and so.credit_fall_when and not ctx.matches(so.credit_fall_when, guidelines):
                counted = vals.map(lambda v: np.maximum(v, 0.0))  # a fall is no benefit here; a rise is still a harm
            cost = counted.scaled(-w)
            unit = so.unit if so.kind == "change" else f"risk, {so.horizon}"
            terms.append(Term(f"secondary:{so.id}", so.label, unit, cost, None, "secondary", measure=vals))
    found = _with_doses(applicable_indications(guidelines, ctx, area) if ctx is not None else [], current, area)
    required = tuple(d for a in found if a.indication.require for d in a.drugs)
    applicable = [
        dataclasses.replace(a, drugs=tuple(current.ingredients) + (required if a.indication.exempt_required else ()))
        if a.indication.kind == "stepwise"
        else a
        for a in found
    ]
    met = np.zeros((len(applicable), n), dtype=bool)
    for k, a in enumerate(applicable):
        ind = a.indication
        p_goal = (pred_draws < ind.below).mean(axis=0) if ind.kind == "goal" else np.zeros(n)
        assert guidelines is not None
        met[k] = _met(a, regimens, guidelines, p_goal, area, sigs)
        key = ind.history if ind.kind == "history" else "require_unmet" if ind.require else f"{ind.kind}_unmet"
        w = float(guideline_weights.get(key or "", guideline_weights.get("include_unmet", 0.0) if ind.require else 0.0))
        c = np.where(met[k], 0.0, -w)
        terms.append(
            Term(
                f"indication:{ind.id}",
                ind.label,
                "unmet",
                _row_columns(c, num),
                (~met[k]).astype(float),
                "indication",
                _indication_mean(met[k], -w, num),
                row=c,
            )
        )
    for pid, (measure, label, per, w) in preferences.items():
        if measure.startswith(SECONDARY_MEASURE):
            terms.append(_secondary_preference_term(pid, measure, label, per, w, secondary, n, num))
            continue
        terms.append(_preference_term(pid, measure, label, per, w, regimens, forms, weight, num))
    return UtilityTerms(terms=tuple(terms), applicable=tuple(applicable), met=met)


def _lowered(reg: Regimen, drug: str, dose: float | None) -> bool:
    """``reg`` stops ``drug`` or gives it below ``dose`` (an unknown dose, now or in the plan, is not lower)."""
    planned = [d.dose_mg_day for d in reg.drugs if d.ingredient == drug]
    return not planned or (dose is not None and planned[0] is not None and planned[0] < dose)


def _with_doses(found: list[Applicable], current: Regimen, area: Area) -> list[Applicable]:
    """Deintensify indications with the current drugs of their classes and doses; dropped when there are none."""
    out = []
    for a in found:
        if a.indication.kind == "deintensify":
            classes = set(a.indication.classes)
            doses = tuple(
                (d.ingredient, d.dose_mg_day)
                for d in current.drugs
                if (d.drug_class or area.drug(d.ingredient).drug_class) in classes
            )
            if not doses:
                continue
            a = dataclasses.replace(a, drugs=tuple(x for x, _ in doses), doses=doses)
        out.append(a)
    return out


def _secondary_preference_term(
    pid: str, measure: str, label: str, per: str, w: float, secondary: Mapping[str, _Columns], n: int, num: int
) -> Term:
    """A preference on a secondary outcome (e.g. the risk of sexual dysfunction): a penalty of ``w`` per unit of
    its expected value (a change: its rise), per draw. An area without that outcome gets a zero term (the preference does not apply)."""
    vals = secondary.get(measure[len(SECONDARY_MEASURE) :])
    if vals is None:
        zero = np.zeros(n)
        return Term(
            f"preference:{pid}",
            label,
            per,
            _row_columns(zero, num),
            zero,
            "preference",
            _broadcast_mean(zero, num),
            row=zero,
        )
    return Term(f"preference:{pid}", label, per, vals.scaled(-w), None, "preference", measure=vals)


def _preference_term(
    pid: str,
    measure: str,
    label: str,
    per: str,
    w: float,
    regimens: Sequence[Regimen],
    forms: Prescribing,
    weight: _Columns | None,
    num: int,
) -> Term:
    """A preference's term: a penalty of ``w`` per unit of its measure (per draw for weight gain)."""
    if measure == "weight_gain" and weight is not None:
        gain = weight.map(lambda v: np.maximum(v, 0.0))
        cost = gain.scaled(-w)
        return Term(f"preference:{pid}", label, per, cost, None, "preference", measure=gain)
    vals = _preference_values(measure, regimens, forms, None)  # (1, n)
    row = -w * vals
    return Term(
        f"preference:{pid}",
        label,
        per,
        _row_columns(row[0], num),
        vals.mean(axis=0),
        "preference",
        _broadcast_mean(row[0], num),
        row=row[0],
    )
