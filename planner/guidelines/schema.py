"""Schema of a guideline file (``rules/guidelines/<area>.yaml``), validated once when loaded.

See the header of ``rules/guidelines/t2d.yaml`` for the format: named condition sets (SNOMED CT codes, ICD-10-CM
prefixes), indications (``include``: the plan has one of the listed drugs, at a minimum statin intensity where
given; ``goal``: the plan is expected to reach an outcome level; ``history``: what the patient tolerated or did
not respond to before; ``stepwise``: at most ``max_new`` new drugs at once unless the outcome is ``combination_gap``
or more from the patient's target) and secondary outcomes with their trial priors (``change``: additive per drug;
``risk``: baseline risk x relative risks).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..areas import Area
from ..errors import RuleError
from ..rule_files import folder_key, read_yaml, rules_dir

__all__ = [
    "Criterion",
    "Indication",
    "Effect",
    "BaselineRisk",
    "SecondaryOutcome",
    "HistoryRules",
    "Guidelines",
    "load_guidelines",
    "secondary_outcome_ids",
]


class _M(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Criterion(_M):
    """One test on the patient; every given field must hold."""

    condition: str | None = None  # a condition set name
    lab: str | None = None  # quantity name (rules/codes/quantities.yaml)
    below: float | None = None
    at_least: float | None = None
    within_days: int = 365
    age_at_least: float | None = None
    age_below: float | None = None

    @model_validator(mode="after")
    def _some(self) -> "Criterion":
        if self.lab is not None and self.below is None and self.at_least is None:
            raise ValueError(f"lab criterion on {self.lab!r} needs below or at_least")
        if self.lab is None and (self.below is not None or self.at_least is not None):
            raise ValueError("below/at_least need a lab")
        if self.condition is None and self.lab is None and self.age_at_least is None and self.age_below is None:
            raise ValueError("empty criterion")
        return self


When = tuple[tuple[Criterion, ...], ...]  # any of the alternatives, each all of its criteria


class Indication(_M):
    id: str
    kind: Literal["include", "goal", "history", "avoid", "stepwise", "deintensify"]
    label: str
    recommendation: str  # one sentence: what the guideline recommends, for the rationale
    when: When = ()
    group: str | None = None  # only the first matching indication of a group applies
    drugs: tuple[str, ...] = ()  # include: any of these meets it
    min_intensity: str | None = None  # include: statin intensity level (guideline intensity table)
    below: float | None = None  # goal: outcome level to reach
    history: Literal["not_tolerated", "no_response", "response"] | None = None
    # history no_response: a plan that keeps a CURRENT drug without response and adds another drug, the two
    # including one of adjunct_drugs, meets it once the patient has had adjunct_after_trials adequate trials
    adjunct_drugs: tuple[str, ...] = ()
    adjunct_after_trials: int | None = Field(default=None, ge=1)
    classes: tuple[str, ...] = ()  # avoid: a plan with a drug of every one of these classes does not meet it
    max_new: int | None = Field(default=None, ge=0)  # stepwise: most drugs a plan may start at once
    # stepwise: applies while the latest value is less than this far off the target (0: only below the target)
    combination_gap: float | None = Field(default=None, ge=0)
    # stepwise: a drug that meets an applicable required indication (started whatever the outcome) is not counted
    exempt_required: bool = False
    # deintensify: applies while the latest value is at least this far on the good side of the target and the
    # patient takes a drug of ``classes``; a plan meets it when it stops one of them or lowers its dose
    below_gap: float | None = Field(default=None, gt=0)
    # include: a recommendation the guideline makes whatever the outcome (e.g. ADA grade A: an SGLT2 inhibitor in
    # heart failure): an unmet one costs rules/ranking.yaml guideline.require_unmet instead of include_unmet
    require: bool = False
    strength: str = ""
    source: str

    @model_validator(mode="after")
    def _kind(self) -> "Indication":
        if self.kind == "include" and not self.drugs:
            raise ValueError(f"indication {self.id!r}: kind include needs drugs")
        if self.kind == "goal" and self.below is None:
            raise ValueError(f"indication {self.id!r}: kind goal needs below")
        if self.kind == "history" and self.history is None:
            raise ValueError(f"indication {self.id!r}: kind history needs history")
        if self.kind == "avoid" and len(self.classes) < 2:
            raise ValueError(f"indication {self.id!r}: kind avoid needs two or more classes")
        if self.kind == "stepwise" and (self.max_new is None or self.combination_gap is None):
            raise ValueError(f"indication {self.id!r}: kind stepwise needs max_new and combination_gap")
        if self.kind == "deintensify" and (not self.classes or self.below_gap is None):
            raise ValueError(f"indication {self.id!r}: kind deintensify needs classes and below_gap")
        if self.exempt_required and self.kind != "stepwise":
            raise ValueError(f"indication {self.id!r}: exempt_required is for kind stepwise only")
        if self.require and self.kind != "include":
            raise ValueError(f"indication {self.id!r}: require is for kind include only")
        if self.kind in ("include", "goal") and not self.when:
            raise ValueError(f"indication {self.id!r}: needs when")
        return self


class Effect(_M):
    """A prior for one class (or one drug, which overrides its class) on one secondary outcome."""

    drug_class: str | None = Field(default=None, alias="class")
    drug: str | None = None
    mean: float | None = None  # kind change
    sd: float = Field(default=0.0, ge=0)
    rr: float | None = Field(default=None, gt=0)  # kind risk
    rr_low: float | None = Field(default=None, gt=0)
    rr_high: float | None = Field(default=None, gt=0)
    by_intensity: bool = False  # kind risk: the outcome's `intensity` multiplier applies to plans with this drug
    source: str

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _one(self) -> "Effect":
        if (self.drug_class is None) == (self.drug is None):
            raise ValueError("give exactly one of class or drug")
        if (self.mean is None) == (self.rr is None):
            raise ValueError("give mean (kind change) or rr (kind risk)")
        if self.rr is not None and (self.rr_low is None) != (self.rr_high is None):
            raise ValueError("give both rr_low and rr_high, or neither")
        if self.rr is not None and self.rr_low is not None and not self.rr_low <= self.rr <= self.rr_high:  # type: ignore[operator]
            raise ValueError(f"rr {self.rr} outside its interval [{self.rr_low}, {self.rr_high}]")
        return self

    @property
    def log_sd(self) -> float:
        """SD of log(rr) from its 95% interval (0 when none is given)."""
        if self.rr_low is None or self.rr_high is None:
            return 0.0
        return (math.log(self.rr_high) - math.log(self.rr_low)) / 3.92


class BaselineRisk(_M):
    when: When = ()  # empty: applies to everyone (the last entry should be this)
    risk: float = Field(ge=0, le=1)
    source: str


class IntensityRisk(_M):
    """Risk rising with how far the plan drives the primary outcome: x exp(log_rr_per_unit * (below - outcome))
    when the plan's expected outcome is under ``below`` (direction lower), for plans with a ``by_intensity`` drug.
    ``two_sided``: ``below`` is the level at which the drugs' relative risks were measured (the trials' achieved
    outcome), and a plan that keeps the outcome above it has proportionally less of the drugs' excess risk (the
    risk never falls below the patient's baseline risk without the drug)."""

    below: float
    log_rr_per_unit: float = Field(ge=0)
    two_sided: bool = False
    source: str


class SecondaryOutcome(_M):
    id: str
    kind: Literal["change", "risk"]
    label: str
    unit: str
    horizon: str
    baseline: tuple[BaselineRisk, ...] = ()
    effects: tuple[Effect, ...]
    # kind change: a fall (e.g. weight lost) counts as a benefit only for patients matching this (empty: all);
    # a rise always counts as a harm
    credit_fall_when: When = ()
    intensity: IntensityRisk | None = None

    @model_validator(mode="after")
    def _check(self) -> "SecondaryOutcome":
        for e in self.effects:
            if (self.kind == "change") != (e.mean is not None):
                raise ValueError(
                    f"outcome {self.id!r}: a {self.kind} outcome's effects need "
                    + ("mean" if self.kind == "change" else "rr")
                )
        if self.kind == "risk" and (not self.baseline or self.baseline[-1].when):
            raise ValueError(f"outcome {self.id!r}: a risk outcome needs baseline risks ending in one with no when")
        return self


class HistoryRules(_M):
    early_stop_days: int = Field(gt=0)
    adequate_trial_days: int = Field(gt=0)
    response_fall: float = Field(gt=0, le=1)
    non_response_fall: float = Field(ge=0, le=1)
    baseline_window_days: int = Field(gt=0)
    assess_after_days: int = Field(gt=0)
    # a course whose order was stopped with one of these reasons (MedicationRequest.statusReason: a code, or a
    # word in its display or text) is not tolerated, however long it ran
    adverse_stop_reasons: tuple[str, ...] = ()
    source: str


class IntensityStep(_M):
    at_least_mg: float = Field(gt=0)
    level: str


class IntensityTable(_M):
    source: str
    levels: tuple[str, ...]  # lowest first
    drugs: dict[str, tuple[IntensityStep, ...]]

    def level_of(self, ingredient: str, dose_mg_day: float | None) -> str | None:
        if dose_mg_day is None:
            return None
        for step in sorted(self.drugs.get(ingredient, ()), key=lambda s: -s.at_least_mg):
            if dose_mg_day >= step.at_least_mg * (1 - 1e-9):
                return step.level
        return None

    def at_least(self, ingredient: str, dose_mg_day: float | None, level: str) -> bool:
        got = self.level_of(ingredient, dose_mg_day)
        return got is not None and self.levels.index(got) >= self.levels.index(level)


class CodeSet(_M):
    codes: tuple[str, ...]


class Guidelines(_M):
    id: str
    version: str
    area: str
    source: str
    condition_sets: dict[str, CodeSet] = Field(default_factory=dict)
    intensity: IntensityTable | None = None
    indications: tuple[Indication, ...] = ()
    history: HistoryRules | None = None
    secondary_outcomes: tuple[SecondaryOutcome, ...] = ()

    @model_validator(mode="after")
    def _refs(self) -> "Guidelines":
        def check_when(where: str, when: When) -> None:
            for alt in when:
                for c in alt:
                    if c.condition is not None and c.condition not in self.condition_sets:
                        raise ValueError(f"{where}: unknown condition set {c.condition!r}")

        ids = [i.id for i in self.indications]
        if len(ids) != len(set(ids)):
            raise ValueError("duplicate indication id")
        for ind in self.indications:
            check_when(f"indication {ind.id!r}", ind.when)
            if ind.min_intensity is not None:
                if self.intensity is None or ind.min_intensity not in self.intensity.levels:
                    raise ValueError(
                        f"indication {ind.id!r}: min_intensity {ind.min_intensity!r} not in the intensity table"
                    )
            if ind.kind == "history" and self.history is None:
                raise ValueError(f"indication {ind.id!r}: kind history needs the history block")
        for so in self.secondary_outcomes:
            for b in so.baseline:
                check_when(f"outcome {so.id!r} baseline", b.when)
            check_when(f"outcome {so.id!r} credit_fall_when", so.credit_fall_when)
        return self

    def check_area(self, area: Area, path: str) -> "Guidelines":
        """Every drug and class named exists in the area's formulary (errors name the file)."""
        names, classes = set(area.drug_names), set(area.class_ids)
        for ind in self.indications:
            for d in (*ind.drugs, *ind.adjunct_drugs):
                if d not in names:
                    raise RuleError(
                        "indication names a drug outside the formulary",
                        file=path,
                        field=f"indications.{ind.id}.drugs",
                        value=d,
                        expected=f"a {area.id} formulary drug",
                    )
        for ind in self.indications:
            for c in ind.classes:
                if c not in classes:
                    raise RuleError(
                        "indication names an unknown class",
                        file=path,
                        field=f"indications.{ind.id}.classes",
                        value=c,
                        expected=f"a {area.id} class id",
                    )
        for so in self.secondary_outcomes:
            for e in so.effects:
                if e.drug is not None and e.drug not in names:
                    raise RuleError(
                        "effect on a drug outside the formulary",
                        file=path,
                        field=f"secondary_outcomes.{so.id}",
                        value=e.drug,
                        expected=f"a {area.id} formulary drug",
                    )
                if e.drug_class is not None and e.drug_class not in classes:
                    raise RuleError(
                        "effect on an unknown class",
                        file=path,
                        field=f"secondary_outcomes.{so.id}",
                        value=e.drug_class,
                        expected=f"a {area.id} class id",
                    )
        return self


@functools.lru_cache(maxsize=32)
def _load(path: str) -> Guidelines:
    raw = read_yaml(path)
    try:
        return Guidelines.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise RuleError(
            err["msg"], file=path, field=".".join(str(x) for x in err["loc"]), value=err.get("input", ...)
        ) from None


# (rules folder, area id) -> (the area object they were checked against, the guidelines): asked twice a patient
_CHECKED: dict[tuple[str, str], tuple[Area, Guidelines]] = {}


def load_guidelines(area: Area, rules: str | Path | None = None) -> Guidelines | None:
    """The area's guideline file, validated against the area; None when the area has none. A found file is
    remembered per rules folder (``rules``, else ``$PLANNER_RULES_DIR``, else the packaged one, resolved on every
    call) and area object (another version of the area is checked again)."""
    folder = rules_dir(rules)
    key = (folder_key(folder), area.id)
    hit = _CHECKED.get(key)
    if hit is not None and hit[0] is area:
        return hit[1]
    path = folder / "guidelines" / f"{area.id}.yaml"
    if not path.is_file():
        return None
    g = _load(str(path))
    if g.area != area.id:
        raise RuleError(
            "guideline file is for another area", file=str(path), field="area", value=g.area, expected=area.id
        )
    got = g.check_area(area, str(path))
    if len(_CHECKED) < 256:
        _CHECKED[key] = (area, got)
    return got


def secondary_outcome_ids(rules: str | Path | None = None) -> frozenset[str]:
    """The ids of the secondary outcomes every guideline file of the rules folder defines (read, not validated:
    each file is checked against its area when that area is planned)."""
    ids: set[str] = set()
    for path in sorted((rules_dir(rules) / "guidelines").glob("*.yaml")):
        raw = read_yaml(path)
        outcomes = raw.get("secondary_outcomes") if isinstance(raw, dict) else None
        ids.update(str(so["id"]) for so in outcomes or () if isinstance(so, dict) and "id" in so)
    return frozenset(ids)
