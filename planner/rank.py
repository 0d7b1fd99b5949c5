"""Ranking screened candidate regimens into plans, from joint posterior draws.

Utility (weights and scales in ``rules/ranking.yaml``; ``d`` = +1 when lower is better, -1 otherwise)::

    U = w_target  * P(outcome reaches target)                 # predictive draws (a new measurement)
      - w_improve * E[max(d * (Y - target), 0)] / scale       # expected shortfall from the target (mean draws)
      - w_caution * (# caution findings on the regimen)
      - w_adjust  * (# doses a rule adjusted)
      - w_drug    * (# drugs in the regimen)
      - w_change  * (# changes against the current regimen)

The utility is computed in every joint posterior draw (the target indicator from the predictive draw, the
shortfall from the expected-outcome draw); plans are ranked by its mean, and P(best) is the share of draws
in which a plan has the highest utility of all screened candidates (ties go to the higher-ranked plan).
``scale`` is the area's ``utility_scale`` (one meaningful difference of the outcome). Only the shortfall
counts: going further past the target earns nothing (no reward for over-treatment), so a patient at target
keeps the simplest safe regimen unless another is clearly better. Candidates excluded by a rule never enter
the ranking.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from . import explain
from .areas import Area
from .construct import constructor, plan_drug
from .dosing import Prescribing, dosage, load_prescribing
from .draw_stats import column_means, shown_intervals, shown_means, winners_by_draw
from .errors import ConfigError, RuleError
from .guidelines import (
    PREFERENCE_MEASURES,
    SECONDARY_MEASURE,
    Guidelines,
    PatientContext,
    UtilityTerms,
    load_guidelines,
    secondary_outcome_ids,
    utility_terms,
)
from .rationale import rationale
from .recommendation import Plan, PlanDrug, Predicted
from .record import DrugDose, Finding, Findings, PatientRecord, Regimen
from .rule_files import read_yaml, rules_dir

if TYPE_CHECKING:
    from .handoffs import Predictions

__all__ = ["PreferenceSpec", "RankingConfig", "describe_changes", "rank", "rank_plans", "QUANTILE_LEVELS"]

QUANTILE_LEVELS = tuple(round(0.05 * k, 2) for k in range(1, 20))
_SECONDARY_STREAM = 16  # random stream of the secondary-outcome prior draws (seeded with the recommendation seed)
_PLAN, _PREDICTED = constructor(Plan), constructor(Predicted)  # model_construct, with less work per plan


@dataclass(frozen=True)
class PreferenceSpec:
    """A patient preference: a penalty of ``weight`` per unit of ``measure`` (rules/ranking.yaml)."""

    id: str
    weight: float
    measure: str  # one of planner.guidelines.PREFERENCE_MEASURES, or "secondary:<outcome id>"
    label: str
    per: str


@dataclass(frozen=True)
class RankingConfig:
    level: float
    num_samples: int
    weights: Mapping[str, float]
    utility_scale: Mapping[str, float]
    default_utility_scale_sd: float
    version: str
    guideline: Mapping[str, float] = field(default_factory=dict)  # per unmet indication, by indication kind
    secondary: Mapping[str, float] = field(default_factory=dict)  # per unit of a secondary outcome, by outcome id
    preferences: Mapping[str, PreferenceSpec] = field(default_factory=dict)
    rules: Path | None = None  # the rules folder the config came from (guidelines, prescribing forms)

    @classmethod
    def load(cls, rules: str | Path | None = None) -> "RankingConfig":
        path = rules_dir(rules) / "ranking.yaml"
        raw = read_yaml(path)
        try:
            weights = {k: float(v) for k, v in raw["weights"].items()}
            prefs = {
                k: PreferenceSpec(
                    id=k,
                    weight=float(v["weight"]),
                    measure=str(v["measure"]),
                    label=str(v.get("label", k)),
                    per=str(v.get("per", v["measure"])),
                )
                for k, v in (raw.get("preferences") or {}).items()
            }
            cfg = cls(
                level=float(raw["level"]),
                num_samples=int(raw["num_samples"]),
                weights=weights,
                utility_scale={k: float(v) for k, v in (raw.get("utility_scale") or {}).items()},
                default_utility_scale_sd=float(raw.get("default_utility_scale_sd", 1.0)),
                version=str(raw["version"]),
                guideline={k: float(v) for k, v in (raw.get("guideline") or {}).items()},
                secondary={k: float(v) for k, v in (raw.get("secondary") or {}).items()},
                preferences=prefs,
                rules=None if rules is None else Path(rules),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RuleError(f"invalid ranking configuration ({exc})", file=str(path)) from None
        missing = {"p_target", "improvement", "caution", "adjusted_dose", "drug", "change"} - set(weights)
        if missing:
            raise RuleError("missing weights", file=str(path), field="weights", value=sorted(missing))
        if not 0.5 < cfg.level < 1 or cfg.num_samples < 100:
            raise RuleError("level must be in (0.5, 1) and num_samples >= 100", file=str(path))
        named = any(p.measure.startswith(SECONDARY_MEASURE) for p in prefs.values())
        outcomes = secondary_outcome_ids(rules) if named else frozenset()  # the ids a "secondary:<id>" may name
        for p in prefs.values():
            on_outcome = p.measure.startswith(SECONDARY_MEASURE) and p.measure[len(SECONDARY_MEASURE) :] in outcomes
            if p.measure not in PREFERENCE_MEASURES and not on_outcome:
                raise RuleError(
                    "unknown preference measure",
                    file=str(path),
                    field=f"preferences.{p.id}.measure",
                    value=p.measure,
                    expected="one of "
                    + ", ".join([*PREFERENCE_MEASURES, *(SECONDARY_MEASURE + i for i in sorted(outcomes))])
                    + f" ({SECONDARY_MEASURE}<id of a secondary outcome in the guidelines>)",
                )
        return cfg

    def scale_for(self, area: Area) -> float:
        if area.id in self.utility_scale:
            return self.utility_scale[area.id]
        return self.default_utility_scale_sd * area.outcome.noise_sd

    def outcome_only(self) -> "RankingConfig":
        """The same ranking without guideline indications and secondary outcomes (the benchmark's baseline)."""
        return dataclasses.replace(
            self, guideline={k: 0.0 for k in self.guideline}, secondary={k: 0.0 for k in self.secondary}
        )

    def parse_preferences(self, prefer: "str | Sequence[str] | None") -> tuple[str, ...]:
        """Validated preference ids from ``"a,b"`` or a list (order kept, duplicates dropped)."""
        if prefer is None:
            return ()
        items = prefer.split(",") if isinstance(prefer, str) else list(prefer)
        out: list[str] = []
        for item in (str(x).strip() for x in items):
            if not item:
                continue
            if item not in self.preferences:
                raise ConfigError(
                    "unknown preference",
                    field="preferences",
                    value=item,
                    expected="one of " + ", ".join(self.preferences),
                )
            if item not in out:
                out.append(item)
        return tuple(out)


def describe_changes(
    current: Regimen,
    candidate: Regimen,
    area: Area,
    *,
    rules: str | Path | None = None,
    forms: Prescribing | None = None,
) -> tuple[tuple[PlanDrug, ...], tuple[PlanDrug, ...]]:
    """Label each drug of ``candidate`` against ``current``; return (regimen drugs, stopped drugs). Each drug with
    a known dose carries its dose as prescribed (:func:`planner.dosing.dosage`, from ``rules``)."""
    labels, gone = _changes(current, candidate, area)
    out = tuple(
        plan_drug(
            drug=d.ingredient,
            rxnorm=d.rxcui,
            drug_class=klass,
            dose_mg_day=d.dose_mg_day,
            change=change,
            previous_dose_mg_day=prev,
            dosage=dosage(d.ingredient, d.dose_mg_day, rules=rules, forms=forms),
        )
        for d, klass, change, prev in labels
    )
    stopped = tuple(
        plan_drug(
            drug=d.ingredient,
            rxnorm=d.rxcui,
            drug_class=d.drug_class or _class_of(area, d.ingredient),
            dose_mg_day=None,
            change="stop",
            previous_dose_mg_day=d.dose_mg_day,
        )
        for d in gone
    )
    return out, stopped


def _changes(
    current: Regimen,
    candidate: Regimen,
    area: Area,
) -> tuple[list[tuple[DrugDose, str | None, str, float | None]], list[DrugDose]]:
    """:func:`describe_changes` without the output models: (drug, class, change, previous dose) per drug of
    ``candidate``, and the current drugs it stops (the burden of every candidate needs only these)."""
    cur = {d.ingredient: d for d in current.drugs}
    cur_classes = {(d.drug_class or _class_of(area, d.ingredient)) for d in current.drugs}
    out: list[tuple[DrugDose, str | None, str, float | None]] = []
    for d in candidate.drugs:
        klass = d.drug_class or _class_of(area, d.ingredient)
        before = cur.get(d.ingredient)
        if before is not None:
            same = (
                before.dose_mg_day is None
                or d.dose_mg_day is None
                or math.isclose(before.dose_mg_day, d.dose_mg_day, rel_tol=1e-6)
            )
            change = "continue" if same else "dose-change"
            prev = before.dose_mg_day
        else:
            change = "switch" if klass in cur_classes else "add"
            prev = None
        out.append((d, klass, change, prev))
    kept = set(candidate.ingredients)
    return out, [d for d in current.drugs if d.ingredient not in kept]


def _class_of(area: Area, ingredient: str) -> str | None:
    for d in area.formulary:
        if d.ingredient == ingredient:
            return d.drug_class
    return None


@dataclass(frozen=True)
class _Scores:
    """The utility of every candidate (per joint draw and its mean) and what the ranking reads from it."""

    reached: np.ndarray  # (S, n) the new measurement reaches the target
    p_target: np.ndarray  # (n,)
    shortfall: np.ndarray  # (S, n) expected shortfall from the target (outcome units)
    penalties: np.ndarray  # (n,) burden
    extra: UtilityTerms
    utility_mean: np.ndarray  # (n,)
    order: list[int]  # candidate indices, best first
    p_best: np.ndarray  # (n,)
    rank_of: dict[int, int]
    rank_without: dict[int, int]  # rank without the preference terms (only with preferences)
    scale: float  # the area's utility scale (RankingConfig.scale_for)


def _order(utility: np.ndarray, candidates: Sequence[Regimen]) -> list[int]:
    """Candidates best first: by utility rounded to 12 decimals, ties by key (no tie: the rounded utility alone)."""
    r = [-round(u, 12) for u in utility.tolist()]  # the floats of float(utility[i])
    if len(set(r)) == len(r) and all(x == x for x in r):  # distinct and no NaN: the key never decides
        return sorted(range(len(candidates)), key=r.__getitem__)
    keys = [(x, c.key()) for x, c in zip(r, candidates)]
    return sorted(range(len(candidates)), key=keys.__getitem__)


def _score(
    *,
    area: Area,
    current: Regimen,
    candidates: Sequence[Regimen],
    findings: Sequence[Sequence[Finding]],
    mean_draws: np.ndarray,
    pred_draws: np.ndarray,
    target: float,
    config: RankingConfig,
    record: PatientRecord | None,
    prefs: Sequence[str],
    seed: int,
    guidelines: Guidelines | None,
) -> _Scores:
    """The utility per joint draw (see the module docstring); its mean ranks, the per-draw winner gives P(best)."""
    n = len(candidates)
    lower = area.outcome.direction == "lower"
    # (S, n) per draw: the new measurement reaches the target (d * (target - Y) > 0, d = +1 lower is better, else -1)
    reached = pred_draws < target if lower else pred_draws > target
    shortfall = mean_draws - target  # then d * (Y - target), floored at 0, in place
    if not lower:
        np.negative(shortfall, out=shortfall)
    np.maximum(shortfall, 0.0, out=shortfall)
    w = config.weights
    penalties = _burden(current, candidates, findings, w)
    extra = _extra_terms(area, current, candidates, config, record, prefs, pred_draws, mean_draws, seed, guidelines)
    # primary - penalties + extra terms, each step in place (the same operations in the same order)
    hit = reached.astype(np.float64)  # 1.0 or 0.0: what ``w * reached`` multiplies (a faster cast than the ufunc's)
    p_target = hit.mean(axis=0)  # counts of 0/1 are exact in any order: reached.mean(axis=0)'s bits
    hit *= w["p_target"]
    util_draws = hit
    part = w["improvement"] * shortfall
    scale = config.scale_for(area)
    part /= scale
    util_draws -= part
    util_draws -= penalties[None, :]
    util_draws += extra.total()
    utility_mean = util_draws.mean(axis=0)
    order = _order(utility_mean, candidates)
    winners = winners_by_draw(util_draws, np.asarray(order))
    rank_without: dict[int, int] = {}
    if prefs:
        plain = utility_mean - np.asarray(extra.total(kinds=frozenset({"preference"}))).mean(axis=0)
        rank_without = {i: r for r, i in enumerate(_order(plain, candidates), start=1)}
    return _Scores(
        reached=reached,
        p_target=p_target,
        shortfall=shortfall,
        penalties=penalties,
        extra=extra,
        utility_mean=utility_mean,
        order=order,
        p_best=np.bincount(winners, minlength=n) / util_draws.shape[0],
        rank_of={i: r for r, i in enumerate(order, start=1)},
        rank_without=rank_without,
        scale=scale,
    )


def rank_plans(
    *,
    area: Area,
    current: Regimen,
    candidates: Sequence[Regimen],
    findings: Sequence[Sequence[Finding]],
    mean_draws: np.ndarray,
    pred_draws: np.ndarray,
    baseline: float | None,
    target: float,
    config: RankingConfig,
    features: Mapping[str, float | str | None] | None = None,
    adjusted_by: Sequence[Mapping[str, str]] | None = None,
    record: PatientRecord | None = None,
    preferences: Sequence[str] = (),
    seed: int = 0,
    top: int | None = None,
) -> list[Plan]:
    """Rank screened candidates. ``mean_draws``/``pred_draws`` are (num_samples, n_candidates) joint draws.

    With ``record``, the area's guideline indications and secondary outcomes (``rules/guidelines/<area>.yaml``)
    enter the utility; ``preferences`` (ids from ``rules/ranking.yaml``) add the patient's preference terms.
    ``top``: build only the best ``top`` plans (P(best) and the ranks still come from every candidate)."""
    n = len(candidates)
    if mean_draws.shape != pred_draws.shape or mean_draws.ndim != 2 or mean_draws.shape[1] != n:
        raise ValueError(f"draws must be (num_samples, {n}); got {mean_draws.shape} and {pred_draws.shape}")
    if n == 0:
        return []
    prefs = config.parse_preferences(list(preferences))
    g = extra_guidelines(area, config, record)
    sc = _score(
        area=area,
        current=current,
        candidates=candidates,
        findings=findings,
        mean_draws=mean_draws,
        pred_draws=pred_draws,
        target=target,
        config=config,
        record=record,
        prefs=prefs,
        seed=seed,
        guidelines=g,
    )
    shown = sc.order[:top] if top is not None else sc.order
    explainer = explain.Explainer(
        area=area,
        terms=sc.extra,
        regimens=candidates,
        rank_of=sc.rank_of,
        pred_draws=pred_draws,
        guidelines=g,
        rules=config.rules,
        shown=shown,
    )
    means, shortfalls = column_means(mean_draws, shown), shown_means(sc.shortfall, shown)  # the plans built only
    bounds = shown_intervals(mean_draws, pred_draws, shown, (1 - config.level) / 2, QUANTILE_LEVELS)
    forms = load_prescribing(config.rules)
    return [
        _plan(
            i,
            rank,
            shortfall=shortfalls[i],
            area=area,
            current=current,
            candidate=candidates[i],
            findings=findings[i],
            mean=float(means[i]),
            bounds=bounds,
            baseline=baseline,
            target=target,
            config=config,
            features=features or {},
            adjusted=adjusted_by[i] if adjusted_by else None,
            scores=sc,
            explainer=explainer,
            forms=forms,
        )
        for rank, i in enumerate(shown, start=1)
    ]


def _plan(
    i: int,
    rank: int,
    *,
    area: Area,
    current: Regimen,
    candidate: Regimen,
    findings: Sequence[Finding],
    mean: float,
    shortfall: float,
    bounds: tuple[np.ndarray, ...],
    baseline: float | None,
    target: float,
    config: RankingConfig,
    features: Mapping[str, float | str | None],
    adjusted: Mapping[str, str] | None,
    scores: _Scores,
    explainer: explain.Explainer,
    forms: Prescribing,
) -> Plan:
    """Candidate ``i`` as the plan at ``rank``: its drugs as prescribed, prediction, trade-offs and rationale."""
    drugs, stopped = describe_changes(current, candidate, area, forms=forms)
    if adjusted:
        drugs = tuple(pd.model_copy(update={"dose_adjusted_by": adjusted.get(pd.drug)}) for pd in drugs)
    lo, hi, obs_lo, obs_hi, qs = bounds
    pred = _PREDICTED(  # plain floats: what Predicted(...) holds, without re-validating them
        mean=_r(mean),
        lower=_r(lo[i]),
        upper=_r(hi[i]),
        level=config.level,
        obs_lower=_r(obs_lo[i]),
        obs_upper=_r(obs_hi[i]),
        change_from_baseline=None if baseline is None else _r(mean - baseline),
        quantiles=tuple([_r(q) for q in qs[:, i].tolist()]),
    )
    p_target = float(scores.p_target[i])
    w = config.weights
    statuses = explainer.statuses(i)
    trade = explainer.tradeoffs(
        i,
        p_target=p_target,
        w_target=w["p_target"],
        shortfall=shortfall,
        shortfall_utility=float(-w["improvement"] * shortfall / scores.scale),
        burden=float(-scores.penalties[i]),
    )
    text = rationale(
        area=area,
        drugs=drugs,
        stopped=stopped,
        pred=pred,
        p_target=p_target,
        baseline=baseline,
        target=target,
        findings=findings,
        features=features,
        rules=config.rules,
        modifiers=explainer.modifiers,
    )
    rank_without = scores.rank_without.get(i)
    text = " ".join([text, *explainer.sentences(statuses, trade, rank, rank_without)])
    return _PLAN(  # built models and plain values: what Plan(...) holds (tests/test_rank_speed.py)
        rank=rank,
        key=candidate.key(),
        regimen=drugs,
        stopped=stopped,
        predicted=pred,
        p_target=_r(p_target, 4),
        p_best=_r(scores.p_best[i], 4),
        utility=_r(scores.utility_mean[i], 4),
        findings=Findings(findings),
        rationale=text,
        indications=statuses,
        tradeoffs=trade,
        rank_without_preferences=rank_without,
    )


def _burden(
    current: Regimen,
    candidates: Sequence[Regimen],
    findings: Sequence[Sequence[Finding]],
    w: Mapping[str, float],
) -> np.ndarray:
    """Each candidate's burden penalty (cautions, adjusted doses, drugs, changes against the current regimen);
    the labelled drugs themselves are built only for the plans reported. A change is what :func:`_changes`
    labels other than "continue" (an add, switch or dose change: the class is not needed to count it), or a stop."""
    cur = {d.ingredient: d.dose_mg_day for d in current.drugs}
    cur_ings = current.ingredients
    w_caution, w_adjust, w_drug, w_change = w["caution"], w["adjusted_dose"], w["drug"], w["change"]
    out = []
    for reg, fs in zip(candidates, findings):
        n_caution = n_adjust = 0
        for f in fs:
            if f.action == "caution":
                n_caution += 1
            elif f.action == "adjust_dose":
                n_adjust += 1
        n_change = 0
        for d in reg.drugs:
            if d.ingredient not in cur:
                n_change += 1  # an add or a switch
                continue
            before = cur[d.ingredient]
            if not (before is None or d.dose_mg_day is None or math.isclose(before, d.dose_mg_day, rel_tol=1e-6)):
                n_change += 1  # a dose change
        if cur_ings:
            kept = reg.ingredients
            n_change += sum(1 for i in cur_ings if i not in kept)  # stops
        out.append(w_caution * n_caution + w_adjust * n_adjust + w_drug * len(reg.drugs) + w_change * n_change)
    return np.array(out, dtype=float)


def extra_guidelines(area: Area, config: RankingConfig, record: PatientRecord | None) -> Guidelines | None:
    return None if record is None else load_guidelines(area, config.rules)


def _extra_terms(
    area: Area,
    current: Regimen,
    candidates: Sequence[Regimen],
    config: RankingConfig,
    record: PatientRecord | None,
    prefs: Sequence[str],
    pred_draws: np.ndarray,
    mean_draws: np.ndarray,
    seed: int,
    g: Guidelines | None,
) -> UtilityTerms:
    """Secondary outcomes, guideline indications and preferences as per-draw utility terms (``g``: the area's
    guidelines when there is a record, :func:`extra_guidelines`)."""
    ctx = None if record is None else PatientContext.from_record(record, area, g)
    specs = {p: config.preferences[p] for p in prefs}
    return utility_terms(
        area=area,
        regimens=candidates,
        current=current,
        guidelines=g,
        ctx=ctx,
        forms=load_prescribing(config.rules),
        guideline_weights=config.guideline,
        secondary_weights=config.secondary,
        preferences={p: (s.measure, s.label, s.per, s.weight) for p, s in specs.items()},
        pred_draws=pred_draws,
        mean_draws=mean_draws,
        rng=np.random.default_rng([int(seed), _SECONDARY_STREAM]),
    )


def _r(x: float, nd: int = 3) -> float:
    """Round for output: stable JSON across platforms and no false precision."""
    return float(round(float(x), nd))


def rank(
    predictions: Predictions,
    *,
    area: Area,
    config: RankingConfig,
    record: PatientRecord | None = None,
    preferences: Sequence[str] = (),
    top: int | None = None,
) -> list[Plan]:
    """The ranking stage's typed interface: every kept regimen of ``predictions`` as a ranked plan (best first;
    none when nothing was predicted). With the ``record``, the area's guideline indications and secondary outcomes
    count; ``preferences`` are the patient's (ids in ``rules/ranking.yaml``)."""
    if predictions.mean_draws is None or predictions.pred_draws is None:
        return []
    screened = predictions.screened
    f = screened.features
    return rank_plans(
        area=area,
        current=f.current,
        candidates=[k.regimen for k in screened.kept],
        findings=[k.findings for k in screened.kept],  # read only: the tuples as kept
        mean_draws=predictions.mean_draws,
        pred_draws=predictions.pred_draws,
        baseline=None if f.outcome_recent is None else f.outcome_recent.value,
        target=f.target,
        config=config,
        features=dict(f.values),
        adjusted_by=[k.adjusted_by for k in screened.kept],
        record=record,
        preferences=preferences,
        seed=predictions.seed,
        top=top,
    )
