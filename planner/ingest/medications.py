"""MedicationRequest / MedicationStatement -> :class:`~planner.record.Medication` (one per ingredient).

Resolution: RxNorm code (rules/codes/rxnorm.csv), else ingredient, brand or pack names in the display/text
(rules/codes/products.csv for brands and packs of several ingredients, e.g. Humulin 70/30), else a
``medicationReference`` to a Medication in the input (its code and ingredients), else the reference's own
``display``. What still cannot be resolved is kept as an *unresolved medication* (ingredient None) with a warning,
never dropped: recommend and check report it as a data gap.

Dose in mg/day: the ``ordered`` doseAndRate entry first (else the first with a dose), times the frequency from
``timing.repeat`` or ``timing.code`` (BID, TID, Q8H..., rules/codes/timing.yaml); a ``doseRange`` is reported as a
range (``dose_range_mg_day``), never as one number; a dose that had to be assumed (one tablet per dose when none
is written) is flagged ``dose_assumed`` with a warning saying what was assumed. ``asNeeded`` is kept.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

import msgspec

from ..errors import FhirError
from ..record import Medication
from . import fhir_types as ft
from .codes import RXNORM_SYSTEMS, CodeTables, Ingredient
from .common import Builder, Context, display_of, first_code

__all__ = ["read_medication"]

_PERIOD_DAYS = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1.0, "wk": 7.0, "mo": 30.4375, "a": 365.25}
_MASS_MG = {"mg": 1.0, "mcg": 0.001, "ug": 0.001, "µg": 0.001, "g": 1000.0}
_COUNT_UNITS = frozenset(
    {
        "1",
        "{tbl}",
        "{tablet}",
        "tablet",
        "tablets",
        "tab",
        "{capsule}",
        "capsule",
        "capsules",
        "cap",
        "{cap}",
        "{puff}",
        "puff",
        "{actuat}",
        "{dose}",
        "dose",
    }
)
_DRUG_UNITS = frozenset({"u", "[iu]", "iu", "unt", "unit", "units", "[u]", "{unit}", "{units}"})
_STRENGTH = re.compile(r"(\d+(?:\.\d+)?)\s*(MG|MCG|UG|µG|G)(?:\s*/\s*(ML|ACTUAT))?\b", re.IGNORECASE)

Dose = tuple[float | None, str | None, bool]  # (mg/day, why not, assumed)


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


def per_day(dosage: ft.Dosage, tables: CodeTables) -> float | None:
    """Administrations per day from ``timing.repeat`` (frequency / period), else ``timing.code`` (BID ...)."""
    timing = dosage.timing
    rep = timing.repeat if timing is not None else None
    if rep is not None and (rep.frequency is not None or rep.period is not None):
        freq = rep.frequency if rep.frequency is not None else 1
        period = rep.period if rep.period is not None else 1.0
        unit = rep.periodUnit or "d"
        if unit not in _PERIOD_DAYS or period <= 0 or freq < 0:
            return None
        return freq / (period * _PERIOD_DAYS[unit])
    if timing is not None and timing.code is not None:
        return tables.timing_per_day(timing.code.coding, timing.code.text)
    return None


def _pick_dose(d: ft.Dosage) -> ft.DoseAndRate | None:
    """The ``ordered`` doseAndRate entry when several are given, else the first with a dose."""
    with_dose = [dr for dr in d.doseAndRate if dr.doseQuantity is not None or dr.doseRange is not None]
    for dr in with_dose:
        if dr.type is not None and any(c.code == "ordered" for c in dr.type.coding):
            return dr
    return with_dose[0] if with_dose else None


def _qty_mg(
    qty: ft.Quantity, strength: tuple[float, bool] | None, mg_per_unit: float | None
) -> tuple[float | None, str | None, bool]:
    """mg in one dose quantity: (mg, why not, assumed)."""
    if qty.value is None:
        return None, "dose quantity without a value", False
    code, unit = (qty.code or "").strip(), (qty.unit or "").strip()
    if (
        code
        and unit
        and code.lower() in _MASS_MG
        and unit.lower() in _MASS_MG
        and _MASS_MG[code.lower()] != _MASS_MG[unit.lower()]
    ):
        return None, f"dose unit {unit!r} disagrees with its code {code!r}", False
    low = (code or unit).lower()
    if low in _MASS_MG:
        return qty.value * _MASS_MG[low], None, False
    if low in _DRUG_UNITS:
        if mg_per_unit is None:
            return None, f"dose in units ({code or unit!r}) and no mg per unit known for this drug", False
        return qty.value * mg_per_unit, None, False
    if low == "ml" and strength is not None and strength[1]:
        return qty.value * strength[0], None, False
    if low in _COUNT_UNITS or low == "":
        if strength is None or strength[1]:
            return None, "dose given in units but the strength per unit is unknown", False
        return qty.value * strength[0], None, low == ""  # no unit at all: tablets assumed
    return None, f"dose unit {code or unit!r} cannot be converted to mg", False


def dose_mg_day(
    dosages: list[ft.Dosage], strength: tuple[float, bool] | None, mg_per_unit: float | None, tables: CodeTables
) -> tuple[float | None, tuple[float, float] | None, str | None, bool, bool]:
    """(mg/day, (low, high) mg/day of a dose range, why not / what was assumed, assumed, as needed)."""
    if not dosages:
        return None, None, "no dosage instruction", False, False
    d = dosages[0]
    prn = bool(d.asNeededBoolean) or d.asNeededCodeableConcept is not None
    n = per_day(d, tables)
    if n is None:
        if prn:
            no_timing = "taken as needed (no schedule)"
        elif (d.text or "").strip() and d.timing is None and not d.doseAndRate:
            # US Core allows a dosage that is only free text ("1 tablet by mouth daily"); it is not parsed
            no_timing = "dose and schedule given only as free text (Dosage.text; no doseAndRate or timing): not read"
        else:
            no_timing = "dosage has no timing (frequency/period or timing code)"
        return None, None, no_timing, False, prn
    dr = _pick_dose(d)
    if dr is not None and dr.doseRange is not None and dr.doseQuantity is None:
        lo = _qty_mg(dr.doseRange.low, strength, mg_per_unit)[0] if dr.doseRange.low else None
        hi = _qty_mg(dr.doseRange.high, strength, mg_per_unit)[0] if dr.doseRange.high else None
        if lo is not None and hi is not None:
            rng = (round(lo * n, 6), round(hi * n, 6))
            return (
                None,
                rng,
                f"dose given as a range ({rng[0]:g}-{rng[1]:g} mg/day); no single dose assumed",
                False,
                prn,
            )
        return None, None, "dose range that cannot be converted to mg", False, prn
    if dr is None or dr.doseQuantity is None or dr.doseQuantity.value is None:
        if strength is None or strength[1]:
            return None, None, "no dose quantity and no strength in the drug name", False, prn
        return strength[0] * n, None, "one unit per dose assumed (no dose quantity given)", True, prn
    mg, why, assumed = _qty_mg(dr.doseQuantity, strength, mg_per_unit)
    if mg is None:
        return None, None, why, False, prn
    return (
        mg * n,
        None,
        ("no dose unit given: tablets of the labelled strength assumed" if assumed else None),
        assumed,
        prn,
    )


def _from_reference(
    res: Any, *, rref: str, lookup: Callable[[str], Any], tables: CodeTables, b: Builder
) -> tuple[ft.CodeableConcept | None, list[Ingredient]]:
    ref = res.medicationReference.reference
    if ref and ref.startswith("#"):
        target = next((c for c in res.contained if c.id == ref[1:]), None)
    else:
        target = lookup(ref) if ref else None
    if target is None or target.resourceType != "Medication":
        display = res.medicationReference.display
        b.warn(
            "medication-reference-missing",
            "medicationReference points to a Medication not in the input; "
            + ("resolved by the reference's own display" if display else "kept as an unresolved medication"),
            rref,
            field="medicationReference.reference",
            value=ref,
        )
        return (ft.CodeableConcept(text=display) if display else ft.CodeableConcept()), []
    ingredients: list[Ingredient] = []
    for ing in target.ingredient:
        for c in ing.itemCodeableConcept.coding if ing.itemCodeableConcept else []:
            found = tables.ingredient_for_code(c.code) if c.system in RXNORM_SYSTEMS else None
            if found is None:
                named = tables.ingredients_in_text(c.display)
                found = named[0] if named else None
            if found and found not in ingredients:
                ingredients.append(found)
    return (target.code if target.code is not None else ft.CodeableConcept()), ingredients


def _resolve(
    cc: ft.CodeableConcept, med_ingredients: list[Ingredient], *, rref: str, tables: CodeTables, b: Builder
) -> tuple[ft.Coding | None, str | None, list[Ingredient]]:
    rx = first_code(cc, RXNORM_SYSTEMS)
    display = (rx.display if rx is not None and rx.display else None) or display_of(cc)
    by_code = tables.ingredient_for_code(rx.code) if rx is not None else None
    named: list[Ingredient] = []
    for t in [c.display for c in cc.coding if c.display] + ([cc.text] if cc.text else []):
        for ing in tables.ingredients_in_text(t):
            if ing not in named:
                named.append(ing)
    if med_ingredients:
        return rx, display, med_ingredients
    if by_code is not None:
        if named and by_code not in named:
            b.warn(
                "code-display-mismatch",
                f"RxNorm code resolves to {by_code.name} but the name says {', '.join(i.name for i in named)}; "
                "the code was used",
                rref,
                field="medicationCodeableConcept",
                value=rx.code if rx else None,
            )
        return rx, display, (named if (by_code in named and len(named) > 1) else [by_code])
    return rx, display, named


def _dates(res: Any, *, rref: str, file: str | None, ctx: Context) -> tuple[Any, Any, list[ft.Dosage], str | None, str]:
    if res.resourceType == "MedicationRequest":
        vp = res.dispenseRequest.validityPeriod if res.dispenseRequest is not None else None
        if res.authoredOn is not None or vp is None or vp.start is None:
            start = ctx.date(res.authoredOn, rref=rref, field="authoredOn", file=file)
        else:  # no authoredOn: the validity period's start is the best start date given
            start = ctx.date(vp.start, rref=rref, field="dispenseRequest.validityPeriod.start", file=file)
        end = (
            ctx.date(vp.end, rref=rref, field="dispenseRequest.validityPeriod.end", file=file, event=False)
            if vp
            else None
        )
        end_field = "dispenseRequest.validityPeriod.end"
        dosages, intent = res.dosageInstruction, res.intent
    else:
        ep = res.effectivePeriod
        start = ctx.date(
            ep.start if ep else res.effectiveDateTime,
            rref=rref,
            field="effectivePeriod.start" if ep else "effectiveDateTime",
            file=file,
        )
        end = ctx.date(ep.end, rref=rref, field="effectivePeriod.end", file=file, event=False) if ep else None
        end_field = "effectivePeriod.end"
        dosages, intent = res.dosage, None
    if start is not None and end is not None and end < start:
        raise FhirError(
            "medication ends before it starts",
            file=file,
            resource=rref,
            field=end_field,
            value=end.isoformat(),
            expected=f"a date on or after the start {start.isoformat()}",
        )
    return start, end, dosages, intent, res.resourceType


def _status_reason(res: Any, rref: str, b: Builder) -> tuple[str, ...]:
    """The codes and the lower-case displays and text of ``statusReason`` (one CodeableConcept on a
    MedicationRequest, a list on a MedicationStatement); one that cannot be read is a warning, not an error."""
    if not len(res.statusReason):
        return ()
    try:
        reason = ft.STATUS_REASON_DECODER.decode(res.statusReason)
    except msgspec.ValidationError:
        b.warn(
            "status-reason-unreadable", "statusReason is not a CodeableConcept; not read", rref, field="statusReason"
        )
        return ()
    out: list[str] = []
    for cc in reason if isinstance(reason, list) else [reason]:
        for c in cc.coding or ():
            out += [x for x in (c.code, (c.display or "").strip().lower()) if x]
        if cc.text and cc.text.strip():
            out.append(cc.text.strip().lower())
    return tuple(dict.fromkeys(out))


def read_medication(
    res: Any, *, rref: str, file: str | None, ctx: Context, lookup: Callable[[str], Any], b: Builder
) -> None:
    """Add the Medication(s) of one MedicationRequest/MedicationStatement to ``b`` (raises FhirError if unusable)."""
    tables = ctx.tables
    cc = res.medicationCodeableConcept
    med_ingredients: list[Ingredient] = []
    if cc is None and res.medicationReference is not None:
        cc, med_ingredients = _from_reference(res, rref=rref, lookup=lookup, tables=tables, b=b)
    if cc is None:
        raise FhirError(
            "no medication",
            file=file,
            resource=rref,
            field="medication[x]",
            expected="medicationCodeableConcept or medicationReference",
        )
    rx, display, ingredients = _resolve(cc, med_ingredients, rref=rref, tables=tables, b=b)
    start, end, dosages, intent, kind = _dates(res, rref=rref, file=file, ctx=ctx)
    if start is not None:
        b.dates.append(start)
    common: dict[str, Any] = dict(
        id=res.id,
        resource_type=kind,
        source_code=rx.code if rx else None,
        source_display=display or "unresolved medication",
        status=res.status,
        intent=intent,
        start=start,
        end=end,
        do_not_perform=bool(res.doNotPerform),
        status_reason=_status_reason(res, rref, b),
    )
    if not ingredients:
        b.warn(
            "unresolved-medication",
            "medication could not be resolved to an ingredient "
            "(code not in rules/codes/rxnorm.csv and no known ingredient, brand or pack name in its "
            "display/text); kept as an unresolved medication",
            rref,
            field="medication[x]",
            value=(rx.code if rx else None) or display,
        )
        b.medications.append(Medication(**common))
        return
    strengths = _strengths(display, tables)
    for ing in ingredients:
        strength = strengths.get(ing.name)
        dose, rng, why, assumed, prn = dose_mg_day(dosages, strength, ing.mg_per_unit, tables)
        if dose is not None and (not math.isfinite(dose) or dose < 0):
            raise FhirError(
                "dose is not a finite non-negative number",
                file=file,
                resource=rref,
                field="dosageInstruction",
                expected="a finite dose",
            )
        if why is not None:
            code = "dose-assumed" if assumed else ("dose-range" if rng else "dose-not-derivable")
            b.warn(
                code,
                f"{ing.name}: {why}" if assumed or rng else f"{ing.name}: dose per day not derivable ({why})",
                rref,
                field="dosageInstruction",
            )
        b.medications.append(
            Medication(
                **common,
                rxcui=ing.rxcui,
                ingredient=ing.name,
                strength_mg=strength[0] if strength else None,
                dose_mg_day=round(dose, 6) if dose is not None else None,
                dose_assumed=assumed,
                dose_range_mg_day=rng,
                as_needed=prn,
            )
        )
