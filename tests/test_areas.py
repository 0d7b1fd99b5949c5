"""Area files: validation on load, regimen enumeration under the combination limits, effect arithmetic."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from planner.areas import (
    DoseResponse,
    combine_effects,
    dose_scaled_effect,
    enumerate_regimens,
    is_allowed,
    list_areas,
    load_area,
    regimen_of,
    regimen_violations,
)
from planner.errors import AreaError
from planner.rule_files import rules_dir

AREAS = ["depression", "hypertension", "lipids", "t2d"]


def test_all_four_areas_load_with_sources():
    assert set(AREAS) <= set(list_areas())
    for name in AREAS:
        area = load_area(name)
        assert area.source and area.version
        for c in area.classes:
            assert c.source.strip(), f"{name}.{c.id} has no source"
            assert area.drugs_of_class(c.id), f"{name}.{c.id} has no drug"
        for e in area.pgx_effects:
            assert e.source.strip()
        assert area.simulation is not None
        assert area.outcome.loinc and area.outcome.unit
        assert area.combination.max_drugs <= 3 and area.combination.max_per_class == 1


def test_formulary_rxcuis_agree_with_the_ingest_code_table():
    table = rules_dir() / "codes" / "rxnorm.csv"
    lines = [ln for ln in table.read_text().splitlines() if ln and not ln.startswith("#")]
    rows = list(csv.DictReader(lines))
    code_col = next(k for k in rows[0] if "rxcui" in k.lower() or k.lower() == "code")
    known = {r[code_col] for r in rows}
    for name in AREAS:
        for d in load_area(name).formulary:
            assert d.rxcui in known, f"{name}: {d.ingredient} RxCUI {d.rxcui} not in rules/codes/rxnorm.csv"


def test_lipids_effect_pct_is_converted_to_log_scale():
    statin = load_area("lipids").class_prior("statin")
    assert statin.effect_on_scale() == pytest.approx(math.log(0.65))


def test_target_rules():
    lip = load_area("lipids")
    assert lip.target_for(set()) == 100
    assert lip.target_for({"53741008"}) == 70
    assert lip.target_for({"I25.10"}) == 70  # ICD-10 prefix
    t2d = load_area("t2d")
    assert t2d.target_for(set(), age=80) == 8.0 and t2d.target_for(set(), age=60) == 7.0


def _write_area(tmp_path: Path, mutate) -> Path:
    root = tmp_path / "rules"
    (root / "areas").mkdir(parents=True)
    raw = yaml.safe_load((rules_dir() / "areas" / "hypertension.yaml").read_text())
    mutate(raw)
    (root / "areas" / "hypertension.yaml").write_text(yaml.safe_dump(raw))
    return root


@pytest.mark.parametrize(
    "mutate, field, message",
    [
        (lambda r: r["formulary"][0].update({"class": "nonsense"}), "", "no prior"),
        (
            lambda r: r["combination"].update({"exclusive_classes": [["ace_inhibitor", "diuretic_x"]]}),
            "",
            "unknown class",
        ),
        (lambda r: r["pgx_effects"][0].update({"gene": "CYP3A5"}), "", "not in pgx_genes"),
        (lambda r: r["pgx_effects"][0].update({"drugs": ["aspirin"]}), "", "not in the formulary"),
        (lambda r: r["classes"][0].pop("source"), "classes.0.source", "Field required"),
        (lambda r: r["formulary"][0].update({"doses": [40, 10]}), "formulary.0.doses", "ascending"),
        (lambda r: r["classes"][0]["dose_response"].pop("per_doubling"), "", "per_doubling"),
        (
            lambda r: r["simulation"]["class_choice"][0]["terms"][0].update({"feature": "shoe_size"}),
            "",
            "unknown feature",
        ),
    ],
)
def test_invalid_area_files_fail_with_a_clear_error(tmp_path, mutate, field, message):
    root = _write_area(tmp_path, mutate)
    with pytest.raises(AreaError) as err:
        load_area("hypertension", rules=root)
    text = str(err.value)
    assert "hypertension.yaml" in text and message in text
    if field:
        assert field in text


def test_enumerate_respects_combination_limits():
    for name in AREAS:
        area = load_area(name)
        regs = enumerate_regimens(area)
        keys = [r.key() for r in regs]
        assert keys[0] == "none" and len(set(keys)) == len(keys)
        for r in regs:
            assert is_allowed(area, r), (name, r.key(), regimen_violations(area, r))
            assert len(r.drugs) <= area.combination.max_drugs
            classes = [d.drug_class for d in r.drugs]
            assert len(set(classes)) == len(classes)
            for d in r.drugs:
                assert d.dose_mg_day == area.drug(d.ingredient).reference_dose
    htn = load_area("hypertension")
    assert not any({"ace_inhibitor", "arb"} <= {d.drug_class for d in r.drugs} for r in enumerate_regimens(htn))
    # hypertension count by hand: classes of size 3,3,1,2,3 with ACEi+ARB exclusive, up to 3 drugs
    sizes = {"ace_inhibitor": 3, "arb": 3, "dihydropyridine_ccb": 1, "thiazide": 2, "beta_blocker": 3}
    import itertools

    count = 1
    for k in (1, 2, 3):
        for combo in itertools.combinations(sizes, k):
            if {"ace_inhibitor", "arb"} <= set(combo):
                continue
            count += math.prod(sizes[c] for c in combo)
    assert len(enumerate_regimens(htn)) == count


def test_enumerate_all_doses_and_max_drugs():
    lip = load_area("lipids")
    n_statin_levels = sum(len(d.doses) for d in lip.formulary if d.drug_class == "statin")
    all_regs = enumerate_regimens(lip, doses="all")
    assert len(all_regs) == 1 + n_statin_levels + 1 + n_statin_levels  # none, statins, ezetimibe, pairs
    mono = enumerate_regimens(lip, max_drugs=1, include_empty=False)
    assert all(len(r.drugs) == 1 for r in mono) and len(mono) == len(lip.formulary)
    with pytest.raises(AreaError):
        enumerate_regimens(lip, doses="some")


def test_regimen_violations_name_the_problem():
    htn = load_area("hypertension")
    bad = regimen_of(htn, {"lisinopril": 20, "losartan": 50})
    assert "exclusive classes combined" in " ".join(regimen_violations(htn, bad))
    two = regimen_of(htn, {"lisinopril": 20, "enalapril": 10})
    assert any("class ace_inhibitor" in p for p in regimen_violations(htn, two))
    four = regimen_of(htn, {"lisinopril": 20, "amlodipine": 5, "hydrochlorothiazide": 25, "metoprolol": 100})
    assert any("max_drugs" in p for p in regimen_violations(htn, four))
    with pytest.raises(AreaError, match="unknown drug"):
        regimen_of(htn, {"aspirin": 81})


def test_dose_response_curves():
    log2 = DoseResponse(kind="log2", per_doubling=-0.09)
    eff = math.log(0.65)
    assert dose_scaled_effect(eff, 2.0, log2) == pytest.approx(eff - 0.09)
    assert dose_scaled_effect(eff, 0.5, log2) == pytest.approx(eff + 0.09)
    assert dose_scaled_effect(-1.0, 1 / 1024, DoseResponse(kind="log2", per_doubling=-0.2)) == 0.0  # no sign flip
    emax = DoseResponse(kind="emax", ed50=0.5)
    assert dose_scaled_effect(-1.0, 1.0, emax) == pytest.approx(-1.0)
    full = -1.0 * 1.5  # (1 + ed50) as r -> inf
    assert dose_scaled_effect(-1.0, 0.5, emax) == pytest.approx(full / 2)
    assert dose_scaled_effect(-1.0, 3.0, DoseResponse(kind="linear")) == pytest.approx(-3.0)
    assert dose_scaled_effect(-1.0, 3.0, DoseResponse()) == pytest.approx(-1.0)
    out = dose_scaled_effect(np.array([-1.0, -2.0]), np.array([1.0, 2.0]), emax)
    assert out.shape == (2,)


def test_combine_effects_largest_full_others_scaled():
    e = np.array([[-1.0, -0.5, 0.0], [0.0, 0.0, 0.0], [-0.2, -0.9, -0.4]])
    out = combine_effects(e, 0.8)
    assert out == pytest.approx([-1.0 - 0.8 * 0.5, 0.0, -0.9 - 0.8 * 0.6])
    assert combine_effects(np.zeros((3, 0)), 0.8).tolist() == [0, 0, 0]
