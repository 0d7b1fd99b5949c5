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

__all__ = ["OutcomeModel", "model_name", "predict", "predict_draws"]


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


def predict_draws(
    features: FeatureRow, regimens: Sequence[Regimen], *, model: OutcomeModel, num_samples: int, seed: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(mean draws, predictive draws), each (num_samples, len(regimens)), for regimens with known doses."""
    X = features.frame()
    regs = list(regimens)
    cur = features.measured_under
    both = getattr(model, "sample_kinds", None)
    if both is not None:  # the same draws as the two sample calls, sharing their non-random part
        m3, p3 = both(X, regs, num_samples=num_samples, seeds=[("mean", seed), ("predictive", seed + 1)], current=cur)
        mean, pred = np.asarray(m3)[:, 0, :], np.asarray(p3)[:, 0, :]
    else:
        mean = np.asarray(model.sample(X, regs, num_samples=num_samples, kind="mean", seed=seed, current=cur))[:, 0, :]
        pred = np.asarray(
            model.sample(X, regs, num_samples=num_samples, kind="predictive", seed=seed + 1, current=cur)
        )[:, 0, :]
    if not (np.isfinite(mean).all() and np.isfinite(pred).all()):
        raise ModelError("the model produced non-finite draws", field="model", value=model_name(model))
    return mean, pred


def predict(
    screened: ScreenedCandidates, *, area: Area, model: OutcomeModel, num_samples: int, seed: int
) -> Predictions:
    """Draws for every kept regimen; none when nothing is kept or no outcome value is on record."""
    name = model_name(model)
    if not screened.kept or not screened.features.can_predict:
        return Predictions(screened=screened, model=name, num_samples=num_samples, seed=seed)
    regs = tuple(fill_doses(k.regimen, area) for k in screened.kept)
    mean, pred = predict_draws(screened.features, regs, model=model, num_samples=num_samples, seed=seed)
    return Predictions(
        screened=screened,
        regimens=regs,
        mean_draws=mean,
        pred_draws=pred,
        model=name,
        num_samples=num_samples,
        seed=seed,
    )
