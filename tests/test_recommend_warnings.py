"""``planner recommend`` carries the record's data-quality warnings (what ``planner inspect`` lists): in the text
table and in the JSON (``Recommendation.record_warnings``; the CDS Hooks plan card: tests/test_service.py), so a
clinician reading only the recommendation learns that something in the record could not be read. ``planner check``
lists them the same way (text table and JSON)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from planner import Planner, Recommendation
from planner.render.table import render_table
from planner.testing import BundleBuilder

AS_OF = "2024-06-01"


def _patient(*, bad_reason: bool) -> dict:
    """A depression patient with a stopped sertraline order; ``bad_reason``: and a later stopped escitalopram order
    whose ``statusReason`` is a string, not a CodeableConcept (the only data-quality problem in the record)."""
    b = BundleBuilder(patient_id="warn-dep", birth_date="1980-04-02", sex="female")
    b.condition("35489007", display="Depressive disorder", onset="2023-09-01")
    b.observation("phq9", 17, date="2024-05-10")
    b.observation("egfr", 95, date="2024-05-10")
    b.observation("bmi", 26, date="2024-05-10")
    b.medication("sertraline", 50, start="2023-10-01", end="2024-01-10", status="stopped", status_reason="Side effects")
    rid = b.medication("escitalopram", 10, start="2024-01-20", end="2024-03-01", status="stopped") if bad_reason else ""
    doc = b.build()
    for e in doc["entry"]:
        if e["resource"]["id"] == rid:
            e["resource"]["statusReason"] = "side effects"
    return doc


def _cli(bundle: Path, *args: str, command: str = "recommend") -> str:
    opts = ["--as-of", AS_OF, "--seed", "1"] if command == "recommend" else []
    out = subprocess.run(
        [sys.executable, "-m", "planner.cli", command, str(bundle), *opts, *args], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("warnings")
    paths = {}
    for name, bad in (("bad", True), ("clean", False)):
        paths[name] = d / f"{name}.json"
        paths[name].write_text(json.dumps(_patient(bad_reason=bad)))
    return paths


def test_recommend_table_and_json_show_an_unreadable_status_reason(bundles) -> None:
    table = _cli(bundles["bad"])
    assert "Data-quality warnings in the record (1)" in table
    row = next(line for line in table.splitlines() if "status-reason-unreadable" in line)
    assert "MedicationRequest/med-2 statusReason" in row and "not a CodeableConcept" in row
    doc = json.loads(_cli(bundles["bad"], "--format", "json"))
    assert doc["plans"]
    assert doc["record_warnings"] == [
        {
            "code": "status-reason-unreadable",
            "message": "statusReason is not a CodeableConcept; not read",
            "resource": "MedicationRequest/med-2",
            "field": "statusReason",
        }
    ]
    assert "side effects" not in json.dumps(doc["record_warnings"])  # the value stays on the record


def test_check_table_and_json_list_the_warnings_as_recommend_does(bundles) -> None:
    """``planner check`` (the safety report) lists the same data-quality warnings: in its JSON as
    ``record_warnings`` (the very entries ``recommend`` gives), and in its text as the same table."""
    doc = json.loads(_cli(bundles["bad"], "--format", "json", command="check"))
    assert doc["record_warnings"] == json.loads(_cli(bundles["bad"], "--format", "json"))["record_warnings"]
    assert [w["code"] for w in doc["record_warnings"]] == ["status-reason-unreadable"]
    assert "side effects" not in json.dumps(doc["record_warnings"])
    table = _cli(bundles["bad"], command="check")
    assert "Data-quality warnings in the record (1)" in table
    row = next(line for line in table.splitlines() if "status-reason-unreadable" in line)
    assert "MedicationRequest/med-2 statusReason" in row and "not a CodeableConcept" in row
    clean = _cli(bundles["clean"], command="check")
    assert "Data-quality warnings" not in clean
    assert json.loads(_cli(bundles["clean"], "--format", "json", command="check"))["record_warnings"] == []


@pytest.fixture(scope="module")
def planner() -> Planner:
    return Planner.load()


def test_the_warnings_round_trip_through_json(planner, bundles) -> None:
    rec = planner.recommend(bundles["bad"].read_bytes(), area="depression", as_of=AS_OF, seed=1)
    assert [(w.code, w.resource, w.field) for w in rec.record_warnings] == [
        ("status-reason-unreadable", "MedicationRequest/med-2", "statusReason")
    ]
    assert Recommendation.model_validate_json(rec.to_json()) == rec


def test_a_clean_record_shows_no_warning(planner, bundles) -> None:
    rec = planner.recommend(bundles["clean"].read_bytes(), area="depression", as_of=AS_OF, seed=1)
    assert rec.plans and rec.record_warnings == ()
    assert json.loads(rec.to_json())["record_warnings"] == []
    assert "Data-quality warnings" not in render_table(rec)
