"""CPIC actions audited (issue 10): every recommendation row's action comes from its classification and text
through the reviewed map (rules/pgx/action_map.yaml) or from a hand-set row with a reason
(rules/pgx/action_overrides.csv); the cases of the issue get the action CPIC gives."""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path

import pytest

from planner.errors import RuleError
from planner.record import DrugDose, PatientRecord, PgxResult, Regimen
from planner.rule_files import read_csv, rules_dir
from planner.safety import RuleSet, screen_plan
from planner.safety.cpic_import import ActionMap, build_gene_drug_rows, load_overrides, map_recommendation

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "cpic"
AVOID_TYPE = re.compile(r"avoid|not recommended|contraindicated|do not use|alternative", re.IGNORECASE)


@pytest.fixture(scope="module")
def recs() -> list[dict[str, str]]:
    with open(FIX / "recommendations.csv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def generated(recs) -> list[tuple[dict[str, str], dict[str, str]]]:
    ordered = sorted(recs, key=lambda r: (r["drug"], r["population"], r["lookup_key"]))
    return list(zip(ordered, build_gene_drug_rows(recs, ActionMap.load())))


@pytest.fixture(scope="module")
def rs() -> RuleSet:
    return RuleSet.load()


def test_committed_file_is_the_generated_one(generated):
    committed = read_csv(rules_dir() / "pgx" / "gene_drug.csv")
    assert [g for _r, g in generated] == committed


def test_every_exclude_is_avoid_type_or_hand_set_with_a_reason(generated):
    overrides = load_overrides()
    bad = []
    for cpic, row in generated:
        first = re.split(r"(?<=\.)\s", cpic["recommendation"])[0]
        if row["action"] == "exclude" and not AVOID_TYPE.search(first):
            bad.append((cpic["drug"], cpic["lookup_key"]))
        if row["mapping"].endswith(":hand"):
            assert overrides[(cpic["drug"], cpic["population"], cpic["lookup_key"])]["reason"]
    assert not bad, bad


def test_strong_alternative_is_at_least_a_caution_naming_alternatives(generated):
    bad = [
        (c["drug"], c["lookup_key"], g["action"], g["alternatives"])
        for c, g in generated
        if c["classification"] == "Strong"
        and "alternative" in c["recommendation"].lower()
        and (g["action"] == "info" or not g["alternatives"])
    ]
    assert not bad, bad


def test_no_recommendation_rows_are_info(generated):
    assert {g["action"] for c, g in generated if c["classification"] in ("No Recommendation", "n/a")} == {"info"}


def test_hand_set_rows(generated):
    hand = {(c["drug"], c["lookup_key"]): g for c, g in generated if g["mapping"].endswith(":hand")}
    assert len(hand) == 26
    tam = [g for (d, _k), g in hand.items() if d == "tamoxifen"]
    assert len(tam) == 4 and {g["action"] for g in tam} == {"caution"}
    assert all("aromatase inhibitor" in g["alternatives"] for g in tam)
    thio = [g for (d, _k), g in hand.items() if d in ("mercaptopurine", "thioguanine")]
    assert len(thio) == 22 and {g["action"] for g in thio} == {"adjust_dose"}
    assert {g["dose_factor"] for g in thio} == {"0.1", "0.13", "0.25"}


def test_an_override_that_matches_no_row_is_refused(recs):
    bogus = {
        ("nodrug", "general", "X=Y"): {
            "action": "info",
            "reason": "r",
            "dose_factor": "",
            "max_dose_mg_day": "",
            "alternatives": "",
        }
    }
    with pytest.raises(RuleError, match="matches no CPIC"):
        build_gene_drug_rows(recs, ActionMap.load(), bogus)


def test_conditional_contraindication_is_not_an_exclusion():
    text = (
        "Consider hormonal therapy such as an aromatase inhibitor for postmenopausal women, given that these "
        "approaches are superior (PMID 26211827). If aromatase inhibitor use is contraindicated, consider a "
        "higher but FDA approved tamoxifen dose (40 mg/day)."
    )
    m = map_recommendation(text, drug="tamoxifen", amap=ActionMap.load(), classification="Moderate")
    assert m.action == "caution" and "aromatase inhibitor" in m.alternatives


# ---- the cases, through the engine -------------------------------------------------------------------------
def patient(*pgx: PgxResult) -> PatientRecord:
    return PatientRecord(patient_id="t", as_of=dt.date(2024, 6, 1), birth_date=dt.date(1980, 1, 1), pgx=pgx)


def geno(gene: str, diplotype: str) -> PgxResult:
    return PgxResult(gene=gene, diplotype=diplotype, source="pharmcat-tsv")


def one(drug: str, dose: float | None = None) -> Regimen:
    return Regimen.of([DrugDose(ingredient=drug, rxcui="0", dose_mg_day=dose)])


def gd(findings, drug):
    return [f for f in findings if f.kind == "gene-drug" and f.target_drug == drug]


@pytest.mark.parametrize("drug", ["mercaptopurine", "thioguanine", "azathioprine"])
def test_thiopurine_tpmt_poor_metabolizer_gets_malignancy_dosing(rs, drug):
    # CPIC thiopurines: TPMT poor metabolizer, malignancy: 10-fold lower daily dose (not an exclusion)
    f = gd(rs.screen(patient(geno("TPMT", "*3A/*3A"), geno("NUDT15", "*1/*1")), one(drug, 100)), drug)
    assert f and f[0].action == "adjust_dose" and f[0].dose_factor == 0.1
    assert "non-thiopurine immunosuppressant" in f[0].alternatives


def test_mercaptopurine_nudt15_poor_metabolizer(rs):
    f = gd(
        rs.screen(patient(geno("TPMT", "*1/*1"), geno("NUDT15", "*3/*3")), one("mercaptopurine", 100)), "mercaptopurine"
    )
    assert f[0].action == "adjust_dose" and f[0].dose_factor == 0.13


def test_tamoxifen_cyp2d6_intermediate_metabolizer_is_a_caution(rs):
    f = gd(rs.screen(patient(geno("CYP2D6", "*1/*4")), one("tamoxifen", 20)), "tamoxifen")
    assert f[0].action == "caution" and "aromatase inhibitor" in f[0].alternatives


def test_citalopram_cyp2c19_poor_metabolizer_names_alternatives(rs):
    f = gd(rs.screen(patient(geno("CYP2C19", "*2/*2")), one("citalopram", 40)), "citalopram")
    assert f[0].action in ("adjust_dose", "exclude") and f[0].strength == "Strong" and f[0].alternatives


@pytest.mark.parametrize("drug", ["desflurane", "sevoflurane", "isoflurane", "succinylcholine"])
@pytest.mark.parametrize("gene", ["RYR1", "CACNA1S"])
def test_malignant_hyperthermia_susceptibility_in_one_gene_excludes(rs, drug, gene):
    mhs = PgxResult(gene=gene, phenotype="Malignant Hyperthermia Susceptibility", source="fhir-implication")
    res = screen_plan(patient(mhs), one(drug), rules=rs)
    assert res.excluded and gd(res.findings, drug)[0].strength == "Strong"


def test_both_genes_reported_give_one_finding(rs):
    r = patient(
        PgxResult(gene="RYR1", phenotype="Malignant Hyperthermia Susceptibility", source="fhir-implication"),
        PgxResult(gene="CACNA1S", phenotype="Uncertain Susceptibility", source="fhir-implication"),
    )
    f = gd(rs.screen(r, one("desflurane")), "desflurane")
    assert len(f) == 1 and f[0].action == "exclude" and f[0].rule_id.startswith("cpic.desflurane.")


@pytest.mark.parametrize("diplotype", ["*1/*2x2", "*1/*2xN"])
def test_cyp2d6_ultrarapid_duplication_excludes_codeine(rs, diplotype):
    # CPIC: *1/*2 duplications (copy number given or not) are ultrarapid (activity score >= 3.0); codeine: avoid
    f = gd(rs.screen(patient(geno("CYP2D6", diplotype)), one("codeine", 120)), "codeine")
    assert f[0].action == "exclude" and "3.0" in (f[0].phenotype or "")
