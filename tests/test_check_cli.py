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
    assert any(
        f["kind"] == "gene-drug"
        and f["drugs"] == ["codeine", "paroxetine"]
        and f["action"] == "exclude"
        and f["target_drug"] == "codeine"
        and not f.get("plan_adds")
        for f in data["findings"]
    )
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


def test_rules_validate_reports_unchecked_sources(capsys):
    from planner.safety import RuleSet
    from planner.safety.sources import source_report

    assert main(["rules", "validate"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: ") and "sources:" in out
    issues = source_report(RuleSet.load())
    # every safety rule names a checkable source; what stays is data marked (verify), each listed by file:line
    assert not [i for i in issues if i.kind == "no checkable source"], issues
    marked = [i for i in issues if i.kind == "marked unverified"]
    assert any(i.where.startswith("conditions/condition_sets.yaml:") for i in marked)
    assert all(f"marked unverified: {i.where}:" in out for i in marked)
    assert main(["rules", "validate", "--strict"]) == 1  # while anything is unchecked


def test_rule_without_a_checkable_source_is_reported(tmp_path):
    import shutil

    from planner.manifest import main as pin
    from planner.rule_files import default_rules_dir
    from planner.safety import RuleSet
    from planner.safety.sources import source_report

    root = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), root)
    ddi = root / "interactions" / "ddi.yaml"
    ddi.write_text(
        ddi.read_text(encoding="utf-8").replace(
            'source: "FDA label Plavix 5.1/7.1 (avoid omeprazole or esomeprazole)"', 'source: "a colleague said so"'
        ),
        encoding="utf-8",
    )
    assert pin([str(root)]) == 0
    issues = source_report(RuleSet.load(root))
    assert [(i.where, i.kind) for i in issues if i.kind == "no checkable source"] == [
        ("ddi.clopidogrel-omeprazole", "no checkable source")
    ]
