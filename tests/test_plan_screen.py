"""Plan-level screening (issue 10): the whole list a plan leaves, both directions, each case with the action
CPIC or the FDA label gives; ``check`` on the current list; ``screen_plan`` and the Planner use one logic."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from planner import Planner
from planner.record import DrugDose, Medication, PatientRecord, PgxResult, Regimen
from planner.safety import RuleSet, screen_plan
from planner.testing import BundleBuilder

AS_OF = dt.date(2024, 6, 1)


@pytest.fixture(scope="module")
def rs() -> RuleSet:
    return RuleSet.load()


def rec(meds=(), pgx=()) -> PatientRecord:
    return PatientRecord(
        patient_id="t",
        as_of=AS_OF,
        birth_date=dt.date(1965, 1, 1),
        medications=tuple(
            Medication(ingredient=m, rxcui="0", start=dt.date(2023, 1, 1), status="active") for m in meds
        ),
        pgx=tuple(PgxResult(gene=g, diplotype=d, source="pharmcat-tsv") for g, d in pgx),
    )


def reg(*drugs: tuple[str, float]) -> Regimen:
    return Regimen.of([DrugDose(ingredient=d, rxcui="0", dose_mg_day=x) for d, x in drugs])


def two_drug_excludes(findings, current, added):
    return [
        f
        for f in findings
        if f.action == "exclude"
        and set(f.drugs) == {current, added}
        and f.plan_adds == (added,)
        and f.target_drug == added
    ]


# CPIC tamoxifen/CYP2D6 (Goetz 2018): normal metabolizers "avoid moderate and strong CYP2D6 inhibitors"
@pytest.mark.parametrize("added", ["paroxetine", "fluoxetine", "duloxetine", "bupropion"])
def test_cyp2d6_inhibitor_added_beside_current_tamoxifen_is_excluded(rs, added):
    res = screen_plan(rec(["tamoxifen"], [("CYP2D6", "*1/*1")]), reg((added, 20)), rules=rs)
    assert res.excluded
    hits = two_drug_excludes(res.findings, "tamoxifen", added)
    assert [f.rule_id for f in hits] == ["ddi.tamoxifen-cyp2d6-inhibitor"], res.findings
    assert "tamoxifen" in hits[0].message and added in hits[0].message


def test_sertraline_beside_tamoxifen_is_not_excluded(rs):
    res = screen_plan(rec(["tamoxifen"], [("CYP2D6", "*1/*1")]), reg(("sertraline", 50)), rules=rs)
    assert not res.excluded and not [f for f in res.findings if "tamoxifen" in f.drugs]


# FDA label Plavix 5.1/7.1: CYP2C19 inhibition lowers the active metabolite
@pytest.mark.parametrize("added", ["fluoxetine", "fluvoxamine"])
def test_cyp2c19_inhibitor_added_beside_current_clopidogrel_is_excluded(rs, added):
    res = screen_plan(rec(["clopidogrel"], [("CYP2C19", "*1/*1")]), reg((added, 20)), rules=rs)
    assert res.excluded
    assert [f.rule_id for f in two_drug_excludes(res.findings, "clopidogrel", added)] == [
        "ddi.clopidogrel-cyp2c19-inhibitor"
    ]


def test_bupropion_beside_phenelzine_is_excluded(rs):
    # FDA label Wellbutrin 4: contraindicated with MAO inhibitors
    res = screen_plan(rec(["phenelzine"]), reg(("bupropion", 300)), rules=rs)
    assert [f.rule_id for f in two_drug_excludes(res.findings, "phenelzine", "bupropion")] == ["ddi.maoi-bupropion"]


def test_clopidogrel_normal_metabolizer_on_omeprazole_excluded_once(rs):
    res = screen_plan(rec(["omeprazole"], [("CYP2C19", "*1/*1")]), reg(("clopidogrel", 75)), rules=rs)
    assert [f.rule_id for f in res.findings if f.action == "exclude"] == ["ddi.clopidogrel-omeprazole"]


def test_new_drug_phenoconverting_a_current_drug_names_both(rs):
    # codeine is current; paroxetine (strong CYP2D6 inhibitor) makes the patient a functional poor metabolizer:
    # CPIC codeine/CYP2D6 poor metabolizer "avoid codeine use" -> the plan that adds paroxetine is excluded
    res = screen_plan(rec(["codeine"], [("CYP2D6", "*1/*1")]), reg(("paroxetine", 20)), rules=rs)
    hits = two_drug_excludes(res.findings, "codeine", "paroxetine")
    assert len(hits) == 1 and hits[0].kind == "gene-drug" and hits[0].rule_id.startswith("cpic.codeine.")
    assert "phenoconverted by paroxetine" in hits[0].phenotype and "paroxetine" in hits[0].message
    # without the inhibitor, the same current codeine gives no plan finding
    ok = screen_plan(rec(["codeine"], [("CYP2D6", "*1/*1")]), reg(("sertraline", 50)), rules=rs)
    assert not [f for f in ok.findings if "codeine" in f.drugs]


def test_current_drug_phenoconverting_a_plan_drug_names_both(rs):
    # fluoxetine (current) inhibits CYP2D6 -> atomoxetine / codeine plan drug looked up as poor metabolizer
    res = screen_plan(rec(["fluoxetine"], [("CYP2D6", "*1/*1")]), reg(("codeine", 120)), rules=rs)
    gd = [f for f in res.findings if f.kind == "gene-drug" and f.target_drug == "codeine"]
    assert gd and gd[0].action == "exclude" and gd[0].drugs == ("codeine", "fluoxetine")
    assert gd[0].plan_adds == ("codeine",)


def test_duplicate_therapy_with_a_current_drug_outside_the_area(rs):
    # ibuprofen current, naproxen added: two NSAIDs (rules/drugs/classes.yaml duplicate: exclude)
    res = screen_plan(rec(["ibuprofen"]), reg(("naproxen", 500)), rules=rs)
    dup = [f for f in res.findings if f.kind == "duplicate-therapy"]
    assert dup and dup[0].drugs == ("ibuprofen", "naproxen") and dup[0].plan_adds == ("naproxen",)
    assert res.excluded


def test_check_flags_paroxetine_beside_tamoxifen(rs):
    fs = rs.check(rec(["tamoxifen", "paroxetine"], [("CYP2D6", "*1/*1")]))
    ex = [f for f in fs if f.action == "exclude"]
    assert [f.rule_id for f in ex] == ["ddi.tamoxifen-cyp2d6-inhibitor"]
    assert ex[0].drugs == ("paroxetine", "tamoxifen") and ex[0].plan_adds == ()


def test_area_drugs_are_replaced_other_current_drugs_kept(rs):
    # paroxetine is a current depression drug: a depression plan replaces it, so it does not count beside
    # tamoxifen; the same plan screened without the area keeps nothing else either
    ctx = rs.prepare(rec(["tamoxifen", "paroxetine"], [("CYP2D6", "*1/*1")]), area="depression")
    res = screen_plan(ctx, reg(("sertraline", 50)), rules=rs)
    assert not res.excluded


@pytest.mark.slow
def test_planner_never_proposes_cyp2d6_inhibitors_beside_tamoxifen():
    b = BundleBuilder(patient_id="vig-tam", birth_date="1968-04-02", sex="female")
    b.condition("35489007", display="Depressive disorder", onset="2023-09-01")
    b.observation("phq9", 17, date="2024-05-10")
    b.observation("egfr", 95, date="2024-05-10")
    b.medication("tamoxifen", 20)
    b.genotype("CYP2D6", "*1/*1")
    planner = Planner.load(num_samples=100)
    out = planner.recommend(b.build(), area="depression", as_of="2024-06-01", top=50)
    inhibitors = {"paroxetine", "fluoxetine", "duloxetine", "bupropion"}
    assert out.plans
    for p in out.plans:
        assert not {d.drug for d in p.regimen} & inhibitors, p.key
    reasons = {f.rule_id for e in out.excluded for f in e.findings if "tamoxifen" in f.drugs}
    assert "ddi.tamoxifen-cyp2d6-inhibitor" in reasons


# ---- patient-dependent dose limits -----------------------------------------------------------------------------
def with_egfr(r: PatientRecord, value: float) -> PatientRecord:
    from planner.record import Measurement

    m = Measurement(date=AS_OF - dt.timedelta(days=10), value=value, unit="mL/min/1.73m2", loinc="33914-3")
    return r.model_copy(update={"observations": {**r.observations, "egfr": (m,)}})


@pytest.mark.parametrize("egfr,dose,expected", [(25, 100, 25), (40, 100, 50), (40, 50, 50), (60, 100, 100)])
def test_sitagliptin_renal_dose_by_egfr_band(rs, egfr, dose, expected):
    # FDA label Januvia 2.2: 50 mg at eGFR 30-45, 25 mg below 30
    res = screen_plan(with_egfr(rec(), egfr), reg(("sitagliptin", dose)), rules=rs)
    assert res.final is not None and res.final.dose_of("sitagliptin") == expected
    if expected < dose:
        assert res.adjusted_by["sitagliptin"].startswith("lab.sitagliptin-egfr-")


def test_duloxetine_avoided_below_egfr_30(rs):
    res = screen_plan(with_egfr(rec(), 22), reg(("duloxetine", 60)), rules=rs)
    assert res.excluded and [f.rule_id for f in res.exclusions] == ["lab.duloxetine-egfr-30"]


@pytest.mark.parametrize(
    "statin,dose,current,cap,rule",
    [
        ("pravastatin", 80, "clarithromycin", 40, "ddi.pravastatin-clarithromycin"),  # Pravachol label
        ("simvastatin", 40, "amlodipine", 20, "ddi.simvastatin-amlodipine"),  # Zocor 2.3
        ("simvastatin", 40, "diltiazem", 10, "ddi.simvastatin-diltiazem"),  # Zocor 2.3
        ("atorvastatin", 80, "clarithromycin", 20, "ddi.atorvastatin-strong-cyp3a4"),  # Lipitor 2.5
        ("rosuvastatin", 40, "ritonavir", 10, "ddi.rosuvastatin-protease-inhibitor"),  # Crestor 2.x
    ],
)
def test_interaction_dose_caps(rs, statin, dose, current, cap, rule):
    res = screen_plan(rec([current]), reg((statin, dose)), rules=rs)
    assert res.final is not None and res.final.dose_of(statin) == cap
    assert res.adjusted_by[statin] == rule
    f = [f for f in res.findings if f.rule_id == rule][0]
    assert f.drugs == tuple(sorted((statin, current))) and f.plan_adds == (statin,)


def test_cap_on_a_current_drug_is_named_on_the_plan(rs):
    # amlodipine (plan) beside current simvastatin 40 mg: the plan says to cap the current simvastatin
    r = rec().model_copy(
        update={
            "medications": (
                Medication(
                    ingredient="simvastatin", rxcui="0", dose_mg_day=40, start=dt.date(2023, 1, 1), status="active"
                ),
            )
        }
    )
    ctx = rs.prepare(r, area="hypertension")
    res = screen_plan(ctx, reg(("amlodipine", 5)), rules=rs)
    f = [f for f in res.findings if f.rule_id == "ddi.simvastatin-amlodipine"][0]
    assert f.action == "adjust_dose" and f.target_drug == "simvastatin" and f.adjusted_dose_mg_day == 20
    assert f.plan_adds == ("amlodipine",)


def test_hepatic_cap(rs):
    from planner.record import Condition

    r = rec().model_copy(update={"conditions": (Condition(code="19943007", system="http://snomed.info/sct"),)})
    res = screen_plan(r, reg(("citalopram", 40)), rules=rs)
    assert res.final is not None and res.final.dose_of("citalopram") == 20
    assert screen_plan(r, reg(("duloxetine", 60)), rules=rs).excluded


def test_screen_benchmark_runs_with_tiny_arguments():
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "screen.py"), "--regimens", "12", "--repeats", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    ).stdout
    assert "plan-level pairs" in out and "naive baseline" in out and "speed-up" in out
