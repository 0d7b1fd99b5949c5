"""What a new user noticed in the output, each checked on the real path (ingest, render):

* a dosage given only as free text (US Core allows ``Dosage.text`` alone) was reported as "dosage has no timing",
  which sends the reader looking for a timing field; it now says the dose is text only and not read;
* the plans table printed predictions to two decimals (SBP 170.84) while the rationale rounds to one;
* ``planner inspect`` wrote UCUM codes (``mm[Hg]``) in its latest-measurements table.
"""

from __future__ import annotations

import re

from planner import Planner
from planner.ingest.cli import render_table as inspect_table
from planner.render.table import render_table
from planner.testing import BundleBuilder


def _patient() -> BundleBuilder:
    b = BundleBuilder(patient_id="p-display", birth_date="1958-04-02", sex="male")
    b.condition("38341003", display="Hypertensive disorder", onset="2019-03-01")
    b.medication("lisinopril", dose_mg_day=10, start="2023-01-01")
    b.blood_pressure(168, 96, date="2024-05-01")
    return b


def test_a_text_only_dosage_is_reported_as_text_not_as_missing_timing() -> None:
    b = _patient()
    rid = b.medication("amlodipine", start="2023-06-01")
    for res in b._resources:
        if res.get("id") == rid:
            res["dosageInstruction"] = [{"text": "take one tablet by mouth every morning"}]
    rec = b.record(as_of="2024-06-01")
    msgs = [w.message for w in rec.warnings if w.resource == f"MedicationRequest/{rid}"]
    assert msgs and all("no timing" not in m for m in msgs)
    assert any("only as free text" in m and "not read" in m for m in msgs)
    # the text itself is not copied into the warning (it may carry anything the prescriber typed)
    assert all("every morning" not in m for m in msgs)


def test_a_dosage_with_a_dose_but_no_timing_still_says_timing() -> None:
    b = _patient()
    rid = b.medication("amlodipine", start="2023-06-01")
    for res in b._resources:
        if res.get("id") == rid:
            res["dosageInstruction"] = [
                {"doseAndRate": [{"doseQuantity": {"value": 5, "unit": "mg", "system": "http://unitsofmeasure.org"}}]}
            ]
    rec = b.record(as_of="2024-06-01")
    msgs = [w.message for w in rec.warnings if w.resource == f"MedicationRequest/{rid}"]
    assert any("no timing" in m for m in msgs)


def test_plans_table_rounds_predictions_as_the_rationale_does() -> None:
    rec = Planner.load().recommend(_patient().record(as_of="2024-06-01"), area="hypertension")
    text = render_table(rec, width=220)
    cells = re.findall(r"\[(\d+\.\d+), (\d+\.\d+)\]", text)
    assert cells, text
    assert all(len(x.split(".")[1]) == 1 for pair in cells for x in pair), cells
    # the same figures the rationale prints for the top plan
    top = rec.plans[0]
    assert f"[{top.predicted.lower:.1f}, {top.predicted.upper:.1f}]" in text


def test_inspect_writes_units_as_read() -> None:
    text = inspect_table(_patient().record(as_of="2024-06-01"), width=160)
    assert "mmHg" in text and "mm[Hg]" not in text
