"""Every bad input gets a specific PlannerError naming where (file/resource/field), the value and what was expected."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import pytest

from planner.errors import ConfigError, FhirError, InputError, PlannerError
from planner.ingest import read_pharmcat, read_record, read_records
from planner.testing import BundleBuilder

FIX = Path(__file__).resolve().parent.parent / "fixtures"


def base() -> dict[str, Any]:
    b = BundleBuilder(patient_id="p1", birth_date="1960-01-01")
    b.condition("44054006", onset="2019-01-01")
    b.medication("metformin", dose_mg_day=1000, start="2023-01-01")
    b.observation("hba1c", 8.0, date="2024-01-05")
    return b.build()


def res(doc: dict[str, Any], rtype: str) -> dict[str, Any]:
    return next(e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == rtype)


def mutate(fn: Callable[[dict[str, Any]], Any]) -> bytes:
    doc = base()
    fn(doc)
    return json.dumps(doc).encode()


def _set(path: list[Any], value: Any, rtype: str = "Observation") -> Callable[[dict[str, Any]], None]:
    def fn(doc: dict[str, Any]) -> None:
        node = res(doc, rtype)
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value

    return fn


def _two_patients(doc: dict[str, Any]) -> None:
    doc["entry"].append({"resource": {"resourceType": "Patient", "id": "p2"}})


def _dup_obs(doc: dict[str, Any]) -> None:
    doc["entry"].append(copy.deepcopy(doc["entry"][-1]))


def _med_ref(doc: dict[str, Any]) -> None:
    mr = res(doc, "MedicationRequest")
    del mr["medicationCodeableConcept"]
    mr["medicationReference"] = {"reference": "Medication/nowhere"}


def _no_subject_two_patients(doc: dict[str, Any]) -> None:
    _two_patients(doc)
    del res(doc, "Observation")["subject"]


def _nested(doc: dict[str, Any]) -> None:
    inner = copy.deepcopy(doc)
    for _ in range(4):
        inner = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": inner}]}
    doc["entry"].append({"resource": inner})


# (id, input, kwargs, error class, regexes that must all appear in the message)
CASES: list[tuple[str, Any, dict[str, Any], type[PlannerError], list[str]]] = [
    ("not-json", b"hello world", {}, InputError, ["not a JSON object", "expected a JSON object"]),
    ("malformed-json", b'{"resourceType": "Bundle", "entry": [', {}, InputError, ["not valid JSON", "byte"]),
    ("empty-bytes", b"", {}, InputError, ["empty input"]),
    ("whitespace-only", b"  \n\t ", {}, InputError, ["empty input"]),
    ("empty-text", "   ", {}, InputError, ["empty input"]),
    (
        "json-array",
        b'[{"resourceType": "Patient", "id": "p1"}]',
        {},
        InputError,
        ["JSON array", "expected a JSON object"],
    ),
    (
        "resourceType-not-string",
        b'{"resourceType": 5, "id": "x"}',
        {},
        FhirError,
        ["resourceType", "an integer where a string belongs"],
    ),
    (
        "no-resourceType",
        b'{"id": "x", "gender": "male"}',
        {},
        FhirError,
        ["no resourceType", "expected a FHIR resource type"],
    ),
    ("wrong-resourceType", b'{"resourceType": "Patinet", "id": "p1"}', {}, FhirError, ["no Patient resource"]),
    (
        "bundle-empty-entries",
        b'{"resourceType": "Bundle", "type": "collection", "entry": []}',
        {},
        FhirError,
        ["Bundle entry", "no entries", "expected at least one entry"],
    ),
    ("bundle-no-entry-field", b'{"resourceType": "Bundle", "type": "collection"}', {}, FhirError, ["no entries"]),
    (
        "bundle-entry-not-list",
        b'{"resourceType": "Bundle", "type": "collection", "entry": {}}',
        {},
        FhirError,
        ["Bundle entry", "an object where a list belongs"],
    ),
    (
        "bundle-unknown-type",
        mutate(lambda d: d.update(type="bag")),
        {},
        FhirError,
        ["Bundle type 'bag'", "expected one of"],
    ),
    ("no-patient", mutate(lambda d: d["entry"].pop(0)), {}, FhirError, ["no Patient resource"]),
    ("two-patients-read-record", mutate(_two_patients), {}, FhirError, ["2 patients", "exactly one Patient"]),
    (
        "non-utf8",
        b'{"resourceType": "Patient", "id": "p1", "name": [{"text": "\xff\xfe"}]}',
        {},
        InputError,
        ["not UTF-8", "0xff"],
    ),
    (
        "nan",
        b'{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient", '
        b'"id": "p1"}}, {"resource": {"resourceType": "Observation", "id": "o", "valueQuantity": {"value": NaN}}}]}',
        {},
        InputError,
        ["NaN is not valid JSON", "finite numbers"],
    ),
    (
        "infinity",
        b'{"resourceType": "Observation", "id": "o", "valueQuantity": {"value": Infinity}}',
        {},
        InputError,
        ["Infinity is not valid JSON"],
    ),
    (
        "deeply-nested",
        b'{"resourceType": "Patient", "id": "p1", "extension": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        {},
        InputError,
        ["nested too deeply", "at most about 1,000 levels"],
    ),
    ("nested-bundles", mutate(_nested), {}, FhirError, ["Bundles nested too deeply"]),
    (
        "over-size-limit",
        mutate(lambda d: None),
        {"max_bytes": 100},
        InputError,
        ["over the size limit", "at most 100 bytes"],
    ),
    (
        "deceased-before-birth",
        mutate(_set(["deceasedDateTime"], "1950-01-01", "Patient")),
        {},
        FhirError,
        ["Patient/p1 deceasedDateTime", "deceased before birth", "on or after the birth date"],
    ),
    (
        "birth-after-as-of",
        mutate(lambda d: None),
        {"as_of": "1950-01-01"},
        FhirError,
        ["Patient/p1 birthDate", "birth date after the patient's own events", "on or before 1950-01-01"],
    ),
    (
        "bad-as-of",
        mutate(lambda d: None),
        {"as_of": "last tuesday"},
        ConfigError,
        ["as_of 'last tuesday'", "2024-01-31"],
    ),
    ("bad-max-bytes", mutate(lambda d: None), {"max_bytes": -1}, ConfigError, ["max_bytes -1", "positive integer"]),
    ("unsupported-type", 12345, {}, InputError, ["unsupported input type int"]),
]


@pytest.mark.parametrize("name,data,kwargs,err,patterns", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, data, kwargs, err, patterns) -> None:
    with pytest.raises(err) as info:
        read_record(data, **kwargs)
    msg = str(info.value)
    for pat in patterns:
        assert __import__("re").search(pat, msg), f"{pat!r} not in {msg!r}"
    assert isinstance(info.value, PlannerError)
    assert info.value.to_dict()["message"] == msg


def test_at_least_thirty_distinct_cases() -> None:
    from test_ingest_isolation import SKIPPED  # cases now isolated to one resource (a warning, the rest read)

    assert len({c[0] for c in CASES}) + len(SKIPPED) >= 30


def test_mmol_per_mol_hba1c_is_converted_not_an_error() -> None:
    data = mutate(
        _set(
            ["valueQuantity"],
            {"value": 64, "unit": "mmol/mol", "system": "http://unitsofmeasure.org", "code": "mmol/mol"},
        )
    )
    m = read_record(data).latest("hba1c")
    assert m.value == pytest.approx(0.09148 * 64 + 2.152) and m.unit == "%" and m.original_unit == "mmol/mol"


def test_unknown_loinc_is_skipped_and_implausible_value_warned() -> None:
    b = BundleBuilder()
    b.add(
        {
            "resourceType": "Observation",
            "id": "x1",
            "status": "final",
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "99999-9"}]},
            "effectiveDateTime": "2024-01-01",
            "valueQuantity": {"value": 1, "unit": "furlongs"},
        }
    )
    b.observation("hba1c", 64, unit="%", date="2024-01-02")  # mmol/mol mislabelled as %: implausible
    r = b.record()
    assert r.observations == {}
    assert [w.code for w in r.warnings] == ["implausible-value"]
    assert "Observation/obs-1" == r.warnings[0].resource


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or folder"):
        read_records(tmp_path / "missing.json")
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(InputError, match="no .json or .ndjson files"):
        read_records(empty_dir)
    f = tmp_path / "big.json"
    f.write_bytes(mutate(lambda d: None))
    with pytest.raises(InputError, match=r"big\.json.*over the size limit"):
        read_records(f, max_bytes=50)
    g = tmp_path / "empty.json"
    g.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.json.*empty input"):
        read_records(g)


def test_pharmcat_errors(tmp_path: Path) -> None:
    cases = {
        "bad_gene.tsv": ("cyp 2d6\t*1/*4\n", "gene symbol"),
        "bad_score.tsv": ("CYP2D6\t\t\tlots\n", "activity score is not a number"),
        "too_many.tsv": ("CYP2D6\t*1/*4\tNM\t1.0\textra\n", "5 tab-separated fields"),
        "nothing.tsv": ("CYP2D6\t\t\t\n", "no diplotype, phenotype or activity score"),
        "empty.tsv": ("", "empty file"),
        "not_pharmcat.json": ('{"genes": {}}', "not a PharmCAT phenotype JSON"),
        "broken.json": ('{"geneReports": ', "not valid JSON"),
        "bad_reports.json": ('{"geneReports": {"CPIC": []}}', "gene reports are not an object"),
    }
    for name, (text, pattern) in cases.items():
        p = tmp_path / name
        p.write_text(text)
        with pytest.raises(InputError, match=pattern) as info:
            read_pharmcat(p)
        assert name in str(info.value)
    with pytest.raises(InputError, match="no such file"):
        read_pharmcat(tmp_path / "absent.tsv")
    p = tmp_path / "latin1.tsv"
    p.write_bytes(b"CYP2D6\t*1/*4\t\xe9\n")
    with pytest.raises(InputError, match="not UTF-8"):
        read_pharmcat(p)


def test_pharmcat_for_many_patients_is_refused() -> None:
    with pytest.raises(FhirError, match="2 patients"):
        read_records(FIX / "fhir" / "two_patients.ndjson", pharmcat=[FIX / "pharmcat" / "outside_calls.tsv"])
