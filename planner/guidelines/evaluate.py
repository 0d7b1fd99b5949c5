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
from .context import Course, PatientContext
from .schema import Guidelines, Indication, SecondaryOutcome

__all__ = ["Term", "Applicable", "UtilityTerms", "applicable_indications", "utility_terms", "PREFERENCE_MEASURES"]

PREFERENCE_MEASURES = ("injectables", "weight_gain", "doses_per_day", "cost_tier")


@dataclasses.dataclass(frozen=True)
class Term:
    """One utility term: its per-draw contribution (S, n) and the per-candidate value shown to the reader."""

    key: str  # "secondary:weight", "indication:t2d.sglt2i-heart-failure", "preference:avoid-injections"
    label: str
    unit: str
    draws: np.ndarray  # (S, n) utility added (negative: a cost)
    values: np.ndarray  # (n,) expected value of the measure (kg, risk, count, ...)
    kind: str  # "secondary" | "indication" | "preference"


@dataclasses.dataclass(frozen=True)
class Applicable:
    """An indication that applies to this patient, with what triggers it (history: the courses)."""

    indication: Indication
    courses: tuple[Course, ...] = ()  # history: the courses behind it
    drugs: tuple[str, ...] = ()  # include: the drugs that meet it; history: the drugs at issue


@dataclasses.dataclass(frozen=True)
class UtilityTerms:
    terms: tuple[Term, ...]
    applicable: tuple[Applicable, ...]
    met: np.ndarray  # (k applicable, n) bool: candidate meets the indication

    def total(self, *, kinds: frozenset[str] | None = None) -> np.ndarray | float:
        parts = [t.draws for t in self.terms if kinds is None or t.kind in kinds]
        if len(parts) < 2:
            return parts[0] if parts else 0.0
        out = parts[0] + parts[1]  # then the rest added in place, in order
        for p in parts[2:]:
            if np.result_type(out, p) == out.dtype:
                out += p
            else:
                out = out + p
        return out


def applicable_indications(g: Guidelines | None, ctx: PatientContext) -> list[Applicable]:
    """The indications this patient has (first match per group; history ones when a course calls for them)."""
    if g is None:
        return []
    out: list[Applicable] = []
    groups: set[str] = set()
    for ind in g.indications:
        if ind.group is not None and ind.group in groups:
            continue
        if ind.kind == "history":
            courses = tuple(c for c in ctx.courses if c.outcome == ind.history)
            if ind.history == "response":  # a drug both responded to and later not tolerated is no preference
                bad = {c.ingredient for c in ctx.courses if c.outcome in ("not_tolerated", "no_response")}
                courses = tuple(c for c in courses if c.ingredient not in bad)
            if courses:
                out.append(Applicable(ind, courses, tuple(sorted({c.ingredient for c in courses}))))
            continue
        if ctx.matches(ind.when, g):
            out.append(Applicable(ind, drugs=ind.drugs))
            if ind.group is not None:
                groups.add(ind.group)
    return out


def _meets(a: Applicable, reg: Regimen, g: Guidelines, p_goal: float, area: Area) -> bool:
    ind = a.indication
    if ind.kind == "goal":
        return p_goal >= 0.5
    if ind.kind == "avoid":
        have = {d.drug_class or area.drug(d.ingredient).drug_class for d in reg.drugs}
        return not set(ind.classes) <= have
    names = set(reg.ingredients)
    if ind.kind == "history":
        hit = bool(names & set(a.drugs))
        return hit if ind.history == "response" else not hit
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


def _effect_sets(
    so: SecondaryOutcome, area: Area, regimens: Sequence[Regimen]
) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """The distinct sets of effect indices of ``regimens`` (first seen first) and, per regimen, the position of
    its set: many regimens share drugs, so each set is summed (and transformed) once."""
    memo: dict[tuple[str, str | None], int | None] = {}
    by_drugs: dict[tuple[tuple[str, str | None], ...], int] = {}
    pos: dict[tuple[int, ...], int] = {}
    inverse = np.empty(len(regimens), dtype=np.intp)
    for j, reg in enumerate(regimens):
        sig = tuple((d.ingredient, d.drug_class) for d in reg.drugs)
        at = by_drugs.get(sig)
        if at is None:
            at = by_drugs[sig] = pos.setdefault(tuple(_effect_index(so, area, reg, memo)), len(pos))
        inverse[j] = at
    return list(pos), inverse


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
    if so.kind == "change":
        eff = np.stack([e.mean + e.sd * rng.standard_normal(num) for e in so.effects], axis=1)  # type: ignore[operator]
    else:
        eff = np.stack([np.log(e.rr) + e.log_sd * rng.standard_normal(num) for e in so.effects], axis=1)  # type: ignore[arg-type]

    def total(idx: tuple[int, ...]) -> np.ndarray:
        return eff[:, list(idx)].sum(axis=1) if idx else np.zeros(num)

    if not regimens:
        return np.zeros((num, 0))
    # every elementwise step runs once per distinct effect set (columns of ``sums``), then is gathered per regimen
    sets, inverse = _effect_sets(so, area, regimens)
    sums = np.stack([total(idx) for idx in sets], axis=1)
    if so.kind == "change":  # a change happens when the regimen changes: relative to the current regimen
        return (sums - total(tuple(_effect_index(so, area, current)))[:, None])[:, inverse]
    base = next(b.risk for b in so.baseline if ctx.matches(b.when, g))
    out = np.minimum(base * np.exp(sums), 1.0)[:, inverse]
    if so.intensity is not None and outcome_draws is not None:
        flagged = np.array([any(so.effects[i].by_intensity for i in idx) for idx in sets])[inverse]
        cols = np.flatnonzero(flagged)
        if cols.size:
            sign = 1.0 if area.outcome.direction == "lower" else -1.0
            deep = sign * (so.intensity.below - outcome_draws[:, cols])
            if not so.intensity.two_sided:
                deep = np.maximum(deep, 0.0)
            shifted = sums[:, inverse[cols]] + so.intensity.log_rr_per_unit * deep
            if so.intensity.two_sided:  # less of the drugs' excess above the reference level, never below baseline
                shifted = np.maximum(shifted, 0.0)
            out[:, cols] = np.minimum(base * np.exp(shifted), 1.0)
    return out


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
    weight_draws = None
    if guidelines is not None and ctx is not None:
        for so in guidelines.secondary_outcomes:
            w = float(secondary_weights.get(so.id, 0.0))
            vals = secondary_draws(so, area, regimens, ctx, guidelines, num, rng, current, mean_draws)
            if so.id == "weight":
                weight_draws = vals
            counted = vals
            if so.kind == "change" and so.credit_fall_when and not ctx.matches(so.credit_fall_when, guidelines):
                counted = np.maximum(vals, 0.0)  # a fall is no benefit for this patient; a rise is still a harm
            terms.append(
                Term(
                    f"secondary:{so.id}",
                    so.label,
                    so.unit if so.kind == "change" else f"risk, {so.horizon}",
                    -w * counted,
                    vals.mean(axis=0),
                    "secondary",
                )
            )
    applicable = applicable_indications(guidelines, ctx) if ctx is not None else []
    met = np.zeros((len(applicable), n), dtype=bool)
    for k, a in enumerate(applicable):
        ind = a.indication
        p_goal = (pred_draws < ind.below).mean(axis=0) if ind.kind == "goal" else np.zeros(n)
        assert guidelines is not None
        met[k] = [_meets(a, reg, guidelines, float(p_goal[j]), area) for j, reg in enumerate(regimens)]
        key = ind.history if ind.kind == "history" else f"{ind.kind}_unmet"
        w = float(guideline_weights.get(key or "", 0.0))
        cost = np.where(met[k], 0.0, -w)
        terms.append(
            Term(
                f"indication:{ind.id}",
                ind.label,
                "unmet",
                np.broadcast_to(cost, (num, n)),
                (~met[k]).astype(float),
                "indication",
            )
        )
    for pid, (measure, label, per, w) in preferences.items():
        vals = _preference_values(measure, regimens, forms, weight_draws)
        terms.append(
            Term(f"preference:{pid}", label, per, np.broadcast_to(-w * vals, (num, n)), vals.mean(axis=0), "preference")
        )
    return UtilityTerms(terms=tuple(terms), applicable=tuple(applicable), met=met)
