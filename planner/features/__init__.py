"""Features of a patient at a decision time t0, driven by the area file (no leakage: only data dated <= t0).

Public API::

    feature_row(record, area, *, knowledge=None) -> FeatureRow           # the features stage (typed hand-off)
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
* each ``pgx`` feature: the gene's CPIC phenotype from results dated on or before t0 (or undated),
  ``"not-tested"`` when none, ``"indeterminate"`` when a diplotype cannot be translated (the
  :class:`planner.status.GeneStatus` values), phenotypes joined by ``" / "`` when results conflict
  (interpretation by :mod:`planner.safety.phenotype` with the knowledge of the rules in use; a gene it does
  not cover: the reported phenotype, or ``"reported"``);
* the current regimen (active the day before t0, by the episode medication rules): ``cur_<class>`` = dose /
  reference dose of the class's drug (0 when none, 1 when the dose is unknown) and ``cur_n_drugs``.

Missing numeric values are filled (when ``fill_missing``) with the area ``default`` or, failing that, the
median learned in :meth:`AreaFeaturizer.fit`; the ``_missing`` flags keep the fact.
"""

from __future__ import annotations

from typing import Any

from .row import feature_row, target_for
from .values import current_regimen, default_gene_knowledge, feature_units, features_at, pgx_phenotype

__all__ = [
    "AreaFeaturizer",
    "features_at",
    "feature_row",
    "pgx_phenotype",
    "feature_units",
    "current_regimen",
    "default_gene_knowledge",
    "target_for",
]


def __getattr__(name: str) -> Any:  # scikit-learn is imported only when the transformer is asked for
    if name == "AreaFeaturizer":
        from .transformer import AreaFeaturizer

        return AreaFeaturizer
    raise AttributeError(name)
