"""CYP inducers (issue 10): a plan that adds an inducer beside a current substrate, or a substrate beside a
current inducer, carries a finding naming both drugs and which one the plan adds, with the action the label
gives: reduced statin, antidepressant and warfarin exposure is a caution; clopidogrel with a strong CYP2C19
inducer (Plavix label: avoid) and linagliptin with a strong CYP3A4 inducer (Tradjenta label: alternatives
strongly recommended) are excluded. ``check`` reports the same pairs on the current list."""

from __future__ import annotations

import datetime as dt

import pytest

from planner.record import DrugDose, Medication, PatientRecord, Regimen
from planner.safety import RuleSet, screen_plan

AS_OF = dt.date(2024, 6, 1)


@pytest.fixture(scope="module")
def rs() -> RuleSet:
    return RuleSet.load()


def rec(*meds: str) -> PatientRecord:
    return PatientRecord(
        patient_id="t",
        as_of=AS_OF,
        birth_date=dt.date(1965, 1, 1),
        medications=tuple(
            Medication(ingredient=m, rxcui="0", start=dt.date(2023, 1, 1), status="active", dose_mg_day=100.0)
            for m in meds
        ),
    )


def reg(*drugs: tuple[str, float]) -> Regimen:
    return Regimen.of([DrugDose(ingredient=d, rxcui="0", dose_mg_day=x) for d, x in drugs])


def pair(findings, rule_id, current, added):
    return [
        f for f in findings if f.rule_id == rule_id and set(f.drugs) == {current, added} and f.plan_adds == (added,)
    ]


CAUTIONS = [  # (rule, substrate, inducer, substrate dose)
    ("ddi.statin-cyp3a4-inducer", "atorvastatin", "rifampin", 20),
    ("ddi.statin-cyp3a4-inducer", "simvastatin", "carbamazepine", 20),
    ("ddi.statin-cyp3a4-inducer", "atorvastatin", "efavirenz", 20),
    ("ddi.statin-cyp3a4-inducer", "lovastatin", "st. john's wort", 20),
    ("ddi.citalopram-carbamazepine", "citalopram", "carbamazepine", 20),
    ("ddi.citalopram-carbamazepine", "escitalopram", "carbamazepine", 10),
    ("ddi.sertraline-cyp-inducer", "sertraline", "phenytoin", 50),
    ("ddi.bupropion-cyp2b6-inducer", "bupropion", "efavirenz", 150),
    ("ddi.bupropion-anticonvulsant-inducer", "bupropion", "carbamazepine", 150),
    ("ddi.warfarin-cyp-inducer", "warfarin", "rifampin", 5),
]


@pytest.mark.parametrize("rule_id,substrate,inducer,dose", CAUTIONS)
def test_substrate_added_beside_a_current_inducer(rs, rule_id, substrate, inducer, dose):
    res = screen_plan(rec(inducer), reg((substrate, dose)), rules=rs)
    hits = pair(res.findings, rule_id, inducer, substrate)
    assert [f.action for f in hits] == ["caution"], res.findings
    assert substrate in hits[0].message and inducer in hits[0].message
    assert not res.excluded  # a caution informs; it removes nothing


@pytest.mark.parametrize("rule_id,substrate,inducer,dose", CAUTIONS)
def test_inducer_added_beside_a_current_substrate(rs, rule_id, substrate, inducer, dose):
    res = screen_plan(rec(substrate), reg((inducer, 400)), rules=rs)
    hits = pair(res.findings, rule_id, substrate, inducer)
    assert [f.action for f in hits] == ["caution"], res.findings


def test_statin_caution_names_statins_an_inducer_does_not_touch(rs):
    res = screen_plan(rec("rifampin"), reg(("simvastatin", 20)), rules=rs)
    f = pair(res.findings, "ddi.statin-cyp3a4-inducer", "rifampin", "simvastatin")[0]
    assert f.alternatives == ("rosuvastatin", "pravastatin")
    # rosuvastatin and pravastatin are not CYP3A4 substrates: no inducer finding
    for other in ("rosuvastatin", "pravastatin"):
        res2 = screen_plan(rec("rifampin"), reg((other, 20)), rules=rs)
        assert not [x for x in res2.findings if "inducer" in x.rule_id], res2.findings


# Plavix label: avoid strong CYP2C19 inducers (rifampin raises the active metabolite and the bleeding risk)
@pytest.mark.parametrize("current,added", [("clopidogrel", "rifampin"), ("rifampin", "clopidogrel")])
def test_clopidogrel_with_a_strong_cyp2c19_inducer_is_excluded_both_ways(rs, current, added):
    res = screen_plan(rec(current), reg((added, 75)), rules=rs)
    assert res.excluded
    hits = pair(res.findings, "ddi.clopidogrel-strong-cyp2c19-inducer", current, added)
    assert [(f.action, f.target_drug) for f in hits] == [("exclude", "rifampin")], res.findings


# Tradjenta label 7.1: with a strong CYP3A4 (or P-gp) inducer, use another treatment
def test_linagliptin_beside_a_current_strong_inducer_is_excluded_and_sitagliptin_is_not(rs):
    res = screen_plan(rec("carbamazepine"), reg(("linagliptin", 5), ("metformin", 1000)), rules=rs, area="t2d")
    assert res.excluded
    hits = pair(res.findings, "ddi.linagliptin-strong-cyp3a4-inducer", "carbamazepine", "linagliptin")
    assert [(f.action, f.target_drug, f.alternatives) for f in hits] == [("exclude", "linagliptin", ("sitagliptin",))]
    other = screen_plan(rec("carbamazepine"), reg(("sitagliptin", 100), ("metformin", 1000)), rules=rs, area="t2d")
    assert not [f for f in other.findings if "inducer" in f.rule_id], other.findings


def test_check_reports_an_inducer_pair_on_the_current_list(rs):
    found = rs.check(rec("simvastatin", "phenytoin", "warfarin"))
    ids = {(f.rule_id, f.drugs) for f in found}
    assert ("ddi.statin-cyp3a4-inducer", ("phenytoin", "simvastatin")) in ids
    assert ("ddi.warfarin-cyp-inducer", ("phenytoin", "warfarin")) in ids
    assert all(f.plan_adds == () for f in found)  # nothing is added when the current list is screened


def test_inducers_are_among_the_current_drugs_the_property_test_draws(rs):
    from tests.test_plan_safety_property import LINKED, NAMED

    inducers = set()
    for cid in ("strong_cyp3a4_inducer", "moderate_cyp3a4_inducer", "strong_cyp2c19_inducer", "cyp2b6_inducer"):
        inducers |= rs.class_members[cid]
    assert {"rifampin", "carbamazepine", "phenytoin", "efavirenz", "st. john's wort"} <= inducers
    assert inducers <= set(LINKED) and inducers <= set(NAMED)
