"""``planner check`` and ``planner rules`` through the real CLI entry point (exit codes included)."""

from __future__ import annotations

import json

import pytest

from planner.cli import main
from planner.testing import BundleBuilder


@pytest.fixture()
def bundle(tmp_path):
    b = BundleBuilder(as_of="2024-06-01", birth_date="1950-01-01")
    b.medication("clopidogrel", 75)
    b.medication("omeprazole", 20)
    b.medication("paroxetine", 20)
    b.medication("codeine", 120)
    b.genotype("CYP2C19", "*2/*2")
    b.condition("22298006", "Myocardial infarction")
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(b.build()))
    return path


def test_check_json(bundle, capsys):
    assert main(["check", str(bundle), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    ids = {f["rule_id"] for f in data["findings"]}
    assert "ddi.clopidogrel-omeprazole" in ids
    assert any(f["kind"] == "gene-drug" and f["drugs"] == ["codeine", "paroxetine"] and f["action"] == "exclude"
               and f["target_drug"] == "codeine" and not f.get("plan_adds")
               for f in data["findings"])
    assert data["genes"]["CYP2D6"]["phenoconverted_by"] == ["paroxetine"]
    assert data["genes"]["CYP2C19"]["phenotype"] == "Poor Metabolizer"
    assert data["provenance"]["rules_version"]
    assert "patient_id" in data


def test_check_table(bundle, capsys):
    assert main(["check", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "Findings" in out and "clopidogrel" in out


def test_check_bad_input_exits_2(tmp_path, capsys):
    assert main(["check", str(tmp_path / "missing.json")]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["check", str(bad)]) == 2
    assert main(["check", str(bad), "--format", "xml"]) == 2


def test_rules_list_show_validate(capsys):
    assert main(["rules", "list", "--kind", "drug-drug"]) == 0
    out = capsys.readouterr().out
    assert "ddi.dual-raas-acei-arb" in out and "cpic." not in out
    assert main(["rules", "show", "ddi.dual-raas-acei-arb"]) == 0
    assert json.loads(capsys.readouterr().out)["action"] == "exclude"
    assert main(["rules", "show", "no.such.rule"]) == 2
    assert main(["rules", "validate"]) == 0
    assert "ok:" in capsys.readouterr().out
