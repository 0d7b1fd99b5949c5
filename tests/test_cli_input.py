"""The CLI with real-world and hostile input: several patients (--patient), markup-like EHR text, tables printed
once, no exit 70 for bad input or configuration; each with the exact message a user sees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.cli import main
from planner.testing import BundleBuilder

RW = Path(__file__).resolve().parent.parent / "fixtures" / "realworld"
BULK = RW / "bulk-smart10"
A5 = "a5cb8ce9-cec6-6b23-0990-cbaf753578a4"


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _hostile(tmp_path: Path) -> Path:
    b = BundleBuilder()
    b.condition("44054006", display="[/bold] diabetes [red]", onset="2015-01-01")
    b.medication("metformin", dose_mg_day=1000, start="2023-01-01")
    b.observation("hba1c", 8.4, date="2024-01-05")
    b.add(
        {
            "resourceType": "MedicationRequest",
            "id": "mr-x",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "authoredOn": "2023-06-01",
            "medicationCodeableConcept": {"text": "[/bold]Mystery[/i] drug"},
        }
    )
    f = tmp_path / ("long-name-" + "x" * 180 + ".json")
    f.write_text(json.dumps(b.build()))
    return f


def test_check_answers_for_every_patient_or_the_one_asked(capsys) -> None:
    code, out, err = run(capsys, "check", str(BULK), "--format", "json")
    assert code == 0, err
    assert sorted(d["patient_id"] for d in json.loads(out)) == sorted(
        ["79a66c97-6131-3213-f3c9-4606946ab056", A5, "63ee2253-bdd5-da55-2ad2-b4984d0ad700"]
    )
    code, out, err = run(capsys, "check", str(BULK), "--format", "json", "--patient", A5)
    assert code == 0 and json.loads(out)["patient_id"] == A5
    code, out, err = run(capsys, "check", str(BULK), "--patient", "nobody")
    assert code == 2 and "Traceback" not in err
    assert err.strip() == (
        f"error: {BULK}: --patient 'nobody': no patient with this id among the 3 in the input; "
        "expected the id of a Patient resource in the input"
    )


def test_recommend_with_patient_in_a_bulk_export(capsys) -> None:
    code, out, err = run(capsys, "recommend", str(BULK), "--patient", A5, "--format", "json", "--area", "lipids")
    assert code == 0, err
    doc = json.loads(out)
    # the export has no Observation file, so no LDL: no plan is ranked, and the output says why
    assert doc["patient_id"] == A5 and doc["plans"] == [] and "no-outcome" in [g["code"] for g in doc["data_gaps"]]
    assert (
        "a current medication could not be identified (ferrous sulfate 325 MG Oral Tablet); it is not screened "
        "for interactions or doses" in [g["message"] for g in doc["data_gaps"]]
    )


def test_markup_in_ehr_text_is_printed_literally_and_tables_once(capsys, tmp_path) -> None:
    f = _hostile(tmp_path)
    for cmd in (["inspect", str(f)], ["check", str(f)], ["recommend", str(f), "--area", "t2d"]):
        code, out, err = run(capsys, *cmd)
        assert code == 0, (cmd, err)
        assert "[/bold]Mystery[/i] drug" in out, cmd
    code, out, _ = run(capsys, "inspect", str(f))
    assert out.count("Current medications") == 1 and out.count("Data-quality warnings") == 1
    code, out, _ = run(capsys, "check", str(f))
    assert out.count("Safety report for p1") == 1 and out.count("Findings") == 1


@pytest.mark.parametrize("seed", ["-1", str(2**70)])
def test_negative_or_huge_seed_is_exit_2(capsys, tmp_path, seed) -> None:
    code, out, err = run(capsys, "recommend", str(_hostile(tmp_path)), "--area", "t2d", "--seed", seed)
    assert code == 2 and "Traceback" not in err and "seed" in err and "expected an int from 0 to 4,294,967,295" in err


def test_damaged_model_folder_is_exit_2(capsys, tmp_path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "meta.json").write_text('{"format": "planner.model.ResponseModel"}')
    (tmp_path / "m" / "draws.npz").write_bytes(b"PK\x03\x04 truncated")
    code, out, err = run(capsys, "recommend", str(_hostile(tmp_path)), "--area", "t2d", "--model", str(tmp_path / "m"))
    assert code == 2 and "Traceback" not in err
    assert "damaged model folder (missing 'params')" in err


def test_audit_database_of_another_schema_is_exit_2_before_any_work(capsys, tmp_path) -> None:
    import sqlite3

    db = tmp_path / "a.db"
    with sqlite3.connect(db) as con:
        con.execute("create table recommendation_audit (x int)")
    code, out, err = run(capsys, "recommend", str(_hostile(tmp_path)), "--area", "t2d", "--audit", str(db))
    assert code == 2 and out == "" and "audit database has another schema" in err
