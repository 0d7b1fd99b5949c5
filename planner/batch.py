"""Many patients through one :class:`~planner.api.Planner`: ``Planner.recommend_many`` and the cohort helpers.

Rules, areas, ranking weights and model draws are loaded once (by the Planner) and reused for every record
of the batch; records are read once each. Every recommendation is the one ``Planner.recommend`` gives for the
same record, area, top and seed (``tests/test_cohort_batch.py`` compares them field by field).

:func:`predict_regimens` gives the model's joint draws for regimens the ranking did not choose (the cohort
evaluation scores the *observed* regimen against the observed follow-up), with exactly the features, current
regimen and baseline handling the recommendation uses.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .errors import ConfigError
from .record import PatientRecord, Regimen

if TYPE_CHECKING:  # pragma: no cover
    from .api import Planner, Source
    from .recommendation import Recommendation

__all__ = ["recommend_many", "predict_regimens", "record_at"]


def recommend_many(
    planner: "Planner",
    sources: Sequence["Source"],
    *,
    area: str | None = None,
    as_of: dt.date | str | None = None,
    top: int = 5,
    seed: int = 0,
    errors: str = "raise",
) -> list["Recommendation | Exception"]:
    """One recommendation per source, in order, as ``planner.recommend`` would give each.

    ``errors="raise"``: the first bad source raises (as ``recommend`` would); ``"return"``: the exception
    takes that source's place in the list and the others go on (one bad patient never sinks a batch)."""
    if errors not in ("raise", "return"):
        raise ConfigError("unknown errors mode", field="errors", value=errors, expected='"raise" or "return"')
    out: list[Any] = []
    for src in sources:
        try:
            out.append(planner.recommend(src, area=area, as_of=as_of, top=top, seed=seed))
        except Exception as exc:
            if errors == "raise":
                raise
            out.append(exc)
    return out


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
    from . import stages
    from .areas import fill_doses, load_area

    area = load_area(area_id, planner.rules_path)
    row = stages.feature_row(record, area, knowledge=planner.ruleset.knowledge)
    if not row.can_predict:
        return None
    regs = [fill_doses(r, area) for r in regimens]
    return stages.predict_draws(
        row, regs, model=planner.models[area_id], num_samples=planner.ranking.num_samples, seed=seed
    )
