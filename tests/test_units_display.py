"""Units as clinicians read them in every output (rules/codes/units.yaml); the UCUM code stays in JSON and FHIR."""

from __future__ import annotations

import json

import pytest

from planner import Planner
from planner.render import render
from planner.testing import BundleBuilder
from planner.units import unit_display, with_unit

AS_OF = "2024-06-01"
RAW = ("mm[Hg]", "{score}")


@pytest.fixture(scope="module")
def recs():
    planner = Planner.load(num_samples=200)
    b = BundleBuilder(patient_id="u-htn", birth_date="1960-01-01", sex="male", as_of=AS_OF)
    b.condition("59621000", display="Essential hypertension", onset="2015-01-01")
    b.medication("lisinopril", dose_mg_day=20, start="2020-01-01")
    b.blood_pressure(148, 88, date="2024-05-01")
    htn = planner.recommend(b.record(), area="hypertension", top=3)
    d = BundleBuilder(patient_id="u-dep", birth_date="1980-01-01", sex="female", as_of=AS_OF)
    d.condition("370143000", display="Major depressive disorder", onset="2019-01-01")
    d.medication("fluoxetine", dose_mg_day=20, start="2023-03-01", end="2023-06-01", status="completed")
    d.observation("phq9", 18, date="2023-02-25")
    d.observation("phq9", 17, date="2023-05-25")
    d.observation("phq9", 16, date="2024-05-20")
    dep = planner.recommend(d.record(), area="depression", top=3)
    return {"hypertension": htn, "depression": dep}


def test_the_table_maps_ucum_codes_to_what_clinicians_write():
    assert unit_display("mm[Hg]") == "mmHg" and unit_display("{score}") == "points"
    assert with_unit("7.1", "%") == "7.1%" and with_unit("128.0", "mm[Hg]") == "128.0 mmHg"
    assert with_unit("12", "{score}") == "12 points"
    assert unit_display("10*3/uL") == "10^3/uL"  # not listed: braces and brackets go


@pytest.mark.parametrize("area_id,shown", [("hypertension", "mmHg"), ("depression", "points")])
def test_no_raw_ucum_unit_in_any_text_a_person_reads(recs, area_id, shown):
    rec = recs[area_id]
    assert rec.plans
    for p in rec.plans:
        assert shown in p.rationale and not any(r in p.rationale for r in RAW)
        assert not any(r in t.unit for t in p.tradeoffs for r in RAW)
    for fmt in ("table", "html"):
        text = render(rec, fmt)
        assert shown in text and not any(r in text for r in RAW), fmt
    fhir = json.loads(render(rec, "fhir"))
    notes = [n["text"] for e in fhir["entry"] for n in e["resource"].get("note", []) if "predicted" in n["text"]]
    assert notes and all(shown in n and not any(r in n for r in RAW) for n in notes)


@pytest.mark.parametrize(
    "area_id,ucum,shown", [("hypertension", "mm[Hg]", "mmHg"), ("depression", "{score}", "points")]
)
def test_json_keeps_the_ucum_code_and_adds_the_display(recs, area_id, ucum, shown):
    out = json.loads(render(recs[area_id], "json"))["outcome"]
    assert out["unit"] == ucum and out["unit_display"] == shown
