"""The scikit-learn transformer over (record, t0) pairs (see :mod:`planner.features`)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from ..areas import Area, load_area
from ..errors import ConfigError
from ..record import PatientRecord
from ..status import GeneStatus
from .values import _as_date, feature_units, features_at

__all__ = ["AreaFeaturizer"]


class AreaFeaturizer(TransformerMixin, BaseEstimator):
    """scikit-learn-compatible transformer: (PatientRecord, t0) pairs -> named, unit-bearing DataFrame.

    Parameters
    ----------
    area : Area or str
        The therapeutic area (its ``features`` list drives the columns).
    fill_missing : bool, default True
        Fill missing numeric values with the area default, else the median seen in ``fit``.

    Attributes
    ----------
    feature_names_out_ : list of str
    units_ : dict column -> unit
    fill_values_ : dict column -> value used for missing entries
    categories_ : dict pgx column -> sorted categories seen in ``fit`` (plus ``not-tested``)
    """

    def __init__(self, area: "Area | str", *, fill_missing: bool = True) -> None:
        self.area = area
        self.fill_missing = fill_missing

    def _area(self) -> Area:
        return load_area(self.area) if isinstance(self.area, str) else self.area

    @staticmethod
    def _pairs(X: Any) -> list[tuple[PatientRecord, dt.date]]:
        if isinstance(X, PatientRecord):
            raise ConfigError(
                "expected (record, t0) pairs",
                field="X",
                value="PatientRecord",
                expected="a sequence of (PatientRecord, date) pairs",
            )
        pairs = []
        for i, item in enumerate(X):
            try:
                rec, t0 = item
            except (TypeError, ValueError):
                raise ConfigError(
                    "expected (record, t0) pairs",
                    field=f"X[{i}]",
                    value=type(item).__name__,
                    expected="a (PatientRecord, date) pair",
                ) from None
            if not isinstance(rec, PatientRecord):
                raise ConfigError(
                    "expected a PatientRecord",
                    field=f"X[{i}][0]",
                    value=type(rec).__name__,
                    expected="planner.record.PatientRecord",
                )
            pairs.append((rec, _as_date(t0)))
        return pairs

    def _raw(self, X: Any) -> pd.DataFrame:
        area = self._area()
        rows = [features_at(rec, area, t0) for rec, t0 in self._pairs(X)]
        cols = list(feature_units(area))
        frame = pd.DataFrame(rows, columns=cols)
        for c in cols:
            if feature_units(area)[c] != "":
                frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(float)
        return frame

    def fit(self, X: Any, y: Any = None) -> "AreaFeaturizer":
        area = self._area()
        raw = self._raw(X)
        units = feature_units(area)
        defaults = {f.name: f.default for f in area.features if f.default is not None}
        fill: dict[str, float] = {}
        cats: dict[str, list[str]] = {}
        for c, u in units.items():
            if u == "":
                cats[c] = sorted(set(raw[c].dropna().astype(str)) | {GeneStatus.NOT_TESTED.value})
                continue
            if c in defaults:
                fill[c] = float(defaults[c])
            else:
                med = raw[c].median() if len(raw) else float("nan")
                fill[c] = 0.0 if med is None or (isinstance(med, float) and math.isnan(med)) else float(med)
        self.fill_values_ = fill
        self.categories_ = cats
        self.units_ = units
        self.feature_names_out_ = list(units)
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        if not hasattr(self, "units_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("AreaFeaturizer is not fitted yet; call fit(X) with (record, t0) pairs first")
        raw = self._raw(X)
        if self.fill_missing:
            for c, v in self.fill_values_.items():
                raw[c] = raw[c].fillna(v)
        raw.attrs["units"] = dict(self.units_)
        return raw

    def fit_transform(self, X: Any, y: Any = None) -> pd.DataFrame:
        X = list(X)
        return self.fit(X, y).transform(X)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_out_, dtype=object)
