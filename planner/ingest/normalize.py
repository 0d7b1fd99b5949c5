"""Raw FHIR resources -> one :class:`~planner.record.PatientRecord` per patient.

Only the resource types planner reads are decoded (typed structs, see :mod:`planner.ingest.fhir_types`); all
others (Claim, ExplanationOfBenefit, Encounter, OperationOutcome, ...) are skipped unread.

Isolation: a resource planner cannot use (a bad date, an unknown unit, a type error, a subject that is not in the
input) becomes a ``resource-skipped`` :class:`~planner.record.DataWarning` on its patient's record, naming the
resource, field, value and why, and is skipped; it never sinks the patient or the other patients. Only an unusable
Patient (no id and no ``urn:uuid`` fullUrl, a birth date after its own events, death before birth) fails, and it
fails that patient alone: the others are returned and the failure is listed in :class:`IngestStats`
(``failed_patients``); when every patient fails, the first failure is raised.

Also here: identical duplicate resources are read once; differing duplicates keep the later ``meta.lastUpdated``
with a warning; ids over 64 characters or with other characters than FHIR allows are accepted with a warning.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
from typing import Any

import msgspec

from ..errors import FhirError, InputError, PlannerError
from ..record import DataWarning, PatientRecord, PgxResult
from . import fhir_types as ft
from .clinical import classify, read_allergy, read_condition, read_observation
from .codes import CodeTables
from .common import Builder, Context, normalise_ref, ref_keys
from .medications import read_medication
from .pgx import is_pgx_observation, pgx_conflicts
from .source import RawResource, explain_validation

__all__ = ["build_records", "IngestStats", "DuplicateKeyError"]

log = logging.getLogger("planner.ingest")

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_SUBJECT = msgspec.json.Decoder(ft.SubjectHead)


@dataclasses.dataclass
class IngestStats:
    """Counts of what ingest read and skipped (no identifiers, no values: safe to log)."""

    resources: int = 0
    decoded: int = 0
    skipped_types: dict[str, int] = dataclasses.field(default_factory=dict)
    unknown_loinc: int = 0
    duplicates: int = 0  # identical copies read once
    skipped_resources: int = 0  # resources that became a resource-skipped warning
    unattributed: int = 0  # resources whose subject is not a Patient in the input
    failed_patients: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # PlannerError.to_dict()


def _rref_of(raw: RawResource) -> str:
    try:
        rid = ft.HEAD_DECODER.decode(raw.raw).id
    except (msgspec.ValidationError, msgspec.DecodeError):
        rid = None
    return f"{raw.resource_type}/{rid}" if isinstance(rid, str) and rid else f"{raw.resource_type} ({raw.where})"


def _decode(raw: RawResource, decoder: msgspec.json.Decoder = ft.RESOURCE_DECODER) -> Any:
    try:
        return decoder.decode(raw.raw)
    except msgspec.ValidationError as exc:
        msg, path = explain_validation(exc)
        raise FhirError(
            msg, file=raw.file, resource=_rref_of(raw), field=path, expected=f"a valid FHIR R4 {raw.resource_type}"
        ) from None
    except msgspec.DecodeError as exc:
        raise FhirError(f"malformed JSON ({exc})", file=raw.file, resource=raw.where) from None


class DuplicateKeyError(InputError):
    """The same key twice in one JSON object: the whole input is refused (no reader can know which was meant)."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for k, v in pairs:
        if k in seen:
            raise _DuplicateKey(k)
        seen[k] = v
    return seen


class _DuplicateKey(Exception):
    pass


def _no_duplicate_keys(raw: RawResource) -> None:
    """A resource planner reads with the same key twice in one object is refused: which value the sender meant
    cannot be known (JSON parsers silently keep the last). Fast screen: the minified text keeps every key, a
    decode-and-encode keeps one per name, so they differ in length when a key repeats (or when numbers or escapes
    are written differently); only then is the resource parsed key by key to find the key."""
    data = bytes(raw.raw)
    if len(msgspec.json.format(data, indent=-1)) == len(_ENCODE(_GENERIC.decode(data))):
        return
    try:
        json.loads(data, object_pairs_hook=_pairs)
    except _DuplicateKey as exc:
        raise DuplicateKeyError(
            f"the key {str(exc.args[0])!r} appears twice in one JSON object",
            file=raw.file,
            resource=_rref_of(raw),
            expected="each key once per object (RFC 8259: names should be unique); the file is refused",
        ) from None


_GENERIC = msgspec.json.Decoder()
_ENCODE = msgspec.json.Encoder().encode


class _Input:
    """Decoded resources, the reference index and the warnings waiting for their patient."""

    def __init__(self, tables: CodeTables, stats: IngestStats, strict: bool = False) -> None:
        self.strict = strict  # strict: a resource that cannot be used is an error, not a warning
        self.tables = tables
        self.stats = stats
        self.index: dict[str, Any] = {}
        self.decoded: list[tuple[RawResource, Any, str]] = []
        self.by_key: dict[tuple[str, str], int] = {}
        self.pending: list[tuple[RawResource, Any, DataWarning]] = []  # (raw, subject head or None, warning)
        self.patient_errors: list[PlannerError] = []

    def patient_failed(self, exc: PlannerError) -> None:
        self.patient_errors.append(exc)
        self.stats.failed_patients.append(exc.to_dict())

    def lookup(self, ref: str) -> Any:
        return self.index.get(ref) or self.index.get(normalise_ref(ref))

    def later(self, raw: RawResource, warning: DataWarning) -> None:
        try:
            head = _SUBJECT.decode(raw.raw)
        except (msgspec.ValidationError, msgspec.DecodeError):
            head = None
        self.pending.append((raw, head, warning))

    def add(self, raw: RawResource) -> None:
        self.stats.resources += 1
        if raw.resource_type not in ft.READ_TYPES:
            self.stats.skipped_types[raw.resource_type] = self.stats.skipped_types.get(raw.resource_type, 0) + 1
            return
        try:
            res = self._decode(raw)
        except PlannerError as exc:
            if self.strict or isinstance(exc, DuplicateKeyError):
                raise
            if raw.resource_type == "Patient":
                self.patient_failed(exc)
                return
            self.stats.skipped_resources += 1
            why = "; ".join(p for p in (exc.detail, exc.expected and f"expected {exc.expected}") if p)
            self.later(
                raw,
                DataWarning(
                    code="resource-skipped", message=f"not used: {why}", resource=exc.resource, field=exc.field
                ),
            )
            return
        if res is None:
            return
        self.stats.decoded += 1
        rid = res.id
        rref = f"{raw.resource_type}/{rid}" if rid else raw.where
        if rid is not None and _ID.fullmatch(rid) is None:
            self.later(
                raw,
                DataWarning(
                    code="invalid-id",
                    resource=rref,
                    field="id",
                    value=rid[:80],
                    message=f"id of {len(rid)} characters is not a FHIR id (1-64 of A-Z, a-z, "
                    "0-9, '-', '.'); accepted as given",
                ),
            )
        if rid is not None and not self._keep_newer(raw, res, rid, rref):
            return
        if res.__class__ is not ft.Resource:
            return  # an Observation planner does not read (its id still counted for duplicates)
        for k in ref_keys(raw.resource_type, rid, raw.full_url):
            self.index[k] = res
        self.by_key[(raw.resource_type, rid or f"#{len(self.decoded)}")] = len(self.decoded)
        self.decoded.append((raw, res, rref))

    def _decode(self, raw: RawResource) -> Any:
        if raw.resource_type == "Observation":
            # Decide from the code (and profile / component codes) alone; decode the rest only when planner reads it.
            head = _decode(raw, ft.OBSERVATION_HEAD_DECODER)
            panel, known, pgx = classify(head, self.tables)
            if panel is None and known is None and not pgx:
                self.stats.unknown_loinc += 1  # not read, so its other fields are not checked either
                return head
        res = _decode(raw)
        if (
            self.strict
            or raw.resource_type != "Observation"
            or res.__class__ is not ft.Resource
            or is_pgx_observation(res, self.tables)
        ):
            _no_duplicate_keys(raw)  # lab Observations only in strict mode: the check costs a quarter of ingest time
        return res

    def _keep_newer(self, raw: RawResource, res: Any, rid: str, rref: str) -> bool:
        """False when ``res`` is a duplicate that loses to the copy already read."""
        key = (raw.resource_type, rid)
        at = self.by_key.get(key)
        if at is None:
            return True
        old_raw, old, _ = self.decoded[at]
        if bytes(old_raw.raw) == bytes(raw.raw):
            self.stats.duplicates += 1
            return False
        new_t = res.meta.lastUpdated if res.meta is not None else None
        old_t = old.meta.lastUpdated if old.meta is not None else None
        keep_new = (new_t or "") >= (old_t or "")
        self.later(
            raw,
            DataWarning(
                code="duplicate-resource",
                resource=rref,
                field="meta.lastUpdated",
                message="two different copies of this resource in the input; the one "
                f"{'updated last' if new_t or old_t else 'read last'} is used",
            ),
        )
        if keep_new:
            self.decoded[at] = (raw, res, rref)
            for k in ref_keys(raw.resource_type, rid, raw.full_url):
                self.index[k] = res
        return False


def _patient_builders(inp: _Input) -> tuple[list[tuple[RawResource, Any, str]], dict[int, Builder]]:
    patients = []
    builders: dict[int, Builder] = {}
    for raw, p, rref in inp.decoded:
        if raw.resource_type != "Patient":
            continue
        if not p.id:
            if raw.full_url and raw.full_url.startswith("urn:uuid:"):
                p = msgspec.structs.replace(p, id=raw.full_url[len("urn:uuid:") :])
                rref = f"Patient/{p.id}"
                b = Builder(p, rref)
                b.warn(
                    "patient-id-from-fullurl",
                    "Patient has no id; its urn:uuid fullUrl is used as the id",
                    rref,
                    field="id",
                )
            else:
                inp.patient_failed(
                    FhirError(
                        "Patient without an id",
                        file=raw.file,
                        resource=raw.where,
                        field="id",
                        expected="a Patient id (or a urn:uuid fullUrl)",
                    )
                )
                continue
        else:
            b = Builder(p, rref)
        for k in ref_keys("Patient", p.id, raw.full_url):
            inp.index[k] = p
        builders[id(p)] = b
        patients.append((raw, p, rref))
    return patients, builders


def _route(
    inp: _Input, head: Any, t: str, rref: str, builders: dict[int, Builder], patients: list
) -> Builder | None | str:
    """The builder a resource belongs to; None when it has no subject and several patients; 'missing' when its
    subject is not a Patient in the input."""
    subject = None if head is None else (head.patient if t == "AllergyIntolerance" else head.subject)
    if subject is None or subject.reference is None:
        return builders[id(patients[0][1])] if len(patients) == 1 else None
    target = inp.lookup(subject.reference)
    if target is None or target.resourceType != "Patient" or id(target) not in builders:
        return "missing"
    return builders[id(target)]


def _read_all(inp: _Input, ctx: Context, patients: list, builders: dict[int, Builder]) -> None:
    births: dict[int, dt.date | None] = {}
    for raw, p, rref in patients:
        try:
            births[id(p)] = ctx.date(p.birthDate, rref=rref, field="birthDate", file=raw.file)
        except PlannerError:
            births[id(p)] = None  # reported when the Patient itself is read
    everyone = [builders[id(p)] for _, p, _ in patients]
    for raw, res, rref in inp.decoded:
        t = raw.resource_type
        if t in ("Patient", "Medication"):
            continue
        b = _route(inp, res, t, rref, builders, patients)
        field = "patient.reference" if t == "AllergyIntolerance" else "subject.reference"
        if not isinstance(b, Builder):
            inp.stats.unattributed += 1
            why = (
                "has no subject and the input holds several patients"
                if b is None
                else "names a subject that is not a Patient in the input"
            )
            for x in everyone if b is None or len(everyone) == 1 else ():
                x.warn("resource-unattributed", f"{t} {why}; not used for any patient", rref, field=field)
            continue
        try:
            if t == "DiagnosticReport":  # its contained Observations (a genomics report holds its results inside)
                for c in res.contained:
                    if c.resourceType == "Observation":
                        read_observation(c, rref=rref, file=raw.file, ctx=ctx, lookup=inp.lookup, b=b, stats=inp.stats)
            elif t == "Observation":
                read_observation(res, rref=rref, file=raw.file, ctx=ctx, lookup=inp.lookup, b=b, stats=inp.stats)
            elif t in ("MedicationRequest", "MedicationStatement"):
                read_medication(res, rref=rref, file=raw.file, ctx=ctx, lookup=inp.lookup, b=b)
            elif t == "Condition":
                read_condition(res, rref=rref, file=raw.file, ctx=ctx, b=b, birth=births.get(id(b.patient)))
            elif t == "AllergyIntolerance":
                read_allergy(res, rref=rref, file=raw.file, ctx=ctx, b=b)
        except PlannerError as exc:
            if inp.strict:
                raise
            inp.stats.skipped_resources += 1
            b.skipped(exc)
    for raw, head, w in inp.pending:
        if raw.resource_type == "Patient":
            target = inp.lookup(w.resource or "")
            b = builders.get(id(target)) if target is not None else None
        else:
            b = _route(inp, head, raw.resource_type, w.resource or "", builders, patients)
        targets = [b] if isinstance(b, Builder) else (everyone if raw.resource_type != "Patient" else [])
        for x in targets:
            x.warnings.append(w)


def _birth_and_death(
    raw: RawResource, p: Any, rref: str, b: Builder, *, ctx: Context
) -> tuple[dt.date | None, dt.date | None]:
    """The Patient's birth and death dates (an unreadable one is reported and not used; death before birth is a
    FhirError)."""
    try:
        birth = ctx.date(p.birthDate, rref=rref, field="birthDate", file=raw.file)
    except PlannerError as exc:
        b.warn("resource-skipped", f"birthDate not used: {exc.detail}", rref, field="birthDate")  # no value: private
        birth = None
    try:
        deceased = ctx.date(p.deceasedDateTime, rref=rref, field="deceasedDateTime", file=raw.file)
    except PlannerError as exc:
        b.warn("resource-skipped", f"deceasedDateTime not used: {exc.detail}", rref, field="deceasedDateTime")
        deceased = None
    if birth is not None and deceased is not None and deceased < birth:
        raise FhirError(
            "deceased before birth",
            file=raw.file,
            resource=rref,
            field="deceasedDateTime",
            expected="a date of death on or after the birth date",
        )
    return birth, deceased


def _sex(p: Any, rref: str, b: Builder, *, ctx: Context) -> str | None:
    """Patient.gender, else the US Core sex extension; a value outside the FHIR codes is reported, not used."""
    sex = p.gender
    if sex is None:  # US Core: sex in an extension when gender is not given
        for url, codes in ctx.tables.sex_extensions.items():
            sex = next((codes[e.valueCode] for e in p.extension if e.url == url and e.valueCode in codes), None)
            if sex is not None:
                b.warn(
                    "sex-from-extension",
                    "Patient.gender absent; sex read from the US Core extension",
                    rref,
                    field="extension",
                    value=url.rsplit("/", 1)[-1],
                )
                break
    if sex is not None and sex not in {"male", "female", "other", "unknown"}:
        b.warn(
            "invalid-gender",
            "gender is not one of male, female, other, unknown; not used",
            rref,
            field="gender",
            value=sex,
        )
        sex = None
    return sex


def _finish(
    raw: RawResource,
    p: Any,
    rref: str,
    b: Builder,
    *,
    ctx: Context,
    as_of: dt.date | None,
    today: dt.date,
    problems: list[DataWarning],
) -> PatientRecord:
    """The record of one patient (a FhirError when the Patient itself is unusable)."""
    birth, deceased = _birth_and_death(raw, p, rref, b, ctx=ctx)
    sex = _sex(p, rref, b, ctx=ctx)
    if deceased is not None:
        b.dates.append(deceased)
    record_as_of = as_of
    if record_as_of is None:
        if b.dates:
            record_as_of = max(b.dates)
        else:
            record_as_of = today
            b.warn("as-of-defaulted", "the record holds no dated facts; as_of is today's date", rref)
    if birth is not None and birth > record_as_of:
        raise FhirError(
            "birth date after the patient's own events",
            file=raw.file,
            resource=rref,
            field="birthDate",
            expected=f"a birth date on or before {record_as_of.isoformat()} (the record's as-of date)",
        )
    if birth is not None and b.dates and birth > min(b.dates):
        b.warn(
            "birth-after-events",
            "the birth date is after some of the patient's own events; reported, "
            "not resolved (check the birth date and the event dates)",
            rref,
            field="birthDate",
        )
    if p.deceasedBoolean or deceased is not None:
        b.warn(
            "deceased",
            "the patient is recorded as deceased: no treatment plans are made",
            rref,
            field="deceasedBoolean" if deceased is None else "deceasedDateTime",
        )
    observations = {
        k: tuple(sorted(v, key=lambda m: (m.date, m.source or "", m.loinc))) for k, v in sorted(b.observations.items())
    }
    pgx: list[PgxResult] = list(dict.fromkeys(b.pgx))
    warnings = list(dict.fromkeys(problems + b.warnings + pgx_conflicts(pgx)))
    return PatientRecord(
        patient_id=p.id,
        birth_date=birth,
        sex=sex,
        deceased=deceased,
        deceased_boolean=bool(p.deceasedBoolean),
        as_of=record_as_of,
        conditions=tuple(sorted(b.conditions, key=lambda c: (c.onset or c.recorded or dt.date.min, c.id or ""))),
        medications=tuple(
            sorted(b.medications, key=lambda m: (m.start or dt.date.min, m.id or "", m.ingredient or ""))
        ),
        allergies=tuple(sorted(b.allergies, key=lambda a: (a.recorded or dt.date.min, a.id or ""))),
        observations=observations,
        pgx=tuple(pgx),
        warnings=tuple(warnings),
    )


def build_records(
    resources: list[RawResource],
    *,
    tables: CodeTables,
    as_of: dt.date | None,
    today: dt.date,
    stats: IngestStats | None = None,
    problems: list[DataWarning] | None = None,
    strict: bool = False,
) -> list[PatientRecord]:
    """One record per usable Patient in ``resources`` (in input order). ``problems``: input-level warnings (a
    broken NDJSON line) added to every record, since the lost line may have been any patient's."""
    stats = stats if stats is not None else IngestStats()
    ctx = Context(tables=tables, today=today)
    inp = _Input(tables, stats, strict)
    for raw in resources:
        inp.add(raw)
    patients, builders = _patient_builders(inp)
    if not patients:
        if inp.patient_errors:
            raise inp.patient_errors[0]
        files = sorted({r.file or "<input>" for r in resources})
        found = sorted({r.resource_type for r in resources})
        raise FhirError(
            f"no Patient resource (found: {', '.join(found)[:120]})",
            file=", ".join(files)[:200] or None,
            resource="Patient",
            expected="one Patient resource per patient in the input",
        )
    _read_all(inp, ctx, patients, builders)
    records = []
    first_error: PlannerError | None = None
    for raw, p, rref in patients:
        try:
            records.append(
                _finish(raw, p, rref, builders[id(p)], ctx=ctx, as_of=as_of, today=today, problems=list(problems or ()))
            )
        except PlannerError as exc:
            first_error = first_error or exc
            inp.patient_failed(exc)
    if not records and first_error is not None:
        raise first_error
    if stats.failed_patients:
        log.warning("ingest: %d patient(s) could not be read; %d read", len(stats.failed_patients), len(records))
    log.debug(
        "ingest: %d resources, %d decoded, %d patients, %d unknown LOINC skipped, %d skipped, %d duplicates",
        stats.resources,
        stats.decoded,
        len(records),
        stats.unknown_loinc,
        stats.skipped_resources,
        stats.duplicates,
    )
    return records
