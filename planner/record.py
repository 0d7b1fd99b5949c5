"""The typed objects handed between stages.

Every model here is a frozen pydantic model that round-trips through JSON
(``Model.model_validate_json(m.model_dump_json()) == m``), so any stage can be run and tested from a saved
fixture. Collections are tuples so that records are hashable and immutable.

Conventions
-----------
* Dates are :class:`datetime.date` (the engine reasons in days).
* Medications are resolved to ingredient RxCUIs; doses are mg/day where derivable, else ``None``.
* Observations are kept per *quantity* (``hba1c``, ``ldl``, ``egfr``, ``sbp``, ... as named in
  ``rules/codes/quantities.yaml``) in the quantity's one canonical UCUM unit, sorted by date.
* Pharmacogenomic results are kept as reported, one :class:`PgxResult` per source statement; interpretation
  (diplotype -> phenotype, conflicts, phenoconversion) belongs to :mod:`planner.safety`.
  A gene with no result is *not tested*: it is simply absent here, never filled in as normal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = [
    "Frozen",
    "Coding",
    "Condition",
    "Medication",
    "Allergy",
    "Measurement",
    "PgxResult",
    "DataWarning",
    "PatientRecord",
    "DrugDose",
    "Regimen",
    "Finding",
    "Findings",
    "FindingTuple",
    "Action",
    "register_view",
]


# name ("record-html", "finding-html", "findings-html") -> view, registered by planner.render when it is imported
# (planner.render depends on this module, never the reverse; ``import planner.render`` or ``planner.Planner``)
_VIEWS: dict[str, Callable[[Any], Any]] = {}


def register_view(name: str, view: Callable[[Any], Any]) -> None:
    """Register how an object of this module shows itself in a notebook (see :mod:`planner.render`)."""
    _VIEWS[name] = view


def _view(name: str, obj: object) -> str | None:
    view = _VIEWS.get(name)
    return None if view is None else str(view(obj))


class Frozen(BaseModel):
    """Base of every hand-off model: immutable, no unknown fields, JSON round-trip."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Coding(Frozen):
    system: str | None = None
    code: str | None = None
    display: str | None = None


class Condition(Frozen):
    id: str | None = None
    code: str | None = None
    system: str | None = None  # canonical URI, e.g. http://snomed.info/sct
    display: str | None = None
    codings: tuple[Coding, ...] = ()  # every coding the resource gave (SNOMED and ICD-10 may both be present)
    onset: dt.date | None = None
    abatement: dt.date | None = None
    recorded: dt.date | None = None
    clinical_status: str | None = None  # active | recurrence | relapse | inactive | remission | resolved
    verification_status: str | None = None
    abated: bool = False  # abatement stated without a date (abatementString, or abatementAge without a birth date)

    def is_active(self, on: dt.date) -> bool:
        """Active on a date: started (or undated) and not abated, and not marked inactive/resolved."""
        if self.verification_status in {"refuted", "entered-in-error"}:
            return False
        if self.abated and self.abatement is None:
            return False
        start = self.onset or self.recorded
        if start is not None and start > on:
            return False
        if self.abatement is not None and self.abatement <= on:
            return False
        if self.abatement is None and self.clinical_status in {"inactive", "remission", "resolved"}:
            return False
        return True


class Medication(Frozen):
    id: str | None = None
    resource_type: Literal["MedicationRequest", "MedicationStatement"] = "MedicationRequest"
    rxcui: str | None = None  # ingredient RxCUI; None when it could not be resolved (a DataWarning says so)
    ingredient: str | None = None  # ingredient name, lower case (e.g. "metformin")
    source_code: str | None = None  # the code as given (clinical drug, branded drug, ...)
    source_display: str | None = None
    strength_mg: float | None = None  # per unit (tablet/capsule/mL as labelled)
    dose_mg_day: float | None = None
    status: str | None = None  # active | completed | stopped | cancelled | entered-in-error | on-hold | ...
    intent: str | None = None
    start: dt.date | None = None  # authoredOn / effectivePeriod.start
    end: dt.date | None = None  # validityPeriod.end / effectivePeriod.end, as given (episodes refine it)
    do_not_perform: bool = False  # MedicationRequest.doNotPerform: an order NOT to give the drug
    as_needed: bool = False
    dose_assumed: bool = False  # dose_mg_day rests on an assumption (one unit per dose, ...): a DataWarning says which
    dose_range_mg_day: tuple[float, float] | None = None  # from doseRange: (low, high); dose_mg_day is then None
    # statusReason (why it was stopped): each coding's code and the lower-case display and text, as given
    status_reason: tuple[str, ...] = ()

    def is_active(self, on: dt.date) -> bool:
        # voided, cancelled, draft, not-taken and do-not-perform orders are never current, whatever the dates say
        if self.do_not_perform or self.status in {"entered-in-error", "cancelled", "draft", "not-taken"}:
            return False
        if self.status in {"stopped", "completed"}:
            if self.end is None or self.end <= on:
                return False
        if self.start is not None and self.start > on:
            return False
        if self.end is not None and self.end <= on:
            return False
        return True


class Allergy(Frozen):
    id: str | None = None
    code: str | None = None
    system: str | None = None
    display: str | None = None
    rxcui: str | None = None  # ingredient RxCUI when the substance resolves to one
    ingredient: str | None = None
    category: tuple[str, ...] = ()  # food | medication | environment | biologic
    criticality: str | None = None
    clinical_status: str | None = None
    verification_status: str | None = None
    reactions: tuple[str, ...] = ()  # manifestation displays
    recorded: dt.date | None = None


class Measurement(Frozen):
    date: dt.date
    value: float
    unit: str  # the canonical unit of the quantity
    loinc: str  # the code the resource carried
    source: str | None = None  # "Observation/<id>"; never patient identifiers
    original_value: float | None = None  # before unit conversion, when converted
    original_unit: str | None = None


PgxSource = Literal[
    "fhir-genotype",  # Genomics Reporting IG genotype Observation (84413-4)
    "fhir-implication",  # Genomics Reporting IG therapeutic-implication / metabolizer Observation
    "fhir-phenotype-stu1",  # STU1 53040-2 with LA answer codes
    "pharmcat-json",  # PharmCAT phenotype.json
    "pharmcat-tsv",  # PharmCAT outside-call TSV
    "fhir-hla",  # HLA allele status
]


class PgxResult(Frozen):
    """One pharmacogenomic statement about one gene, as the source made it (not interpreted)."""

    gene: str  # HGNC symbol, e.g. CYP2C19, HLA-B
    diplotype: str | None = None  # e.g. "*1/*2" (gene prefix removed)
    phenotype: str | None = None  # CPIC term, e.g. "Poor Metabolizer", "Decreased Function"
    activity_score: float | None = None
    allele: str | None = None  # HLA allele, e.g. "*57:01"
    allele_status: Literal["positive", "negative"] | None = None
    source: PgxSource
    source_ref: str | None = None  # "Observation/<id>" or file name
    date: dt.date | None = None


class DataWarning(Frozen):
    """Something in the record planner could not use, or used with an assumption."""

    code: str  # short machine code, e.g. "unresolved-medication", "dose-not-derivable", "resource-skipped"
    message: str  # why, in one sentence (never a patient's name, birth date or raw JSON)
    resource: str | None = None  # "MedicationRequest/<id>"
    field: str | None = None  # e.g. "dosageInstruction[0].timing"
    value: str | None = None  # the offending value, shortened (never for Patient demographics)
    quantity: str | None = None  # the quantity a dropped measurement was of (e.g. "hba1c"), when it was one
    date: dt.date | None = None  # the date of the fact the warning is about, when it has one
    gene: str | None = None  # the gene a pharmacogenomic result that could not be read is about, when it names one


class PatientRecord(Frozen):
    """One patient's normalized record: what every later stage reads."""

    patient_id: str
    birth_date: dt.date | None = None
    sex: str | None = None  # administrative gender: male | female | other | unknown
    deceased: dt.date | None = None
    deceased_boolean: bool = False  # Patient.deceasedBoolean true (no date given)
    as_of: dt.date
    conditions: tuple[Condition, ...] = ()
    medications: tuple[Medication, ...] = ()
    allergies: tuple[Allergy, ...] = ()
    observations: dict[str, tuple[Measurement, ...]] = Field(default_factory=dict)
    pgx: tuple[PgxResult, ...] = ()
    warnings: tuple[DataWarning, ...] = ()

    # ---- small, pure helpers every stage uses -------------------------------------------------------
    @property
    def is_deceased(self) -> bool:
        """The patient is recorded as deceased (a date or ``deceasedBoolean: true``): no plans are made."""
        return self.deceased_boolean or (self.deceased is not None and self.deceased <= self.as_of)

    def age(self, on: dt.date | None = None) -> float | None:
        if self.birth_date is None:
            return None
        on = on or self.as_of
        return (on - self.birth_date).days / 365.25

    def series(self, quantity: str, *, until: dt.date | None = None) -> tuple[Measurement, ...]:
        """Measurements of one quantity dated on or before ``until`` (default: ``as_of``)."""
        until = until or self.as_of
        return tuple(m for m in self.observations.get(quantity, ()) if m.date <= until)

    def latest(
        self, quantity: str, *, until: dt.date | None = None, within_days: int | None = None
    ) -> Measurement | None:
        values = self.series(quantity, until=until)
        if not values:
            return None
        last = values[-1]
        if within_days is not None and ((until or self.as_of) - last.date).days > within_days:
            return None
        return last

    def active_medications(self, on: dt.date | None = None) -> tuple[Medication, ...]:
        on = on or self.as_of
        return tuple(m for m in self.medications if m.is_active(on))

    def active_conditions(self, on: dt.date | None = None) -> tuple[Condition, ...]:
        on = on or self.as_of
        return tuple(c for c in self.conditions if c.is_active(on))

    def pgx_for(self, gene: str) -> tuple[PgxResult, ...]:
        return tuple(p for p in self.pgx if p.gene == gene)

    def _repr_html_(self) -> str | None:  # Jupyter: a readable summary; None: the plain repr
        return _view("record-html", self)


# ---- regimens and safety findings: the contract between model, safety layer and ranking -------------------


class DrugDose(Frozen):
    """One drug of a regimen, at an ingredient level."""

    ingredient: str  # lower-case ingredient name, e.g. "metformin"
    rxcui: str  # ingredient RxCUI, e.g. "6809"
    dose_mg_day: float | None = None  # None: dose not specified (e.g. a current med whose dose is unknown)
    drug_class: str | None = None  # class id from the area file, when known


class Regimen(Frozen):
    """A set of drugs with doses. Build with :meth:`of`, which sorts drugs so equal regimens compare equal."""

    drugs: tuple[DrugDose, ...] = ()

    @classmethod
    def of(cls, drugs: "list[DrugDose] | tuple[DrugDose, ...]") -> "Regimen":
        return cls(drugs=tuple(sorted(drugs, key=lambda d: d.ingredient)))

    # key() and ingredients are asked for thousands of times a batch: each is worked out once per regimen and kept
    # in the instance dict under a "_" name (not a field: never dumped, iterated or hashed), with the drugs tuple
    # it was worked out from (a copy with other drugs, by model_copy or a dict copy, works it out again)
    @property
    def ingredients(self) -> tuple[str, ...]:
        got = self.__dict__.get("_ingredients")
        if got is None or got[0] is not self.drugs:
            got = self.__dict__["_ingredients"] = (self.drugs, tuple(d.ingredient for d in self.drugs))
        return got[1]

    def key(self) -> str:
        """Stable text key, e.g. ``"metformin@2000+sitagliptin@100"`` (``"none"`` for no drug)."""
        got = self.__dict__.get("_key")
        if got is None or got[0] is not self.drugs:
            text = (
                "+".join(d.ingredient + ("" if d.dose_mg_day is None else f"@{d.dose_mg_day:g}") for d in self.drugs)
                if self.drugs
                else "none"
            )
            got = self.__dict__["_key"] = (self.drugs, text)
        return got[1]

    def dose_of(self, ingredient: str) -> float | None:
        for d in self.drugs:
            if d.ingredient == ingredient:
                return d.dose_mg_day
        return None


Action = Literal["exclude", "adjust_dose", "caution", "info"]

FindingKind = Literal[
    "gene-drug",
    "drug-drug",
    "drug-allergy",
    "drug-condition",
    "drug-lab",
    "duplicate-therapy",
    "max-dose",
    "data-gap",
]


class Finding(Frozen):
    """One rule that fired for a patient and a regimen (or the current medications).

    ``exclude`` removes the regimen; ``adjust_dose`` changes ``target_drug``'s dose to ``adjusted_dose_mg_day``
    (computed from ``dose_factor`` or capped at ``max_dose_mg_day``); ``caution`` and ``info`` inform.
    """

    rule_id: str
    rule_version: str
    kind: FindingKind
    action: Action
    strength: str | None = None  # CPIC classification (Strong/Moderate/Optional) or equivalent
    message: str  # one sentence, <= 140 characters, fit for a CDS card
    source: str  # guideline URL, PMID or label section
    data_version: str | None = None
    drugs: tuple[str, ...] = ()  # ingredients involved
    genes: tuple[str, ...] = ()  # genes involved
    phenotype: str | None = None  # effective phenotype / lookup key used (says when phenoconverted)
    target_drug: str | None = None  # the drug an exclude/adjust_dose applies to
    dose_factor: float | None = None
    max_dose_mg_day: float | None = None
    adjusted_dose_mg_day: float | None = None
    alternatives: tuple[str, ...] = ()
    plan_adds: tuple[str, ...] = ()  # of ``drugs``, those the screened plan starts (not currently taken)

    def _repr_html_(self) -> str | None:  # Jupyter
        return _view("finding-html", self)


class Findings(tuple[Finding, ...]):
    """A tuple of findings that renders as a table in Jupyter (``Findings(ruleset.check(record))``)."""

    __slots__ = ()

    def _repr_html_(self) -> str | None:
        return _view("findings-html", self)


# a model field of findings: validated as tuple[Finding, ...], held as Findings (compares equal to the tuple)
FindingTuple = Annotated[tuple[Finding, ...], AfterValidator(Findings)]
