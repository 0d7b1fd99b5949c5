"""What the per-resource readers share: the per-patient builder, the date checks, reference keys, code helpers."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from ..errors import FhirError, PlannerError
from ..record import Allergy, Condition, DataWarning, Measurement, Medication, PgxResult
from . import fhir_types as ft
from .codes import CodeTables
from .dates import parse_date

__all__ = [
    "Builder",
    "Context",
    "ref_keys",
    "normalise_ref",
    "first_code",
    "status_of",
    "display_of",
    "short",
    "SNOMED",
    "ICD10",
    "UCUM",
]

SNOMED = "http://snomed.info/sct"
ICD10 = ("http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10")
UCUM = "http://unitsofmeasure.org"


def short(value: object, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def ref_keys(rtype: str, rid: str | None, full_url: str | None) -> list[str]:
    keys = []
    if rid:
        keys.append(f"{rtype}/{rid}")
    if full_url:
        keys.append(full_url)
        if "/" in full_url and not full_url.startswith("urn:"):
            parts = full_url.rstrip("/").split("/")
            if len(parts) >= 2:
                keys.append(f"{parts[-2]}/{parts[-1]}")
    return keys


def normalise_ref(ref: str) -> str:
    if ref.startswith("urn:"):
        return ref
    parts = ref.split("/_history")[0].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else ref


def first_code(
    cc: ft.CodeableConcept | None, systems: tuple[str, ...] | frozenset[str] | None = None
) -> ft.Coding | None:
    if cc is None:
        return None
    for c in cc.coding:
        if systems is None or c.system in systems:
            return c
    return None


def status_of(cc: ft.CodeableConcept | None) -> str | None:
    c = first_code(cc)
    return c.code if c is not None else (cc.text if cc is not None else None)


def display_of(cc: ft.CodeableConcept | None) -> str | None:
    if cc is None:
        return None
    if cc.text:
        return cc.text
    return next((c.display for c in cc.coding if c.display), None)


class Builder:
    """Accumulates one patient's facts."""

    def __init__(self, patient: ft.Patient, ref: str) -> None:
        self.patient = patient
        self.ref = ref
        self.conditions: list[Condition] = []
        self.medications: list[Medication] = []
        self.allergies: list[Allergy] = []
        self.observations: dict[str, list[Measurement]] = defaultdict(list)
        self.pgx: list[PgxResult] = []
        self.warnings: list[DataWarning] = []
        self.dates: list[dt.date] = []

    def warn(
        self,
        code: str,
        message: str,
        resource: str | None = None,
        *,
        field: str | None = None,
        value: object = None,
        quantity: str | None = None,
        date: dt.date | None = None,
        gene: str | None = None,
    ) -> None:
        self.warnings.append(
            DataWarning(
                code=code,
                message=message,
                resource=resource,
                field=field,
                value=short(value) if value is not None else None,
                quantity=quantity,
                date=date,
                gene=gene,
            )
        )

    def skipped(self, exc: PlannerError, *, private: bool = False) -> None:
        """A resource that could not be used: a warning naming resource, field, value and why; it is skipped."""
        why = "; ".join(p for p in (exc.detail, exc.expected and f"expected {exc.expected}") if p) or str(exc)
        value = None if private or exc.value is ... else exc.value
        self.warn("resource-skipped", f"not used: {why}", exc.resource, field=exc.field, value=value)


class Context:
    def __init__(self, *, tables: CodeTables, today: dt.date) -> None:
        self.tables = tables
        self.today = today

    def date(self, value: str | None, *, rref: str, field: str, file: str | None, event: bool = True) -> dt.date | None:
        if value is None:
            return None
        d = parse_date(value, resource=rref, field=field, file=file)
        if event and d > self.today:
            raise FhirError(
                "date is in the future",
                file=file,
                resource=rref,
                field=field,
                value=value,
                expected=f"a date on or before today ({self.today.isoformat()})",
            )
        return d
