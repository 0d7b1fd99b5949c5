"""A result that cannot be read, beside one that can, is reported as a conflict, never silently dropped."""

from __future__ import annotations

import datetime as dt

from planner.record import PatientRecord, PgxResult
from planner.safety import RuleSet


def _record(*pgx: PgxResult) -> PatientRecord:
    return PatientRecord(patient_id="p", as_of=dt.date(2024, 1, 1), pgx=pgx)


def test_unreadable_diplotype_beside_a_phenotype_is_a_conflict():
    rs = RuleSet.load()
    both = _record(
        PgxResult(gene="CYP2C19", diplotype="*99/*98", source="fhir-genotype"),
        PgxResult(gene="CYP2C19", phenotype="Normal Metabolizer", source="fhir-phenotype-stu1"),
    )
    res = rs.phenotypes(both)["CYP2C19"]
    assert res.status == "conflict"
    assert "could not be read" in (res.note or "") and "*99/*98" in (res.note or "")
    only_readable = _record(PgxResult(gene="CYP2C19", phenotype="Normal Metabolizer", source="fhir-phenotype-stu1"))
    assert rs.phenotypes(only_readable)["CYP2C19"].status == "tested"
    only_unreadable = _record(PgxResult(gene="CYP2C19", diplotype="*99/*98", source="fhir-genotype"))
    assert rs.phenotypes(only_unreadable)["CYP2C19"].status == "indeterminate"
