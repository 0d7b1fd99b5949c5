"""The code tables (rules/codes/) cover every area drug and every CPIC drug, and parse names the way data writes them."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from planner.areas import list_areas, load_area
from planner.ingest.codes import code_tables

FIX = Path(__file__).resolve().parent.parent / "fixtures"


def test_every_area_drug_resolves_by_name_and_code() -> None:
    t = code_tables()
    seen = 0
    for name in list_areas():
        for drug in load_area(name).formulary:
            assert t.ingredient_by_name(drug.ingredient).rxcui == drug.rxcui, (name, drug.ingredient)
            assert t.ingredient_for_code(drug.rxcui).name == drug.ingredient
            seen += 1
    assert seen >= 40


def test_every_cpic_drug_resolves() -> None:
    t = code_tables()
    rows = list(csv.DictReader(open(FIX / "cpic" / "cpic_guideline_drugs.csv", encoding="utf-8")))
    assert len(rows) >= 100
    for row in rows:
        ing = t.ingredient_by_name(row["drug"])
        assert ing is not None, row["drug"]
        if row["drug_id"].startswith("RxNorm:") and row["drug_id"] != "RxNorm:NA":
            code = row["drug_id"].split(":", 1)[1]
            assert ing.rxcui == code and t.ingredient_for_code(code) == ing


@pytest.mark.parametrize(
    "text,expected",
    [
        ("24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet", ["metformin"]),
        ("sitagliptin 50 MG / metformin hydrochloride 1000 MG Oral Tablet", ["sitagliptin", "metformin"]),
        ("Simvistatin 10 MG", ["simvastatin"]),
        ("24 HR metoprolol succinate 100 MG Extended Release Oral Tablet [Toprol]", ["metoprolol"]),
        ("Lasix 40mg", ["furosemide"]),
        ("Escitalopram Oxalate 10 MG Oral Tablet", ["escitalopram"]),
        ("insulin glargine 100 UNT/ML Injectable Solution", ["insulin glargine"]),
        ("Diazepam [Valium]", []),
    ],
)
def test_ingredient_names_in_text(text: str, expected: list[str]) -> None:
    assert [i.name for i in code_tables().ingredients_in_text(text)] == expected


@pytest.mark.parametrize(
    "text,term",
    [
        ("Poor metabolizer", "Poor Metabolizer"),
        ("PM", "Poor Metabolizer"),
        ("EM", "Normal Metabolizer"),
        ("CYP2D6 Ultrarapid Metabolizers (UM)", "Ultrarapid Metabolizer"),
        ("likely cyp2c19 poor metaboliser", "Likely Poor Metabolizer"),
        ("Decreased function", "Decreased Function"),
        ("something else", None),
    ],
)
def test_phenotype_terms(text: str, term: str | None) -> None:
    assert code_tables().phenotype_term(text) == term


def test_quantities_have_canonical_units_and_conversions() -> None:
    t = code_tables()
    need = {
        "hba1c": "%",
        "ldl": "mg/dL",
        "egfr": "mL/min/1.73m2",
        "sbp": "mm[Hg]",
        "dbp": "mm[Hg]",
        "bmi": "kg/m2",
        "weight": "kg",
        "phq9": "{score}",
        "potassium": "mmol/L",
        "creatinine": "mg/dL",
        "alt": "U/L",
        "qtc": "ms",
    }
    for name, unit in need.items():
        assert t.quantities[name].unit == unit
    assert t.quantities["hba1c"].accept["mmol/mol"].apply(53) == pytest.approx(0.09148 * 53 + 2.152)
    assert t.quantities["ldl"].accept["mmol/L"].apply(1) == pytest.approx(38.67)
    assert t.quantities["temperature"].accept["[degF]"].apply(98.6) == pytest.approx(37.0)
    for code in ("18262-6", "13457-7", "2089-1"):
        assert t.loinc_to_quantity[code].name == "ldl"
    for code in ("33914-3", "62238-1", "98979-8"):
        assert t.loinc_to_quantity[code].name == "egfr"
    assert {"85354-9", "55284-4"} <= t.panels


def test_every_drug_the_safety_rules_name_is_readable_from_fhir() -> None:
    """A drug a safety rule names must resolve from a FHIR display, or the rule can never fire on real input."""
    import yaml

    from planner.rule_files import rules_dir

    root = rules_dir()
    names: set[str] = set()
    # every file is required: a missing one fails here instead of making the check pass on nothing
    for cls in yaml.safe_load((root / "drugs" / "classes.yaml").read_text())["classes"].values():
        names.update(m.lower() for m in cls["members"])
    n_classes = len(names)
    for levels in yaml.safe_load((root / "drugs" / "cyp_inhibitors.yaml").read_text())["inhibitors"].values():
        for members in levels.values():
            names.update(m.lower() for m in members)
    n_inhibitors = len(names) - n_classes
    for rule in yaml.safe_load((root / "interactions" / "ddi.yaml").read_text())["rules"]:
        # "class:ssri", "inhibitor:CYP2D6" ... are selectors resolved by the rule layer, not drug names
        names.update(m.lower() for side in ("a", "b") for m in rule.get(side, []) if ":" not in m)
    assert n_classes >= 20 and n_inhibitors >= 1 and len(names) > n_classes + n_inhibitors, (
        "the rule files named fewer drugs than they do: is a file empty or its shape changed?"
    )
    t = code_tables()
    missing = sorted(n for n in names if t.ingredient_by_name(n) is None)
    assert not missing, f"add these ingredients to rules/codes/rxnorm.csv: {missing}"
    assert [i.name for i in t.ingredients_in_text("Diltiazem Hydrochloride 120 MG Extended Release Oral Capsule")] == [
        "diltiazem"
    ]
