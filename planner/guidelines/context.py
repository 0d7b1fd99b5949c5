"""What the guideline criteria read about a patient: active condition codes, recent labs, age, and (for
``history`` indications) each past or current course of an area drug with how it went."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Literal

from ..areas import Area, code_matches
from ..record import PatientRecord
from .schema import Criterion, Guidelines, HistoryRules, When

__all__ = ["Course", "PatientContext", "medication_courses"]

Outcome = Literal["not_tolerated", "no_response", "response", "partial", "unknown"]
_MERGE_GAP_DAYS = 7  # two intervals of one drug this close are one course (a dose change or a refill gap)


@dataclasses.dataclass(frozen=True)
class Course:
    """One course of an area drug: start, end (None: still taken on the as-of date), and how it went."""

    ingredient: str
    start: dt.date
    end: dt.date | None
    days: int
    outcome: Outcome
    before: float | None = None  # outcome measure at the start (PHQ-9)
    after: float | None = None  # latest on the drug, at least assess_after_days in
    recorded_adverse: bool = False  # stopped with an adverse-effect reason on the order (statusReason)

    def describe(self, unit: str = "") -> str:
        span = f"{self.days} days" if self.days < 70 else f"{round(self.days / 7)} weeks"
        now = " so far" if self.end is None else ""
        if self.outcome == "not_tolerated":
            why = "recorded as stopped for an adverse effect" if self.recorded_adverse else "possible intolerance"
            return f"{self.ingredient} stopped after {span} ({why})"
        if self.before is not None and self.after is not None:
            u = f" {unit}" if unit and not unit.startswith("{") else ""  # a unit as read (planner.units); raw {x}: none
            word = {"no_response": "no response", "response": "response", "partial": "partial response"}.get(
                self.outcome, self.outcome
            )
            return f"{self.ingredient}: {word} over {span}{now} ({self.before:g} to {self.after:g}{u})"
        return f"{self.ingredient} for {span}{now}"


def medication_courses(record: PatientRecord, area: Area, rules: HistoryRules) -> tuple[Course, ...]:
    """Courses of the area's drugs started before the as-of date, read by the episode interval rules; a request
    that was stopped with no end date (no known duration) is left out."""
    from ..medication_intervals import medication_intervals

    on = record.as_of
    spans: dict[str, list[list[dt.date | None]]] = {}
    for iv in sorted(medication_intervals(record, area), key=lambda i: (i.ingredient, i.start)):
        if iv.start > on or (iv.end is not None and iv.end <= iv.start):
            continue
        end = iv.end if iv.end is not None and iv.end <= on else None
        runs = spans.setdefault(iv.ingredient, [])
        last = runs[-1] if runs else None
        if last is not None and (last[1] is None or (iv.start - last[1]).days <= _MERGE_GAP_DAYS):
            last[1] = None if last[1] is None or end is None else max(last[1], end)
        else:
            runs.append([iv.start, end])
    out = []
    for ingredient, runs in sorted(spans.items()):
        for start, end in runs:
            assert start is not None
            out.append(_classify(record, area, ingredient, start, end, rules))
    return tuple(out)


def _classify(
    record: PatientRecord, area: Area, ingredient: str, start: dt.date, end: dt.date | None, rules: HistoryRules
) -> Course:
    stop = end or record.as_of
    days = (stop - start).days
    if end is not None and _stopped_for(record, ingredient, end, rules.adverse_stop_reasons):
        return Course(ingredient, start, end, days, "not_tolerated", recorded_adverse=True)
    if end is not None and days < rules.early_stop_days:
        return Course(ingredient, start, end, days, "not_tolerated")
    q = area.outcome.quantity
    series = record.series(q)
    before = [m for m in series if start - dt.timedelta(days=rules.baseline_window_days) <= m.date <= start]
    after = [m for m in series if start + dt.timedelta(days=rules.assess_after_days) <= m.date <= stop]
    if not before or not after or days < rules.assess_after_days:
        return Course(ingredient, start, end, days, "unknown")
    b, a = before[-1].value, after[-1].value
    fall = (b - a) / b if b > 0 else 0.0
    if area.outcome.direction == "higher":
        fall = -fall
    if fall >= rules.response_fall:
        outcome: Outcome = "response"
    elif fall < rules.non_response_fall and days >= rules.adequate_trial_days:
        outcome = "no_response"
    else:
        outcome = "partial" if days >= rules.adequate_trial_days else "unknown"
    return Course(ingredient, start, end, days, outcome, before=b, after=a)


def _stopped_for(record: PatientRecord, ingredient: str, end: dt.date, reasons: tuple[str, ...]) -> bool:
    """Whether an order of ``ingredient`` ending on ``end`` gives one of ``reasons`` (a code, or a word in the
    reason's display or text)."""
    if not reasons:
        return False
    return any(
        m.ingredient == ingredient and m.end == end and any(r in x for x in m.status_reason for r in reasons)
        for m in record.medications
        if m.status_reason
    )


@dataclasses.dataclass(frozen=True)
class PatientContext:
    """The facts guideline criteria test, read once per recommendation."""

    record: PatientRecord
    codes: frozenset[str]
    age: float | None
    courses: tuple[Course, ...] = ()

    @classmethod
    def from_record(cls, record: PatientRecord, area: Area, guidelines: Guidelines | None) -> "PatientContext":
        codes = frozenset(
            code for c in record.active_conditions() for code in (c.code, *(k.code for k in c.codings)) if code
        )
        courses: tuple[Course, ...] = ()
        if guidelines is not None and guidelines.history is not None:
            courses = medication_courses(record, area, guidelines.history)
        return cls(record=record, codes=codes, age=record.age(), courses=courses)

    def holds(self, c: Criterion, g: Guidelines) -> bool:
        if c.condition is not None:
            patterns = g.condition_sets[c.condition].codes
            if not any(code_matches(code, patterns) for code in self.codes):
                return False
        if c.lab is not None:
            m = self.record.latest(c.lab, within_days=c.within_days)
            if m is None:
                return False
            if c.below is not None and not m.value < c.below:
                return False
            if c.at_least is not None and not m.value >= c.at_least:
                return False
        if c.age_at_least is not None and (self.age is None or self.age < c.age_at_least):
            return False
        if c.age_below is not None and (self.age is None or self.age >= c.age_below):
            return False
        return True

    def outcome_level(self, area: Area) -> tuple[float, float] | None:
        """The latest outcome value (recent, else the last on record) and the patient's target; None without one."""
        from ..features.row import target_for

        o = area.outcome
        m = self.record.latest(o.quantity, within_days=o.baseline_window_days) or self.record.latest(o.quantity)
        return None if m is None else (m.value, target_for(area, self.record)[0])

    def matches(self, when: When, g: Guidelines) -> bool:
        """Any alternative whose criteria all hold (an empty ``when`` matches everyone)."""
        return not when or any(all(self.holds(c, g) for c in alt) for alt in when)
