"""A data-quality message a person reads writes units as clinicians read them (rules/codes/units.yaml), not as
UCUM codes: found with a PHQ-9 total of -5, reported as "is -5 {score}, outside the plausible range 0-27 {score}"."""

from __future__ import annotations

from planner.ingest import read_record
from planner.testing import BundleBuilder


def test_implausible_value_message_writes_the_unit_as_read(tmp_path) -> None:
    b = BundleBuilder(patient_id="p1", birth_date="1960-01-01", sex="female")
    b.observation("phq9", -5, date="2024-01-01")
    b.observation("sbp", 400, date="2024-01-02")
    rec = read_record(b.build())
    msgs = {w.quantity: w.message for w in rec.warnings if w.code == "implausible-value"}
    assert "is -5 points, outside the plausible range 0-27 points; not used" in msgs["phq9"]
    assert "mm[Hg]" not in msgs["sbp"] and "is 400 mmHg" in msgs["sbp"]


def test_cohort_evaluate_tables_are_not_cut_when_written_to_a_file(capsys, monkeypatch) -> None:
    # `planner cohort evaluate results > eval.txt`: rich's 80 columns cut "patients" to "patien…" and
    # "Not Hispanic or Latino" over three lines
    from planner.cohort.tables import print_evaluation

    monkeypatch.delenv("COLUMNS", raising=False)
    ev = {
        "area": "t2d",
        "counts": {"patients": 13, "rows": 13, "decision_points_with_follow_up": 0, "error_rows": 0},
        "outcome": {"quantity": "hba1c", "unit": "%", "direction": "lower"},
        "subgroups": {"ethnicity": [{"group": "Not Hispanic or Latino", "patients": 12}]},
    }
    print_evaluation(ev)
    out = capsys.readouterr().out
    assert "patients" in out and "…" not in out and "Not Hispanic or Latino" in out
