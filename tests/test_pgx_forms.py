"""Pharmacogenomic results in the forms labs and PharmCAT send them, read into what CPIC's tables say.

Real examples: HL7 Genomics Reporting IG bundles (fixtures/realworld/genomics-2020, as published); PharmCAT 3.x and
2.x phenotype JSON and outside-call TSV in their documented layouts (fixtures/pharmcat, hand-written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.ingest import read_pharmcat, read_record
from planner.rule_files import rules_dir
from planner.safety.phenotype import GeneKnowledge
from planner.status import GeneStatus
from planner.testing import BundleBuilder

FIX = Path(__file__).resolve().parent.parent / "fixtures"
GEN = FIX / "realworld" / "genomics-2020"


@pytest.fixture(scope="module")
def k() -> GeneKnowledge:
    return GeneKnowledge(rules_dir())


def _genotype(b: BundleBuilder, gene: str, text: str, **extra) -> None:
    hgnc = {v: c for c, v in b._tables.pgx["hgnc"].items()}
    b.add(
        {
            "resourceType": "Observation",
            "id": f"g-{gene}-{len(b.build()['entry'])}",
            "status": "final",
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2023-01-01",
            "code": {"coding": [{"system": "http://loinc.org", "code": "84413-4"}]},
            "valueCodeableConcept": {"text": text, **extra},
            "component": [
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "48018-6"}]},
                    "valueCodeableConcept": {
                        "coding": [{"system": "http://www.genenames.org/geneId", "code": hgnc[gene], "display": gene}]
                    },
                }
            ],
        }
    )


@pytest.mark.parametrize(
    "gene,text,phenotype,score",
    [
        ("DPYD", "DPYD c.1905+1G>A/c.1905+1G>A", "Poor Metabolizer", "0.0"),
        ("DPYD", "c.1679T>G (*13)/Reference", "Intermediate Metabolizer", "1.0"),
        ("DPYD", "c.2846A>T/c.1129-5923C>G", "Intermediate Metabolizer", "1.0"),
        ("DPYD", "Reference/Reference", "Normal Metabolizer", "2.0"),
        ("VKORC1", "rs9923231 T/T", "-1639 AA", None),
        ("ABCG2", "rs2231142 G/T", "Decreased Function", None),
        ("CYP2D6", "CYP2D6 *1/*2xN", "Ultrarapid Metabolizer", "≥3.0"),
        ("CYP2D6", "*2x2/*4", "Normal Metabolizer", "2.0"),
        ("MT-RNR1", "m.1555A>G", "increased risk of aminoglycoside-induced hearing loss", None),
        ("RYR1", "RYR1 c.7300G>A (p.Gly2434Arg) heterozygous", "Malignant Hyperthermia Susceptibility", None),
        ("CACNA1S", "c.520C>T", "Malignant Hyperthermia Susceptibility", None),
        ("RYR1", "c.12345A>G", "Uncertain Susceptibility", None),  # not a listed variant: never normal
    ],
)
def test_lab_genotype_forms(k, gene, text, phenotype, score) -> None:
    b = BundleBuilder()
    _genotype(b, gene, text)
    r = k.interpret(gene, b.record().pgx_for(gene))
    assert (r.status, r.phenotype, r.activity_score) == (GeneStatus.TESTED, phenotype, score)


def test_g6pd_phenotype_term_in_fhir(k) -> None:
    b = BundleBuilder()
    b.add(
        {
            "resourceType": "Observation",
            "id": "g6pd",
            "status": "final",
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2023-01-01",
            "code": {"coding": [{"system": "http://loinc.org", "code": "53040-2"}]},
            "valueCodeableConcept": {"text": "G6PD Deficient"},
            "component": [
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "48018-6"}]},
                    "valueCodeableConcept": {"coding": [{"code": "HGNC:4057", "display": "G6PD"}]},
                }
            ],
        }
    )
    assert k.interpret("G6PD", b.record().pgx_for("G6PD")).phenotype == "Deficient"


def test_every_hla_allele_status_of_one_statement(k) -> None:
    b = BundleBuilder()
    _genotype(b, "HLA-B", "HLA-B*15:02 positive, HLA-B*57:01 positive, HLA-B*58:01 negative")
    r = k.interpret("HLA-B", b.record().pgx_for("HLA-B"))
    assert r.alleles == (("*15:02", "positive"), ("*57:01", "positive"), ("*58:01", "negative"))


def test_hla_text_contradicting_its_code_is_a_conflict(k) -> None:
    b = BundleBuilder()
    _genotype(
        b,
        "HLA-B",
        "HLA-B*57:01 negative",
        coding=[{"system": "http://loinc.org", "code": "LA6576-8", "display": "Positive"}],
    )
    rec = b.record()
    r = k.interpret("HLA-B", rec.pgx_for("HLA-B"))
    assert r.status == GeneStatus.CONFLICT and r.allele_status("*57:01") == "conflict"
    w = next(w for w in rec.warnings if w.code == "pgx-conflict")
    assert w.message == "HLA-B: sources disagree on allele *57:01; reported, not resolved"


def test_genomics_ig_hla_b_1502_clinvar_genotype_and_implication(k) -> None:
    rec = read_record(GEN / "Bundle-HLAB1502-pgx-example")
    # the genotype is coded with ClinVar 14909 "HLA-B*15:02"; the implication (carbamazepine, high risk) derives from it
    assert {(p.allele, p.allele_status, p.source) for p in rec.pgx_for("HLA-B")} == {
        ("*15:02", "positive", "fhir-genotype"),
        ("*15:02", "positive", "fhir-implication"),
    }
    r = k.interpret("HLA-B", rec.pgx_for("HLA-B"))
    assert (r.status, r.lookup) == (GeneStatus.TESTED, ("*15:02 positive",))


def test_genomics_ig_hla_typing_by_gl_string(k) -> None:
    rec = read_record(GEN / "Bundle-CG-IG-HLA-FullBundle-01")
    # HLA-B typed hla#3.23.0#HLA-B*15:01:01G+HLA-B*57:01:01G: *57:01 positive, an allele not typed is negative
    b = k.interpret("HLA-B", rec.pgx_for("HLA-B"))
    assert b.hla_typed and b.allele_status("*57:01") == "positive" and b.allele_status("*58:01") == "negative"
    # the HLA-A GL string is written "HLA-A:01:01G" (no '*'): not read as a typing, and said so
    w = next(w for w in rec.warnings if w.code == "pgx-unreadable")
    assert w.message == (
        "entry[11]: HLA-A GL string 'hla#3.23.0#HLA-A:01:01G+HLA-A*01:02' is ambiguous or not "
        "written GENE*allele; not used (the gene is not read as typed)"
    )
    a = k.interpret("HLA-A", rec.pgx_for("HLA-A"))
    assert not a.hla_typed and a.allele_status("*31:01") == "No Result"  # not typed: never read as negative


def test_genomics_report_of_raw_variants_is_named_not_silently_dropped() -> None:
    rec = read_record(GEN / "DiagnosticReport-report-CYP2C19")
    assert rec.pgx == ()
    assert any(w.code == "pgx-not-interpreted" and w.message.startswith("CYP2C19 was studied") for w in rec.warnings)


def test_pharmcat_3_phenotype_json_by_gene(k) -> None:
    results = read_pharmcat(FIX / "pharmcat" / "pharmcat3.phenotype.json")
    genes = {r.gene for r in results}
    assert genes == {"CYP2C19", "CYP2D6", "DPYD", "HLA-B", "MT-RNR1", "RYR1", "G6PD", "VKORC1"}  # CYP2C9: NONE
    got = {g: k.interpret(g, [r for r in results if r.gene == g]) for g in genes}
    assert got["CYP2D6"].activity_score == "3.0" and got["CYP2D6"].phenotype == "Ultrarapid Metabolizer"
    assert got["DPYD"].activity_score == "1.0" and got["DPYD"].status == GeneStatus.TESTED
    assert got["HLA-B"].alleles == (("*15:02", "positive"), ("*57:01", "positive"), ("*58:01", "negative"))
    assert got["RYR1"].phenotype == "Malignant Hyperthermia Susceptibility"
    assert got["MT-RNR1"].phenotype == "increased risk of aminoglycoside-induced hearing loss"
    assert got["G6PD"].phenotype == "Deficient" and got["VKORC1"].phenotype == "-1639 AA"
    assert got["CYP2C19"].phenotype == "Rapid Metabolizer"


def test_pharmcat_2_layout_still_reads(tmp_path) -> None:
    doc = json.loads((FIX / "pharmcat" / "pharmcat3.phenotype.json").read_text())
    v2 = {"geneReports": {"CPIC": doc["geneReports"]}}
    f = tmp_path / "v2.phenotype.json"
    f.write_text(json.dumps(v2))
    assert {r.gene for r in read_pharmcat(f)} == {
        r.gene for r in read_pharmcat(FIX / "pharmcat" / "pharmcat3.phenotype.json")
    }


def test_outside_call_tsv_every_hla_status_and_variants(k) -> None:
    results = read_pharmcat(FIX / "pharmcat" / "outside_calls_hla.tsv")
    hla_b = k.interpret("HLA-B", [r for r in results if r.gene == "HLA-B"])
    assert hla_b.alleles == (("*15:02", "positive"), ("*57:01", "positive"), ("*58:01", "negative"))
    assert k.interpret("HLA-A", [r for r in results if r.gene == "HLA-A"]).allele_status("*31:01") == "negative"
    assert k.interpret("CYP2D6", [r for r in results if r.gene == "CYP2D6"]).phenotype == "Ultrarapid Metabolizer"
    assert (
        k.interpret("RYR1", [r for r in results if r.gene == "RYR1"]).phenotype
        == "Malignant Hyperthermia Susceptibility"
    )
