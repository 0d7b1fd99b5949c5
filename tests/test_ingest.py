"""Ingest of every fixture: values checked against what the files say."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from planner.ingest import IngestStats, attach_pgx, read_pharmcat, read_record, read_records
from planner.record import PatientRecord

FIX = Path(__file__).resolve().parent.parent / "fixtures"
SYN = FIX / "synthea"
D = dt.date


def _syn(prefix: str) -> Path:
    [path] = SYN.glob(prefix + "*.json")
    return path


# (file prefix, patient id, latest HbA1c date, value, number of HbA1c values, active ingredient -> RxCUI)
SYNTHEA = [
    (
        "Adalberto_Hartmann",
        "ba18818d-faef-44cd-9744-b12d8973d402",
        D(2021, 3, 31),
        6.212982014759749,
        10,
        {"amlodipine": "17767", "clopidogrel": "32968", "simvastatin": "36567", "hydrochlorothiazide": "5487"},
    ),
    (
        "Dirk_Kuhlman",
        "948e608d-e408-4788-8cf2-8157c49c2940",
        D(2021, 3, 2),
        3.0102167723507556,
        8,
        # Humulin 70/30 (RxNorm 106892): insulin regular human and insulin isophane human (no RxCUI in rules, so not here)
        {
            "carbamazepine": "2002",
            "hydrochlorothiazide": "5487",
            "metformin": "6809",
            "insulin regular human": "253182",
        },
    ),
    (
        "Fabian_Murray",
        "b4a36fff-6981-496a-a0d3-b274dd4b363a",
        D(2020, 12, 19),
        6.073139120096499,
        2,
        {"metformin": "6809"},
    ),
    (
        "Jed_Pollich",
        "72d8a40a-6aa4-4e62-a258-a973cf460658",
        D(2021, 3, 19),
        6.103294908974377,
        7,
        {"hydrochlorothiazide": "5487", "simvastatin": "36567"},
    ),
    (
        "Louis_Maggio",
        "bae2bf00-eca1-47fb-bb43-272f8de1449c",
        D(2020, 10, 9),
        7.4987279015619155,
        2,
        {"naproxen": "7258"},
    ),
    (
        "Morris_Lockman",
        "b218cee9-019d-47a4-b161-e97c0fd6f736",
        D(2020, 12, 25),
        5.581346852428838,
        6,
        {"hydrochlorothiazide": "5487", "metformin": "6809"},
    ),
]


@pytest.mark.parametrize("prefix,pid,a1c_date,a1c,n_a1c,active", SYNTHEA, ids=[s[0] for s in SYNTHEA])
def test_synthea_bundles(prefix, pid, a1c_date, a1c, n_a1c, active) -> None:
    stats = IngestStats()
    r = read_record(_syn(prefix), stats=stats)
    assert r.patient_id == pid
    last = r.latest("hba1c")
    assert last.date == a1c_date and last.value == pytest.approx(a1c, abs=1e-6) and last.unit == "%"
    assert len(r.series("hba1c")) == n_a1c
    got = {m.ingredient: m.rxcui for m in r.active_medications() if m.rxcui}
    assert got == active
    # every series is sorted by date and in its canonical unit
    for _name, series in r.observations.items():
        assert [m.date for m in series] == sorted(m.date for m in series)
        assert len({m.unit for m in series}) == 1
    assert stats.skipped_types.get("Claim", 0) > 0 and stats.skipped_types.get("ExplanationOfBenefit", 0) > 0
    assert stats.unknown_loinc > 0
    assert r.pgx == ()  # Synthea makes no PGx results: not tested, nothing invented
    assert PatientRecord.model_validate_json(r.model_dump_json()) == r


def test_synthea_details() -> None:
    r = read_record(_syn("Dirk_Kuhlman"))
    assert r.birth_date == D(1971, 12, 7) and r.sex == "male"
    codes = {c.code for c in r.active_conditions()}
    assert {"44054006", "127013003", "38341003"} <= codes  # diabetes, diabetic renal disease, hypertension
    egfr = r.series("egfr")
    assert egfr and all(m.unit == "mL/min/1.73m2" for m in egfr)
    met = next(m for m in r.medications if m.ingredient == "metformin")
    assert met.source_code == "860975" and met.strength_mg == 500 and met.start == D(2019, 3, 5)
    # BP panel 55284-4 unpacked into sbp and dbp on the same dates
    assert [m.date for m in r.series("sbp")] == [m.date for m in r.series("dbp")]
    assert all(m.loinc == "8480-6" for m in r.series("sbp"))
    jed = read_record(_syn("Jed_Pollich"))
    simva = next(m for m in jed.medications if m.ingredient == "simvastatin")
    assert simva.source_display == "Simvistatin 10 MG" and simva.strength_mg == 10  # Synthea's misspelling
    walsh_like = read_record(_syn("Adalberto_Hartmann"))
    donepezil = next(m for m in walsh_like.medications if m.ingredient == "donepezil")  # combination product
    assert donepezil.rxcui is None and donepezil.strength_mg == 10  # named in the safety rules, RxCUI not pinned
    unresolved = [m for m in walsh_like.medications if m.ingredient is None]
    assert unresolved and all(
        any(
            w.code == "unresolved-medication" and w.resource == f"MedicationRequest/{m.id}" for w in walsh_like.warnings
        )
        for m in unresolved
    )


def test_folder_of_synthea_gives_one_record_each() -> None:
    records = read_records(SYN)
    assert sorted(r.patient_id for r in records) == sorted(s[1] for s in SYNTHEA)


def test_as_of_given_filters_accessors() -> None:
    r = read_record(_syn("Adalberto_Hartmann"), as_of="2015-01-01")
    assert r.as_of == D(2015, 1, 1)
    assert r.latest("hba1c").date <= D(2015, 1, 1)
    assert all(m.start <= D(2015, 1, 1) for m in r.active_medications())


# ---- hand-written bundles ---------------------------------------------------------------------------------------


def test_medication_reference_bundle() -> None:
    r = read_record(FIX / "fhir" / "medication_reference_us_core.json")
    assert r.patient_id == "1b2c3d4e-0000-4000-8000-000000000001" and r.as_of == D(2024, 1, 22)
    meds = {m.ingredient: m for m in r.medications}
    # combination product through medicationReference: one Medication per ingredient, dose = tablets x strength x 2/day
    assert meds["metformin"].dose_mg_day == 2000 and meds["metformin"].strength_mg == 1000
    assert meds["sitagliptin"].dose_mg_day == 100 and meds["sitagliptin"].id == "mr-janumet"
    assert meds["sertraline"].dose_mg_day == 100 and meds["sertraline"].rxcui == "36437"
    assert meds["glipizide"].dose_mg_day == 5 and meds["glipizide"].end == D(2019, 1, 10)  # strength x frequency
    assert meds["atorvastatin"].resource_type == "MedicationStatement" and meds["atorvastatin"].dose_mg_day == 40
    assert meds["atorvastatin"].rxcui == "83367"  # resolved from text alone ("Atorvastatin calcium 40 mg tablet")
    assert meds["ibuprofen"].dose_mg_day is None
    assert any(w.code == "dose-not-derivable" and w.resource == "MedicationRequest/mr-prn" for w in r.warnings)
    assert {m.ingredient for m in r.active_medications()} == {
        "metformin",
        "sitagliptin",
        "sertraline",
        "atorvastatin",
        "ibuprofen",
    }
    a1c = r.series("hba1c")
    assert [m.value for m in a1c] == pytest.approx([8.1, 0.09148 * 58 + 2.152, 7.2])
    assert a1c[1].original_value == 58 and a1c[1].original_unit == "mmol/mol"
    assert r.latest("ldl").value == pytest.approx(2.6 * 38.67)
    assert r.latest("sbp").value == 142 and r.latest("dbp").value == 88
    assert r.latest("phq9").value == 14 and r.latest("egfr").value == 58
    assert r.latest("weight").value == pytest.approx(187 * 0.45359237)
    assert len(r.series("hba1c")) == 3  # the entered-in-error value is not used
    dx = {c.code: c for c in r.conditions}
    assert {x.code for x in dx["44054006"].codings} == {"44054006", "E11.9"}
    assert {c.code for c in r.active_conditions()} == {"44054006", "370143000"}
    [allergy] = r.allergies
    assert (
        allergy.rxcui == "2670"
        and allergy.criticality == "high"
        and allergy.reactions == ("Eruption of skin (disorder)",)
    )


def test_pgx_genomics_ig_bundle() -> None:
    r = read_record(FIX / "fhir" / "pgx_genomics_ig.json")
    geno, impl = r.pgx
    assert (geno.gene, geno.diplotype, geno.source) == ("CYP2C19", "*2/*2", "fhir-genotype")
    assert (impl.gene, impl.phenotype, impl.source) == ("CYP2C19", "Poor Metabolizer", "fhir-implication")
    assert impl.source_ref == "Observation/TxImp01" and geno.date == D(2019, 4, 1)


def test_pgx_stu1_bundle_never_invents_a_gene() -> None:
    r = read_record(FIX / "fhir" / "pgx_stu1_phenotype.json")
    assert [(p.gene, p.phenotype, p.source) for p in r.pgx] == [
        ("CYP2D6", "Intermediate Metabolizer", "fhir-phenotype-stu1")
    ]
    assert any(w.code == "pgx-no-gene" and w.resource == "Observation/med-impact-pgx-example" for w in r.warnings)
    assert r.pgx_for("TPMT") == () and r.pgx_for("NUDT15") == ()


def test_pgx_hla_bundle() -> None:
    r = read_record(FIX / "fhir" / "pgx_hla.json")
    got = {(p.gene, p.allele, p.allele_status, p.diplotype) for p in r.pgx}
    assert got == {
        ("HLA-B", "*57:01", "positive", None),
        ("HLA-A", "*31:01", "negative", None),
        ("CYP2C9", None, None, "*1/*3"),
    }


def test_ndjson_two_patients_and_read_record_refuses() -> None:
    path = FIX / "fhir" / "two_patients.ndjson"
    a, b = read_records(path)
    assert (a.patient_id, b.patient_id) == ("nd-1", "nd-2")
    assert a.latest("hba1c").value == 9.1 and a.medications[0].rxcui == "6809"  # 860975 without display
    assert b.latest("ldl").value == 171 and b.conditions[0].system == "http://hl7.org/fhir/sid/icd-10-cm"
    from planner.errors import FhirError

    with pytest.raises(FhirError, match="2 patients"):
        read_record(path)


def test_single_resource_folder_searchset_document() -> None:
    solo = read_record(FIX / "fhir" / "patient_only.json", as_of="2024-01-01")
    assert solo.birth_date == D(1990, 1, 1) and solo.sex == "other" and solo.observations == {}
    fold = read_record(FIX / "fhir" / "folder")
    assert fold.pgx[0].gene == "CYP2D6" and fold.pgx[0].diplotype == "*1/*4" and fold.latest("sbp").value == 128
    ss = read_record(FIX / "fhir" / "searchset.json")
    assert ss.latest("bmi").value == 31.2
    doc = read_record(FIX / "fhir" / "document.json")
    assert doc.latest("creatinine").value == pytest.approx(88.4 * 0.01131)


def test_every_fixture_file_ingests() -> None:
    files = [p for p in (FIX / "fhir").iterdir() if p.is_file() and p.suffix in (".json", ".ndjson")]
    files += list(SYN.glob("*.json"))
    assert len(files) >= 13
    for p in files:
        records = read_records(p, as_of="2025-01-01")
        assert records, p


def test_inputs_as_bytes_text_dict_path_agree() -> None:
    path = FIX / "fhir" / "pgx_hla.json"
    data = path.read_bytes()
    ref = read_record(path)
    assert read_record(data) == ref
    assert read_record(data.decode()) == ref
    assert read_record(str(path)) == ref
    assert read_record(json.loads(data)) == ref


def test_pharmcat_files() -> None:
    js = read_pharmcat(FIX / "pharmcat" / "sample.phenotype.json")
    got = {p.gene: p for p in js}
    assert set(got) == {"CYP2C19", "CYP2C9", "SLCO1B1", "HLA-B"}  # CYP2D6 not called: not tested
    assert got["CYP2C19"].diplotype == "*1/*2" and got["CYP2C19"].phenotype == "Intermediate Metabolizer"
    assert got["CYP2C9"].activity_score == 1.0 and got["SLCO1B1"].phenotype == "Decreased Function"
    assert (got["HLA-B"].allele, got["HLA-B"].allele_status) == ("*57:01", "positive")
    assert all(p.source == "pharmcat-json" for p in js)
    tsv = {p.gene: p for p in read_pharmcat(FIX / "pharmcat" / "outside_calls.tsv")}
    assert set(tsv) == {"CYP2D6", "CYP2C9", "CYP3A5", "HLA-B", "TPMT"}  # UGT1A1 "No Result": not tested
    assert tsv["CYP2D6"].diplotype == "*1/*4" and tsv["CYP2D6"].activity_score == 1.0
    assert tsv["TPMT"].diplotype == "*1/*3A" and tsv["TPMT"].phenotype == "Intermediate Metabolizer"
    assert (tsv["HLA-B"].allele, tsv["HLA-B"].allele_status) == ("*58:01", "negative")


def test_pharmcat_merge_reports_conflicts() -> None:
    rec = read_record(
        FIX / "fhir" / "pgx_hla.json",
        pharmcat=[FIX / "pharmcat" / "sample.phenotype.json", FIX / "pharmcat" / "outside_calls.tsv"],
    )
    assert {p.source for p in rec.pgx_for("CYP2C9")} == {"fhir-genotype", "pharmcat-json", "pharmcat-tsv"}
    conflicts = [w.message for w in rec.warnings if w.code == "pgx-conflict"]
    assert any(m.startswith("HLA-B") for m in conflicts) is False  # different alleles are not a conflict
    again = attach_pgx(rec, read_pharmcat(FIX / "pharmcat" / "sample.phenotype.json"))
    assert again.pgx == rec.pgx  # idempotent
    c = read_record(FIX / "fhir" / "pgx_genomics_ig.json", pharmcat=[FIX / "pharmcat" / "sample.phenotype.json"])
    assert any(w.code == "pgx-conflict" and w.message.startswith("CYP2C19") for w in c.warnings)


def test_strict_mode_validates_whole_resources() -> None:
    path = _syn("Fabian_Murray")
    assert read_record(path, strict=True) == read_record(path)
    ig = FIX / "fhir" / "pgx_genomics_ig.json"
    assert read_record(ig, strict=True) == read_record(ig)


def test_strict_mode_catches_what_fast_path_skips() -> None:
    from planner.errors import FhirError

    path = FIX / "fhir" / "medication_reference_us_core.json"
    doc = json.loads(path.read_bytes())
    assert any(e["resource"]["resourceType"] == "Claim" for e in doc["entry"])
    read_record(doc)  # Claims are skipped unread on the fast path (this one lacks required fields)
    with pytest.raises(FhirError, match="Claim.*insurance"):
        read_record(doc, strict=True)


def test_contained_medication_and_comparator() -> None:
    from planner.testing import BundleBuilder

    b = BundleBuilder()
    b.add(
        {
            "resourceType": "MedicationRequest",
            "id": "mr-c",
            "status": "active",
            "intent": "order",
            "contained": [
                {
                    "resourceType": "Medication",
                    "id": "m1",
                    "code": {
                        "coding": [
                            {
                                "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                "code": "314076",
                                "display": "lisinopril 10 MG Oral Tablet",
                            }
                        ]
                    },
                }
            ],
            "medicationReference": {"reference": "#m1"},
            "subject": {"reference": "Patient/p1"},
            "authoredOn": "2023-04-04",
            "dosageInstruction": [
                {
                    "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                    "doseAndRate": [{"doseQuantity": {"value": 2, "unit": "TAB"}}],
                }
            ],
        }
    )
    b.add(
        {
            "resourceType": "Observation",
            "id": "egfr-gt",
            "status": "final",
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "33914-3"}]},
            "effectiveDateTime": "2023-04-04",
            "valueQuantity": {"value": 90, "comparator": ">", "unit": "mL/min/{1.73_m2}"},
        }
    )
    r = b.record()
    [m] = r.medications
    assert (m.ingredient, m.rxcui, m.strength_mg, m.dose_mg_day) == ("lisinopril", "29046", 10, 20)
    assert r.latest("egfr").value == 90
    assert any(w.code == "value-with-comparator" and w.resource == "Observation/egfr-gt" for w in r.warnings)


def test_current_ig_implication_with_metabolizer_component() -> None:
    from planner.testing import BundleBuilder

    b = BundleBuilder()
    b.add(
        {
            "resourceType": "Observation",
            "id": "ti-1",
            "status": "final",
            "meta": {
                "profile": ["http://hl7.org/fhir/uv/genomics-reporting/StructureDefinition/therapeutic-implication"]
            },
            "code": {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/uv/genomics-reporting/CodeSystem/tbd-codes-cs",
                        "code": "therapeutic-implication",
                    }
                ]
            },
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2022-05-05",
            "component": [
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "53040-2"}]},
                    "valueCodeableConcept": {
                        "coding": [
                            {"system": "http://loinc.org", "code": "LA10315-2", "display": "Ultrarapid metabolizer"}
                        ]
                    },
                },
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "48018-6"}]},
                    "valueCodeableConcept": {
                        "coding": [{"system": "http://www.genenames.org", "code": "HGNC:2625", "display": "CYP2D6"}]
                    },
                },
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "51963-7"}]},
                    "valueCodeableConcept": {
                        "coding": [
                            {
                                "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                "code": "2670",
                                "display": "codeine",
                            }
                        ]
                    },
                },
            ],
        }
    )
    [p] = b.record().pgx
    assert (p.gene, p.phenotype, p.source, p.source_ref) == (
        "CYP2D6",
        "Ultrarapid Metabolizer",
        "fhir-implication",
        "Observation/ti-1",
    )


def test_medication_resource_with_ingredients_only() -> None:
    from planner.testing import BundleBuilder

    b = BundleBuilder()
    b.add(
        {
            "resourceType": "Medication",
            "id": "m-combo",
            "ingredient": [
                {
                    "itemCodeableConcept": {
                        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "29046"}]
                    }
                },
                {"itemCodeableConcept": {"coding": [{"display": "hydrochlorothiazide"}]}},
            ],
        }
    )
    b.add(
        {
            "resourceType": "MedicationStatement",
            "id": "ms-combo",
            "status": "active",
            "medicationReference": {"reference": "Medication/m-combo"},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2022-02-02",
        }
    )
    r = b.record()
    assert [(m.ingredient, m.rxcui, m.start.isoformat()) for m in r.medications] == [
        ("hydrochlorothiazide", "5487", "2022-02-02"),
        ("lisinopril", "29046", "2022-02-02"),
    ]


def test_insulin_dose_in_units_converts_to_mg() -> None:
    from planner.testing import BundleBuilder

    b = BundleBuilder()
    b.add(
        {
            "resourceType": "MedicationRequest",
            "id": "ins",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"text": "insulin glargine 100 UNT/ML Injectable Solution [Lantus]"},
            "subject": {"reference": "Patient/p1"},
            "authoredOn": "2023-01-01",
            "dosageInstruction": [
                {
                    "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                    "doseAndRate": [{"doseQuantity": {"value": 20, "unit": "U", "code": "[iU]"}}],
                }
            ],
        }
    )
    b.add(
        {
            "resourceType": "MedicationRequest",
            "id": "ins2",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"text": "warfarin 5 MG Oral Tablet"},
            "subject": {"reference": "Patient/p1"},
            "authoredOn": "2023-01-01",
            "dosageInstruction": [
                {
                    "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                    "doseAndRate": [{"doseQuantity": {"value": 20, "unit": "U"}}],
                }
            ],
        }
    )
    r = b.record()
    meds = {m.id: m for m in r.medications}
    assert meds["ins"].ingredient == "insulin glargine" and meds["ins"].dose_mg_day == pytest.approx(20 * 0.0364)
    assert meds["ins2"].dose_mg_day is None
    assert any(w.code == "dose-not-derivable" and "no mg per unit" in w.message for w in r.warnings)


def test_medication_start_falls_back_to_validity_period() -> None:
    from planner.testing import BundleBuilder

    b = BundleBuilder()
    b.add(
        {
            "resourceType": "MedicationRequest",
            "id": "mr-v",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"text": "Lisinopril 20 MG Oral Tablet"},
            "subject": {"reference": "Patient/p1"},
            "dispenseRequest": {"validityPeriod": {"start": "2022-03-01", "end": "2023-03-01"}},
        }
    )
    [m] = b.record().medications
    assert (m.start.isoformat(), m.end.isoformat(), m.strength_mg) == ("2022-03-01", "2023-03-01", 20)
