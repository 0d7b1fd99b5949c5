"""`planner inspect`: table and JSON output, errors exit 2 with the message and no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from planner.ingest import read_record
from planner.ingest.cli import render_table
from planner.record import PatientRecord

FIX = Path(__file__).resolve().parent.parent / "fixtures"
ROOT = FIX.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "planner.cli", "inspect", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_inspect_table_on_synthea() -> None:
    [path] = (FIX / "synthea").glob("Dirk_Kuhlman*.json")
    out = run(str(path))
    assert out.returncode == 0, out.stderr
    for text in (
        "Patient",
        "948e608d-e408-4788-8cf2-8157c49c2940",
        "Active conditions",
        "Current medications",
        "metformin",
        "6809",
        "Latest measurements",
        "hba1c",
        "2021-03-02",
        "Pharmacogenomics",
        "Data-quality warnings",
    ):
        assert text in out.stdout, text


def test_inspect_json_round_trips_and_as_of() -> None:
    path = FIX / "fhir" / "medication_reference_us_core.json"
    out = run(str(path), "--format", "json", "--as-of", "2023-12-31")
    assert out.returncode == 0, out.stderr
    rec = PatientRecord.model_validate_json(out.stdout)
    assert rec == read_record(path, as_of="2023-12-31")
    assert rec.as_of.isoformat() == "2023-12-31"


def inproc(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process (the subprocess tests above cover the real entry point)."""
    from planner.cli import main

    code = main(["inspect", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_inspect_pgx_and_pharmcat(capsys) -> None:
    code, out, err = inproc(
        capsys, str(FIX / "fhir" / "pgx_hla.json"), "--pharmcat", str(FIX / "pharmcat" / "outside_calls.tsv")
    )
    assert code == 0, err
    assert "HLA-B" in out and "*57:01 positive" in out and "pharmcat-tsv" in out


def test_inspect_many_patients_json_is_a_list(capsys) -> None:
    code, out, err = inproc(capsys, str(FIX / "fhir" / "two_patients.ndjson"), "--format", "json")
    assert code == 0, err
    assert [r["patient_id"] for r in json.loads(out)] == ["nd-1", "nd-2"]


def test_inspect_error_subprocess_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceType": "Bundle", "type": "collection", "entry": []}')
    out = run(str(bad))
    assert out.returncode == 2 and "no entries" in out.stderr and "Traceback" not in out.stderr + out.stdout


def test_inspect_errors_exit_2_without_traceback(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceType": "Bundle", "type": "collection", "entry": []}')
    nan = tmp_path / "nan.json"
    nan.write_text('{"resourceType": "Observation", "valueQuantity": {"value": NaN}}')
    unit = tmp_path / "unit.json"
    doc = json.loads((FIX / "fhir" / "medication_reference_us_core.json").read_text())
    for e in doc["entry"]:
        if e["resource"].get("id") == "o-a1c-1":
            e["resource"]["valueQuantity"]["unit"] = e["resource"]["valueQuantity"]["code"] = "g/L"
    unit.write_text(json.dumps(doc))
    strict_unit = tmp_path / "strict_unit.json"  # without the hand-written Claim, which strict validation refuses first
    strict_unit.write_text(
        json.dumps({**doc, "entry": [e for e in doc["entry"] if e["resource"]["resourceType"] != "Claim"]})
    )
    cases = [
        ((str(bad),), "no entries"),
        ((str(nan),), "NaN"),
        ((str(tmp_path / "missing.json"),), "no such file"),
        ((str(strict_unit), "--strict"), "Observation/o-a1c-1 valueQuantity.unit 'g/L'"),
        ((str(bad), "--format", "xml"), "'xml' is not one of"),
        ((str(bad), "--as-of", "soon"), "as_of 'soon'"),
    ]
    for args, needle in cases:
        code, out, err = inproc(capsys, *args)
        assert code == 2, (args, out, err)
        assert needle in err, (needle, err)
        assert "Traceback" not in err + out
    # without --strict the one bad Observation is a data-quality warning and the rest of the record is shown
    code, out, err = inproc(capsys, str(unit), "--format", "json")
    assert code == 0 and "Traceback" not in err + out
    w = next(w for w in json.loads(out)["warnings"] if w["code"] == "resource-skipped")
    assert (w["resource"], w["field"], w["value"]) == ("Observation/o-a1c-1", "valueQuantity.unit", "g/L")


def test_render_table_lists_every_pgx_result() -> None:
    rec = read_record(FIX / "fhir" / "pgx_genomics_ig.json")
    text = render_table(rec)
    assert text.count("CYP2C19") == 2 and "Poor Metabolizer" in text and "*2/*2" in text
