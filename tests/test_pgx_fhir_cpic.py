"""Acceptance: every row of CPIC's diplotype-phenotype table (25,117 rows, fixtures/cpic), written as a lab writes
a Genomics Reporting IG genotype Observation (LOINC 84413-4, gene studied 48018-6 with its HGNC id), read by
ingest and interpreted by the phenotype engine, gives CPIC's phenotype and activity score.

How the value is written per gene, as labs send it:
* star-allele genes: ``CYP2D6 *1/*2x2`` (CPIC's own diplotype text after the gene symbol);
* DPYD: HGVS names; every other row drops CPIC's bracketed star/haplotype name (``c.1905+1G>A`` for
  ``c.1905+1G>A (*2A)``), as most labs print it;
* VKORC1 and ABCG2: the rsID genotype with bases (``rs9923231 C/T``, ``rs2231142 G/T``).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import orjson
import pytest

from planner.ingest import code_tables, read_records
from planner.rule_files import rules_dir
from planner.safety.phenotype import GeneKnowledge

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "cpic"
_RS = re.compile(r"^(rs\d+) (?:reference|variant) \(([ACGT]+)\)$")


def lab_text(gene: str, diplotype: str, row: int) -> str:
    """The genotype text a lab report carries for one CPIC diplotype."""
    a, b = diplotype.split("/", 1) if gene != "DPYD" else _dpyd_split(diplotype)
    if gene in ("VKORC1", "ABCG2"):
        ma, mb = _RS.match(a), _RS.match(b)
        assert ma and mb and ma.group(1) == mb.group(1), diplotype
        return f"{gene} {ma.group(1)} {ma.group(2)}/{mb.group(2)}"
    if gene == "DPYD" and row % 2:
        a, b = (re.sub(r"\s*\([^)]*\)$", "", x) if x.startswith("c.") else x for x in (a, b))
    return f"{gene} {a}/{b}"


def _dpyd_split(diplotype: str) -> tuple[str, str]:
    a, b = diplotype.split("/")
    return a, b


def _bundle_ndjson(rows: list[dict[str, str]]) -> bytes:
    tables = code_tables()
    hgnc = {v: k for k, v in tables.pgx["hgnc"].items()}
    lines = []
    for i, r in enumerate(rows):
        pid = f"p{i}"
        lines.append(orjson.dumps({"resourceType": "Patient", "id": pid, "birthDate": "1970-01-01"}))
        lines.append(
            orjson.dumps(
                {
                    "resourceType": "Observation",
                    "id": f"g{i}",
                    "status": "final",
                    "meta": {"profile": ["http://hl7.org/fhir/uv/genomics-reporting/StructureDefinition/genotype"]},
                    "code": {
                        "coding": [
                            {"system": "http://loinc.org", "code": "84413-4", "display": "Genotype display name"}
                        ]
                    },
                    "subject": {"reference": f"Patient/{pid}"},
                    "effectiveDateTime": "2023-05-01",
                    "valueCodeableConcept": {"text": lab_text(r["gene"], r["diplotype"], i)},
                    "component": [
                        {
                            "code": {
                                "coding": [
                                    {"system": "http://loinc.org", "code": "48018-6", "display": "Gene studied [ID]"}
                                ]
                            },
                            "valueCodeableConcept": {
                                "coding": [
                                    {
                                        "system": "http://www.genenames.org/geneId",
                                        "code": hgnc[r["gene"]],
                                        "display": r["gene"],
                                    }
                                ]
                            },
                        }
                    ],
                }
            )
        )
    return b"\n".join(lines) + b"\n"


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    with open(FIX / "diplotype_phenotype.csv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_every_cpic_diplotype_survives_a_fhir_genotype_observation(rows, tmp_path):
    assert len(rows) == 25117
    path = tmp_path / "lab.ndjson"
    path.write_bytes(_bundle_ndjson(rows))
    records = read_records(path, today="2026-01-01")
    assert len(records) == len(rows)
    knowledge = GeneKnowledge(rules_dir())
    bad = []
    for i, (r, rec) in enumerate(zip(rows, records)):
        assert rec.patient_id == f"p{i}"
        got = knowledge.interpret(r["gene"], rec.pgx_for(r["gene"]))
        want_score = r["activity_score"] or None
        score = got.activity_score if knowledge.is_activity_gene(r["gene"]) else None
        if got.phenotype != r["phenotype"] or score != want_score:
            bad.append(
                (
                    r["gene"],
                    lab_text(r["gene"], r["diplotype"], i),
                    r["phenotype"],
                    want_score,
                    got.phenotype,
                    score,
                    got.status,
                )
            )
    passed = len(rows) - len(bad)
    assert not bad, f"{passed} of {len(rows)} rows give CPIC's result; e.g. {bad[:5]}"


def test_lab_forms_of_one_allele_agree():
    k = GeneKnowledge(rules_dir())
    same = ["DPYD c.1905+1G>A (*2A)/Reference", "DPYD c.1905+1G>A/Reference", "DPYD *2A/Reference"]
    assert {k.translate("DPYD", t) for t in same} == {k.translate("DPYD", same[0])}
    assert k.translate("DPYD", same[0]).score == "1.0"
    assert k.translate("VKORC1", "rs9923231 T/T").phenotype == "-1639 AA"
    assert k.translate("ABCG2", "rs2231142 G/T").phenotype == "Decreased Function"
    assert k.translate("CYP2D6", "*1/*2xN").phenotype == "Ultrarapid Metabolizer"  # CPIC: *1/*2xN is UM
    assert k.translate("CYP2D6", "*2x2/*4").score == "2.0"
    # an unknown copy number that could change the phenotype is not guessed
    assert k.translate("CYP2D6", "*1/*10xN").phenotype == "Indeterminate"
