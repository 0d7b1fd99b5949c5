"""Medication activity intervals and regimen changes, by the episode rules of DESIGN.md.

* A medication is active from its start (``authoredOn`` / ``effectivePeriod.start``) up to, not including, the
  first of: its own end (``dispenseRequest.validityPeriod.end`` / ``effectivePeriod.end``) and the start of
  the next request for the same ingredient (a dose change). Two requests for one ingredient on the same day:
  the later one in the record supersedes the earlier.
* A request with status ``stopped`` or ``cancelled`` and no end date ends at its own start (never active).
  ``entered-in-error`` requests are void whatever their dates (a stricter reading of the same rule: an
  erroneous entry is never evidence of a drug taken).
* Only the area's formulary drugs count (matched by ingredient RxCUI, else ingredient name). Undated requests
  cannot be placed in time and are skipped (counted as ``undated-medication``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter

from .areas import Area
from .record import DrugDose, Medication, PatientRecord, Regimen

__all__ = ["Interval", "medication_intervals", "regimen_at", "regimen_on", "regimen_changes", "Change"]

_ENDS_AT_START = {"stopped", "cancelled"}
_VOID = {"entered-in-error"}


@dataclasses.dataclass(frozen=True)
class Interval:
    """One area drug at one dose, active on days ``start <= d < end`` (``end`` None: still active)."""

    ingredient: str
    rxcui: str
    drug_class: str
    dose_mg_day: float | None
    start: dt.date
    end: dt.date | None
    source: str | None = None

    def active(self, day: dt.date) -> bool:
        return self.start <= day and (self.end is None or day < self.end)


@dataclasses.dataclass(frozen=True)
class Change:
    """A day on which the area regimen (drugs with doses) changes."""

    t0: dt.date
    before: Regimen
    after: Regimen


def _area_entry(area: Area, med: Medication):  # noqa: ANN202 - DrugEntry | None
    by_rxcui = {d.rxcui: d for d in area.formulary}
    if med.rxcui and med.rxcui in by_rxcui:
        return by_rxcui[med.rxcui]
    if med.ingredient:
        for d in area.formulary:
            if d.ingredient == med.ingredient:
                return d
    return None


def medication_intervals(record: PatientRecord, area: Area, *, notes: Counter | None = None) -> list[Interval]:
    """Non-empty activity intervals of the record's area drugs, sorted by (start, ingredient)."""
    groups: dict[str, list[tuple[dt.date, int, Medication]]] = {}
    entries = {}
    for k, med in enumerate(record.medications):
        entry = _area_entry(area, med)
        if entry is None:
            continue
        if med.status in _VOID:
            if notes is not None:
                notes["entered-in-error-medication"] += 1
            continue
        if med.start is None:
            if notes is not None:
                notes["undated-medication"] += 1
            continue
        entries[entry.ingredient] = entry
        groups.setdefault(entry.ingredient, []).append((med.start, k, med))
    out: list[Interval] = []
    for ing, items in groups.items():
        items.sort(key=lambda x: (x[0], x[1]))
        entry = entries[ing]
        for j, (start, _, med) in enumerate(items):
            ends = []
            if med.end is not None:
                ends.append(med.end)
            elif med.status in _ENDS_AT_START:
                ends.append(start)
            if j + 1 < len(items):
                ends.append(items[j + 1][0])
            end = min(ends) if ends else None
            if end is not None and end <= start:
                continue
            out.append(
                Interval(
                    ingredient=ing,
                    rxcui=entry.rxcui,
                    drug_class=entry.drug_class,
                    dose_mg_day=med.dose_mg_day,
                    start=start,
                    end=end,
                    source=f"{med.resource_type}/{med.id}" if med.id else None,
                )
            )
    out.sort(key=lambda iv: (iv.start, iv.ingredient))
    return out


def regimen_at(intervals: list[Interval], day: dt.date) -> Regimen:
    """The area drugs (with doses) of ``intervals`` active on ``day``."""
    return Regimen.of(
        [
            DrugDose(ingredient=iv.ingredient, rxcui=iv.rxcui, dose_mg_day=iv.dose_mg_day, drug_class=iv.drug_class)
            for iv in intervals
            if iv.active(day)
        ]
    )


def regimen_on(record: PatientRecord, area: Area, day: dt.date) -> Regimen:
    """The area drugs (with doses) active on ``day``."""
    return regimen_at(medication_intervals(record, area), day)


def regimen_changes(intervals: list[Interval]) -> list[Change]:
    """Every day on which the set of active area drugs with doses changes, in date order."""
    days = sorted({iv.start for iv in intervals} | {iv.end for iv in intervals if iv.end is not None})
    changes: list[Change] = []
    prev = Regimen()
    for day in days:
        cur = regimen_at(intervals, day)
        if cur != prev:
            changes.append(Change(t0=day, before=prev, after=cur))
            prev = cur
    return changes
