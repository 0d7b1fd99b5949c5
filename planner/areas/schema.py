"""Schema of a therapeutic-area file (``rules/areas/<id>.yaml``), validated once when loaded.

Scale of effects: an area's outcome is modelled on ``outcome.scale``: ``identity`` (HbA1c %, SBP mmHg,
PHQ-9 points: effects are differences in the outcome's unit) or ``log`` (LDL-C: effects are log-ratios;
a class prior may be written as ``effect_pct`` (percent change, e.g. -40) and is converted to
``log(1 + pct/100)`` when loaded). Negative effects lower the outcome.

Dose-response (per class): the effect of a drug at dose d is ``effect * g(d / reference_dose)`` with
``g`` from :class:`DoseResponse`: ``none`` g=1; ``log2`` g = 1 + per_doubling/effect * log2(ratio), i.e. the
effect becomes ``effect + per_doubling * log2(ratio)`` (each doubling adds ``per_doubling`` on the model scale,
same sign as the effect, e.g. statins' ~6 percentage points); ``emax`` g = (1+ed50) r / (ed50 + r) (saturating,
half of the effect at ``ed50`` x reference); ``linear`` g = r. :func:`planner.areas.drug_effect` implements it.

Combinations (``combination.subadditivity`` = s): the drug with the largest absolute effect counts fully and
every other drug's effect is multiplied by s (:func:`planner.areas.combine_effects`).

Optional blocks read by other stages: ``pgx_effects`` (known gene-drug effects on efficacy and tolerability:
the simulator's truth uses them, the model may use them as priors) and ``simulation`` (the generative story's
parameters for :mod:`planner.simulate`: population, visits, clinician behaviour). Both default to empty.

Modifiers: the class effect becomes ``effect + per_unit * (feature - center)``; ``center`` is where the
published effect applies (e.g. the mean baseline of the trials).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import AreaError
from ..rule_files import folder_key, read_yaml, rules_dir


class _M(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TargetRule(_M):
    """A patient-specific target: the first rule whose condition codes match the patient applies."""

    value: float
    when_conditions: tuple[str, ...] = ()  # SNOMED codes or ICD-10 prefixes
    when_min_age: float | None = None
    label: str = ""


class Outcome(_M):
    quantity: str  # name in rules/codes/quantities.yaml, e.g. "hba1c"
    loinc: tuple[str, ...]
    unit: str  # canonical UCUM unit
    direction: Literal["lower", "higher"] = "lower"  # which way is better
    target: float  # default target: reached when outcome < target (direction lower)
    target_rules: tuple[TargetRule, ...] = ()
    scale: Literal["identity", "log"] = "identity"
    plausible: tuple[float, float]  # physiologically plausible range (simulation clipping, input sanity)
    noise_sd: float = Field(gt=0)  # prior guess of residual SD on the model scale (visit-to-visit + lab)
    baseline_window_days: int = 180
    followup_days: int = 180
    followup_window: tuple[int, int] = (60, 365)


class DoseResponse(_M):
    kind: Literal["none", "log2", "emax", "linear"] = "none"
    per_doubling: float | None = None  # log2: effect added per doubling, model scale (negative lowers)
    ed50: float | None = None  # emax: ratio to reference dose giving half the maximal effect
    source: str = ""


class Modifier(_M):
    feature: str  # a feature name from the area's features (e.g. "baseline", "egfr", "bmi", "age")
    per_unit: float  # change in the class effect per unit of the feature above center (model scale)
    center: float
    sd: float = Field(default=0.0, ge=0)  # prior SD of per_unit for the model (0: use |per_unit|/2)
    source: str = ""


class ClassPrior(_M):
    id: str  # class id, e.g. "sglt2_inhibitor"
    label: str = ""
    effect: float | None = None  # model scale, at the reference dose, placebo-adjusted
    effect_pct: float | None = None  # log-scale areas: percent change instead of effect
    sd: float = Field(gt=0)  # prior SD of the class effect (model scale); spread of published estimates
    within_class_sd: float = Field(default=0.05, ge=0)  # prior SD of drug effects around the class effect
    dose_response: DoseResponse = DoseResponse()
    modifiers: tuple[Modifier, ...] = ()
    source: str  # citation (author, journal, year) of the prior

    @model_validator(mode="after")
    def _one_effect(self) -> "ClassPrior":
        if (self.effect is None) == (self.effect_pct is None):
            raise ValueError("give exactly one of effect or effect_pct")
        if self.effect_pct is not None and not -100 < self.effect_pct < 1000:
            raise ValueError(f"effect_pct {self.effect_pct} out of range (-100, 1000)")
        return self

    def effect_on_scale(self) -> float:
        if self.effect is not None:
            return self.effect
        return math.log1p(self.effect_pct / 100.0)  # type: ignore[operator]


class DrugEntry(_M):
    ingredient: str
    rxcui: str
    drug_class: str = Field(alias="class")
    doses: tuple[float, ...]  # dose levels offered, mg/day, ascending
    reference_dose: float  # the dose at which the class prior applies (mg/day)
    max_dose: float  # label maximum, mg/day
    relative_potency: float = 1.0  # drug effect relative to its class prior at reference dose
    first_line: bool = False
    share: float = Field(default=1.0, gt=0)  # relative prescribing share within its class (simulator)

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @field_validator("doses")
    @classmethod
    def _ascending(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v or list(v) != sorted(v) or v[0] <= 0:
            raise ValueError("doses must be positive and ascending")
        return v


class Combination(_M):
    max_drugs: int = 3
    max_per_class: int = 1
    subadditivity: float = Field(default=0.85, gt=0, le=1)  # each added drug's effect x this (prior mean)
    exclusive_classes: tuple[tuple[str, ...], ...] = ()  # classes that must not be combined (e.g. ACEi+ARB)


class FeatureSpec(_M):
    name: str
    kind: Literal["age", "sex", "quantity", "baseline", "condition", "pgx", "regimen"]
    quantity: str | None = None  # kind=quantity: name in quantities.yaml
    unit: str = ""
    lookback_days: int = 365
    codes: tuple[str, ...] = ()  # kind=condition: SNOMED codes / ICD-10 prefixes
    gene: str | None = None  # kind=pgx
    default: float | None = None  # value used when missing (the missing flag is kept as its own column)


class PgxEffect(_M):
    """A known gene-drug effect: efficacy multiplier and/or adverse-effect stopping for some phenotypes."""

    gene: str
    phenotypes: tuple[str, ...]  # CPIC phenotype terms, e.g. "Poor Metabolizer", "Decreased Function"
    drugs: tuple[str, ...]  # formulary ingredients
    efficacy_factor: float = Field(default=1.0, ge=0)  # multiplies the drug's effect
    stop_probability: float = Field(default=0.0, ge=0, le=1)  # per visit on the drug: adverse effect -> stop
    label: str = ""
    source: str


class ChoiceTerm(_M):
    """Adds ``add`` to a class's choice log-weight when a patient feature is above/below a threshold."""

    feature: str
    above: float | None = None
    below: float | None = None
    add: float


class ClassChoice(_M):
    """How clinicians in the simulator prefer a class (log-weight plus feature terms): confounding by design."""

    id: str  # class id
    weight: float = 0.0  # log-weight
    terms: tuple[ChoiceTerm, ...] = ()
    exclude_below: dict[str, float] = Field(default_factory=dict)  # e.g. {egfr: 30}: never chosen below


class SimQuantity(_M):
    """A lab or vital the simulator measures (the outcome is simulated separately)."""

    quantity: str  # name as in PatientRecord.observations (e.g. "egfr", "bmi")
    loinc: str
    display: str
    unit: str  # UCUM unit written to the Observation
    mean: float
    sd: float = Field(ge=0)
    age_slope: float = 0.0  # per year of age above 60
    per_year: float = 0.0  # drift per year of follow-up
    noise_sd: float = Field(default=0.0, ge=0)
    low: float
    high: float
    decimals: int = 1
    measure_probability: float = Field(default=0.7, ge=0, le=1)  # per visit
    category: Literal["laboratory", "vital-signs", "survey"] = "laboratory"


class SimCondition(_M):
    """A comorbidity the simulator gives (named by an area feature of kind ``condition``)."""

    feature: str
    code: str  # SNOMED code written to the Condition
    display: str
    prevalence: float = Field(ge=0, le=1)
    incident_share: float = Field(default=0.2, ge=0, le=1)  # share diagnosed during follow-up
    # prevalence instead, when a simulated quantity at index is below a threshold: {quantity: [below, prevalence]}
    prevalence_below: dict[str, tuple[float, float]] = Field(default_factory=dict)


class Simulation(_M):
    """Parameters of the cohort simulator's generative story for one area (see :mod:`planner.simulate`)."""

    condition: tuple[str, str]  # (SNOMED code, display) of the area condition written for every patient
    untreated_mean: float  # model scale, untreated level at index
    untreated_sd: float = Field(gt=0)
    # correlations: untreated level += slope * (value - mean) for a simulated quantity or "age" (model scale)
    untreated_slopes: dict[str, float] = Field(default_factory=dict)
    drift_per_year: float = 0.0  # model scale
    drift_sd: float = Field(default=0.0, ge=0)
    age: tuple[float, float, float, float]  # mean, sd, min, max (years)
    female_share: float = Field(ge=0, le=1)
    outcome_display: str
    outcome_decimals: int = 1
    outcome_category: Literal["laboratory", "vital-signs", "survey"] = "laboratory"
    visit_interval_days: tuple[int, int] = (90, 200)
    followup_years: tuple[float, float] = (2.0, 6.0)
    missed_lab: float = Field(default=0.15, ge=0, le=1)
    dropout_per_year: float = Field(default=0.05, ge=0, le=1)
    prevalent_share: float = Field(default=0.25, ge=0, le=1)  # on a first-line drug before records start
    act_probability: float = Field(default=0.6, ge=0, le=1)  # chance to intensify when well above target
    act_gap: float = Field(gt=0)  # gap above target (outcome units) at which acting is ~63% of act_probability
    deescalate_probability: float = Field(default=0.03, ge=0, le=1)  # below target by act_gap: step down
    action_weights: dict[str, float] = Field(default_factory=lambda: {"uptitrate": 1.0, "add": 1.0, "switch": 0.3})
    stop_probability: float = Field(default=0.01, ge=0, le=1)  # per visit per drug: stop for intolerance
    class_choice: tuple[ClassChoice, ...] = ()
    quantities: tuple[SimQuantity, ...] = ()
    conditions: tuple[SimCondition, ...] = ()
    drug_allergy_share: float = Field(default=0.03, ge=0, le=1)  # allergic to one formulary drug
    cancelled_order_share: float = Field(default=0.05, ge=0, le=1)  # a cancelled order (no-op) in the record
    truth_spread: float = Field(default=0.7, gt=0)  # true effects differ from the prior by this x prior SD
    hidden_modifier_sd: float = Field(default=0.1, ge=0)  # unlisted age modifier, x |effect| per 10 years


class Area(_M):
    id: str
    version: str
    name: str
    source: str
    outcome: Outcome
    condition_codes: tuple[str, ...]  # SNOMED codes that put a patient in the area
    condition_icd10_prefixes: tuple[str, ...] = ()
    formulary: tuple[DrugEntry, ...]
    classes: tuple[ClassPrior, ...]
    combination: Combination = Combination()
    features: tuple[FeatureSpec, ...]
    pgx_genes: tuple[str, ...] = ()  # genes the formulary touches (features, data gaps)
    pgx_effects: tuple[PgxEffect, ...] = ()
    simulation: Simulation | None = None
    notes: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> "Area":
        class_ids = [c.id for c in self.classes]
        if len(set(class_ids)) != len(class_ids):
            raise ValueError("duplicate class id")
        names = [d.ingredient for d in self.formulary]
        if len(set(names)) != len(names):
            raise ValueError("duplicate formulary ingredient")
        for d in self.formulary:
            if d.drug_class not in class_ids:
                raise ValueError(f"formulary drug {d.ingredient!r} has class {d.drug_class!r} with no prior")
            if d.reference_dose <= 0 or d.max_dose < d.doses[-1]:
                raise ValueError(f"formulary drug {d.ingredient!r}: max_dose below the highest dose level")
        feats = {f.name for f in self.features}
        for c in self.classes:
            for m in c.modifiers:
                if m.feature not in feats:
                    raise ValueError(f"class {c.id!r} modifier on unknown feature {m.feature!r}")
            if c.dose_response.kind == "log2" and c.dose_response.per_doubling is None:
                raise ValueError(f"class {c.id!r}: log2 dose-response needs per_doubling")
            if c.dose_response.kind == "emax" and (c.dose_response.ed50 is None or c.dose_response.ed50 <= 0):
                raise ValueError(f"class {c.id!r}: emax dose-response needs a positive ed50")
        for group in self.combination.exclusive_classes:
            for cid in group:
                if cid not in class_ids:
                    raise ValueError(f"combination.exclusive_classes names unknown class {cid!r}")
        genes = set(self.pgx_genes)
        for e in self.pgx_effects:
            if e.gene not in genes:
                raise ValueError(f"pgx_effects gene {e.gene!r} is not in pgx_genes")
            for dname in e.drugs:
                if dname not in names:
                    raise ValueError(f"pgx_effects drug {dname!r} is not in the formulary")
        for f in self.features:
            if f.kind == "pgx" and f.gene not in genes:
                raise ValueError(f"feature {f.name!r}: gene {f.gene!r} is not in pgx_genes")
            if f.kind in ("quantity", "baseline") and not f.quantity:
                raise ValueError(f"feature {f.name!r} of kind {f.kind} needs a quantity")
        if self.simulation is not None:
            for ch in self.simulation.class_choice:
                if ch.id not in class_ids:
                    raise ValueError(f"simulation.class_choice names unknown class {ch.id!r}")
                for t in ch.terms:
                    if t.feature not in feats:
                        raise ValueError(f"simulation.class_choice {ch.id!r} term on unknown feature {t.feature!r}")
            simq = {q.quantity for q in self.simulation.quantities}
            for sc in self.simulation.conditions:
                if sc.feature not in feats:
                    raise ValueError(f"simulation.conditions names unknown feature {sc.feature!r}")
                for q in sc.prevalence_below:
                    if q not in simq:
                        raise ValueError(f"simulation.conditions {sc.feature!r}: {q!r} is not a simulated quantity")
            for q in self.simulation.untreated_slopes:
                if q not in simq and q != "age":
                    raise ValueError(f"simulation.untreated_slopes: {q!r} is not a simulated quantity or age")
        return self

    # ---- lookups -------------------------------------------------------------------------------------
    def drug(self, ingredient: str) -> DrugEntry:
        for d in self.formulary:
            if d.ingredient == ingredient or d.rxcui == ingredient:
                return d
        raise AreaError(
            "unknown drug",
            field=f"{self.id}.formulary",
            value=ingredient,
            expected="one of " + ", ".join(d.ingredient for d in self.formulary),
        )

    def class_prior(self, class_id: str) -> ClassPrior:
        for c in self.classes:
            if c.id == class_id:
                return c
        raise AreaError("unknown class", field=f"{self.id}.classes", value=class_id)

    @property
    def class_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.classes)

    def drugs_of_class(self, class_id: str) -> tuple[DrugEntry, ...]:
        return tuple(d for d in self.formulary if d.drug_class == class_id)

    def target_rule_for(
        self, condition_codes: "set[str] | frozenset[str]" = frozenset(), age: float | None = None
    ) -> TargetRule | None:
        """The first ``target_rules`` entry that matches (codes or ICD-10 prefixes), or None. A rule with both
        conditions and a minimum age needs both."""
        for rule in self.outcome.target_rules:
            if not (rule.when_conditions or rule.when_min_age is not None):
                continue
            if rule.when_conditions and not any(code_matches(c, rule.when_conditions) for c in condition_codes):
                continue
            if rule.when_min_age is not None and (age is None or age < rule.when_min_age):
                continue
            return rule
        return None

    def target_for(self, condition_codes: "set[str] | frozenset[str]" = frozenset(), age: float | None = None) -> float:
        """The patient's target: the matching ``target_rules`` entry's value, else ``outcome.target``."""
        rule = self.target_rule_for(condition_codes, age)
        return self.outcome.target if rule is None else rule.value

    @property
    def drug_names(self) -> tuple[str, ...]:
        return tuple(d.ingredient for d in self.formulary)

    def matches_condition(self, code: str | None, system: str | None = None) -> bool:
        if not code:
            return False
        if system and "icd" in system.lower():
            c = code.replace(".", "").upper()
            return c.startswith(_normalized(tuple(self.condition_icd10_prefixes), False))
        return code in self.condition_codes


def code_matches(code: str, patterns: "tuple[str, ...] | list[str]") -> bool:
    """True when ``code`` equals a SNOMED code in ``patterns`` or starts with one of its ICD-10 prefixes
    (patterns starting with a letter; dots ignored)."""
    if code in patterns:
        return True
    c = code.replace(".", "").upper()
    return c.startswith(_normalized(tuple(patterns), True))


@functools.lru_cache(maxsize=1024)
def _normalized(patterns: tuple[str, ...], icd_only: bool) -> tuple[str, ...]:
    """The prefixes as matched (dots dropped, upper case; ``icd_only``: only those starting with a letter), once
    per pattern list: features, targets and areas match every condition of a patient against them."""
    return tuple(p.replace(".", "").upper() for p in patterns if not icd_only or p[:1].isalpha())


def _areas_folder(rules: str | Path | None = None) -> Path:
    return rules_dir(rules) / "areas"


def list_areas(rules: str | Path | None = None) -> list[str]:
    folder = _areas_folder(rules)
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


@functools.lru_cache(maxsize=32)
def _load(path: str) -> Area:
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise AreaError("area file must be a mapping", file=path)
    try:
        return Area.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise AreaError(err["msg"], file=path, field=loc, value=err.get("input", ...)) from None


def load_area(area_id: str, rules: str | Path | None = None) -> Area:
    """Load and validate one area (cached per area file of the rules folder: ``rules``, else
    ``$PLANNER_RULES_DIR``, else the packaged one, resolved on every call). Unknown ids raise :class:`AreaError`
    listing the known ones."""
    path = Path(folder_key(rules_dir(rules))) / "areas" / f"{area_id}.yaml"
    if not path.is_file():
        raise AreaError("unknown area", field="area", value=area_id, expected="one of " + ", ".join(list_areas(rules)))
    return _load(str(path))
