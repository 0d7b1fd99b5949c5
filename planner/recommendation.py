"""The output every surface renders: :class:`Recommendation`.

A frozen pydantic model in the shape DESIGN.md gives (plus a little more), which round-trips through JSON.
Rendering (JSON, FHIR, terminal table, HTML, plot) lives in :mod:`planner.render`, which depends on this
module and never the reverse: the notebook hooks (``_repr_html_``, ``plot``) call the views that
:mod:`planner.render` registers with :func:`register_view` when it is imported (``planner.Planner`` and
``planner.Recommendation`` import it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Literal

from .dosing import Dosage
from .record import Findings, FindingTuple, Frozen

__all__ = [
    "OutcomeSummary",
    "PlanDrug",
    "Predicted",
    "Plan",
    "IndicationStatus",
    "Tradeoff",
    "ExcludedRegimen",
    "DataGap",
    "RecordWarning",
    "Provenance",
    "Recommendation",
    "register_view",
]

# name ("html", "plot") -> function of a Recommendation, registered by planner.render
_VIEWS: dict[str, Callable[..., Any]] = {}


def register_view(name: str, view: Callable[..., Any]) -> None:
    """Register how a :class:`Recommendation` shows itself (``html``: notebook HTML; ``plot``: matplotlib)."""
    _VIEWS[name] = view


Change = Literal["continue", "add", "switch", "dose-change", "stop"]


class OutcomeSummary(Frozen):
    quantity: str
    loinc: str
    unit: str  # UCUM code (machine-readable)
    unit_display: str = ""  # the unit as a clinician reads it (rules/codes/units.yaml: mm[Hg] -> mmHg)
    direction: Literal["lower", "higher"]
    baseline: float | None
    baseline_date: dt.date | None
    target: float
    target_label: str = ""


class PlanDrug(Frozen):
    drug: str  # ingredient
    rxnorm: str  # ingredient RxCUI
    drug_class: str | None = None
    dose_mg_day: float | None = None
    change: Change
    previous_dose_mg_day: float | None = None
    dose_adjusted_by: str | None = None  # rule id of an adjust_dose finding that set this dose
    dosage: Dosage | None = None  # the dose as prescribed (unit, schedule, route; planner.dosing), when known


class Predicted(Frozen):
    """Predicted follow-up outcome of a regimen (at about ``followup_days`` after starting it).

    ``mean``, ``lower`` and ``upper`` describe the patient's *expected* outcome (model uncertainty, the
    interval checked for coverage against simulated truth); ``obs_lower``/``obs_upper`` widen it by the
    visit-to-visit noise of a single new measurement.
    """

    mean: float
    lower: float
    upper: float
    level: float
    obs_lower: float
    obs_upper: float
    change_from_baseline: float | None = None
    quantiles: tuple[float, ...] = ()  # predictive 5%, 10%, ..., 95% (for plots)


class IndicationStatus(Frozen):
    """A guideline indication that applies to the patient, and whether this plan meets it."""

    id: str  # e.g. "t2d.sglt2i-heart-failure" (rules/guidelines/<area>.yaml)
    label: str
    met: bool
    message: str  # why met / not met, one sentence
    strength: str = ""
    source: str = ""


class Tradeoff(Frozen):
    """One term of a plan's utility (rules/ranking.yaml): the value behind it and what it adds to the utility."""

    term: (
        str  # "outcome:p_target", "outcome:shortfall", "burden", "secondary:<id>", "indication:<id>", "preference:<id>"
    )
    label: str
    value: float | None = None  # expected value of the measure (probability, kg, risk, count)
    unit: str = ""
    utility: float  # mean contribution to the plan's utility (negative: a cost)


class Plan(Frozen):
    rank: int
    key: str
    regimen: tuple[PlanDrug, ...]
    stopped: tuple[PlanDrug, ...] = ()  # current area drugs this plan stops
    predicted: Predicted
    p_target: float
    p_best: float
    utility: float
    findings: FindingTuple = Findings()
    rationale: str
    indications: tuple[IndicationStatus, ...] = ()  # the guideline indications that apply, met or not
    tradeoffs: tuple[Tradeoff, ...] = ()  # the plan's utility, term by term
    rank_without_preferences: int | None = None  # where the plan ranks when the patient's preferences are ignored


class ExcludedRegimen(Frozen):
    key: str
    regimen: tuple[PlanDrug, ...]
    findings: FindingTuple


class DataGap(Frozen):
    code: str  # e.g. "no-recent-outcome", "gene-not-tested", "dose-unknown", "lab-missing"
    message: str
    gene: str | None = None
    quantity: str | None = None
    suggestion: str | None = None


class RecordWarning(Frozen):
    """A data-quality warning on the record (:class:`planner.record.DataWarning`) as ``planner inspect`` lists it:
    something in the record that could not be used, or was used with an assumption. Only the code, the resource
    reference, the field and the message travel (not the warning's value or date fields), but a few messages quote
    the result themselves (``implausible-value``: its date and value; ``value-with-comparator``: its bound), so
    these stay in the recommendation (output) and never enter the de-identified audit or a log."""

    code: str  # e.g. "status-reason-unreadable", "resource-skipped", "pgx-unreadable"
    message: str
    resource: str | None = None  # "MedicationRequest/<id>", as the input named it
    field: str | None = None  # e.g. "statusReason"


class Provenance(Frozen):
    planner_version: str
    rules_version: str
    area_version: str
    model: str
    seed: int
    as_of: dt.date
    num_samples: int
    candidates_considered: int


class Recommendation(Frozen):
    patient_id: str | None  # only what the caller gave; None when identifiers are withheld
    area: str
    area_name: str
    outcome: OutcomeSummary
    current_regimen: tuple[PlanDrug, ...] = ()
    plans: tuple[Plan, ...]
    excluded: tuple[ExcludedRegimen, ...] = ()
    current_findings: FindingTuple = Findings()  # held as record.Findings: renders as a table in Jupyter
    data_gaps: tuple[DataGap, ...] = ()
    record_warnings: tuple[RecordWarning, ...] = ()  # the record's data-quality warnings (planner inspect lists them)
    preferences: tuple[str, ...] = ()  # patient preferences the ranking used (rules/ranking.yaml preferences)
    provenance: Provenance

    def to_json(self, *, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)

    def _repr_html_(self) -> str | None:  # Jupyter; None: the notebook falls back to the plain repr
        view = _VIEWS.get("html")
        return None if view is None else str(view(self))

    def plot(self, ax: Any = None) -> Any:
        """The plans' predicted distributions against the target (matplotlib Axes)."""
        view = _VIEWS.get("plot")
        if view is None:
            from .errors import ConfigError

            raise ConfigError("no plot renderer registered", field="plot", expected="import planner.render first")
        return view(self, ax=ax)
