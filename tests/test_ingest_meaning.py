"""Clinical status is meaning, and doses as EHRs write them: each case with what the record says and the exact
warning a user sees."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from planner.ingest import read_record
from planner.testing import BundleBuilder

D = dt.date


def _rec(*resources: dict[str, Any], **kw: Any):
    b = BundleBuilder()
    b.observation("hba1c", 8.0, date="2024-06-01")
    for r in resources:
        b.add({"subject": {"reference": "Patient/p1"}, **r})
    return b.record(**kw)


def _mr(rid: str, *, status: str = "active", dosage: list[dict[str, Any]] | None = None, **extra: Any) -> dict:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": "order",
        "authoredOn": "2024-01-01",
        "dispenseRequest": {"validityPeriod": {"start": "2024-01-01", "end": "2030-01-01"}},
        "medicationCodeableConcept": {
            "coding": [
                {
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": "861007",
                    "display": "metformin hydrochloride 500 MG Oral Tablet",
                }
            ]
        },
        "dosageInstruction": dosage
        if dosage is not None
        else [
            {
                "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
            }
        ],
        **extra,
    }


@pytest.mark.parametrize(
    "status,extra", [("entered-in-error", {}), ("cancelled", {}), ("draft", {}), ("active", {"doNotPerform": True})]
)
def test_voided_orders_are_never_current_whatever_the_end_date(status, extra) -> None:
    r = _rec(_mr("m1", status=status, **extra))
    assert r.medications and r.active_medications(D(2025, 1, 1)) == ()


def test_not_taken_statement_is_never_current() -> None:
    r = _rec(
        {
            "resourceType": "MedicationStatement",
            "id": "s1",
            "status": "not-taken",
            "effectivePeriod": {"start": "2024-01-01", "end": "2030-01-01"},
            "medicationCodeableConcept": {"text": "metformin 500 mg tablet"},
        }
    )
    assert r.medications[0].ingredient == "metformin" and r.active_medications(D(2025, 1, 1)) == ()


@pytest.mark.parametrize(
    "abatement",
    [
        {"abatementString": "resolved in childhood"},
        {"abatementAge": {"value": 30, "unit": "years", "code": "a"}},
        {"abatementRange": {"low": {"value": 30, "code": "a"}}},
    ],
)
def test_abatement_in_any_form_ends_the_condition(abatement) -> None:
    r = _rec(
        {
            "resourceType": "Condition",
            "id": "c1",
            "onsetDateTime": "1970-01-01",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
            **abatement,
        }
    )
    assert r.conditions and r.active_conditions() == ()


@pytest.mark.parametrize("status", ["refuted", "entered-in-error"])
def test_refuted_conditions_are_ignored(status) -> None:
    r = _rec(
        {
            "resourceType": "Condition",
            "id": "c1",
            "onsetDateTime": "2020-01-01",
            "verificationStatus": {"coding": [{"code": status}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
        }
    )
    assert r.active_conditions() == ()


@pytest.mark.parametrize("status", ["cancelled", "entered-in-error"])
def test_cancelled_observations_are_never_values(status) -> None:
    r = _rec(
        {
            "resourceType": "Observation",
            "id": "o2",
            "status": status,
            "effectiveDateTime": "2024-07-01",
            "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
            "valueQuantity": {"value": 12.0, "unit": "%"},
        }
    )
    assert [m.value for m in r.series("hba1c")] == [8.0]


def test_data_absent_reason_is_never_a_value() -> None:
    r = _rec(
        {
            "resourceType": "Observation",
            "id": "o2",
            "status": "final",
            "effectiveDateTime": "2024-07-01",
            "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
            "valueQuantity": {"value": 0, "unit": "%"},
            "dataAbsentReason": {"coding": [{"code": "error"}]},
        }
    )
    assert [m.value for m in r.series("hba1c")] == [8.0]
    w = next(w for w in r.warnings if w.code == "data-absent")
    assert w.message == "HbA1c (LOINC 4548-4) has a dataAbsentReason (error); no value used"


def test_unit_that_disagrees_with_its_code_is_reported_not_used() -> None:
    r = _rec(
        {
            "resourceType": "Observation",
            "id": "o2",
            "status": "final",
            "effectiveDateTime": "2024-07-01",
            "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
            "valueQuantity": {"value": 60, "unit": "%", "system": "http://unitsofmeasure.org", "code": "mmol/mol"},
        }
    )
    assert [m.value for m in r.series("hba1c")] == [8.0]
    w = next(w for w in r.warnings if w.code == "unit-code-mismatch")
    assert w.message == (
        "HbA1c (LOINC 4548-4) unit '%' disagrees with its UCUM code 'mmol/mol'; not used (reported, not resolved)"
    )


def test_birth_date_after_own_events_is_reported() -> None:
    b = BundleBuilder(birth_date="2024-03-01")
    b.observation("hba1c", 8.0, date="2024-01-01")
    b.observation("hba1c", 8.1, date="2024-06-01")
    w = next(w for w in b.record().warnings if w.code == "birth-after-events")
    assert w.message == (
        "the birth date is after some of the patient's own events; reported, not resolved (check "
        "the birth date and the event dates)"
    )


@pytest.mark.parametrize("code,per_day", [("QD", 1), ("BID", 2), ("TID", 3), ("QID", 4), ("Q8H", 3), ("Q12H", 2)])
def test_timing_code(code, per_day) -> None:
    dosage = [
        {
            "timing": {
                "code": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation", "code": code}]
                }
            },
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
        }
    ]
    (m,) = _rec(_mr("m1", dosage=dosage)).medications
    assert m.dose_mg_day == 500 * per_day and not m.dose_assumed


def test_timing_code_as_text() -> None:
    dosage = [
        {"timing": {"code": {"text": "Twice daily"}}, "doseAndRate": [{"doseQuantity": {"value": 2, "unit": "tablet"}}]}
    ]
    assert _rec(_mr("m1", dosage=dosage)).medications[0].dose_mg_day == 2000


def test_dose_range_is_a_range_never_one_number() -> None:
    dosage = [
        {
            "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [
                {"doseRange": {"low": {"value": 1, "unit": "tablet"}, "high": {"value": 2, "unit": "tablet"}}}
            ],
        }
    ]
    r = _rec(_mr("m1", dosage=dosage))
    (m,) = r.medications
    assert (m.dose_mg_day, m.dose_range_mg_day) == (None, (500.0, 1000.0))
    w = next(w for w in r.warnings if w.code == "dose-range")
    assert w.message == "metformin: dose given as a range (500-1000 mg/day); no single dose assumed"


def test_several_dose_and_rate_prefer_ordered() -> None:
    dosage = [
        {
            "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [
                {"type": {"coding": [{"code": "calculated"}]}, "doseQuantity": {"value": 3, "unit": "tablet"}},
                {"type": {"coding": [{"code": "ordered"}]}, "doseQuantity": {"value": 2, "unit": "tablet"}},
            ],
        }
    ]
    assert _rec(_mr("m1", dosage=dosage)).medications[0].dose_mg_day == 1000


def test_as_needed_is_kept() -> None:
    dosage = [{"asNeededBoolean": True, "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}]}]
    r = _rec(_mr("m1", dosage=dosage))
    (m,) = r.medications
    assert m.as_needed and m.dose_mg_day is None
    w = next(w for w in r.warnings if w.code == "dose-not-derivable")
    assert w.message == "metformin: dose per day not derivable (taken as needed (no schedule))"


def test_assumed_dose_is_flagged() -> None:
    dosage = [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}}]
    r = _rec(_mr("m1", dosage=dosage))
    (m,) = r.medications
    assert (m.dose_mg_day, m.dose_assumed) == (500.0, True)
    w = next(w for w in r.warnings if w.code == "dose-assumed")
    assert w.message == "metformin: one unit per dose assumed (no dose quantity given)"


@pytest.mark.parametrize(
    "text,ingredients",
    [
        ("Humulin R U-100 KwikPen", {"insulin regular human"}),
        ("Humulin 70/30 Pen", {"insulin isophane human", "insulin regular human"}),
        ("insulin aspart (NovoLog FlexPen) 100 unit/mL", {"insulin aspart"}),
        ("Lantus SoloStar 100 units/mL pen", {"insulin glargine"}),
        ("Janumet 50-1000 mg tablet", {"sitagliptin", "metformin"}),
    ],
)
def test_brands_packs_and_insulins_resolve_to_ingredients(text, ingredients) -> None:
    r = _rec(
        {
            "resourceType": "MedicationStatement",
            "id": "s1",
            "status": "active",
            "effectivePeriod": {"start": "2024-01-01"},
            "medicationCodeableConcept": {"text": text},
        }
    )
    assert {m.ingredient for m in r.medications} == ingredients


def test_read_record_picks_a_patient() -> None:
    b = BundleBuilder(patient_id="p1")
    doc = b.build()
    doc["entry"].append({"resource": {"resourceType": "Patient", "id": "p2"}})
    assert read_record(doc, patient="p2").patient_id == "p2"


def test_sex_from_us_core_extension_when_gender_is_absent() -> None:
    doc = BundleBuilder(sex=None).build()
    doc["entry"][0]["resource"]["extension"] = [
        {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-sex", "valueCode": "248152002"}
    ]
    r = read_record(doc)
    assert r.sex == "female" and any(w.code == "sex-from-extension" for w in r.warnings)
