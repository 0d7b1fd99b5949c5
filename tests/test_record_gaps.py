"""What the record's data quality means for recommend and check: exact data-gap messages a user sees."""

from __future__ import annotations

from typing import Any

import pytest

from planner import Planner
from planner.ingest import read_record
from planner.safety.cli import report
from planner.testing import BundleBuilder


@pytest.fixture(scope="module")
def planner() -> Planner:
    return Planner.load()


def _t2d(**kw: Any) -> BundleBuilder:
    b = BundleBuilder(**kw)
    b.condition("44054006", onset="2015-01-01")
    b.medication("metformin", dose_mg_day=1000, start="2023-01-01")
    b.observation("hba1c", 8.4, date="2024-01-05")
    return b


def _unresolved(b: BundleBuilder) -> None:
    b.add(
        {
            "resourceType": "MedicationRequest",
            "id": "mr-x",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "authoredOn": "2023-06-01",
            "medicationReference": {"reference": "Medication/not-in-this-export"},
        }
    )


def test_deceased_patient_gets_no_plans_and_is_told_so(planner) -> None:
    rec = planner.recommend(_t2d(deceased="2024-02-01").build(), area="t2d")
    assert rec.plans == ()
    gap = next(g for g in rec.data_gaps if g.code == "deceased")
    assert gap.message == "the patient is recorded as deceased on 2024-02-01: no treatment plans are made"


def test_deceased_boolean_counts(planner) -> None:
    doc = _t2d().build()
    doc["entry"][0]["resource"]["deceasedBoolean"] = True
    rec = planner.recommend(doc, area="t2d")
    assert rec.plans == () and any(g.code == "deceased" for g in rec.data_gaps)


def test_unresolved_current_medication_is_a_gap_in_recommend_and_check(planner) -> None:
    b = _t2d()
    _unresolved(b)
    msg = (
        "a current medication could not be identified (unresolved medication); it is not screened for "
        "interactions or doses"
    )
    rec = planner.recommend(b.build(), area="t2d")
    assert msg in [g.message for g in rec.data_gaps]
    assert rec.plans  # still a recommendation for what can be read
    data = report(read_record(b.build()))
    assert msg in [g["message"] for g in data["data_gaps"]]


def test_latest_outcome_dropped_as_implausible_is_named_with_its_date(planner) -> None:
    b = _t2d()
    b.observation("hba1c", 64, unit="%", date="2024-03-01")  # mmol/mol written as %: dropped
    rec = planner.recommend(b.build(), area="t2d", as_of="2024-03-02")
    gap = next(g for g in rec.data_gaps if g.code == "implausible-latest-outcome")
    assert gap.message == (
        "the latest hba1c (2024-03-01: 64 %) was dropped as implausible; the baseline is the value of 2024-01-05"
    )
