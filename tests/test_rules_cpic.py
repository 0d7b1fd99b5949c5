"""Every CPIC recommendation row is reachable: a patient with that lookup key, population and drug gets a
gene-drug finding with the row's mapped action and CPIC classification. Also: the committed rule data is what
the generator makes from the CPIC table (fixtures/cpic), and every CPIC guideline drug has rules."""

from __future__ import annotations

import csv
import datetime as dt
from collections import defaultdict
from pathlib import Path

import pytest

from planner.record import Condition, DrugDose, Medication, PatientRecord, PgxResult, Regimen
from planner.rule_files import read_csv, rules_dir
from planner.safety import RuleSet
from planner.safety.cpic_import import ActionMap, build_gene_drug_rows

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "cpic"
AS_OF = dt.date(2024, 6, 1)
POP_SETUP = {  # population -> (birth date, conditions SNOMED, current for >90 days, declared)
    "CVI ACS PCI": (None, ["22298006"], False, ()),
    "CVI non-ACS non-PCI": (None, ["53741008"], False, ()),
    "NVI": (None, ["230690007"], False, ()),
    "adults": (dt.date(1970, 1, 1), [], False, ()),
    "pediatrics": (dt.date(2014, 1, 1), [], False, ()),
    "PHT use >3mos": (None, [], True, ()),
    "CBZ use >3mos": (None, [], True, ()),
    "OXC use >3 mos": (None, [], True, ()),
    "CBZ-no alternatives": (None, [], False, ("CBZ-no alternatives",)),
}


@pytest.fixture(scope="module")
def rs() -> RuleSet:
    return RuleSet.load()


@pytest.fixture(scope="module")
def recs() -> list[dict[str, str]]:
    with open(FIX / "recommendations.csv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def diplotypes() -> dict[tuple[str, str], str]:
    """(gene, CPIC lookup value) -> one diplotype giving it (from the CPIC table, the test oracle)."""
    out: dict[tuple[str, str], str] = {}
    with open(FIX / "diplotype_phenotype.csv", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            out.setdefault((r["gene"], r["lookup_key"]), r["diplotype"])
    return out


def _pgx_for(gene_value: list[tuple[str, str]], diplotypes) -> tuple[PgxResult, ...]:
    out = []
    for gene, value in gene_value:
        if value == "No Result":
            continue
        if gene.startswith("HLA-"):
            allele, status = value.split(" ")
            out.append(PgxResult(gene=gene, allele=allele, allele_status=status, source="fhir-hla"))
        elif (gene, value) in diplotypes:
            out.append(PgxResult(gene=gene, diplotype=diplotypes[(gene, value)], source="pharmcat-tsv"))
        else:
            out.append(PgxResult(gene=gene, phenotype=value, source="fhir-implication"))
    return tuple(out)


def test_every_recommendation_row_is_reachable(rs, recs, diplotypes):
    ordered = sorted(recs, key=lambda r: (r["drug"], r["population"], r["lookup_key"]))
    actions = {
        (r["drug"], r["population"], r["lookup_key"]): g["action"]
        for r, g in zip(ordered, build_gene_drug_rows(recs, ActionMap.load()))
    }
    failures = []
    for row in recs:
        parts = [tuple(p.split("=", 1)) for p in row["lookup_key"].split("; ")]
        birth, conds, established, declared = POP_SETUP.get(row["population"], (None, [], False, ()))
        drug = row["drug"]
        meds = ()
        if established:
            meds = (Medication(ingredient=drug, rxcui="0", start=AS_OF - dt.timedelta(days=400), status="active"),)
        record = PatientRecord(
            patient_id="t",
            as_of=AS_OF,
            birth_date=birth,
            pgx=_pgx_for(parts, diplotypes),
            medications=meds,
            conditions=tuple(Condition(code=c, system="http://snomed.info/sct") for c in conds),
        )
        ctx = rs.prepare(record, populations=declared)
        reg = Regimen.of([DrugDose(ingredient=drug, rxcui="0")])
        found = [
            f
            for f in rs.screen(ctx, reg, new_start=set() if established else None)
            if f.kind == "gene-drug" and f.target_drug == drug
        ]
        expected = actions[(drug, row["population"], row["lookup_key"])]
        if len(found) != 1 or found[0].action != expected or found[0].strength != row["classification"]:
            failures.append(
                (
                    drug,
                    row["lookup_key"],
                    row["population"],
                    expected,
                    row["classification"],
                    [(f.action, f.strength, f.phenotype) for f in found],
                )
            )
    assert not failures, f"{len(failures)} of {len(recs)} rows unreachable, e.g. {failures[:3]}"


def test_committed_rules_match_the_generator(recs):
    rows = build_gene_drug_rows(recs, ActionMap.load())
    committed = read_csv(rules_dir() / "pgx" / "gene_drug.csv")
    assert len(committed) == len(recs) == 2098
    assert rows == committed, "rules/pgx/gene_drug.csv is stale: run python -m planner.safety.cpic_import"


def test_every_cpic_drug_has_rules(rs):
    drugs = read_csv(FIX / "cpic_guideline_drugs.csv")
    with_rows = [d for d in drugs if int(d["n_recommendations"] or 0) > 0]
    missing = [d["drug"] for d in with_rows if not rs.gene_drug.get(d["drug"])]
    assert not missing
    assert rs.genes_for("clopidogrel") == ("CYP2C19",)
    assert rs.genes_for("rosuvastatin") == ("ABCG2", "SLCO1B1")
    assert rs.genes_for("metformin") == ()


def test_rules_carry_provenance_and_short_messages(rs):
    for rules in rs.gene_drug.values():
        for r in rules:
            assert r.source.startswith("https://cpicpgx.org/")
            assert r.data_version.startswith("CPIC v") or (r.mapping == "hand" and r.data_version.startswith("CPIC"))
            assert len(r.message) <= 140 and r.message.endswith((".", "..."))


def test_messages_are_not_cpic_prose(recs, rs):
    texts = {r["recommendation"] for r in recs}
    assert not any(r.message in texts for rules in rs.gene_drug.values() for r in rules)


def test_action_mix_is_plausible(rs):
    counts = defaultdict(int)
    for rules in rs.gene_drug.values():
        for r in rules:
            counts[r.action] += 1
    assert all(counts[a] > 100 for a in ("exclude", "adjust_dose", "caution", "info"))
