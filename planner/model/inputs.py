"""Inputs of :class:`~planner.model.ResponseModel`: the feature frame checked, its columns (numeric as they are,
text one-hot), the standardized matrix and offset on the model scale, and the learned basis' columns."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..areas import Area
from ..errors import ConfigError, ModelError
from ..record import Regimen
from .spec import ModelSpec

__all__ = [
    "check_frame",
    "feature_columns",
    "raw_features",
    "matrix",
    "matrix_dev",
    "matrix_values",
    "raw_row",
    "to_model_scale",
    "base_names",
]


def check_frame(X: Any, name: str = "X") -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise ModelError(
            "features must be a pandas DataFrame",
            field=name,
            value=type(X).__name__,
            expected="pandas.DataFrame with one row per episode/patient",
        )
    return X


def feature_columns(X: pd.DataFrame, area: Area | None) -> tuple[list[str], dict[str, list[str]]]:
    """Columns used as features: numeric/boolean as they are, text/categorical one-hot (``col=level``).

    Area models use the area's feature columns present in ``X`` (other columns are ignored); tabular
    models use every column."""
    if area is not None:
        wanted = [f.name for f in area.features]
        use = [c for c in X.columns if str(c) in wanted]
    else:
        use = list(X.columns)
    names: list[str] = []
    cats: dict[str, list[str]] = {}
    for c in use:
        s = X[c]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            names.append(str(c))
        elif (
            isinstance(s.dtype, pd.CategoricalDtype)
            or pd.api.types.is_object_dtype(s)
            or pd.api.types.is_string_dtype(s)
        ):
            vals = s.dropna()
            if not all(isinstance(v, str) for v in vals):
                raise ModelError(
                    "feature column is neither numeric nor text",
                    field=f"X[{c!r}]",
                    value=str(s.dtype),
                    expected="numbers, booleans or category labels",
                )
            levels = sorted(set(vals))
            if len(levels) > 50:
                raise ModelError(
                    "too many category levels",
                    field=f"X[{c!r}]",
                    value=len(levels),
                    expected="at most 50 (encode it yourself)",
                )
            cats[str(c)] = levels
            names.extend(f"{c}={lv}" for lv in levels)
        else:
            raise ModelError(
                "feature column type not supported",
                field=f"X[{c!r}]",
                value=str(s.dtype),
                expected="numbers, booleans or category labels",
            )
    return names, cats


def raw_features(spec: ModelSpec, X: pd.DataFrame, *, lenient: bool) -> np.ndarray:
    """Unstandardized feature matrix (n, p); NaN where missing."""
    n = len(X)
    cols = []
    learned = set(spec.basis)
    for f in spec.features:
        if f in learned:  # learned-basis columns are computed from the others (_matrix_dev)
            continue
        col, _, level = f.partition("=")
        if level and col in spec.categories:
            if col not in X.columns:
                raise ModelError(
                    "missing feature column", field="X", value=col, expected="columns " + ", ".join(base_names(spec))
                )
            v = (X[col].astype(object) == level).to_numpy(dtype=np.float64)
        elif f in X.columns:
            s = X[f]
            if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
                raise ModelError(
                    "feature column is not numeric",
                    field=f"X[{f!r}]",
                    value=str(s.dtype),
                    expected="numbers or booleans (as in fit)",
                )
            v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        elif lenient and f != spec.baseline:
            v = np.full(n, np.nan)
        else:
            raise ModelError(
                "missing feature column", field="X", value=f, expected="columns " + ", ".join(base_names(spec))
            )
        cols.append(v)
    return np.stack(cols, axis=1) if cols else np.zeros((n, 0))


def matrix(
    spec: ModelSpec, X: pd.DataFrame, basis: Any = None, basis_cols: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Standardized feature matrix (n, p) and offset (n,) on the standardized model scale. Missing values
    are filled with the training mean (untrained area model: the area's feature default)."""
    x, off, _ = matrix_dev(spec, X, basis, basis_cols)
    return x, off


def matrix_dev(
    spec: ModelSpec, X: pd.DataFrame, basis: Any = None, basis_cols: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """:meth:`_matrix` plus, with a learned basis, its scaled per-fold deviations (K, n, q) on the
    standardized scale (None without one). ``basis_cols``: the basis values to use (fit: out-of-fold)."""
    X = check_frame(X)
    n = len(X)
    raw = raw_features(spec, X, lenient=spec.is_area and not spec.trained)
    dev = None
    if spec.basis:
        q = len(spec.basis)
        if basis_cols is None:
            basis_cols, dev = basis.transform(raw)
            dev = dev / np.asarray(spec.feat_scale[-q:])
        raw = np.hstack([raw, basis_cols])
    if raw.shape[1]:
        raw = np.where(np.isfinite(raw), raw, np.asarray(spec.feat_default))
        x = (raw - np.asarray(spec.feat_loc)) / np.asarray(spec.feat_scale)
    else:
        x = raw
    if spec.baseline is not None:
        if spec.baseline not in X.columns:
            raise ModelError(
                "missing baseline outcome column",
                field="X",
                value=spec.baseline,
                expected=f"a column {spec.baseline!r} with the baseline outcome",
            )
        b = X[spec.baseline].to_numpy(dtype=np.float64, na_value=np.nan)
        if not np.all(np.isfinite(b)):
            raise ModelError(
                "baseline outcome missing or not finite",
                field=f"X[{spec.baseline!r}]",
                value=int((~np.isfinite(b)).sum()),
                expected="a value on every row",
            )
        off = to_model_scale(spec, b, f"X[{spec.baseline!r}]")
    else:
        off = np.zeros(n)
    return x, off / spec.y_scale, dev


def matrix_values(spec: ModelSpec, values: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`matrix` of one row given as values (column -> number, label or None), without a DataFrame: the
    same numbers as ``matrix(spec, <one-row frame of values>)`` for a model without a learned basis. None when
    that frame would need pandas' judgement or raise (a value neither a number nor a label where a number is
    wanted, a column missing, a baseline missing or out of range): the caller then takes the frame path."""
    if spec.basis:
        return None
    raw = raw_row(spec.features, spec.categories, values, lenient=spec.is_area and not spec.trained, keep=spec.baseline)
    if raw is None:
        return None
    if raw.shape[1]:
        raw = np.where(np.isfinite(raw), raw, np.asarray(spec.feat_default))
        x = (raw - np.asarray(spec.feat_loc)) / np.asarray(spec.feat_scale)
    else:
        x = raw
    if spec.baseline is None:
        return x, np.zeros(1) / spec.y_scale
    b = values.get(spec.baseline)
    if not isinstance(b, (int, float)) or isinstance(b, bool) or not math.isfinite(b):
        return None
    if spec.scale == "log" and b <= 0:
        return None
    off = to_model_scale(spec, np.array([float(b)]), f"X[{spec.baseline!r}]")
    return x, off / spec.y_scale


def raw_row(
    features: Sequence[str],
    categories: Mapping[str, Any],
    values: Mapping[str, Any],
    *,
    lenient: bool = False,
    keep: str | None = None,
) -> np.ndarray | None:
    """The raw (1, p) row of one patient's values (column -> number, label or None) over ``features``, as the
    frame path reads a one-row frame of them: ``col=level`` of a categorical ``col`` is 1.0 when the value is
    that label (else 0.0), a number is itself, None is NaN. None when a value is neither a plain number nor a
    label where a number is wanted, or a column is missing (``lenient``: a missing column other than ``keep``
    is NaN): the caller then takes the frame path. Shared by :func:`matrix_values` and the candidate generator."""
    raw = np.empty((1, len(features)))
    for i, f in enumerate(features):
        col, _, level = f.partition("=")
        if level and col in categories:
            if col not in values:
                return None
            v = values[col]
            raw[0, i] = 1.0 if isinstance(v, str) and v == level else 0.0
        elif f in values:
            v = values[f]
            if v is None:
                raw[0, i] = np.nan
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                raw[0, i] = float(v)
            else:
                return None
        elif lenient and f != keep:
            raw[0, i] = np.nan
        else:
            return None
    return raw


def to_model_scale(spec: ModelSpec, v: np.ndarray, where: str) -> np.ndarray:
    if spec.scale == "log":
        if np.any(v <= 0):
            raise ModelError(
                "log-scale outcome must be positive", field=where, value=float(v[v <= 0][0]), expected="> 0"
            )
        return np.log(v)
    return v


def base_names(spec: ModelSpec) -> list[str]:
    out: list[str] = []
    for f in spec.features:
        col, _, level = f.partition("=")
        name = col if level and col in spec.categories else f
        if name not in out:
            out.append(name)
    return out


def check_kind(kind: Any) -> None:
    """``kind`` of :meth:`ResponseModel.sample`: "mean" or "predictive"."""
    if kind not in ("mean", "predictive"):
        raise ConfigError("unknown kind", field="kind", value=kind, expected='"mean" or "predictive"')


def check_sample_args(regimens: Any, num_samples: Any, S: int) -> int:
    """The number of draws to return (``num_samples``, default all ``S`` cached) and a clear error for a bad
    ``num_samples`` or ``regimens`` of :meth:`ResponseModel.sample`."""
    if num_samples is None:
        num_samples = S
    if not (isinstance(num_samples, (int, np.integer)) and 1 <= num_samples <= S):
        raise ModelError(
            "num_samples out of range",
            field="num_samples",
            value=num_samples,
            expected=f"an integer from 1 to {S} (the cached draws; raise num_draws for more)",
        )
    if isinstance(regimens, (Regimen, str)) or not hasattr(regimens, "__len__"):
        raise ModelError(
            "regimens must be a list of regimens",
            field="regimens",
            value=regimens,
            expected="a list, e.g. [set(), {'treated'}]",
        )
    if len(regimens) == 0:
        raise ModelError("no regimens to predict", field="regimens", value=0, expected="at least one")
    return int(num_samples)
