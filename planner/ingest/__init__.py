"""FHIR R4 ingest: Bundles, NDJSON, single resources, folders and PharmCAT output -> :class:`PatientRecord`.

Public API::

    read_records(source, *, as_of=None, strict=False, max_bytes=200_000_000, pharmcat=(), rules=None, today=None)
        -> list[PatientRecord]
    read_record(source, **same) -> PatientRecord          # exactly one patient, else FhirError
    read_pharmcat(path) -> list[PgxResult]                # PharmCAT phenotype JSON or outside-call TSV
    attach_pgx(record, results) -> PatientRecord          # merge PGx results into a record

``source`` is a path (file or folder; a folder's files are read together, so a Patient in one file and its
Observations in another form one record), bytes, a str (JSON text or a path) or a dict.

Dates: a missing ``as_of`` is the latest event date in the record. An event date (observation, onset, recorded,
authoredOn, medication start, birth, death) after *today* is a :class:`~planner.errors.FhirError` (data from the
future is a data error, not something to plan on); an end date (validity period, effective period end) may lie in
the future. Facts dated after ``as_of`` are kept; the record's accessors filter on ``as_of``.

How it is fast: each Bundle is split into raw entries in one msgspec pass (nothing is built for Claims,
ExplanationOfBenefits, Encounters...); only Patient, Condition, Observation, MedicationRequest, MedicationStatement,
Medication and AllergyIntolerance are decoded into typed structs of the fields planner reads, and an Observation is
decoded in full only when its code is one planner uses (rules/codes/quantities.yaml, BP panels, PGx codes).
``strict=True`` additionally validates every resource against the fhir.resources R4B models.

Normalisation: observations keyed by quantity name in their canonical unit (unknown unit: UnitError; unknown
LOINC: skipped and counted in :class:`IngestStats`); medications resolved to ingredient RxCUIs
(rules/codes/rxnorm.csv: code, else ingredient name in display/text), one Medication per ingredient of a
combination product, dose in mg/day from the dosage (dose quantity x frequency / period; tablets x strength parsed
from the display; insulin units x mg_per_unit), else strength x frequency, else None with a DataWarning.

Errors and warnings: input planner cannot read at all (not JSON, over the size limit, duplicate keys, no usable
Patient) raises a :class:`~planner.errors.PlannerError`; one resource planner cannot use becomes a data-quality
warning on its patient's record (``PatientRecord.warnings``: code, message, resource, field, value) and is skipped
(``strict=True`` raises instead). See :mod:`planner.ingest.normalize`.

Logging: counts only (``planner.ingest`` logger at DEBUG); never identifiers or values.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any, Iterable

from ..errors import ConfigError, FhirError
from ..record import DataWarning, PatientRecord, PgxResult
from .codes import code_tables
from .normalize import IngestStats, build_records
from .pgx import attach_pgx
from .pharmcat import read_pharmcat
from .source import DEFAULT_MAX_BYTES, load_resources

__all__ = [
    "read_records",
    "read_record",
    "select_patients",
    "read_pharmcat",
    "attach_pgx",
    "IngestStats",
    "code_tables",
]


def _as_date(value: Any, name: str) -> dt.date | None:
    if value is None or (isinstance(value, dt.date) and not isinstance(value, dt.datetime)):
        return value
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ConfigError("invalid date option", field=name, value=value, expected="a date such as 2024-01-31")


def read_records(
    source: str | bytes | os.PathLike[str] | dict[str, Any],
    *,
    as_of: dt.date | str | None = None,
    strict: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    pharmcat: Iterable[str | os.PathLike[str]] = (),
    rules: str | Path | None = None,
    today: dt.date | str | None = None,
    stats: IngestStats | None = None,
) -> list[PatientRecord]:
    """Read FHIR R4 input into one :class:`PatientRecord` per Patient (in input order).

    Parameters
    ----------
    as_of : the date the record describes (default: the latest event date in each record).
    strict : also validate every resource with fhir.resources R4B models (conformance; slower), and make a
        resource that cannot be used an error instead of a data-quality warning.
    max_bytes : size limit per input (and per folder); larger input is an InputError.
    pharmcat : PharmCAT phenotype JSON / outside-call TSV files whose results are added (one patient only).
    rules : a rules folder (default: the packaged one). ``today`` overrides the clock for the future-date check.
    """
    if not isinstance(max_bytes, int) or max_bytes <= 0:
        raise ConfigError("invalid size limit", field="max_bytes", value=max_bytes, expected="a positive integer")
    as_of_d = _as_date(as_of, "as_of")
    today_d = _as_date(today, "today") or dt.date.today()
    if as_of_d is not None and as_of_d > today_d:
        raise ConfigError(
            "as-of date is after today",
            field="as_of",
            value=as_of_d.isoformat(),
            expected=f"a date on or before today ({today_d.isoformat()}): planning for a future date "
            "would use facts that do not exist yet",
        )
    tables = code_tables(rules)
    problems: list[DataWarning] | None = None if strict else []
    resources = load_resources(source, max_bytes=max_bytes, problems=problems)
    if strict:
        from .strict import validate_strict

        validate_strict(resources)
    records = build_records(
        resources, tables=tables, as_of=as_of_d, today=today_d, stats=stats, problems=problems, strict=strict
    )
    pharmcat = list(pharmcat)
    if pharmcat:
        if len(records) != 1:
            raise FhirError(
                f"PharmCAT results given for an input with {len(records)} patients",
                expected="exactly one patient when pharmcat files are given",
            )
        extra: list[PgxResult] = []
        for p in pharmcat:
            extra.extend(read_pharmcat(p, rules=rules))
        records = [attach_pgx(records[0], extra)]
    return records


def read_record(
    source: str | bytes | os.PathLike[str] | dict[str, Any], *, patient: str | None = None, **kwargs: Any
) -> PatientRecord:
    """Exactly one patient's record: the only one, or the one whose id is ``patient`` (else a PlannerError)."""
    records = select_patients(read_records(source, **kwargs), patient, file=_name(source))
    if len(records) != 1:
        raise FhirError(
            f"{len(records)} patients in the input",
            file=_name(source),
            resource="Patient",
            expected="exactly one Patient; choose one with --patient ID (or patient= in Python)",
        )
    return records[0]


def select_patients(
    records: list[PatientRecord], patient: str | None, *, file: str | None = None
) -> list[PatientRecord]:
    """All records, or the one whose id is ``patient`` (a ConfigError when the input has no such patient; the
    message does not list the ids the input holds)."""
    if patient is None:
        return records
    hit = [r for r in records if r.patient_id == patient]
    if not hit:
        raise ConfigError(
            f"no patient with this id among the {len(records)} in the input",
            file=file,
            field="--patient",
            value=patient,
            expected="the id of a Patient resource in the input",
        )
    return hit


def _name(source: Any) -> str | None:
    return str(source) if isinstance(source, (str, os.PathLike)) and not str(source).lstrip().startswith("{") else None
