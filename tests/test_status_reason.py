"""MedicationRequest / MedicationStatement ``statusReason`` is read into ``Medication.status_reason`` (why an order
was stopped), and one that is not a CodeableConcept is a warning, not a lost medication."""

from __future__ import annotations

from planner.testing import BundleBuilder


def _builder() -> BundleBuilder:
    return BundleBuilder(patient_id="sr", birth_date="1980-01-01", sex="female", as_of="2024-06-01")


def test_status_reason_of_a_request_and_of_a_statement():
    b = _builder()
    b.medication("sertraline", 50, start="2023-01-10", end="2023-03-22", status="stopped", status_reason="Side effects")
    b.medication("bupropion", 150, start="2023-04-01", end="2023-08-01", statement=True, status_reason="Not effective")
    b.add(
        {
            "resourceType": "MedicationRequest",
            "id": "coded",
            "status": "stopped",
            "intent": "order",
            "medicationCodeableConcept": {"text": "escitalopram"},
            "subject": {"reference": "Patient/sr"},
            "authoredOn": "2023-09-01",
            "dispenseRequest": {"validityPeriod": {"start": "2023-09-01", "end": "2023-10-20"}},
            "statusReason": {
                "coding": [
                    {"system": "http://snomed.info/sct", "code": "62014003", "display": "Adverse reaction to drug"}
                ]
            },
        }
    )
    meds = {m.ingredient: m.status_reason for m in b.record().medications}
    assert meds == {
        "sertraline": ("side effects",),
        "bupropion": ("not effective",),
        "escitalopram": ("62014003", "adverse reaction to drug"),
    }


def test_an_unreadable_status_reason_is_a_warning_and_the_order_is_kept():
    b = _builder()
    b.add(
        {
            "resourceType": "MedicationRequest",
            "id": "bad",
            "status": "stopped",
            "intent": "order",
            "medicationCodeableConcept": {"text": "sertraline"},
            "subject": {"reference": "Patient/sr"},
            "authoredOn": "2023-01-10",
            "statusReason": "side effects",
        }
    )
    rec = b.record()
    assert [(m.ingredient, m.status_reason) for m in rec.medications] == [("sertraline", ())]
    w = next(w for w in rec.warnings if w.code == "status-reason-unreadable")
    assert w.field == "statusReason" and "MedicationRequest/bad" in (w.resource or "")
