"""Observation, Condition and AllergyIntolerance resources -> measurements, PGx results, conditions, allergies.

Observation status ``cancelled`` / ``entered-in-error`` and any ``dataAbsentReason`` are never used as values. A
unit that disagrees with its UCUM code, or a value outside the plausible range, is reported (with its date) and not
used. Condition abatement in any form (dateTime, period, age, range, string) ends the condition; refuted and
entered-in-error conditions are never active. ICD-10-CM is read under every system URI rules/codes/systems.yaml
lists for it (e.g. ``urn:oid:2.16.840.1.113883.6.90``).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Callable

import msgspec

from ..errors import FhirError, UnitError
from ..record import Allergy, Coding, Condition, Measurement
from ..units import with_unit
from . import fhir_types as ft
from .codes import RXNORM_SYSTEMS, CodeTables, Quantity, UnitRule
from .common import Builder, Context, display_of, first_code, status_of
from .pgx import is_pgx_observation, pgx_from_observation
from .source import explain_validation

__all__ = ["read_observation", "read_condition", "read_allergy", "classify"]

_SKIP_OBS_STATUS = frozenset({"entered-in-error", "cancelled"})


def _numeric(
    q: Quantity,
    q_code: str,
    quantity: ft.Quantity | None,
    integer: int | None,
    text: str | None,
    absent: str | None,
    *,
    field: str,
    rref: str,
    b: Builder,
) -> ft.Quantity | None:
    """The value as a Quantity (a score sent as valueInteger or as a numeric valueString included); None, with
    a warning, when there is none or a dataAbsentReason."""
    if quantity is None and integer is None and text is not None:
        try:  # a score sent as valueString ("12")
            integer_or_float = float(text.strip())
            quantity = ft.Quantity(value=integer_or_float, unit=q.unit if "" not in q.accept else "")
        except ValueError:
            b.warn(
                "no-value",
                f"{q.label} (LOINC {q_code}) value is text, not a number; not used",
                rref,
                field=field.replace("valueQuantity", "valueString"),
                value=text,
            )
            return None
    if quantity is None and integer is not None:
        quantity = ft.Quantity(value=float(integer), unit=q.unit if "" not in q.accept else "")
    if absent is not None:
        b.warn(
            "data-absent",
            f"{q.label} (LOINC {q_code}) has a dataAbsentReason ({absent}); no value used",
            rref,
            field=field.replace("valueQuantity", "dataAbsentReason"),
        )
        return None
    if quantity is None or quantity.value is None:
        b.warn("no-value", f"{q.label} (LOINC {q_code}) has no numeric value", rref, field=field)
        return None
    return quantity


def _unit_rule(
    q: Quantity,
    q_code: str,
    quantity: ft.Quantity,
    value: float,
    *,
    field: str,
    file: str | None,
    rref: str,
    b: Builder,
) -> tuple[UnitRule, str] | None:
    """The conversion rule of the quantity's unit (its UCUM code, else its unit text) and the unit used; None,
    with a warning, when code and text disagree; a UnitError for a unit the quantity does not accept."""
    code, unit = quantity.code, quantity.unit
    if code is not None and unit is not None:  # the usual case, in one pass: code first, then text
        cs, us = code.strip(), unit.strip()
        rc = q.accept.get(cs)
        ru = rc if us == cs else q.accept.get(us)
        if rc is not None and ru is not None and rc is not ru:  # the same rule: the same value
            if abs(rc.apply(value) - ru.apply(value)) > 1e-9 * max(1.0, abs(value)):
                _mismatch(q, q_code, quantity, field=field, rref=rref, b=b)
                return None
        if rc is not None:
            return rc, cs
        if ru is not None:
            return ru, us
    candidates = [u for u in (code, unit) if u is not None]
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
        raise UnitError(
            f"for LOINC {q_code} ({q.label})",
            file=file,
            resource=rref,
            field=f"{field}.unit",
            value=quantity.unit if quantity.unit is not None else quantity.code,
            expected=f"{q.unit}"
            + (f" or one of {', '.join(repr(u) for u in q.accept if u != q.unit)}" if len(q.accept) > 1 else ""),
        )
    return rule, used


def _mismatch(q: Quantity, q_code: str, quantity: ft.Quantity, *, field: str, rref: str, b: Builder) -> None:
    b.warn(
        "unit-code-mismatch",
        f"{q.label} (LOINC {q_code}) unit {quantity.unit!r} disagrees with its "
        f"UCUM code {quantity.code!r}; not used (reported, not resolved)",
        rref,
        field=f"{field}.unit",
        value=quantity.unit,
    )


def _measure(
    *,
    q_code: str,
    quantity: ft.Quantity | None,
    integer: int | None,
    date: dt.date,
    rref: str,
    field: str,
    file: str | None,
    ctx: Context,
    b: Builder,
    text: str | None = None,
    absent: str | None = None,
) -> None:
    q = ctx.tables.loinc_to_quantity[q_code]
    quantity = _numeric(q, q_code, quantity, integer, text, absent, field=field, rref=rref, b=b)
    if quantity is None or quantity.value is None:
        return
    value = quantity.value
    if quantity.comparator is not None:
        b.warn(
            "value-with-comparator",
            f"{q.label} (LOINC {q_code}) is '{quantity.comparator} {value:g}'; "
            f"the bound {value:g} is used as the value",
            rref,
        )
    if not math.isfinite(value):
        raise FhirError(
            "value is not a finite number",
            file=file,
            resource=rref,
            field=f"{field}.value",
            value=value,
            expected="a finite number",
        )
    found = _unit_rule(q, q_code, quantity, value, field=field, file=file, rref=rref, b=b)
    if found is None:
        return
    rule, used = found
    canonical = rule.apply(value)
    if q.plausible is not None and not (q.plausible[0] <= canonical <= q.plausible[1]):
        b.warn(
            "implausible-value",
            f"{q.label} (LOINC {q_code}) of {date.isoformat()} is {with_unit(f'{canonical:g}', q.unit)}, "
            f"outside the plausible range {with_unit(f'{q.plausible[0]:g}-{q.plausible[1]:g}', q.unit)}; not used",
            rref,
            field=field,
            value=f"{value:g} {used}",
            quantity=q.name,
            date=date,
        )
        return
    converted = used != q.unit
    b.observations[q.name].append(
        Measurement(
            date=date,
            value=round(canonical, 6),
            unit=q.unit,
            loinc=q_code,
            source=rref,
            original_value=float(value) if converted else None,
            original_unit=used if converted else None,
        )
    )


def classify(obs: ft.Observation | ft.ObservationHead, tables: CodeTables) -> tuple[str | None, str | None, bool]:
    """(panel LOINC, quantity LOINC, is PGx) of an Observation; all empty: planner does not read it."""
    panel = known = None
    if obs.code is not None:
        for c in obs.code.coding:
            if (c.system is None or c.system in tables.loinc_systems) and c.code:
                if panel is None and c.code in tables.panels:
                    panel = c.code
                if known is None and c.code in tables.loinc_to_quantity:
                    known = c.code
    pgx = panel is None and known is None and is_pgx_observation(obs, tables)  # type: ignore[arg-type]
    return panel, known, pgx


def _code_of(cc: ft.CodeableConcept | None) -> str | None:
    return next((c.code for c in cc.coding if c.code), None) if cc is not None else None


def read_observation(
    obs: ft.Observation,
    *,
    rref: str,
    file: str | None,
    ctx: Context,
    lookup: Callable[[str], Any],
    b: Builder,
    stats: Any,
) -> None:
    if obs.status in _SKIP_OBS_STATUS:
        return
    tables = ctx.tables
    panel, known, pgx = classify(obs, tables)
    if panel is None and known is None and not pgx:
        stats.unknown_loinc += 1
        return
    date = _observation_date(obs, rref=rref, file=file, ctx=ctx)
    if pgx:

        def lookup_obs(ref: str) -> ft.Observation | None:
            target = lookup(ref)
            return target if target is not None and target.resourceType == "Observation" else None

        found = pgx_from_observation(
            obs,
            ref=rref,
            date=date,
            tables=tables,
            lookup=lookup_obs,
            warn=lambda code, msg, gene: b.warn(code, msg, rref, gene=gene),
        )
        b.pgx.extend(found)
        if found and date is not None:
            b.dates.append(date)
        return
    if date is None:
        b.warn("no-date", "observation without effective[x] or issued date; not used", rref)
        return
    b.dates.append(date)
    if known is not None:
        _measure(
            q_code=known,
            quantity=obs.valueQuantity,
            integer=obs.valueInteger,
            date=date,
            rref=rref,
            field="valueQuantity",
            file=file,
            ctx=ctx,
            b=b,
            text=obs.valueString,
            absent=display_of(obs.dataAbsentReason) or _code_of(obs.dataAbsentReason),
        )
    if panel is not None:
        _components(obs, date=date, rref=rref, file=file, ctx=ctx, b=b, stats=stats)


def _observation_date(obs: ft.Observation, *, rref: str, file: str | None, ctx: Context) -> dt.date | None:
    """effectiveDateTime, else effectivePeriod.start, else effectiveInstant, else issued."""
    if obs.effectiveDateTime is not None:
        return ctx.date(obs.effectiveDateTime, rref=rref, field="effectiveDateTime", file=file)
    if obs.effectivePeriod is not None and obs.effectivePeriod.start is not None:
        return ctx.date(obs.effectivePeriod.start, rref=rref, field="effectivePeriod.start", file=file)
    if obs.effectiveInstant is not None:
        return ctx.date(obs.effectiveInstant, rref=rref, field="effectiveInstant", file=file)
    return ctx.date(obs.issued, rref=rref, field="issued", file=file)


def _components(
    obs: ft.Observation, *, date: dt.date, rref: str, file: str | None, ctx: Context, b: Builder, stats: Any
) -> None:
    """A panel's components, each read as its own measurement (unknown codes counted, not used)."""
    tables = ctx.tables
    for i, comp in enumerate(obs.component):
        ck = None
        if comp.code is not None:
            ck = next(
                (
                    c.code
                    for c in comp.code.coding
                    if (c.system is None or c.system in tables.loinc_systems) and c.code in tables.loinc_to_quantity
                ),
                None,
            )
        if ck is None:
            stats.unknown_loinc += 1
            continue
        _measure(
            q_code=ck,
            quantity=comp.valueQuantity,
            integer=comp.valueInteger,
            date=date,
            rref=rref,
            field=f"component[{i}].valueQuantity",
            file=file,
            ctx=ctx,
            b=b,
            text=comp.valueString,
            absent=display_of(comp.dataAbsentReason) or _code_of(comp.dataAbsentReason),
        )


# ---- conditions, allergies --------------------------------------------------------------------------------------


def read_condition(
    c: ft.Condition, *, rref: str, file: str | None, ctx: Context, b: Builder, birth: dt.date | None = None
) -> None:
    if c.code is None or not (c.code.coding or c.code.text):
        raise FhirError(
            "condition without a code",
            file=file,
            resource=rref,
            field="code",
            expected="a SNOMED CT or ICD-10-CM coding",
        )
    tables = ctx.tables
    main = first_code(c.code, tables.snomed_systems) or first_code(c.code, tables.icd10_systems) or first_code(c.code)
    onset = (
        ctx.date(c.onsetDateTime, rref=rref, field="onsetDateTime", file=file)
        if c.onsetDateTime
        else (ctx.date(c.onsetPeriod.start, rref=rref, field="onsetPeriod.start", file=file) if c.onsetPeriod else None)
    )
    abatement = (
        ctx.date(c.abatementDateTime, rref=rref, field="abatementDateTime", file=file)
        if c.abatementDateTime
        else (
            ctx.date(c.abatementPeriod.start, rref=rref, field="abatementPeriod.start", file=file)
            if c.abatementPeriod
            else None
        )
    )
    abated = abatement is not None
    if abatement is None and (c.abatementAge is not None or c.abatementRange is not None or c.abatementString):
        abated = True  # abatementAge / abatementRange / abatementString: it has ended
        age = c.abatementAge or (c.abatementRange.low if c.abatementRange is not None else None)
        if (
            age is not None
            and age.value is not None
            and birth is not None
            and (age.code or age.unit or "a") in ("a", "yr", "years", "year")
        ):
            try:
                abatement = birth.replace(year=birth.year + int(age.value))
            except ValueError:  # 29 February
                abatement = birth.replace(year=birth.year + int(age.value), day=28)
    recorded = ctx.date(c.recordedDate, rref=rref, field="recordedDate", file=file)
    if onset is not None and abatement is not None and abatement < onset:
        raise FhirError(
            "condition abates before its onset",
            file=file,
            resource=rref,
            field="abatementDateTime",
            value=abatement.isoformat(),
            expected=f"a date on or after the onset {onset.isoformat()}",
        )
    for d in (onset, recorded):
        if d is not None:
            b.dates.append(d)
    b.conditions.append(
        Condition(
            id=c.id,
            code=main.code if main else None,
            system=tables.canonical_system(main.system) if main else None,
            display=(main.display if main and main.display else c.code.text),
            codings=tuple(
                Coding(system=tables.canonical_system(x.system), code=x.code, display=x.display) for x in c.code.coding
            ),
            onset=onset,
            abatement=abatement,
            recorded=recorded,
            clinical_status=status_of(c.clinicalStatus),
            verification_status=status_of(c.verificationStatus),
            abated=abated,
        )
    )


def read_allergy(a: ft.AllergyIntolerance, *, rref: str, file: str | None, ctx: Context, b: Builder) -> None:
    if a.code is None or not (a.code.coding or a.code.text):
        raise FhirError(
            "allergy without a substance code",
            file=file,
            resource=rref,
            field="code",
            expected="an RxNorm or SNOMED CT coding (or text)",
        )
    tables = ctx.tables
    rx = first_code(a.code, RXNORM_SYSTEMS)
    main = rx or first_code(a.code, tables.snomed_systems) or first_code(a.code)
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
            raise FhirError(
                msg,
                file=file,
                resource=rref,
                field="category",
                expected="a list of codes: food, medication, environment, biologic",
            ) from None
    reactions: list[str] = []
    for r in a.reaction:
        for m in r.manifestation:
            shown = display_of(m)
            if shown and shown not in reactions:
                reactions.append(shown)
    b.allergies.append(
        Allergy(
            id=a.id,
            code=main.code if main else None,
            system=main.system if main else None,
            display=(main.display if main and main.display else a.code.text),
            rxcui=ing.rxcui if ing else None,
            ingredient=ing.name if ing else None,
            category=tuple(category),
            criticality=a.criticality,
            clinical_status=status_of(a.clinicalStatus),
            verification_status=status_of(a.verificationStatus),
            reactions=tuple(reactions),
            recorded=recorded,
        )
    )
