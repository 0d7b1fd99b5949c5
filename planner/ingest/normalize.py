"""Raw FHIR resources -> one :class:`~planner.record.PatientRecord` per patient.

Only the resource types planner reads are decoded (typed structs, see :mod:`planner.ingest.fhir_types`); all
others (Claim, ExplanationOfBenefit, Encounter, ...) are skipped unread. Each decoded field is then checked:
dates, references, units and codes. Problems with the input raise a :class:`~planner.errors.FhirError` naming the
resource, field, value and what was expected; facts planner could not use become :class:`DataWarning` s.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import re
from collections import defaultdict
from typing import Any, Callable

import msgspec

from ..errors import FhirError, UnitError
from ..record import Allergy, Coding, Condition, DataWarning, Measurement, Medication, PatientRecord, PgxResult
from . import fhir_types as ft
from .codes import LOINC_SYSTEM, RXNORM_SYSTEMS, CodeTables, Ingredient
from .dates import parse_date
from .pgx import is_pgx_observation, pgx_conflicts, pgx_from_observation
from .source import RawResource, explain_validation

__all__ = ["build_records", "IngestStats"]

log = logging.getLogger("planner.ingest")

SNOMED = "http://snomed.info/sct"
ICD10 = ("http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10")
UCUM = "http://unitsofmeasure.org"
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_LOINC_OR_NONE = frozenset({LOINC_SYSTEM, None})
_SKIP_OBS_STATUS = frozenset({"entered-in-error", "cancelled"})
_PERIOD_DAYS = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1.0, "wk": 7.0, "mo": 30.4375, "a": 365.25}
_MASS_MG = {"mg": 1.0, "mcg": 0.001, "ug": 0.001, "µg": 0.001, "g": 1000.0}
_COUNT_UNITS = frozenset({"", "1", "{tbl}", "{tablet}", "tablet", "tablets", "tab", "{capsule}", "capsule", "capsules",
                          "cap", "{cap}", "{puff}", "puff", "{actuat}", "{dose}", "dose"})
_DRUG_UNITS = frozenset({"u", "[iu]", "iu", "unt", "unit", "units", "[u]", "{unit}", "{units}"})
_STRENGTH = re.compile(r"(\d+(?:\.\d+)?)\s*(MG|MCG|UG|µG|G)(?:\s*/\s*(ML|ACTUAT))?\b", re.IGNORECASE)


@dataclasses.dataclass
class IngestStats:
    """Counts of what ingest read and skipped (no identifiers, no values: safe to log)."""

    resources: int = 0
    decoded: int = 0
    skipped_types: dict[str, int] = dataclasses.field(default_factory=dict)
    unknown_loinc: int = 0


def _ref_keys(rtype: str, rid: str | None, full_url: str | None) -> list[str]:
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


def _normalise_ref(ref: str) -> str:
    if ref.startswith("urn:"):
        return ref
    parts = ref.split("/_history")[0].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else ref


def _first_code(cc: ft.CodeableConcept | None, systems: tuple[str, ...] | frozenset[str] | None = None) -> ft.Coding | None:
    if cc is None:
        return None
    for c in cc.coding:
        if systems is None or c.system in systems:
            return c
    return None


def _status(cc: ft.CodeableConcept | None) -> str | None:
    c = _first_code(cc)
    return c.code if c is not None else (cc.text if cc is not None else None)


def _display(cc: ft.CodeableConcept | None) -> str | None:
    if cc is None:
        return None
    if cc.text:
        return cc.text
    return next((c.display for c in cc.coding if c.display), None)


class _Builder:
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

    def warn(self, code: str, message: str, resource: str | None = None) -> None:
        self.warnings.append(DataWarning(code=code, message=message, resource=resource))


class _Context:
    def __init__(self, *, tables: CodeTables, today: dt.date) -> None:
        self.tables = tables
        self.today = today

    def date(self, value: str | None, *, rref: str, field: str, file: str | None, event: bool = True) -> dt.date | None:
        if value is None:
            return None
        d = parse_date(value, resource=rref, field=field, file=file)
        if event and d > self.today:
            raise FhirError("date is in the future", file=file, resource=rref, field=field, value=value,
                            expected=f"a date on or before today ({self.today.isoformat()})")
        return d


# ---- medications ------------------------------------------------------------------------------------------------


def _strengths(display: str | None, tables: CodeTables) -> dict[str, tuple[float, bool]]:
    """Ingredient name -> (strength in mg, per_ml) parsed from a display such as
    ``"sitagliptin 50 MG / metformin hydrochloride 500 MG Oral Tablet"``."""
    out: dict[str, tuple[float, bool]] = {}
    if not display:
        return out
    for part in display.split(" / "):
        ings = tables.ingredients_in_text(part)
        m = _STRENGTH.search(part)
        if len(ings) == 1 and m:
            mg = float(m.group(1)) * _MASS_MG[m.group(2).lower()]
            out[ings[0].name] = (mg, (m.group(3) or "").upper() == "ML")
    return out


def _per_day(dosage: ft.Dosage) -> float | None:
    rep = dosage.timing.repeat if dosage.timing is not None else None
    if rep is None:
        return None
    freq = rep.frequency if rep.frequency is not None else 1
    period = rep.period if rep.period is not None else 1.0
    unit = rep.periodUnit or "d"
    if unit not in _PERIOD_DAYS or period <= 0 or freq < 0:
        return None
    return freq / (period * _PERIOD_DAYS[unit])


def _dose_mg_day(dosages: list[ft.Dosage], strength: tuple[float, bool] | None,
                 mg_per_unit: float | None = None) -> tuple[float | None, str | None]:
    """(mg/day, None) or (None, why not). ``mg_per_unit`` converts doses in (insulin) units."""
    if not dosages:
        return None, "no dosage instruction"
    d = dosages[0]
    per_day = _per_day(d)
    if per_day is None:
        if d.asNeededBoolean:
            return None, "taken as needed (no schedule)"
        return None, "dosage has no timing (frequency/period)"
    qty = next((dr.doseQuantity for dr in d.doseAndRate if dr.doseQuantity is not None), None)
    if qty is None or qty.value is None:
        if strength is None:
            return None, "no dose quantity and no strength in the drug name"
        return strength[0] * per_day, None  # one unit per administration
    unit = (qty.code or qty.unit or "").strip()
    low = unit.lower()
    if low in _MASS_MG:
        return qty.value * _MASS_MG[low] * per_day, None
    if low in _DRUG_UNITS:
        if mg_per_unit is None:
            return None, f"dose in units ({unit!r}) and no mg per unit known for this drug"
        return qty.value * mg_per_unit * per_day, None
    if low == "ml" and strength is not None and strength[1]:
        return qty.value * strength[0] * per_day, None
    if low in _COUNT_UNITS:
        if strength is None or strength[1]:
            return None, "dose given in units but the strength per unit is unknown"
        return qty.value * strength[0] * per_day, None
    return None, f"dose unit {unit!r} cannot be converted to mg"


def _medications(
    res: ft.MedicationRequest | ft.MedicationStatement,
    *,
    rref: str,
    file: str | None,
    ctx: _Context,
    lookup: Callable[[str], Any],
    b: _Builder,
) -> None:
    tables = ctx.tables
    cc = res.medicationCodeableConcept
    med_ingredients: list[Ingredient] = []
    if cc is None and res.medicationReference is not None:
        ref = res.medicationReference.reference
        if ref and ref.startswith("#"):
            target = next((c for c in res.contained if c.id == ref[1:]), None)
        else:
            target = lookup(ref) if ref else None
        if target is None or target.resourceType != "Medication":
            raise FhirError("reference to a missing resource", file=file, resource=rref,
                            field="medicationReference.reference", value=ref,
                            expected="a Medication resource in the same input")
        cc = target.code if target.code is not None else ft.CodeableConcept()
        for ing in target.ingredient:
            for c in (ing.itemCodeableConcept.coding if ing.itemCodeableConcept else []):
                found = tables.ingredient_for_code(c.code) if c.system in RXNORM_SYSTEMS else None
                found = found or (tables.ingredients_in_text(c.display) or [None])[0]
                if found and found not in med_ingredients:
                    med_ingredients.append(found)
    if cc is None or (not cc.coding and not cc.text and not med_ingredients):
        raise FhirError("no medication", file=file, resource=rref, field="medication[x]",
                        expected="medicationCodeableConcept or medicationReference")
    rx = _first_code(cc, RXNORM_SYSTEMS)
    display = (rx.display if rx is not None and rx.display else None) or _display(cc)
    by_code = tables.ingredient_for_code(rx.code) if rx is not None else None
    named: list[Ingredient] = []
    for t in [c.display for c in cc.coding if c.display] + ([cc.text] if cc.text else []):
        for ing in tables.ingredients_in_text(t):
            if ing not in named:
                named.append(ing)
    if med_ingredients:
        ingredients = med_ingredients
    elif by_code is not None:
        ingredients = named if (by_code in named and len(named) > 1) else [by_code]
        if named and by_code not in named:
            b.warn("code-display-mismatch",
                   f"RxNorm code resolves to {by_code.name} but the name says {', '.join(i.name for i in named)}; "
                   "the code was used", rref)
    else:
        ingredients = named
    if res.resourceType == "MedicationRequest":
        vp = res.dispenseRequest.validityPeriod if res.dispenseRequest is not None else None
        if res.authoredOn is not None or vp is None or vp.start is None:
            start = ctx.date(res.authoredOn, rref=rref, field="authoredOn", file=file)
        else:  # no authoredOn: the validity period's start is the best start date given
            start = ctx.date(vp.start, rref=rref, field="dispenseRequest.validityPeriod.start", file=file)
        end = ctx.date(vp.end, rref=rref, field="dispenseRequest.validityPeriod.end", file=file, event=False) if vp else None
        dosages = res.dosageInstruction
        intent = res.intent
        kind = "MedicationRequest"
    else:
        ep = res.effectivePeriod
        start = ctx.date(ep.start if ep else res.effectiveDateTime, rref=rref,
                         field="effectivePeriod.start" if ep else "effectiveDateTime", file=file)
        end = ctx.date(ep.end, rref=rref, field="effectivePeriod.end", file=file, event=False) if ep else None
        dosages = res.dosage
        intent = None
        kind = "MedicationStatement"
    if start is not None and end is not None and end < start:
        raise FhirError("medication ends before it starts", file=file, resource=rref,
                        field="dispenseRequest.validityPeriod.end" if kind == "MedicationRequest" else "effectivePeriod.end",
                        value=end.isoformat(), expected=f"a date on or after the start {start.isoformat()}")
    if start is not None:
        b.dates.append(start)
    common = dict(id=res.id, resource_type=kind, source_code=rx.code if rx else None, source_display=display,
                  status=res.status, intent=intent, start=start, end=end)
    if not ingredients:
        b.warn("unresolved-medication", "medication could not be resolved to an ingredient RxCUI "
               "(code not in rules/codes/rxnorm.csv and no known ingredient name in its display/text)", rref)
        b.medications.append(Medication(**common))
        return
    strengths = _strengths(display, tables)
    for ing in ingredients:
        strength = strengths.get(ing.name)
        dose, why = _dose_mg_day(dosages, strength, ing.mg_per_unit)
        if dose is not None and (not math.isfinite(dose) or dose < 0):
            raise FhirError("dose is not a finite non-negative number", file=file, resource=rref,
                            field="dosageInstruction", expected="a finite dose")
        if why is not None:
            b.warn("dose-not-derivable", f"{ing.name}: dose per day not derivable ({why})", rref)
        b.medications.append(Medication(**common, rxcui=ing.rxcui, ingredient=ing.name,
                                        strength_mg=strength[0] if strength else None,
                                        dose_mg_day=round(dose, 6) if dose is not None else None))


# ---- observations -----------------------------------------------------------------------------------------------


def _measure(
    *, q_code: str, quantity: ft.Quantity | None, integer: int | None, date: dt.date, rref: str, field: str,
    file: str | None, ctx: _Context, b: _Builder,
) -> None:
    q = ctx.tables.loinc_to_quantity[q_code]
    if quantity is None and integer is not None:
        quantity = ft.Quantity(value=float(integer), unit=q.unit if "" not in q.accept else "")
    if quantity is None or quantity.value is None:
        b.warn("no-value", f"{q.label} (LOINC {q_code}) has no numeric value", rref)
        return
    value = quantity.value
    if quantity.comparator is not None:
        b.warn("value-with-comparator", f"{q.label} (LOINC {q_code}) is '{quantity.comparator} {value:g}'; "
               f"the bound {value:g} is used as the value", rref)
    if not math.isfinite(value):
        raise FhirError("value is not a finite number", file=file, resource=rref, field=f"{field}.value", value=value,
                        expected="a finite number")
    candidates = [u for u in (quantity.code, quantity.unit) if u is not None]
    if not candidates:
        if q.assume_missing_unit:
            b.warn("unit-missing", f"{q.label} (LOINC {q_code}) without a unit; {q.unit} assumed", rref)
            candidates = [q.unit]
        else:
            candidates = [""]
    rule = None
    for u in candidates:
        rule = q.accept.get(u.strip())
        if rule is not None:
            used = u.strip()
            break
    if rule is None:
        raise UnitError(f"for LOINC {q_code} ({q.label})", file=file, resource=rref, field=f"{field}.unit",
                        value=quantity.unit if quantity.unit is not None else quantity.code,
                        expected=f"{q.unit}" + (f" or one of {', '.join(repr(u) for u in q.accept if u != q.unit)}"
                                                  if len(q.accept) > 1 else ""))
    canonical = rule.apply(value)
    if q.plausible is not None and not (q.plausible[0] <= canonical <= q.plausible[1]):
        b.warn("implausible-value", f"{q.label} (LOINC {q_code}) outside the plausible range "
               f"{q.plausible[0]:g}-{q.plausible[1]:g} {q.unit}; not used", rref)
        return
    converted = used != q.unit
    b.observations[q.name].append(Measurement(
        date=date, value=round(canonical, 6), unit=q.unit, loinc=q_code, source=rref,
        original_value=float(value) if converted else None, original_unit=used if converted else None))


def _classify(obs: ft.Observation | ft.ObservationHead, tables: CodeTables) -> tuple[str | None, str | None, bool]:
    """(panel LOINC, quantity LOINC, is PGx) of an Observation; all empty: planner does not read it."""
    panel = known = None
    if obs.code is not None:
        for c in obs.code.coding:
            if c.system in _LOINC_OR_NONE and c.code:
                if panel is None and c.code in tables.panels:
                    panel = c.code
                if known is None and c.code in tables.loinc_to_quantity:
                    known = c.code
    pgx = panel is None and known is None and is_pgx_observation(obs, tables)  # type: ignore[arg-type]
    return panel, known, pgx


def _observation(obs: ft.Observation, *, rref: str, file: str | None, ctx: _Context, lookup: Callable[[str], Any],
                 b: _Builder, stats: IngestStats) -> None:
    if obs.status in _SKIP_OBS_STATUS:
        return
    tables = ctx.tables
    panel, known, pgx = _classify(obs, tables)
    if panel is None and known is None and not pgx:
        stats.unknown_loinc += 1
        return
    if obs.effectiveDateTime is not None:
        date = ctx.date(obs.effectiveDateTime, rref=rref, field="effectiveDateTime", file=file)
    elif obs.effectivePeriod is not None and obs.effectivePeriod.start is not None:
        date = ctx.date(obs.effectivePeriod.start, rref=rref, field="effectivePeriod.start", file=file)
    elif obs.effectiveInstant is not None:
        date = ctx.date(obs.effectiveInstant, rref=rref, field="effectiveInstant", file=file)
    else:
        date = ctx.date(obs.issued, rref=rref, field="issued", file=file)
    if pgx:
        def lookup_obs(ref: str) -> ft.Observation | None:
            target = lookup(ref)
            return target if target is not None and target.resourceType == "Observation" else None
        found = pgx_from_observation(obs, ref=rref, date=date, tables=tables, lookup=lookup_obs,
                                     warn=lambda code, msg: b.warn(code, msg, rref))
        b.pgx.extend(found)
        if found and date is not None:
            b.dates.append(date)
        return
    if date is None:
        b.warn("no-date", "observation without effective[x] or issued date; not used", rref)
        return
    b.dates.append(date)
    if known is not None:
        _measure(q_code=known, quantity=obs.valueQuantity, integer=obs.valueInteger, date=date, rref=rref,
                 field="valueQuantity", file=file, ctx=ctx, b=b)
    if panel is not None:
        for i, comp in enumerate(obs.component):
            ck = None
            if comp.code is not None:
                ck = next((c.code for c in comp.code.coding
                           if c.system in _LOINC_OR_NONE and c.code in tables.loinc_to_quantity), None)
            if ck is None:
                stats.unknown_loinc += 1
                continue
            _measure(q_code=ck, quantity=comp.valueQuantity, integer=comp.valueInteger, date=date, rref=rref,
                     field=f"component[{i}].valueQuantity", file=file, ctx=ctx, b=b)


# ---- conditions, allergies --------------------------------------------------------------------------------------


def _condition(c: ft.Condition, *, rref: str, file: str | None, ctx: _Context, b: _Builder) -> None:
    if c.code is None or not (c.code.coding or c.code.text):
        raise FhirError("condition without a code", file=file, resource=rref, field="code",
                        expected="a SNOMED CT or ICD-10-CM coding")
    main = _first_code(c.code, (SNOMED,)) or _first_code(c.code, ICD10) or _first_code(c.code)
    onset = ctx.date(c.onsetDateTime, rref=rref, field="onsetDateTime", file=file) if c.onsetDateTime else (
        ctx.date(c.onsetPeriod.start, rref=rref, field="onsetPeriod.start", file=file) if c.onsetPeriod else None)
    abatement = ctx.date(c.abatementDateTime, rref=rref, field="abatementDateTime", file=file) if c.abatementDateTime else (
        ctx.date(c.abatementPeriod.start, rref=rref, field="abatementPeriod.start", file=file) if c.abatementPeriod else None)
    recorded = ctx.date(c.recordedDate, rref=rref, field="recordedDate", file=file)
    if onset is not None and abatement is not None and abatement < onset:
        raise FhirError("condition abates before its onset", file=file, resource=rref, field="abatementDateTime",
                        value=abatement.isoformat(), expected=f"a date on or after the onset {onset.isoformat()}")
    for d in (onset, recorded):
        if d is not None:
            b.dates.append(d)
    b.conditions.append(Condition(
        id=c.id, code=main.code if main else None, system=main.system if main else None,
        display=(main.display if main and main.display else c.code.text),
        codings=tuple(Coding(system=x.system, code=x.code, display=x.display) for x in c.code.coding),
        onset=onset, abatement=abatement, recorded=recorded, clinical_status=_status(c.clinicalStatus),
        verification_status=_status(c.verificationStatus)))


def _allergy(a: ft.AllergyIntolerance, *, rref: str, file: str | None, ctx: _Context, b: _Builder) -> None:
    if a.code is None or not (a.code.coding or a.code.text):
        raise FhirError("allergy without a substance code", file=file, resource=rref, field="code",
                        expected="an RxNorm or SNOMED CT coding (or text)")
    tables = ctx.tables
    rx = _first_code(a.code, RXNORM_SYSTEMS)
    main = rx or _first_code(a.code, (SNOMED,)) or _first_code(a.code)
    ing = tables.ingredient_for_code(rx.code) if rx is not None else None
    if ing is None:
        for t in [c.display for c in a.code.coding if c.display] + ([a.code.text] if a.code.text else []):
            found = tables.ingredients_in_text(t)
            if found:
                ing = found[0]
                break
    recorded = ctx.date(a.recordedDate, rref=rref, field="recordedDate", file=file)
    if recorded is not None:
        b.dates.append(recorded)
    category: list[str] = []
    if len(a.category):
        try:
            category = ft.CATEGORY_DECODER.decode(a.category)
        except msgspec.ValidationError as exc:
            msg, _ = explain_validation(exc)
            raise FhirError(msg, file=file, resource=rref, field="category",
                            expected="a list of codes: food, medication, environment, biologic") from None
    reactions: list[str] = []
    for r in a.reaction:
        for m in r.manifestation:
            t = _display(m)
            if t and t not in reactions:
                reactions.append(t)
    b.allergies.append(Allergy(
        id=a.id, code=main.code if main else None, system=main.system if main else None,
        display=(main.display if main and main.display else a.code.text), rxcui=ing.rxcui if ing else None,
        ingredient=ing.name if ing else None, category=tuple(category), criticality=a.criticality,
        clinical_status=_status(a.clinicalStatus), verification_status=_status(a.verificationStatus),
        reactions=tuple(reactions), recorded=recorded))


# ---- the whole input ----------------------------------------------------------------------------------------------


def _decode(raw: RawResource, decoder: msgspec.json.Decoder = ft.RESOURCE_DECODER) -> Any:
    try:
        return decoder.decode(raw.raw)
    except msgspec.ValidationError as exc:
        msg, path = explain_validation(exc)
        head = None
        try:
            head = ft.HEAD_DECODER.decode(raw.raw).id
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
        rref = f"{raw.resource_type}/{head}" if isinstance(head, str) else f"{raw.resource_type} ({raw.where})"
        raise FhirError(msg, file=raw.file, resource=rref, field=path,
                        expected=f"a valid FHIR R4 {raw.resource_type}") from None
    except msgspec.DecodeError as exc:
        raise FhirError(f"malformed JSON ({exc})", file=raw.file, resource=raw.where) from None


def build_records(
    resources: list[RawResource],
    *,
    tables: CodeTables,
    as_of: dt.date | None,
    today: dt.date,
    stats: IngestStats | None = None,
) -> list[PatientRecord]:
    """One record per Patient in ``resources`` (in input order)."""
    stats = stats if stats is not None else IngestStats()
    ctx = _Context(tables=tables, today=today)
    index: dict[str, Any] = {}
    seen_ids: dict[tuple[str, str], str] = {}
    decoded: list[tuple[RawResource, Any, str]] = []
    for raw in resources:
        stats.resources += 1
        if raw.resource_type not in ft.READ_TYPES:
            stats.skipped_types[raw.resource_type] = stats.skipped_types.get(raw.resource_type, 0) + 1
            continue
        if raw.resource_type == "Observation":
            # Decide from the code (and profile / component codes) alone; decode the rest only when planner reads it.
            head = _decode(raw, ft.OBSERVATION_HEAD_DECODER)
            panel, known, pgx = _classify(head, tables)
            if panel is None and known is None and not pgx:
                stats.unknown_loinc += 1  # not read, so its other fields are not checked either
                res = head
            else:
                res = _decode(raw)
        else:
            res = _decode(raw)
        stats.decoded += 1
        rid = res.id
        if rid is not None:
            if _ID.fullmatch(rid) is None:
                raise FhirError("invalid resource id", file=raw.file, resource=f"{raw.resource_type} ({raw.where})",
                                field="id", value=rid,
                                expected="1-64 characters of A-Z, a-z, 0-9, '-' and '.'")
            key = (raw.resource_type, rid)
            if key in seen_ids:
                raise FhirError("duplicate resource id", file=raw.file, resource=f"{raw.resource_type}/{rid}",
                                field="id", value=rid, expected=f"ids unique per resource type (also at {seen_ids[key]})")
            seen_ids[key] = raw.where
        if res.__class__ is not ft.Resource:
            continue  # an Observation planner does not read (its id still counted for duplicates)
        rref = f"{raw.resource_type}/{rid}" if rid else raw.where
        for k in _ref_keys(raw.resource_type, rid, raw.full_url):
            index[k] = res
        decoded.append((raw, res, rref))

    def lookup(ref: str) -> Any:
        return index.get(ref) or index.get(_normalise_ref(ref))

    patients = [(raw, res, rref) for raw, res, rref in decoded if raw.resource_type == "Patient"]
    if not patients:
        files = sorted({r.file or "<input>" for r in resources})
        found = sorted({r.resource_type for r in resources})
        raise FhirError(f"no Patient resource (found: {', '.join(found)[:120]})", file=", ".join(files)[:200] or None,
                        resource="Patient", expected="one Patient resource per patient in the input")
    builders: dict[int, _Builder] = {}
    for raw, p, rref in patients:
        if not p.id:
            raise FhirError("Patient without an id", file=raw.file, resource=raw.where, field="id",
                            expected="a Patient id")
        builders[id(p)] = _Builder(p, rref)
    only = builders[id(patients[0][1])] if len(patients) == 1 else None

    for raw, res, rref in decoded:
        t = raw.resource_type
        if t in ("Patient", "Medication"):
            continue
        subject = res.patient if t == "AllergyIntolerance" else res.subject
        field = "patient.reference" if t == "AllergyIntolerance" else "subject.reference"
        if subject is None or subject.reference is None:
            if only is None:
                raise FhirError(f"no subject and {len(patients)} patients in the input", file=raw.file,
                                resource=rref, field=field, expected="a reference to one of the Patients")
            b = only
        else:
            target = lookup(subject.reference)
            if target is None or target.resourceType != "Patient":
                raise FhirError("reference to a missing resource", file=raw.file, resource=rref, field=field,
                                value=subject.reference, expected="a reference to a Patient in the same input")
            b = builders[id(target)]
        if t == "Observation":
            _observation(res, rref=rref, file=raw.file, ctx=ctx, lookup=lookup, b=b, stats=stats)
        elif t in ("MedicationRequest", "MedicationStatement"):
            _medications(res, rref=rref, file=raw.file, ctx=ctx, lookup=lookup, b=b)
        elif t == "Condition":
            _condition(res, rref=rref, file=raw.file, ctx=ctx, b=b)
        elif t == "AllergyIntolerance":
            _allergy(res, rref=rref, file=raw.file, ctx=ctx, b=b)

    records = []
    for raw, p, rref in patients:
        b = builders[id(p)]
        birth = ctx.date(p.birthDate, rref=rref, field="birthDate", file=raw.file)
        deceased = ctx.date(p.deceasedDateTime, rref=rref, field="deceasedDateTime", file=raw.file)
        if birth is not None and deceased is not None and deceased < birth:
            raise FhirError("deceased before birth", file=raw.file, resource=rref, field="deceasedDateTime",
                            value=p.deceasedDateTime, expected=f"a date on or after birthDate {birth.isoformat()}")
        if p.gender is not None and p.gender not in {"male", "female", "other", "unknown"}:
            raise FhirError("invalid gender", file=raw.file, resource=rref, field="gender", value=p.gender,
                            expected="male, female, other or unknown")
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
            raise FhirError("birth date after the as-of date", file=raw.file, resource=rref, field="birthDate",
                            value=p.birthDate, expected=f"a date on or before {record_as_of.isoformat()}")
        observations = {k: tuple(sorted(v, key=lambda m: (m.date, m.source or "", m.loinc)))
                        for k, v in sorted(b.observations.items())}
        pgx: list[PgxResult] = []
        for r in b.pgx:
            if r not in pgx:
                pgx.append(r)
        warnings = b.warnings + pgx_conflicts(pgx)
        records.append(PatientRecord(
            patient_id=p.id, birth_date=birth, sex=p.gender, deceased=deceased, as_of=record_as_of,
            conditions=tuple(sorted(b.conditions, key=lambda c: (c.onset or c.recorded or dt.date.min, c.id or ""))),
            medications=tuple(sorted(b.medications, key=lambda m: (m.start or dt.date.min, m.id or "", m.ingredient or ""))),
            allergies=tuple(sorted(b.allergies, key=lambda a: (a.recorded or dt.date.min, a.id or ""))),
            observations=observations, pgx=tuple(pgx), warnings=tuple(warnings)))
    log.debug("ingest: %d resources, %d decoded, %d patients, %d unknown LOINC skipped",
              stats.resources, stats.decoded, len(records), stats.unknown_loinc)
    return records
