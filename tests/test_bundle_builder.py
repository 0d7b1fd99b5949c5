"""BundleBuilder writes valid FHIR that ingest reads back to exactly what the calls said."""

from __future__ import annotations

import datetime as dt

import pytest

from planner.errors import ConfigError
from planner.testing import BundleBuilder


def _builder() -> BundleBuilder:
    b = BundleBuilder(patient_id="p1", birth_date="1960-01-01", sex="female")
    b.condition("44054006", display="Diabetes mellitus type 2", onset="2019-03-01", icd10="E11.9")
    b.medication("metformin", dose_mg_day=1000, start="2023-01-01", times_per_day=2)
    b.medication("36567", dose_mg_day=20, start="2022-05-01", end="2023-05-01", status="completed")
    b.medication("sertraline", dose_mg_day=50, start="2023-02-01", statement=True)
    b.observation("hba1c", 8.4, date="2024-01-05")
    b.observation("4548-4", 53, unit="mmol/mol", date="2023-06-01")
    b.blood_pressure(150, 90, date="2024-01-06")
    b.allergy("codeine", reactions=["Hives"])
    b.allergy("91936005", system="snomed", display="Allergy to penicillin")
    b.genotype("CYP2C19", "*2/*2")
    b.phenotype("CYP2D6", "Poor Metabolizer")
    b.hla("HLA-B*57:01", positive=True)
    return b


def test_bundle_round_trips_through_ingest() -> None:
    r = _builder().record()
    assert r.patient_id == "p1" and r.sex == "female" and r.birth_date == dt.date(1960, 1, 1)
    assert r.as_of == dt.date(2024, 1, 6)  # latest event date
    assert [c.code for c in r.conditions] == ["44054006"]
    assert {c.code for c in r.conditions[0].codings} == {"44054006", "E11.9"}
    meds = {m.ingredient: m for m in r.medications}
    assert meds["metformin"].rxcui == "6809" and meds["metformin"].dose_mg_day == pytest.approx(1000)
    assert meds["simvastatin"].end == dt.date(2023, 5, 1) and meds["simvastatin"].dose_mg_day == pytest.approx(20)
    assert meds["sertraline"].resource_type == "MedicationStatement" and meds["sertraline"].rxcui == "36437"
    assert {m.ingredient for m in r.active_medications()} == {"metformin", "sertraline"}
    hba1c = r.series("hba1c")
    assert [m.date for m in hba1c] == [dt.date(2023, 6, 1), dt.date(2024, 1, 5)]
    assert hba1c[0].value == pytest.approx(0.09148 * 53 + 2.152)
    assert r.latest("sbp").value == 150 and r.latest("dbp").value == 90
    assert r.allergies[0].rxcui == "2670" and r.allergies[0].reactions == ("Hives",)
    # a SNOMED allergy whose display names a drug resolves to that ingredient
    assert r.allergies[1].system == "http://snomed.info/sct" and r.allergies[1].ingredient == "penicillin"
    assert r.pgx_for("CYP2C19")[0].diplotype == "*2/*2"
    assert r.pgx_for("CYP2D6")[0].phenotype == "Poor Metabolizer"
    hla = r.pgx_for("HLA-B")[0]
    assert (hla.allele, hla.allele_status) == ("*57:01", "positive")
    assert r.pgx_for("CYP2C9") == ()  # not tested: absent, never filled in


def test_deterministic_and_as_of() -> None:
    assert _builder().build() == _builder().build()
    b = BundleBuilder(as_of="2023-12-31")
    b.observation("ldl", 130, date="2023-06-01")
    b.observation("ldl", 90, date="2024-03-01")
    r = b.record()
    assert r.as_of == dt.date(2023, 12, 31)
    assert r.latest("ldl").value == 130  # the later value is after as_of


def test_unknown_names_are_config_errors() -> None:
    b = BundleBuilder()
    with pytest.raises(ConfigError, match="unobtainium"):
        b.medication("unobtainium")
    with pytest.raises(ConfigError, match="frobnitz"):
        b.observation("frobnitz", 1.0)
    with pytest.raises(ConfigError, match="HLA allele"):
        b.hla("CYP2D6*4")


def test_negative_hla_and_no_dose() -> None:
    b = BundleBuilder()
    b.hla("HLA-A*31:01", positive=False)
    b.medication("warfarin", start="2023-01-01")
    r = b.record()
    assert r.pgx[0].gene == "HLA-A" and r.pgx[0].allele_status == "negative"
    assert r.medications[0].dose_mg_day is None
    assert any(w.code == "dose-not-derivable" for w in r.warnings)


def test_builder_output_is_valid_fhir_r4() -> None:
    b = _builder()
    b.allergy("cephalexin")  # no pinned RxCUI: written as text
    b.medication("fluconazole", dose_mg_day=150, statement=True)
    assert b.record(strict=True) == b.record()
