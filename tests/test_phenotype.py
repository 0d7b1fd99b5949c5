"""Phenotype engine on hand-built results: copy number, not tested, indeterminate, conflicts, HLA, reports."""

from __future__ import annotations

import datetime as dt

import pytest

from planner.record import PatientRecord, PgxResult
from planner.safety import RuleSet
from planner.safety.phenotype import format_score


@pytest.fixture(scope="module")
def rs() -> RuleSet:
    return RuleSet.load()


def _rec(*pgx: PgxResult) -> PatientRecord:
    return PatientRecord(patient_id="t", as_of=dt.date(2024, 1, 1), pgx=pgx)


def _g(gene: str, **kw) -> PgxResult:
    return PgxResult(gene=gene, source=kw.pop("source", "pharmcat-tsv"), **kw)


@pytest.mark.parametrize(
    "dip,score,pheno",
    [
        ("*1/*1x2", "3.0", "Ultrarapid Metabolizer"),
        ("*1x2/*1", "3.0", "Ultrarapid Metabolizer"),
        ("*2x3/*1", "≥4.0", "Ultrarapid Metabolizer"),  # x3 reads as x≥3 (CPIC lists *2x≥3)
        ("*4/*4x2", "0.0", "Poor Metabolizer"),
        ("*10x4/*4", "1.0", "Intermediate Metabolizer"),  # not listed: 4 x 0.25 computed
        ("*41/*1", "1.25", "Normal Metabolizer"),
        ("CYP2D6*4/*10", "0.25", "Intermediate Metabolizer"),
        ("*4xN/*4", "0.0", "Poor Metabolizer"),
    ],
)
def test_cyp2d6_copy_number(rs, dip, score, pheno):
    t = rs.knowledge.translate("CYP2D6", dip)
    assert (t.score, t.phenotype) == (score, pheno)


def test_unknown_copy_number_is_read_as_two_or_more_copies(rs):
    # CPIC: *1/*2xN is ultrarapid whatever N >= 2 is; the score is written as a lower bound
    assert (
        rs.knowledge.translate("CYP2D6", "*1xN/*1").phenotype,
        rs.knowledge.translate("CYP2D6", "*1xN/*1").score,
    ) == ("Ultrarapid Metabolizer", "≥3.0")
    assert rs.knowledge.translate("CYP2D6", "*1/*2xN").phenotype == "Ultrarapid Metabolizer"


def test_unknown_copy_number_that_decides_the_phenotype_is_indeterminate(rs):
    # *10 (0.25): two copies give 1.5 (normal), six give 2.5 (ultrarapid): N decides, so it is not guessed
    assert rs.knowledge.translate("CYP2D6", "*1/*10xN").phenotype == "Indeterminate"


def test_format_score():
    assert [format_score(x) for x in (0, 0.25, 1, 1.5, 2.75)] == ["0.0", "0.25", "1.0", "1.5", "2.75"]
    assert format_score(3, at_least=True) == "≥3.0"


def test_not_tested_is_never_normal(rs):
    res = rs.phenotypes(_rec())
    for g in ("CYP2C19", "CYP2D6", "SLCO1B1", "DPYD", "HLA-B"):
        assert res[g].status == "not-tested"
        assert res[g].phenotype is None
        assert res[g].lookup in (("No Result",),)


@pytest.mark.parametrize(
    "gene,dip",
    [
        ("CYP2C19", "*1/*99"),
        ("CYP2D6", "*1/*999"),
        ("DPYD", "Reference/c.9999A>T"),
        ("TPMT", "garbage"),
        ("CYP2C9", "*1/*10"),
    ],
)
def test_unmatched_or_unknown_function_is_indeterminate(rs, gene, dip):
    r = rs.phenotypes(_rec(_g(gene, diplotype=dip)))[gene]
    assert r.status == "indeterminate"
    assert r.phenotype == "Indeterminate"
    assert "Normal Metabolizer" not in r.lookup


def test_diplotype_and_reported_phenotype_disagree_is_conflict(rs):
    r = rs.phenotypes(_rec(_g("CYP2C19", diplotype="*1/*1", phenotype="Poor Metabolizer")))["CYP2C19"]
    assert r.status == "conflict"
    assert set(r.lookup) == {"Normal Metabolizer", "Poor Metabolizer"}


def test_two_sources_disagree_is_conflict(rs):
    r = rs.phenotypes(_rec(_g("CYP2D6", diplotype="*1/*1"), _g("CYP2D6", diplotype="*4/*4", source="fhir-genotype")))[
        "CYP2D6"
    ]
    assert r.status == "conflict" and set(r.lookup) == {"2.0", "0.0"}


def test_agreeing_sources_are_not_a_conflict(rs):
    r = rs.phenotypes(
        _rec(
            _g("CYP2C19", diplotype="*2/*1"),
            _g("CYP2C19", phenotype="intermediate metabolizer", source="fhir-phenotype-stu1"),
        )
    )
    assert r["CYP2C19"].status == "tested" and r["CYP2C19"].lookup == ("Intermediate Metabolizer",)


def test_reported_activity_score_and_phenotype_only(rs):
    r = rs.phenotypes(_rec(_g("CYP2D6", activity_score=1.0)))["CYP2D6"]
    assert (r.phenotype, r.lookup) == ("Intermediate Metabolizer", ("1.0",))
    r2 = rs.phenotypes(_rec(_g("CYP2D6", phenotype="Intermediate Metabolizer")))["CYP2D6"]
    assert set(r2.lookup) == {"0.25", "0.5", "0.75", "1.0"}


def test_hla_allele_status(rs):
    r = rs.phenotypes(_rec(_g("HLA-B", allele="*57:01", allele_status="positive", source="fhir-hla")))["HLA-B"]
    assert r.allele_status("*57:01") == "positive"
    assert r.allele_status("*15:02") == "No Result"
    typed = rs.phenotypes(_rec(_g("HLA-B", diplotype="*15:02/*44:02")))["HLA-B"]
    assert typed.allele_status("*15:02") == "positive" and typed.allele_status("*57:01") == "negative"


def test_reported_gene_vocabulary(rs):
    assert rs.phenotypes(_rec(_g("G6PD", phenotype="Deficient")))["G6PD"].lookup == ("Deficient",)
    assert rs.phenotypes(_rec(_g("G6PD", phenotype="weird")))["G6PD"].status == "indeterminate"
