"""Features of a patient at a decision time t0, driven by the area file (no leakage: only data dated <= t0).

Public API::

    features_at(record, area, t0) -> dict[str, float | str | None]        # raw values, None when missing
    AreaFeaturizer(area, *, fill_missing=True)                             # scikit-learn transformer
        .fit(X) / .transform(X) / .fit_transform(X)  X: sequence of (PatientRecord, date) pairs
        .get_feature_names_out(), .units_ (column -> unit); the frame's ``attrs["units"]`` holds the same

Columns, for an area's ``features`` list:

* ``age`` (years at t0), ``sex_female`` (1/0), ``baseline`` (the outcome's latest value in the lookback),
  each ``quantity`` feature (latest value within its ``lookback_days``) and each ``<name>_missing`` flag;
* each ``condition`` feature: 1 when a matching condition (SNOMED code or ICD-10 prefix, any coding) has onset
  (or recorded date) on or before t0 and no abatement on or before t0 (``refuted``/``entered-in-error``
  ignored); an undated condition counts; clinical status (recorded as of the record's date) is not used,
  since it may postdate t0;
* each ``pgx`` feature: the gene's CPIC phenotype from results dated on or before t0 (or undated), ``"not
  tested"`` when none, ``"indeterminate"`` when a diplotype cannot be translated, phenotypes joined by
  ``" / "`` when results conflict (interpretation by :mod:`planner.safety`; without it, a reported
  phenotype or ``"reported"``);
* the current regimen (active the day before t0, by the episode medication rules): ``cur_<class>`` = dose /
  reference dose of the class's drug (0 when none, 1 when the dose is unknown) and ``cur_n_drugs``.

Missing numeric values are filled (when ``fill_missing``) with the area ``default`` or, failing that, the
median learned in :meth:`AreaFeaturizer.fit`; the ``_missing`` flags keep the fact.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from ..areas import Area, code_matches, load_area
from ..errors import ConfigError
from ..record import PatientRecord, PgxResult, Regimen

__all__ = ["AreaFeaturizer", "features_at", "pgx_phenotype", "NOT_TESTED", "feature_units"]

NOT_TESTED = "not tested"
INDETERMINATE = "indeterminate"


@functools.lru_cache(maxsize=1)
def _knowledge() -> Any:
    try:
        from ..safety import RuleSet

        return RuleSet.load().knowledge
    except Exception:  # noqa: BLE001 - the safety layer is optional here; features fall back to reported terms
        return None


def pgx_phenotype(results: Sequence[PgxResult], gene: str) -> str:
    """One gene's phenotype from its results: the safety layer's interpretation, else the reported phenotype."""
    if not results:
        return NOT_TESTED
    kn = _knowledge()
    if kn is not None and gene in kn.genes:
        res = kn.interpret(gene, results)
        return res.phenotype or INDETERMINATE
    phen = [r.phenotype for r in results if r.phenotype]
    if phen:
        return " / ".join(dict.fromkeys(phen))
    return "reported"


def _as_date(t0: Any) -> dt.date:
    if isinstance(t0, dt.datetime):
        return t0.date()
    if isinstance(t0, dt.date):
        return t0
    if isinstance(t0, (pd.Timestamp, np.datetime64)):
        return pd.Timestamp(t0).date()
    if isinstance(t0, str):
        try:
            return dt.date.fromisoformat(t0)
        except ValueError:
            pass
    raise ConfigError("invalid decision date", field="t0", value=t0, expected="a date such as 2024-01-31")


def _condition_on(record: PatientRecord, codes: tuple[str, ...], t0: dt.date) -> bool:
    for c in record.conditions:
        if c.verification_status in {"refuted", "entered-in-error"}:
            continue
        start = c.onset or c.recorded
        if start is not None and start > t0:
            continue
        if c.abatement is not None and c.abatement <= t0:
            continue
        all_codes = [c.code] + [x.code for x in c.codings]
        if any(x and code_matches(x, codes) for x in all_codes):
            return True
    return False


def _latest_value(record: PatientRecord, quantity: str, t0: dt.date, lookback: int) -> float | None:
    series = record.observations.get(quantity, ())
    best = None
    for m in series:
        if m.date > t0:
            break
        if (t0 - m.date).days <= lookback:
            best = m
    return None if best is None else float(best.value)


def current_regimen(record: PatientRecord, area: Area, t0: dt.date) -> Regimen:
    """The area drugs active on the day before t0 (episode medication rules)."""
    from ..episodes.intervals import regimen_on

    return regimen_on(record, area, t0 - dt.timedelta(days=1))


def feature_units(area: Area) -> dict[str, str]:
    """Column -> unit of the featurizer's output (dimensionless: ``"1"``; categories: ``""``)."""
    units: dict[str, str] = {}
    for f in area.features:
        if f.kind == "age":
            units[f.name] = f.unit or "years"
            units[f.name + "_missing"] = "1"
        elif f.kind == "sex":
            units[f.name] = "1"
        elif f.kind in ("quantity", "baseline"):
            units[f.name] = f.unit or area.outcome.unit
            units[f.name + "_missing"] = "1"
        elif f.kind == "condition":
            units[f.name] = "1"
        elif f.kind == "pgx":
            units[f.name] = ""
    for cid in area.class_ids:
        units[f"cur_{cid}"] = "1"  # dose / reference dose
    units["cur_n_drugs"] = "1"
    return units


def features_at(record: PatientRecord, area: "Area | str", t0: Any) -> dict[str, Any]:
    """Raw feature values at ``t0`` (None when missing), from data dated on or before t0 only."""
    if isinstance(area, str):
        area = load_area(area)
    day = _as_date(t0)
    out: dict[str, Any] = {}
    for f in area.features:
        if f.kind == "age":
            age = record.age(day)
            out[f.name] = age
            out[f.name + "_missing"] = 1.0 if age is None else 0.0
        elif f.kind == "sex":
            out[f.name] = None if record.sex not in ("male", "female") else float(record.sex == "female")
        elif f.kind in ("quantity", "baseline"):
            lookback = f.lookback_days if f.kind == "quantity" else min(f.lookback_days, area.outcome.baseline_window_days)
            v = _latest_value(record, f.quantity or "", day, lookback)
            out[f.name] = v
            out[f.name + "_missing"] = 1.0 if v is None else 0.0
        elif f.kind == "condition":
            out[f.name] = 1.0 if _condition_on(record, f.codes, day) else 0.0
        elif f.kind == "pgx":
            gene = f.gene or ""
            res = [r for r in record.pgx_for(gene) if r.date is None or r.date <= day]
            out[f.name] = pgx_phenotype(res, gene)
    reg = current_regimen(record, area, day)
    for cid in area.class_ids:
        out[f"cur_{cid}"] = 0.0
    for d in reg.drugs:
        entry = area.drug(d.ingredient)
        ratio = 1.0 if d.dose_mg_day is None else d.dose_mg_day / entry.reference_dose
        out[f"cur_{entry.drug_class}"] = float(ratio)
    out["cur_n_drugs"] = float(len(reg.drugs))
    return out


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
    categories_ : dict pgx column -> sorted categories seen in ``fit`` (plus "not tested")
    """

    def __init__(self, area: "Area | str", *, fill_missing: bool = True) -> None:
        self.area = area
        self.fill_missing = fill_missing

    def _area(self) -> Area:
        return load_area(self.area) if isinstance(self.area, str) else self.area

    @staticmethod
    def _pairs(X: Any) -> list[tuple[PatientRecord, dt.date]]:
        if isinstance(X, PatientRecord):
            raise ConfigError("expected (record, t0) pairs", field="X", value="PatientRecord",
                              expected="a sequence of (PatientRecord, date) pairs")
        pairs = []
        for i, item in enumerate(X):
            try:
                rec, t0 = item
            except (TypeError, ValueError):
                raise ConfigError("expected (record, t0) pairs", field=f"X[{i}]", value=type(item).__name__,
                                  expected="a (PatientRecord, date) pair") from None
            if not isinstance(rec, PatientRecord):
                raise ConfigError("expected a PatientRecord", field=f"X[{i}][0]", value=type(rec).__name__,
                                  expected="planner.record.PatientRecord")
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
                cats[c] = sorted(set(raw[c].dropna().astype(str)) | {NOT_TESTED})
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
