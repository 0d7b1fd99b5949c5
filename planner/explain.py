"""What a ranked plan says about guidelines, trade-offs and preferences (used by :mod:`planner.rank`).

Per plan: the status of every guideline indication that applies (met, or not and why: "plan 3 meets it" or "no
screened candidate meets it"), the plan's utility term by term (:class:`~planner.recommendation.Tradeoff`),
and the rationale's sentences on both and on how the patient's preferences moved the plan.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .areas import Area
from .construct import constructor
from .guidelines import Applicable, Guidelines, UtilityTerms
from .recommendation import IndicationStatus, Tradeoff
from .record import Regimen
from .units import unit_display, with_unit

__all__ = ["Explainer"]


# built from plain str/float/bool values only (the same fields and fields-set as Tradeoff(...) and
# IndicationStatus(...); tests/test_rank_speed.py)
_TO = constructor(Tradeoff)
_IS = constructor(IndicationStatus)


def _r(x: float, nd: int = 4) -> float:
    return float(round(float(x), nd))


def _value(t: Tradeoff) -> str:
    if t.value is None:
        return ""
    if t.unit.startswith("risk"):
        return f"{100 * t.value:.1f}% ({t.unit.split(', ', 1)[-1]})"
    if t.term.startswith("preference:"):
        return f"{t.value:.3g} x {t.unit}"
    return f"{t.value:+.1f} {t.unit}"


@dataclasses.dataclass
class Explainer:
    area: Area
    terms: UtilityTerms
    regimens: Sequence[Regimen]
    rank_of: Mapping[int, int]  # candidate index -> rank
    pred_draws: np.ndarray
    guidelines: Guidelines | None
    rules: str | Path | None = None  # the rules folder in use (its codes/units.yaml writes the units)
    shown: Sequence[int] | None = None  # the candidates that become plans (None: all)
    # the rationale's effect-modifier sentences per drug class, as worked out for this patient's plans
    modifiers: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    # ---- indications --------------------------------------------------------------------------------
    def statuses(self, j: int) -> tuple[IndicationStatus, ...]:
        out = []
        for k, a in enumerate(self.terms.applicable):
            met = bool(self.terms.met[k, j])
            ind = a.indication
            if ind.kind in ("avoid", "stepwise") and met:
                continue  # a combination to avoid, or too many new drugs at once, only worth saying when a plan has it
            out.append(
                _IS(
                    id=ind.id,
                    label=ind.label,
                    met=met,
                    message=self._message(k, a, j, met),
                    strength=ind.strength,
                    source=ind.source,
                )
            )
        return tuple(out)

    def _others(self, k: int) -> str:
        said = self._said.get(k)
        if said is None:  # the same for every plan: worked out once per indication
            ranks = [self.rank_of[i] for i in np.flatnonzero(self.terms.met[k]).tolist()]
            said = self._said[k] = f"plan {min(ranks)} meets it" if ranks else "no screened candidate meets it"
        return said

    @functools.cached_property
    def _said(self) -> dict[int, str]:
        return {}

    @functools.cached_property
    def _unit(self) -> str:
        return unit_display(self.area.outcome.unit, self.rules)

    def _message(self, k: int, a: Applicable, j: int, met: bool) -> str:
        ind = a.indication
        names = set(self.regimens[j].ingredients)
        if ind.kind == "goal":
            p = float((self.pred_draws[:, j] < (ind.below or 0.0)).mean())
            head = f"P({self.area.outcome.quantity} < {ind.below:g}) {p:.2f}"
            return f"meets {ind.label}: {head}" if met else f"not met: {ind.recommendation}; {head}; {self._others(k)}"
        if ind.kind == "avoid":
            return f"not met: {ind.recommendation}; {self._others(k).replace('meets it', 'avoids it')}"
        if ind.kind == "stepwise":
            return f"not met: {ind.recommendation}; {self._stepwise(a, j)}; {self._others(k)}"
        if ind.kind == "deintensify":
            at, kept = self._at_level(a), ", ".join(a.drugs)
            if met:
                return f"meets {ind.label}: lowers or stops {kept} {at}"
            return f"not met: {ind.recommendation}; this plan keeps {kept} at the same dose or more {at}; {self._others(k)}"
        if ind.kind == "history":
            about = "; ".join(c.describe(self._unit) for c in a.courses)
            if ind.history == "response":
                return (
                    f"meets {ind.label}: {about}"
                    if met
                    else f"not met: {ind.recommendation} ({about}); {self._others(k)}"
                )
            if met and names & set(a.drugs):  # kept with an adjunct added (adjunct_to)
                return f"meets {ind.label}: an adjunct added after {ind.adjunct_after_trials} or more trials ({about})"
            return f"meets {ind.label} ({about})" if met else f"not met: re-tries {about}; {self._others(k)}"
        if met:
            return f"meets {ind.label} ({', '.join(sorted(names & set(ind.drugs)))})"
        need = (
            f"no {ind.min_intensity}-intensity {', '.join(ind.drugs)}"
            if ind.min_intensity
            else f"none of {', '.join(ind.drugs)}"
        )
        return f"not met: {ind.recommendation}; this plan has {need}; {self._others(k)}"

    def _stepwise(self, a: Applicable, j: int) -> str:
        """What the plan starts (``a.drugs``: the current regimen's, and with exempt_required the required drugs)
        and how far the latest value is from the target."""
        new = sorted(set(self.regimens[j].ingredients) - set(a.drugs))
        return f"this plan starts {len(new)} ({', '.join(new)}) {self._at_level(a)}"

    def _at_level(self, a: Applicable) -> str:
        """The latest value and how far it is from the target, e.g. "at hba1c 7.6%, 0.6 from the target 7%"."""
        value, target = a.level or (float("nan"), float("nan"))
        ucum = self.area.outcome.unit
        return (
            f"at {self.area.outcome.quantity} {with_unit(f'{value:g}', ucum, self.rules)}, "
            f"{abs(value - target):.1f} from the target {with_unit(f'{target:g}', ucum, self.rules)}"
        )

    # ---- trade-offs ---------------------------------------------------------------------------------
    def tradeoffs(
        self, j: int, *, p_target: float, w_target: float, shortfall: float, shortfall_utility: float, burden: float
    ) -> tuple[Tradeoff, ...]:
        o = self.area.outcome
        out = [
            _TO(
                term="outcome:p_target",
                label=f"P({o.quantity} reaches target)",
                value=_r(p_target),
                unit="probability",
                utility=_r(w_target * p_target),
            ),
            _TO(
                term="outcome:shortfall",
                label=f"expected shortfall from the {o.quantity} target",
                value=_r(shortfall, 3),
                unit=self._unit,
                utility=_r(shortfall_utility),
            ),
            _TO(term="burden", label="drugs, changes, cautions and rule-adjusted doses", utility=_r(burden)),
        ]
        for t, value, mean in zip(self.terms.terms, *self._term_stats):
            out.append(_TO(term=t.key, label=t.label, value=_r(value[j]), unit=t.unit, utility=_r(mean[j])))
        return tuple(out)

    @functools.cached_property
    def _term_stats(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Each term's expected value and mean utility per candidate, at least for the plans shown (once for all)."""
        return self.terms.means_at(self._shown)

    @property
    def _shown(self) -> Sequence[int]:
        return range(len(self.regimens)) if self.shown is None else self.shown

    # ---- rationale ----------------------------------------------------------------------------------
    def sentences(
        self, statuses: Sequence[IndicationStatus], trade: Sequence[Tradeoff], rank: int, rank_without: int | None
    ) -> list[str]:
        parts = []
        unmet = [s.message for s in statuses if not s.met]
        met = [s.message for s in statuses if s.met]
        if unmet:
            parts.append(
                "Guideline indication not met: " + " | ".join(m.removeprefix("not met: ") for m in unmet) + "."
            )
        if met:
            parts.append("Guidelines: " + "; ".join(met) + ".")
        sec = [f"{t.label} {_value(t)}" for t in trade if t.term.startswith("secondary:") and t.value]
        if sec:
            parts.append("Trade-offs: " + ", ".join(sec) + ".")
        prefs = [t for t in trade if t.term.startswith("preference:")]
        if prefs:
            costs = ", ".join(f"{t.label} {t.utility:+.2f} ({_value(t)})" for t in prefs)
            moved = (
                ""
                if rank_without is None
                else f"; rank {rank_without} without preferences"
                if rank_without != rank
                else "; same rank without preferences"
            )
            parts.append(f"Preferences: {costs}{moved}.")
        return parts
