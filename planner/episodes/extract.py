"""Episodes: (t0, regimen, baseline outcome, follow-up outcome, features at t0) from any PatientRecord.

Rules (DESIGN.md, the same in every area):

* t0: every day on which the set of area drugs with doses changes (:mod:`planner.medication_intervals`);
  ``regimen`` is what is active from t0, ``regimen_before`` what was active the day before.
* baseline: the latest outcome value dated in [t0 - 180 d, t0] (a value on t0 itself counts: it is the
  measurement the decision was made on). Several on one day: the last one in the record.
* follow-up: the value closest to t0 + 180 d within [t0 + 60 d, t0 + 365 d] and on or before the next change
  (a value on the next change's day was measured under this regimen, just as a value on t0 is baseline).
  Equally close values: the earlier one. (The windows come from the area's ``outcome`` block.)
* a candidate is dropped, for the first reason that applies: ``no-baseline``; ``overlapping-change`` (the next
  change comes before t0 + 60 d, so no follow-up can belong to this regimen); ``no-follow-up``.
* features: :func:`planner.features.features_at` (data dated on or before t0 only).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Iterable
from typing import Any

import pandas as pd

from ..areas import Area, load_area
from ..medication_intervals import medication_intervals, regimen_changes
from ..record import Frozen, Measurement, PatientRecord, Regimen

__all__ = ["Episode", "EpisodeResult", "extract_episodes", "episodes_frame", "DROP_REASONS"]

DROP_REASONS = ("no-baseline", "overlapping-change", "no-follow-up")


class Episode(Frozen):
    """One regimen change with its baseline and follow-up outcome (JSON round-trips like every hand-off)."""

    patient_id: str
    area: str = ""
    t0: dt.date
    regimen: Regimen
    regimen_before: Regimen
    baseline: float
    baseline_date: dt.date
    followup: float
    followup_date: dt.date
    features: dict[str, float | str | None] = {}


@dataclasses.dataclass(frozen=True)
class EpisodeResult:
    """Episodes of one record, and how many candidates were dropped and why (``dropped``) plus data notes
    (``notes``: undated or entered-in-error area medications)."""

    episodes: list[Episode]
    dropped: Counter
    candidates: int
    notes: Counter = dataclasses.field(default_factory=Counter)


def _baseline(series: tuple[Measurement, ...], t0: dt.date, window: int) -> Measurement | None:
    lo = t0 - dt.timedelta(days=window)
    best = None
    for m in series:
        if m.date > t0:
            break
        if m.date >= lo:
            best = m
    return best


def _followup(
    series: tuple[Measurement, ...], t0: dt.date, aim_days: int, lo_days: int, hi: dt.date
) -> Measurement | None:
    lo = t0 + dt.timedelta(days=lo_days)
    aim = t0 + dt.timedelta(days=aim_days)
    best: Measurement | None = None
    best_key: tuple[int, dt.date, int] | None = None
    for k, m in enumerate(series):
        if m.date < lo:
            continue
        if m.date > hi:
            break
        # closer wins; equally close: the earlier date; several on that date: the later entry
        key = (abs((m.date - aim).days), m.date, -k)
        if best_key is None or key < best_key:
            best, best_key = m, key
    return best


def extract_episodes(record: PatientRecord, area: "Area | str", *, with_features: bool = True) -> EpisodeResult:
    """Every episode of ``record`` in ``area`` and the drop reasons of the other candidates."""
    if isinstance(area, str):
        area = load_area(area)
    from ..features import features_at

    notes: Counter = Counter()
    intervals = medication_intervals(record, area, notes=notes)
    changes = regimen_changes(intervals)
    out = area.outcome
    series = record.observations.get(out.quantity, ())
    dropped: Counter = Counter()
    episodes: list[Episode] = []
    lo_days, hi_days = out.followup_window
    for k, ch in enumerate(changes):
        nxt = changes[k + 1].t0 if k + 1 < len(changes) else None
        base = _baseline(series, ch.t0, out.baseline_window_days)
        if base is None:
            dropped["no-baseline"] += 1
            continue
        if nxt is not None and nxt < ch.t0 + dt.timedelta(days=lo_days):
            dropped["overlapping-change"] += 1
            continue
        hi = ch.t0 + dt.timedelta(days=hi_days)
        if nxt is not None and nxt < hi:
            hi = nxt
        fu = _followup(series, ch.t0, out.followup_days, lo_days, hi)
        if fu is None:
            dropped["no-follow-up"] += 1
            continue
        feats: dict[str, Any] = features_at(record, area, ch.t0, intervals=intervals) if with_features else {}
        episodes.append(
            Episode(
                patient_id=record.patient_id,
                area=area.id,
                t0=ch.t0,
                regimen=ch.after,
                regimen_before=ch.before,
                baseline=base.value,
                baseline_date=base.date,
                followup=fu.value,
                followup_date=fu.date,
                features=feats,
            )
        )
    return EpisodeResult(episodes=episodes, dropped=dropped, candidates=len(changes), notes=notes)


def episodes_frame(
    records: Iterable[PatientRecord], area: "Area | str", *, with_features: bool = True
) -> tuple[pd.DataFrame, Counter]:
    """One row per episode of every record, and the drop reasons summed over records.

    Columns: patient_id, t0, regimen / regimen_before (``Regimen.key()`` text), regimen_json /
    regimen_before_json (the Regimen as JSON), n_drugs, baseline, baseline_date, followup, followup_date,
    then the features (:func:`planner.features.features_at`; a feature named like a column above, i.e.
    ``baseline``, is the same value and is not repeated). The Counter holds the drop reasons plus the
    ``candidates`` and ``episodes`` totals under those keys; data notes (undated or entered-in-error area
    medications) are in ``frame.attrs["notes"]``.
    """
    if isinstance(area, str):
        area = load_area(area)
    rows: list[dict[str, Any]] = []
    total: Counter = Counter()
    notes: Counter = Counter()
    for rec in records:
        res = extract_episodes(rec, area, with_features=with_features)
        total.update(res.dropped)
        notes.update(res.notes)
        total["candidates"] += res.candidates
        total["episodes"] += len(res.episodes)
        for e in res.episodes:
            row: dict[str, Any] = {
                "patient_id": e.patient_id,
                "t0": e.t0,
                "regimen": e.regimen.key(),
                "regimen_before": e.regimen_before.key(),
                "regimen_json": e.regimen.model_dump_json(),
                "regimen_before_json": e.regimen_before.model_dump_json(),
                "n_drugs": len(e.regimen.drugs),
                "baseline": e.baseline,
                "baseline_date": e.baseline_date,
                "followup": e.followup,
                "followup_date": e.followup_date,
            }
            for k, v in e.features.items():
                if k not in row:
                    row[k] = v
            rows.append(row)
    frame = pd.DataFrame(rows)
    for c in ("t0", "baseline_date", "followup_date"):
        if c in frame.columns:
            frame[c] = pd.to_datetime(frame[c])
    if frame.empty:
        frame = pd.DataFrame(
            columns=[
                "patient_id",
                "t0",
                "regimen",
                "regimen_before",
                "regimen_json",
                "regimen_before_json",
                "n_drugs",
                "baseline",
                "baseline_date",
                "followup",
                "followup_date",
            ]
        )
    frame.attrs["notes"] = dict(notes)
    return frame, total
