"""A pharmacogenomic result planner could not read is reported in ``planner check`` and beside every plan.

Real data: HL7 Genomics Reporting IG examples (fixtures/realworld/genomics-2020, as published). Before this test,
the unreadable HLA-A GL string and the CYP2C19 variants without a gene studied were only in ``planner inspect``;
the safety report listed the genes as "not listed: not tested" and said nothing of the result it had skipped."""

from __future__ import annotations

from pathlib import Path

from planner.ingest import read_record
from planner.ingest.quality import record_gaps
from planner.safety.cli import render_report, report

GEN = Path(__file__).resolve().parent.parent / "fixtures" / "realworld" / "genomics-2020"


def test_unreadable_hla_gl_string_is_a_data_gap_in_the_safety_report() -> None:
    rec = read_record(GEN / "Bundle-CG-IG-HLA-FullBundle-01")
    assert any(w.code == "pgx-unreadable" for w in rec.warnings)
    data = report(rec)
    gaps = [g for g in data["data_gaps"] if g["code"] == "pgx-not-read"]
    assert len(gaps) == 1 and gaps[0]["message"].startswith("1 pharmacogenomic result(s) could not be read")
    assert "Data gap: 1 pharmacogenomic result(s) could not be read" in render_report(data, width=400)


def test_variants_without_a_gene_are_a_data_gap() -> None:
    rec = read_record(GEN / "DiagnosticReport-report-CYP2C19")
    codes = [g.code for g in record_gaps(rec)]
    assert codes.count("pgx-not-read") == 1


def test_a_fully_read_pgx_report_has_no_such_gap() -> None:
    rec = read_record(GEN / "Bundle-HLAB1502-pgx-example")
    assert "pgx-not-read" not in [g.code for g in record_gaps(rec)]


def test_the_gap_names_the_gene_whose_result_was_not_read() -> None:
    """The HLA-A GL string of the IG's HLA bundle is the unreadable one: the gap says HLA-A may show as not
    tested (a reader must not have to open ``inspect`` to learn which gene), and carries the gene."""
    rec = read_record(GEN / "Bundle-CG-IG-HLA-FullBundle-01")
    unread = [w for w in rec.warnings if w.code == "pgx-unreadable"]
    assert [w.gene for w in unread] == ["HLA-A"]
    (gap,) = [g for g in record_gaps(rec) if g.code == "pgx-not-read"]
    assert "HLA-A may show here as not tested" in gap.message and gap.gene == "HLA-A"


def test_a_result_without_a_gene_says_so_rather_than_naming_one() -> None:
    rec = read_record(GEN / "DiagnosticReport-report-CYP2C19")
    (gap,) = [g for g in record_gaps(rec) if g.code == "pgx-not-read"]
    assert gap.gene is None and "a gene they report may show here as not tested" in gap.message
