"""The prediction stage: ``ScreenedCandidates -> Predictions`` (joint posterior draws of every kept regimen).

The model sees each kept regimen with unknown doses at their reference dose, the patient's feature row, and the
regimen the baseline value was measured under (its effect is already in the baseline). Draws of the expected
outcome use ``seed``, draws of a new measurement ``seed + 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from ..areas import Area, fill_doses
from ..errors import ModelError
from ..handoffs import FeatureRow, Predictions, ScreenedCandidates
from ..record import Regimen

__all__ = ["OutcomeModel", "model_name", "predict", "predict_draws", "predict_many"]


class OutcomeModel(Protocol):
    """What the stage needs of an outcome model (:class:`planner.model.ResponseModel`)."""

    def sample(
        self,
        X: pd.DataFrame,
        regimens: Sequence[Any],
        num_samples: int | None = None,
        *,
        kind: Literal["mean", "predictive"] = ...,
        seed: int | None = ...,
        current: Any = ...,
    ) -> Any: ...


def model_name(model: object) -> str:
    """The model's label for provenance."""
    return str(getattr(model, "name", type(model).__name__))


def _batched(model: object) -> bool:
    """Whether the model takes the batched sampler (:mod:`planner.model.batched`): a ResponseModel."""
    from ..model import ResponseModel

    return isinstance(model, ResponseModel)


def predict_draws(
    features: FeatureRow, regimens: Sequence[Regimen], *, model: OutcomeModel, num_samples: int, seed: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(mean draws, predictive draws), each (num_samples, len(regimens)), for regimens with known doses."""
    out = _draws_many([(features, list(regimens), seed)], model=model, num_samples=num_samples)[0]
    if isinstance(out, Exception):
        raise out
    return out


def _draws_many(
    jobs: Sequence[tuple[FeatureRow, Sequence[Regimen], int]], *, model: OutcomeModel, num_samples: int
) -> list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | Exception]:
    """:func:`predict_draws` of every (features, regimens, seed) job, through one sampler call for all of them
    when the model is a ResponseModel; a job whose draws are not finite gets its ModelError in its place."""
    if _batched(model):
        from ..model.batched import DrawJob, sample_batch

        got = sample_batch(
            model,
            [DrawJob(X=None, values=f.values, regimens=list(r), current=f.measured_under, seed=s) for f, r, s in jobs],
            num_samples,
        )
        raw = [(m3[:, 0, :], p3[:, 0, :]) for m3, p3 in got]
    else:
        raw = [_draws_one(f, r, model=model, num_samples=num_samples, seed=s) for f, r, s in jobs]
    out: list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | Exception] = []
    for mean, pred in raw:
        if not (np.isfinite(mean).all() and np.isfinite(pred).all()):
            out.append(ModelError("the model produced non-finite draws", field="model", value=model_name(model)))
        else:
            out.append((mean, pred))
    return out


def _draws_one(
    features: FeatureRow, regs: Sequence[Regimen], *, model: OutcomeModel, num_samples: int, seed: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Any other outcome model: its ``sample_kinds`` when it has one, else two ``sample`` calls."""
    X = features.frame()
    cur = features.measured_under
    both = getattr(model, "sample_kinds", None)
    if both is not None:  # the same draws as the two sample calls, sharing their non-random part
        m3, p3 = both(X, regs, num_samples=num_samples, seeds=[("mean", seed), ("predictive", seed + 1)], current=cur)
        return np.asarray(m3)[:, 0, :], np.asarray(p3)[:, 0, :]
    mean = np.asarray(model.sample(X, regs, num_samples=num_samples, kind="mean", seed=seed, current=cur))[:, 0, :]
    pred = np.asarray(model.sample(X, regs, num_samples=num_samples, kind="predictive", seed=seed + 1, current=cur))[
        :, 0, :
    ]
    return mean, pred


def predict(
    screened: ScreenedCandidates, *, area: Area, model: OutcomeModel, num_samples: int, seed: int
) -> Predictions:
    """Draws for every kept regimen; none when nothing is kept or no outcome value is on record."""
    out = predict_many([(screened, seed)], area=area, model=model, num_samples=num_samples)[0]
    if isinstance(out, Exception):
        raise out
    return out


def predict_many(
    batch: Sequence[tuple[ScreenedCandidates, int]], *, area: Area, model: OutcomeModel, num_samples: int
) -> list[Predictions | Exception]:
    """:func:`predict` of every (screened, seed) of one area, with one sampler call for the whole batch (a
    batch of one is ``predict``); a patient whose draws fail gets the error in its place."""
    name = model_name(model)
    todo: list[int] = []
    jobs: list[tuple[FeatureRow, Sequence[Regimen], int]] = []
    regs_of: dict[int, tuple[Regimen, ...]] = {}
    for i, (screened, seed) in enumerate(batch):
        if screened.kept and screened.features.can_predict:
            regs_of[i] = tuple(fill_doses(k.regimen, area) for k in screened.kept)
            todo.append(i)
            jobs.append((screened.features, regs_of[i], seed))
    draws = dict(zip(todo, _draws_many(jobs, model=model, num_samples=num_samples))) if jobs else {}
    out: list[Predictions | Exception] = []
    for i, (screened, seed) in enumerate(batch):
        got = draws.get(i)
        if isinstance(got, Exception):
            out.append(got)
        elif got is None:
            out.append(Predictions(screened=screened, model=name, num_samples=num_samples, seed=seed))
        else:
            out.append(
                Predictions(
                    screened=screened,
                    regimens=regs_of[i],
                    mean_draws=got[0],
                    pred_draws=got[1],
                    model=name,
                    num_samples=num_samples,
                    seed=seed,
                )
            )
    return out
