"""Many patients through one :class:`~planner.api.Planner`: ``Planner.recommend_many`` and the cohort helpers.

Rules, areas, ranking weights and model draws are loaded once (by the Planner) and reused for every record
of the batch; records are read once each. Every recommendation is the one ``Planner.recommend`` gives for the
same record, area, top and seed (``tests/test_cohort_batch.py`` compares them field by field).

:func:`predict_regimens` gives the model's joint draws for regimens the ranking did not choose (the cohort
evaluation scores the *observed* regimen against the observed follow-up), with exactly the features, current
regimen and baseline handling the recommendation uses; :func:`predict_regimens_many` those of many records in one
sampler call.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .errors import ConfigError
from .record import PatientRecord, Regimen

if TYPE_CHECKING:  # pragma: no cover
    from .api import Planner, Source
    from .recommendation import Recommendation

__all__ = ["Job", "recommend_many", "recommend_jobs", "predict_regimens", "predict_regimens_many", "record_at"]


def recommend_many(
    planner: "Planner",
    sources: Sequence["Source"],
    *,
    area: str | None = None,
    as_of: dt.date | str | None = None,
    top: int = 5,
    seed: int = 0,
    errors: str = "raise",
    preferences: str | Sequence[str] | None = None,
) -> list["Recommendation | Exception"]:
    """One recommendation per source, in order, as ``planner.recommend`` would give each.

    ``errors="raise"``: the first bad source raises (as ``recommend`` would); ``"return"``: the exception
    takes that source's place in the list and the others go on (one bad patient never sinks a batch)."""
    if errors not in ("raise", "return"):
        raise ConfigError("unknown errors mode", field="errors", value=errors, expected='"raise" or "return"')
    prefs = planner.ranking.parse_preferences(preferences)
    out: list[Any] = [None] * len(sources)
    jobs: list[Job] = []
    at: list[int] = []
    failed: Exception | None = None
    for i, src in enumerate(sources):
        try:
            record, digest = planner.read(src, as_of=as_of)
            jobs.append(Job(record, planner.area_of(record, area), digest))
            at.append(i)
        except Exception as exc:  # noqa: BLE001 - one bad patient never sinks a batch
            if errors == "raise":  # the sources before it are still recommended (and audited), as one at a time
                failed = exc
                break
            out[i] = exc
    got = recommend_jobs(planner, jobs, top=top, seed=seed, preferences=prefs, fail_fast=errors == "raise")
    for i, rec in zip(at, got):
        out[i] = rec
    if failed is not None:
        raise failed
    return out


@dataclasses.dataclass(frozen=True)
class Job:
    """One recommendation to make: the record (as of its date), the area and the input's digest (audit)."""

    record: PatientRecord
    area: str
    digest: str


def recommend_jobs(
    planner: "Planner",
    jobs: Sequence[Job],
    *,
    top: int,
    seed: int,
    preferences: Sequence[str] = (),
    fail_fast: bool = False,
    audit: bool = True,
) -> list["Recommendation | Exception"]:
    """The pipeline for a batch: features, candidates and screening per record; posterior draws of every
    record of an area in one sampler call (:func:`planner.stages.predict_many`, per-record random streams);
    then the ranked report per record. ``Planner.recommend`` is a batch of one. A record that fails gets its
    exception in its place (``fail_fast``: the first failure is raised, in input order, as one at a time).
    ``audit=False``: the caller writes the planner's audit entries itself."""
    from . import stages
    from .areas import load_area

    _check_int("top", top, 1, 10_000)
    _check_int("seed", seed, 0, 2**32 - 1)
    out: list[Any] = [None] * len(jobs)
    screened: dict[int, Any] = {}
    for i, job in enumerate(jobs):
        try:
            screened[i] = _screen(planner, job, seed)
        except Exception as exc:  # noqa: BLE001 - one bad patient never sinks a batch
            out[i] = exc
    by_area: dict[str, list[int]] = {}
    for i in screened:
        by_area.setdefault(jobs[i].area, []).append(i)
    preds: dict[int, Any] = {}
    for area_id, members in by_area.items():
        got = stages.predict_many(
            [(screened[i], seed) for i in members],
            area=load_area(area_id, planner.rules_path),
            model=planner.models[area_id],
            num_samples=planner.ranking.num_samples,
        )
        preds.update(zip(members, got))
    for i, job in enumerate(jobs):
        if fail_fast and out[i] is not None:  # as one at a time: nothing after the first failure is made
            raise out[i]
        if i not in preds:
            continue
        try:
            if isinstance(preds[i], Exception):
                raise preds[i]
            rec = stages.report(
                preds[i],
                area=load_area(job.area, planner.rules_path),
                ranking=planner.ranking,
                gaps=planner.gap_rules,
                top=top,
                record=job.record,
                preferences=preferences,
            )
            if audit and planner.audit is not None:
                planner.audit.write(rec, input_sha256=job.digest)
            out[i] = rec
        except Exception as exc:
            if fail_fast:
                raise
            out[i] = exc
    return out


def _screen(planner: "Planner", job: Job, seed: int) -> Any:
    """Features, candidates and screening of one job (the stages before the batch's posterior draws)."""
    from . import stages
    from .areas import load_area
    from .guidelines import add_indicated

    if job.area not in planner.models:
        raise ConfigError(
            "unknown area", field="area", value=job.area, expected="one of " + ", ".join(sorted(planner.models))
        )
    area = load_area(job.area, planner.rules_path)
    row = stages.feature_row(job.record, area, knowledge=planner.ruleset.knowledge)
    cands = stages.propose_candidates(
        row, area=area, generator=planner.generators[job.area], n=planner.num_candidates, seed=seed
    )
    if any(planner.ranking.guideline.values()):  # also the candidates with an indicated drug added
        cands = add_indicated(cands, job.record, area, rules=planner.rules_path)
    return stages.screen_candidates(cands, job.record, area=area, rules=planner.ruleset)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    """Options of the Python API typed as the CLI types them: a clear ConfigError, never a TypeError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(
            f"{name} must be an integer", field=name, value=value, expected=f"an int from {low:,} to {high:,}"
        )
    if not low <= value <= high:
        raise ConfigError(f"{name} out of range", field=name, value=value, expected=f"an int from {low:,} to {high:,}")


def record_at(record: PatientRecord, t0: dt.date) -> PatientRecord:
    """The record as it stood when a decision was taken on ``t0``, before that decision was recorded.

    Medications started on or after ``t0`` are removed (the decision itself and everything later); ends and
    stops dated on or after ``t0`` are not yet known, so those medications are active on ``t0``. Results,
    allergies and genotypes dated after ``t0`` are removed; observations and conditions are filtered by the
    record's accessors on ``as_of`` (= ``t0``)."""
    meds = []
    for m in record.medications:
        if m.start is not None and m.start >= t0:
            continue
        if m.end is not None and m.end >= t0:
            m = m.model_copy(
                update={"end": None, "status": "active" if m.status in {"stopped", "completed"} else m.status}
            )
        meds.append(m)
    pgx = tuple(p for p in record.pgx if p.date is None or p.date <= t0)
    allergies = tuple(a for a in record.allergies if a.recorded is None or a.recorded <= t0)
    return record.model_copy(update={"medications": tuple(meds), "pgx": pgx, "allergies": allergies, "as_of": t0})


def predict_regimens(
    planner: "Planner", record: PatientRecord, area_id: str, regimens: Sequence[Regimen], *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray] | None:
    """Joint draws (num_samples, len(regimens)) of the expected and of a new measured follow-up outcome of
    each regimen for ``record`` on its ``as_of`` date, through the same feature and prediction stages as the
    recommendation (None when the outcome cannot be predicted: no outcome value on record)."""
    out = predict_regimens_many(planner, [(record, area_id, regimens)], seed=seed)[0]
    if isinstance(out, Exception):
        raise out
    return out


DrawsOrNone = tuple[np.ndarray, np.ndarray] | None


def predict_regimens_many(
    planner: "Planner", items: Sequence[tuple[PatientRecord, str, Sequence[Regimen]]], *, seed: int = 0
) -> list["DrawsOrNone | Exception"]:
    """:func:`predict_regimens` of every (record, area, regimens), in order, with one sampler call per area for
    all of them (per-item random streams: the same draws as one call each). An item that fails gets its
    exception in its place; if the batch's sampler call fails as a whole, each item is drawn on its own."""
    from . import stages
    from .areas import fill_doses, load_area
    from .stages.predict import _draws_many

    out: list[Any] = [None] * len(items)
    by_area: dict[str, list[tuple[int, Any, list[Regimen]]]] = {}
    rows: dict[tuple[int, str], Any] = {}  # a record asked for twice (two regimens) has its features built once
    for i, (record, area_id, regimens) in enumerate(items):
        try:
            area = load_area(area_id, planner.rules_path)
            row = rows.get((id(record), area_id))
            if row is None:
                row = rows[id(record), area_id] = stages.feature_row(record, area, knowledge=planner.ruleset.knowledge)
            if row.can_predict:
                by_area.setdefault(area_id, []).append((i, row, [fill_doses(r, area) for r in regimens]))
        except Exception as exc:  # noqa: BLE001 - one bad item never sinks the batch
            out[i] = exc
    n = planner.ranking.num_samples
    for area_id, todo in by_area.items():
        model = planner.models.get(area_id)
        if model is None:
            for i, _, _ in todo:
                out[i] = ConfigError("unknown area", field="area", value=area_id, expected=", ".join(planner.models))
            continue
        try:
            got = _draws_many([(row, regs, seed) for _, row, regs in todo], model=model, num_samples=n)
        except Exception:  # noqa: BLE001 - find the item that fails: each on its own
            got = []
            for _, row, regs in todo:
                try:
                    got.extend(_draws_many([(row, regs, seed)], model=model, num_samples=n))
                except Exception as exc:  # noqa: BLE001
                    got.append(exc)
        for (i, _, _), draws in zip(todo, got):
            out[i] = draws
    return out
