"""Isolation: one resource planner cannot use becomes a data-quality warning on the record (resource, field, value,
why) and is skipped; the rest of the patient, and the other patients, are read. Each case checks the exact message
a user sees (``DataWarning.message``), and that the facts in the other resources survive."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_ingest_errors import _dup_obs, _med_ref, _no_subject_two_patients, _set, mutate, res

from planner.errors import FhirError, PlannerError
from planner.ingest import IngestStats, read_record, read_records

# (id, input, kwargs, warning code, resource, field, value, exact message, facts that must survive)
SKIPPED: list[tuple[str, Any, dict[str, Any], str, str | None, str | None, str | None, str, set[str]]] = [
    (
        "entry-without-resource",
        mutate(lambda d: d["entry"].append({"fullUrl": "urn:uuid:x"})),
        {},
        "input-skipped",
        "<bytes> entry[4]",
        None,
        None,
        "entry[4] of <bytes> could not be read (entry has no resource; expected a resource in every entry); it was "
        "skipped, so whatever it held is missing from this record",
        {"hba1c", "metformin", "44054006"},
    ),
    (
        "missing-subject-reference",
        mutate(_set(["subject", "reference"], "Patient/ghost")),
        {},
        "resource-unattributed",
        "Observation/obs-1",
        "subject.reference",
        None,
        "Observation names a subject that is not a Patient in the input; not used for any patient",
        {"metformin"},
    ),
    (
        "invalid-date",
        mutate(_set(["effectiveDateTime"], "2024-02-30")),
        {},
        "resource-skipped",
        "Observation/obs-1",
        "effectiveDateTime",
        "2024-02-30",
        "not used: invalid date; expected a FHIR date or dateTime such as 2024-01-05 or 2024-01-05T10:00:00Z",
        {"metformin", "44054006"},
    ),
    (
        "date-not-a-string",
        mutate(_set(["onsetDateTime"], 20190101, "Condition")),
        {},
        "resource-skipped",
        "Condition/cond-1",
        "onsetDateTime",
        None,
        "not used: an integer where a string belongs; expected a valid FHIR R4 Condition",
        {"hba1c", "metformin"},
    ),
    (
        "future-date",
        mutate(_set(["authoredOn"], "2999-01-01", "MedicationRequest")),
        {"today": "2025-06-01"},
        "resource-skipped",
        "MedicationRequest/med-1",
        "authoredOn",
        "2999-01-01",
        "not used: date is in the future; expected a date on or before today (2025-06-01)",
        {"hba1c", "44054006"},
    ),
    (
        "future-observation",
        mutate(_set(["effectiveDateTime"], "2025-06-02")),
        {"today": "2025-06-01"},
        "resource-skipped",
        "Observation/obs-1",
        "effectiveDateTime",
        "2025-06-02",
        "not used: date is in the future; expected a date on or before today (2025-06-01)",
        {"metformin"},
    ),
    (
        "unknown-unit",
        mutate(_set(["valueQuantity"], {"value": 8.0, "unit": "mg"})),
        {},
        "resource-skipped",
        "Observation/obs-1",
        "valueQuantity.unit",
        "mg",
        "not used: for LOINC 4548-4 (HbA1c); expected % or one of 'mmol/mol'",
        {"metformin"},
    ),
    (
        "value-as-string",
        mutate(_set(["valueQuantity", "value"], "8.0")),
        {},
        "resource-skipped",
        "Observation/obs-1",
        "valueQuantity.value",
        None,
        "not used: a string where a number belongs; expected a valid FHIR R4 Observation",
        {"metformin"},
    ),
    (
        "coding-not-list",
        mutate(_set(["code", "coding"], {"code": "4548-4"})),
        {},
        "resource-skipped",
        "Observation/obs-1",
        "code.coding",
        None,
        "not used: an object where a list belongs; expected a valid FHIR R4 Observation",
        {"metformin"},
    ),
    (
        "invalid-id",
        mutate(_set(["id"], "has spaces here")),
        {},
        "invalid-id",
        "Observation/has spaces here",
        "id",
        "has spaces here",
        "id of 15 characters is not a FHIR id (1-64 of A-Z, a-z, 0-9, '-', '.'); accepted as given",
        {"hba1c", "metformin"},
    ),
    (
        "id-not-string",
        mutate(_set(["id"], 7)),
        {},
        "resource-skipped",
        "Observation (entry[3])",
        "id",
        None,
        "not used: an integer where a string belongs; expected a valid FHIR R4 Observation",
        {"metformin"},
    ),
    (
        "number-overflow",
        mutate(_set(["valueQuantity", "value"], 1.5)).replace(b"1.5", b"1e999"),
        {},
        "resource-skipped",
        "Observation/obs-1",
        "valueQuantity.value",
        None,
        "not used: Number out of range; expected a valid FHIR R4 Observation",
        {"metformin"},
    ),
    (
        "invalid-gender",
        mutate(_set(["gender"], "M", "Patient")),
        {},
        "invalid-gender",
        "Patient/p1",
        "gender",
        "M",
        "gender is not one of male, female, other, unknown; not used",
        {"hba1c", "metformin"},
    ),
    (
        "invalid-birthdate",
        mutate(_set(["birthDate"], "01/02/1960", "Patient")),
        {},
        "resource-skipped",
        "Patient/p1",
        "birthDate",
        None,
        "birthDate not used: invalid date",
        {"hba1c", "metformin"},
    ),
    (
        "abatement-before-onset",
        mutate(_set(["abatementDateTime"], "2018-01-01", "Condition")),
        {},
        "resource-skipped",
        "Condition/cond-1",
        "abatementDateTime",
        "2018-01-01",
        "not used: condition abates before its onset; expected a date on or after the onset 2019-01-01",
        {"hba1c", "metformin"},
    ),
    (
        "medication-ends-before-start",
        mutate(_set(["dispenseRequest"], {"validityPeriod": {"end": "2022-01-01"}}, "MedicationRequest")),
        {},
        "resource-skipped",
        "MedicationRequest/med-1",
        "dispenseRequest.validityPeriod.end",
        "2022-01-01",
        "not used: medication ends before it starts; expected a date on or after the start 2023-01-01",
        {"hba1c", "44054006"},
    ),
    (
        "medication-missing",
        mutate(lambda d: res(d, "MedicationRequest").pop("medicationCodeableConcept")),
        {},
        "resource-skipped",
        "MedicationRequest/med-1",
        "medication[x]",
        None,
        "not used: no medication; expected medicationCodeableConcept or medicationReference",
        {"hba1c", "44054006"},
    ),
    (
        "condition-without-code",
        mutate(lambda d: res(d, "Condition").pop("code")),
        {},
        "resource-skipped",
        "Condition/cond-1",
        "code",
        None,
        "not used: condition without a code; expected a SNOMED CT or ICD-10-CM coding",
        {"hba1c", "metformin"},
    ),
    (
        "ndjson-line-not-object",
        b'{"resourceType": "Patient", "id": "p1"}\n[1, 2]\n',
        {},
        "input-skipped",
        "<bytes> line 2",
        None,
        None,
        "line 2 of <bytes> could not be read (NDJSON line 2 is not a JSON object; expected one FHIR resource per line); "
        "it was skipped, so whatever it held is missing from this record",
        set(),
    ),
    (
        "ndjson-bad-line",
        b'{"resourceType": "Patient", "id": "p1"}\n{"resourceType": "Observation", "id": \n',
        {},
        "input-skipped",
        "<bytes> line 2",
        None,
        None,
        "line 2 of <bytes> could not be read (not valid JSON line 2: Input data was truncated; expected a JSON object); "
        "it was skipped, so whatever it held is missing from this record",
        set(),
    ),
]


def _facts(r) -> set[str]:
    return (
        {m.ingredient for m in r.medications if m.ingredient}
        | set(r.observations)
        | {c.code for c in r.conditions if c.code}
    )


@pytest.mark.parametrize(
    "name,data,kwargs,code,resource,field,value,message,survive", SKIPPED, ids=[c[0] for c in SKIPPED]
)
def test_one_bad_resource_is_a_warning_not_a_failure(
    name, data, kwargs, code, resource, field, value, message, survive
) -> None:
    r = read_record(data, **kwargs)
    hits = [w for w in r.warnings if w.code == code]
    assert hits, f"no {code} warning in {[w.code for w in r.warnings]}"
    w = hits[0]
    assert (w.message, w.resource, w.field, w.value) == (message, resource, field, value)
    assert survive <= _facts(r)


def test_duplicate_identical_copies_are_read_once() -> None:
    stats = IngestStats()
    r = read_record(mutate(_dup_obs), stats=stats)
    assert len(r.series("hba1c")) == 1 and stats.duplicates == 1
    assert not [w for w in r.warnings if w.code == "duplicate-resource"]


def test_differing_duplicates_keep_the_later_last_updated() -> None:
    def fn(doc: dict[str, Any]) -> None:
        obs = res(doc, "Observation")
        obs["meta"] = {"lastUpdated": "2024-02-01T00:00:00Z"}
        newer = json.loads(json.dumps(obs))
        newer["valueQuantity"]["value"] = 7.1
        newer["meta"] = {"lastUpdated": "2024-03-01T00:00:00Z"}
        doc["entry"].insert(1, {"resource": newer})  # the newer copy comes first in the file

    r = read_record(mutate(fn))
    assert [m.value for m in r.series("hba1c")] == [7.1]
    w = next(w for w in r.warnings if w.code == "duplicate-resource")
    assert (w.resource, w.message) == (
        "Observation/obs-1",
        "two different copies of this resource in the input; the one updated last is used",
    )


def test_id_over_64_characters_is_accepted_with_a_warning() -> None:
    long_id = "e" + "A1b2C3d4" * 10  # Epic-style long id
    r = read_record(mutate(_set(["id"], long_id, "MedicationRequest")))
    assert [m.id for m in r.medications] == [long_id]
    w = next(w for w in r.warnings if w.code == "invalid-id")
    assert w.message == "id of 81 characters is not a FHIR id (1-64 of A-Z, a-z, 0-9, '-', '.'); accepted as given"


def test_dangling_medication_reference_keeps_the_order_as_unresolved() -> None:
    r = read_record(mutate(_med_ref))
    (m,) = r.medications
    assert (m.id, m.ingredient, m.source_display, m.status) == ("med-1", None, "unresolved medication", "active")
    assert m in r.active_medications()
    w = next(w for w in r.warnings if w.code == "medication-reference-missing")
    assert (w.field, w.value, w.message) == (
        "medicationReference.reference",
        "Medication/nowhere",
        "medicationReference points to a Medication not in the input; kept as an unresolved medication",
    )


def test_dangling_medication_reference_resolved_by_its_display() -> None:
    def fn(doc: dict[str, Any]) -> None:
        _med_ref(doc)
        res(doc, "MedicationRequest")["medicationReference"]["display"] = "Humulin R U-100 injection"

    (m,) = read_record(mutate(fn)).medications
    assert (m.ingredient, m.rxcui) == ("insulin regular human", "253182")


def test_no_subject_with_several_patients_warns_every_patient() -> None:
    recs = read_records(mutate(_no_subject_two_patients))
    assert [r.patient_id for r in recs] == ["p1", "p2"]
    for r in recs:
        w = next(w for w in r.warnings if w.code == "resource-unattributed")
        assert w.message == "Observation has no subject and the input holds several patients; not used for any patient"
        assert "hba1c" not in r.observations


def test_one_unusable_patient_fails_only_that_patient() -> None:
    def fn(doc: dict[str, Any]) -> None:
        doc["entry"].append(
            {
                "resource": {
                    "resourceType": "Patient",
                    "id": "p2",
                    "birthDate": "1990-01-01",
                    "deceasedDateTime": "1980-01-01",
                }
            }
        )

    stats = IngestStats()
    recs = read_records(mutate(fn), stats=stats)
    assert [r.patient_id for r in recs] == ["p1"] and "hba1c" in recs[0].observations
    assert [f["resource"] for f in stats.failed_patients] == ["Patient/p2"]
    assert stats.failed_patients[0]["message"] == (
        "<bytes>: Patient/p2 deceasedDateTime: deceased before birth; expected a date of death on or after the "
        "birth date"
    )


def test_a_lone_unusable_patient_is_an_error() -> None:
    with pytest.raises(FhirError, match="deceased before birth"):
        read_record(mutate(_set(["deceasedDateTime"], "1950-01-01", "Patient")))


def test_patient_known_only_by_its_urn_uuid() -> None:
    def fn(doc: dict[str, Any]) -> None:
        doc["entry"][0]["fullUrl"] = "urn:uuid:6b1f7c1e-0000-4000-8000-000000000001"
        del doc["entry"][0]["resource"]["id"]
        for e in doc["entry"][1:]:
            e["resource"]["subject"] = {"reference": "urn:uuid:6b1f7c1e-0000-4000-8000-000000000001"}

    r = read_record(mutate(fn))
    assert r.patient_id == "6b1f7c1e-0000-4000-8000-000000000001" and "hba1c" in r.observations
    assert any(w.code == "patient-id-from-fullurl" for w in r.warnings)


def test_broken_ndjson_line_is_one_warning_and_the_rest_is_read(tmp_path) -> None:
    lines = [
        b'{"resourceType": "Patient", "id": "p1", "birthDate": "1960-01-01"}',
        b'{"resourceType": "Observation", "id": "o1", "status": "final", "subject": {"reference": "Patient/p1"},',
        b'{"resourceType": "Observation", "id": "o2", "status": "final", "subject": {"reference": "Patient/p1"}, '
        b'"code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]}, "effectiveDateTime": '
        b'"2024-01-05", "valueQuantity": {"value": 7.5, "unit": "%"}}',
    ]
    f = tmp_path / "Observation.000.ndjson"
    f.write_bytes(b"\n".join(lines) + b"\n")
    r = read_record(f)
    assert r.latest("hba1c").value == 7.5
    (w,) = [w for w in r.warnings if w.code == "input-skipped"]
    assert (
        w.resource == "Observation.000.ndjson line 2"
        and "line 2 of Observation.000.ndjson could not be read" in w.message
    )


def test_bulk_export_log_and_operation_outcome_are_ignored(tmp_path) -> None:
    (tmp_path / "Patient.000.ndjson").write_bytes(b'{"resourceType": "Patient", "id": "p1"}\n')
    (tmp_path / "log.ndjson").write_bytes(b'{"exportId": "e1", "eventId": "kickoff", "eventDetail": {}}\n')
    (tmp_path / "OperationOutcome.000.ndjson").write_bytes(
        b'{"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing"}]}\n'
        b'{"exportId": "e1", "eventId": "status_complete"}\n'
    )
    stats = IngestStats()
    (r,) = read_records(tmp_path, stats=stats)
    assert r.patient_id == "p1" and stats.skipped_types == {"OperationOutcome": 1}
    assert not [w for w in r.warnings if w.code in ("input-skipped", "resource-skipped")]


def test_error_messages_do_not_echo_patient_text() -> None:
    data = (
        b'{"resourceType": "Patient", "id": "p1", "name": [{"text": "Jane Secretname"}], "birthDate": "1960-0'
        b'1-01", "gender": '
    )
    with pytest.raises(PlannerError) as info:
        read_record(data)
    assert "Secretname" not in str(info.value) and "1960" not in str(info.value)


def test_duplicate_json_key_refuses_the_file_naming_the_key() -> None:
    data = mutate(lambda d: None).replace(b'"status": "active"', b'"status": "active", "status": "cancelled"', 1)
    assert data.count(b'"status": "cancelled"') == 1
    with pytest.raises(PlannerError) as info:
        read_record(data)
    assert str(info.value) == (
        "<bytes>: MedicationRequest/med-1: the key 'status' appears twice in one JSON object; "
        "expected each key once per object (RFC 8259: names should be unique); the file is "
        "refused"
    )


def test_as_of_after_today_is_refused() -> None:
    from planner.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        read_record(mutate(lambda d: None), as_of="2030-01-01", today="2026-01-01")
    assert str(info.value) == (
        "as_of '2030-01-01': as-of date is after today; expected a date on or before today "
        "(2026-01-01): planning for a future date would use facts that do not exist yet"
    )


def test_size_limit_holds_for_stdin_and_pipes(tmp_path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from planner.ingest import read_records; from planner.errors import PlannerError\n"
        "try:\n    read_records(sys.argv[1], max_bytes=200)\n"
        "except PlannerError as e:\n    print(e)\n"
    )
    data = mutate(lambda d: None)
    assert len(data) > 200
    for src in ("-", "/dev/stdin"):
        out = subprocess.run([sys.executable, "-c", code, src], input=data, capture_output=True, timeout=120).stdout
        name = "<stdin>" if src == "-" else "/dev/stdin"
        assert (
            out.decode().strip() == f"{name}: input is over the size limit; expected at most 200 bytes "
            "(raise max_bytes if this is intended)"
        )
