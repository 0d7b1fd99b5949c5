"""Doses as prescribed: the one function every renderer calls to write a dose.

The model and the safety rules reason in mg/day. A clinician writes "insulin glargine 40 units once daily",
"semaglutide 2 mg once weekly", "metformin 1000 mg twice daily". Each drug's route, unit and schedule are data
(``rules/prescribing.yaml``); :func:`dosage` turns an ingredient and its mg/day into a :class:`Dosage`
(amount per administration, unit, times per period, route, text), and :func:`dose_text` is what tables,
HTML, rationales and FHIR ``dosageInstruction.text`` print::

    dosage("semaglutide", 2 / 7).text        -> "2 mg once weekly"
    dosage("insulin glargine", 1.456).text   -> "40 units once daily"
    dose_text(plan_drug)                      -> the same, from a PlanDrug (its ``dosage`` when set)

A drug with no entry in the file keeps the model's unit and says so ("20 mg per day (no prescribing form in
rules)"); a test checks that every formulary drug of every shipped area has an entry.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from .errors import RuleError
from .record import Frozen
from .rule_files import read_yaml, rules_dir

__all__ = ["Dosage", "DrugForm", "Prescribing", "load_prescribing", "dosage", "dose_text", "PER_DAY_WORDS"]

# how "n times a day" / "once weekly" read (words are output wording, not clinical data)
PER_DAY_WORDS = {1: "once daily", 2: "twice daily", 3: "three times daily", 4: "four times daily"}
_MEMO_MAX = 100_000  # dosages remembered per prescribing table (bounded memory on any cohort)


class Dosage(Frozen):
    """One drug's dose as prescribed (what every output writes)."""

    amount: float  # per administration, in ``unit``
    unit: str  # display unit: "mg" or "units"
    ucum: str  # UCUM code of the unit: "mg", "[IU]"
    times: int  # administrations per period
    period: Literal["day", "week"]
    route: str  # e.g. "oral", "subcutaneous"
    route_code: str | None = None  # SNOMED CT route of administration
    injection: bool = False
    text: str  # e.g. "1000 mg twice daily", "2 mg once weekly", "40 units once daily"


class _M(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Route(_M):
    code: str
    display: str
    injection: bool = False


class UnitSpec(_M):
    ucum: str
    display: str


class DrugForm(_M):
    route: str
    unit: str = "mg"
    mg_per_unit: float | None = Field(default=None, gt=0)
    period: Literal["day", "week"] = "day"
    times_per_day: int = Field(default=1, ge=1, le=4)
    divide_above_mg_day: float | None = Field(default=None, gt=0)
    divided_times_per_day: int = Field(default=2, ge=2, le=4)
    strengths: tuple[float, ...] = ()
    cost_tier: int = Field(default=1, ge=1, le=3)
    source: str

    @model_validator(mode="after")
    def _check(self) -> "DrugForm":
        if self.unit != "mg" and self.mg_per_unit is None:
            raise ValueError(f"unit {self.unit!r} needs mg_per_unit")
        if self.period == "week" and (self.times_per_day != 1 or self.divide_above_mg_day is not None):
            raise ValueError("a weekly drug has one administration a week (no times_per_day or dividing)")
        return self

    def times_for(self, mg_day: float) -> int:
        if self.period == "week":
            return 1
        if self.divide_above_mg_day is not None and mg_day > self.divide_above_mg_day * (1 + 1e-9):
            return self.divided_times_per_day
        return self.times_per_day


class Prescribing(_M):
    id: str
    version: str
    source: str
    routes: dict[str, Route]
    units: dict[str, UnitSpec]
    drugs: dict[str, DrugForm]
    snap_to_strength: float = Field(ge=0, lt=0.5)  # relative distance within which a dose is written as a strength
    # dosage() per (ingredient, mg/day) of this table: every candidate of every patient asks (Dosage is frozen)
    _memo: dict[tuple[str, float], "Dosage"] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _refs(self) -> "Prescribing":
        for name, form in self.drugs.items():
            if form.route not in self.routes:
                raise ValueError(f"drug {name!r}: unknown route {form.route!r}")
            if form.unit not in self.units:
                raise ValueError(f"drug {name!r}: unknown unit {form.unit!r}")
        return self

    def form(self, ingredient: str) -> DrugForm | None:
        return self.drugs.get(ingredient)

    def is_injection(self, ingredient: str) -> bool:
        form = self.drugs.get(ingredient)
        return bool(form and self.routes[form.route].injection)

    def administrations_per_day(self, ingredient: str, mg_day: float | None) -> float:
        """Doses a day (a weekly drug: 1/7); unknown drug or dose: 1."""
        form = self.drugs.get(ingredient)
        if form is None:
            return 1.0
        if form.period == "week":
            return 1.0 / 7.0
        return float(form.times_for(mg_day or 0.0))


@functools.lru_cache(maxsize=8)
def _load(path: str) -> Prescribing:
    raw = read_yaml(path)
    try:
        return Prescribing.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise RuleError(
            err["msg"], file=path, field=".".join(str(x) for x in err["loc"]), value=err.get("input", ...)
        ) from None


def load_prescribing(rules: str | Path | None = None) -> Prescribing:
    """The validated ``rules/prescribing.yaml`` (cached; the folder is resolved once per ``rules`` and
    ``$PLANNER_RULES_DIR``, since every dose of every plan asks)."""
    return _resolved(None if rules is None else str(rules), os.environ.get("PLANNER_RULES_DIR"))


@functools.lru_cache(maxsize=16)
def _resolved(rules: str | None, env: str | None) -> Prescribing:  # env: part of the cache key only
    return _load(str(rules_dir(rules) / "prescribing.yaml"))


def _num(x: float) -> str:
    """A dose amount without float noise: 3.125 -> '3.125', 1000.0 -> '1000', 0.7500001 -> '0.75'."""
    return f"{round(x, 3):g}" if abs(x) < 1e5 else f"{x:.0f}"


def _snap(x: float, strengths: tuple[float, ...], within: float) -> float:
    for s in strengths:
        if abs(x - s) <= within * x:  # within this share of the computed dose
            return s
    return round(x, 3)


def dosage(
    ingredient: str, dose_mg_day: float | None, *, rules: str | Path | None = None, forms: Prescribing | None = None
) -> Dosage | None:
    """``ingredient`` at ``dose_mg_day`` written as prescribed; None when the dose is unknown. ``forms``: the
    prescribing table already loaded (else it is loaded from ``rules``)."""
    if dose_mg_day is None or not math.isfinite(dose_mg_day) or dose_mg_day <= 0:
        return None
    p = forms if forms is not None else load_prescribing(rules)
    key = (ingredient, float(dose_mg_day))
    hit = p._memo.get(key)
    if hit is None:
        hit = _dosage(p, ingredient, key[1])
        if len(p._memo) < _MEMO_MAX:
            p._memo[key] = hit
    return hit


def _dosage(p: Prescribing, ingredient: str, dose_mg_day: float) -> Dosage:
    form = p.form(ingredient)
    if form is None:
        return Dosage(
            amount=round(dose_mg_day, 3),
            unit="mg",
            ucum="mg",
            times=1,
            period="day",
            route="unknown",
            text=f"{_num(dose_mg_day)} mg per day (no prescribing form in rules)",
        )
    unit = p.units[form.unit]
    route = p.routes[form.route]
    per_mg = form.mg_per_unit or 1.0
    if form.period == "week":
        amount = _snap(dose_mg_day * 7.0 / per_mg, form.strengths, p.snap_to_strength)
        times, when = 1, "once weekly"
    else:
        times = form.times_for(dose_mg_day)
        amount = _snap(dose_mg_day / per_mg / times, form.strengths, p.snap_to_strength)
        when = PER_DAY_WORDS.get(times, f"{times} times daily")
    if form.unit != "mg":
        amount = float(round(amount))  # insulin: whole units
    return Dosage(
        amount=amount,
        unit=unit.display,
        ucum=unit.ucum,
        times=times,
        period=form.period,
        route=form.route,
        route_code=route.code,
        injection=route.injection,
        text=f"{_num(amount)} {unit.display} {when}",
    )


def dose_text(drug: Any, *, rules: str | Path | None = None) -> str:
    """The dose of a plan drug (anything with ``drug`` and ``dose_mg_day``, and optionally ``dosage``) as
    prescribed, or "" when its dose is unknown. The one formatter tables, HTML, rationales and FHIR use."""
    d = getattr(drug, "dosage", None)
    if d is None:
        d = dosage(drug.drug, drug.dose_mg_day, rules=rules)
    return "" if d is None else d.text
