"""Golden vignettes: guideline indications, secondary outcomes and patient preferences in the ranking.

Each vignette is a hand-built patient (planner.testing.BundleBuilder) run through the whole Planner with the
packaged literature-prior models; the asserts are what a clinician reading the plans would check.
"""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from planner import Planner
from planner.areas import list_areas, load_area
from planner.errors import ConfigError, RuleError
from planner.guidelines import PatientContext, applicable_indications, load_guidelines
from planner.rule_files import rules_dir
from planner.testing import BundleBuilder

AS_OF = "2024-06-01"
SGLT2_HF = {"empagliflozin", "dapagliflozin"}
CV_BENEFIT = {"liraglutide", "semaglutide", "dulaglutide", "empagliflozin", "canagliflozin"}
INJECTABLE = {"liraglutide", "semaglutide", "dulaglutide", "insulin glargine"}


@pytest.fixture(scope="module")
def planner() -> Planner:
    return Planner.load()


def _t2d(pid: str, hba1c: float, *, born: str = "1958-01-01") -> BundleBuilder:
    b = BundleBuilder(patient_id=pid, birth_date=born, sex="male", as_of=AS_OF)
    b.condition("44054006", display="Diabetes mellitus type 2", onset="2015-01-01")
    b.medication("metformin", dose_mg_day=2000, start="2020-01-01", times_per_day=2)
    b.observation("hba1c", hba1c, date="2024-05-01")
    return b


def _drugs(plan) -> set[str]:
    return {d.drug for d in plan.regimen}


def _status(plan, ind_id):
    return next(s for s in plan.indications if s.id == ind_id)


def _unmet_plans_say_so(rec, ind_id):
    for p in rec.plans:
        s = _status(p, ind_id)
        if not s.met:
            assert "Guideline indication not met" in p.rationale and s.message.startswith("not met:")


# ---- the data ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("area_id", list_areas())
def test_every_area_has_sourced_guidelines(area_id):
    area = load_area(area_id)
    g = load_guidelines(area)
    assert g is not None and g.source
    assert all(i.source and i.recommendation for i in g.indications)
    assert all(e.source for so in g.secondary_outcomes for e in so.effects)


def test_a_guideline_naming_a_drug_outside_the_formulary_is_refused(tmp_path):
    root = tmp_path / "rules"
    shutil.copytree(rules_dir(), root)
    path = root / "guidelines" / "t2d.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["indications"][0]["drugs"] = ["empagliflozin", "sotagliflozin"]
    path.write_text(yaml.safe_dump(raw))
    from planner.manifest import main as pin

    pin([str(root)])  # re-pinned: the formulary check is the one under test
    with pytest.raises(RuleError) as err:
        load_guidelines(load_area("t2d"), root)
    assert "t2d.yaml" in str(err.value) and "sotagliflozin" in str(err.value)


# ---- type 2 diabetes --------------------------------------------------------------------------------------


def test_t2d_heart_failure_gets_an_sglt2_inhibitor(planner):
    """The issue's patient: T2D + heart failure, HbA1c 8.2 on metformin 2,000 mg."""
    b = _t2d("hf", 8.2)
    b.condition("84114007", display="Heart failure", onset="2021-01-01")
    b.observation("egfr", 70, date="2024-05-01")
    rec = planner.recommend(b.record(), area="t2d")
    top = rec.plans[0]
    assert _drugs(top) & SGLT2_HF
    assert _status(top, "t2d.sglt2i-heart-failure").met
    assert "pioglitazone" not in {d for p in rec.plans for d in _drugs(p)}  # safety still excludes it
    _unmet_plans_say_so(rec, "t2d.sglt2i-heart-failure")
    # the trade-off is visible: lower heart-failure hospitalisation risk than staying on metformin alone
    hf = next(t for t in top.tradeoffs if t.term == "secondary:hf_hospitalisation")
    assert 0 < hf.value < 0.065 and hf.utility < 0


def test_t2d_after_mi_gets_a_drug_with_cardiovascular_benefit_not_glipizide(planner):
    b = _t2d("mi", 7.6, born="1960-01-01")
    b.condition("22298006", display="Myocardial infarction", onset="2023-03-01")
    rec = planner.recommend(b.record(), area="t2d")
    top = rec.plans[0]
    assert _drugs(top) & CV_BENEFIT and "glipizide" not in _drugs(top)
    assert _status(top, "t2d.cv-benefit-ascvd").met
    _unmet_plans_say_so(rec, "t2d.cv-benefit-ascvd")
    # 0.6 above goal: a plan adding a sulfonylurea on top of the GLP-1 RA starts two drugs, and says so
    for p in rec.plans:
        if len(_drugs(p) - {"metformin"}) >= 2:
            assert not _status(p, "t2d.stepwise-intensification").met


def test_t2d_ckd_by_egfr_gets_an_sglt2_inhibitor_and_not_below_egfr_20(planner):
    b = _t2d("ckd", 7.9)
    b.observation("egfr", 45, date="2024-05-01")
    rec = planner.recommend(b.record(), area="t2d")
    assert _drugs(rec.plans[0]) & {"canagliflozin", "dapagliflozin", "empagliflozin"}
    assert _status(rec.plans[0], "t2d.sglt2i-ckd").met
    low = _t2d("ckd-low", 7.9)
    low.observation("egfr", 15, date="2024-05-01")
    rec = planner.recommend(low.record(), area="t2d")
    assert all(s.id != "t2d.sglt2i-ckd" for p in rec.plans for s in p.indications)  # eGFR < 20: no indication


def test_a_required_indication_ranks_every_plan_that_meets_it_first(planner):
    """ADA grade A, whatever the HbA1c (t2d guidelines 1.4.0 require): in heart failure and in CKD every plan
    with the SGLT2 inhibitor ranks above every plan without one, whatever the other plan's P(target)."""
    hf = _t2d("hf-req", 7.9)
    hf.condition("84114007", display="Heart failure", onset="2021-01-01")
    hf.observation("egfr", 70, date="2024-05-01")
    ckd = _t2d("ckd-req", 7.9)
    ckd.observation("egfr", 45, date="2024-05-01")
    for b, ind in ((hf, "t2d.sglt2i-heart-failure"), (ckd, "t2d.sglt2i-ckd")):
        rec = planner.recommend(b.record(), area="t2d", top=60)
        met = [_status(p, ind).met for p in rec.plans]
        assert True in met and False in met
        assert met == sorted(met, reverse=True), ind  # all met, then all unmet
        unmet = next(p for p in rec.plans if not _status(p, ind).met)
        cost = next(t.utility for t in unmet.tradeoffs if t.term == f"indication:{ind}")
        assert cost == pytest.approx(-3.0)


def test_require_is_for_include_indications_only(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(rules_dir(), rules)
    p = rules / "guidelines" / "t2d.yaml"
    p.write_text(p.read_text().replace("    max_new: 1\n", "    max_new: 1\n    require: true\n"))
    from planner.manifest import main as pin

    pin([str(rules)])
    with pytest.raises(RuleError) as err:
        load_guidelines(load_area("t2d"), rules=rules)
    assert "require is for kind include only" in str(err.value) and "t2d.stepwise-intensification" in str(err.value)


def test_t2d_at_goal_no_new_drug_unless_a_required_one(planner):
    """Below the HbA1c goal (t2d guidelines 1.5.0): a plan that starts a glucose-lowering drug says so and pays
    for it; a drug started for a required indication (SGLT2 inhibitor in heart failure) does not count."""
    at_goal = "t2d.no-intensification-at-goal"
    b = _t2d("goal", 6.2, born="1950-01-01")
    b.medication("glipizide", dose_mg_day=20, start="2021-01-01", times_per_day=2)
    rec = planner.recommend(b.record(), area="t2d", top=60)
    assert not (_drugs(rec.plans[0]) - {"metformin", "glipizide"})  # the top plan starts nothing
    starting = [p for p in rec.plans if _drugs(p) - {"metformin", "glipizide"}]
    assert starting
    for p in starting:
        s = _status(p, at_goal)
        assert not s.met and "this plan starts" in s.message and "Guideline indication not met" in p.rationale
    hf = _t2d("goal-hf", 6.2)
    hf.condition("84114007", display="Heart failure", onset="2021-01-01")
    hf.observation("egfr", 70, date="2024-05-01")
    rec = planner.recommend(hf.record(), area="t2d", top=60)
    top = rec.plans[0]
    assert _drugs(top) & SGLT2_HF and all(s.met for s in top.indications)
    for p in rec.plans:  # only drugs besides the indicated one count
        new = _drugs(p) - {"metformin"} - SGLT2_HF
        assert any(s.id == at_goal and not s.met for s in p.indications) == bool(new)


def test_t2d_older_adult_well_below_goal_on_a_sulfonylurea_gets_it_lowered(planner):
    """t2d guidelines 1.6.0 (ADA 2024 section 13; Lipska 2015): 65 or older, HbA1c under 6.5% on a sulfonylurea
    or insulin: the top plan lowers or stops it; a plan keeping the dose says so. Not at 49."""
    ind = "t2d.deintensify-older-adult"
    old = _t2d("deint", 5.6, born="1950-01-01")
    old.medication("glipizide", dose_mg_day=20, start="2021-01-01", times_per_day=2)
    rec = planner.recommend(old.record(), area="t2d", top=60)
    top = (
        next(d for d in rec.plans[0].regimen if d.drug == "glipizide") if "glipizide" in _drugs(rec.plans[0]) else None
    )
    assert top is None or top.dose_mg_day < 20
    assert _status(rec.plans[0], ind).met
    kept = [p for p in rec.plans if any(d.drug == "glipizide" and d.dose_mg_day >= 20 for d in p.regimen)]
    assert kept
    for p in kept:
        s = _status(p, ind)
        assert not s.met and "keeps glipizide" in s.message and "Guideline indication not met" in p.rationale
    young = _t2d("deint-young", 5.6, born="1975-01-01")
    young.medication("glipizide", dose_mg_day=20, start="2021-01-01", times_per_day=2)
    rec = planner.recommend(young.record(), area="t2d", top=60)
    assert all(s.id != ind for p in rec.plans for s in p.indications)


def test_no_indication_no_guideline_penalty(planner):
    """No comorbidity: only the combination to avoid and the stepwise rule (two new drugs 0.8 above goal) cost."""
    rec = planner.recommend(_t2d("plain", 7.8).record(), area="t2d", top=40)
    for p in rec.plans:
        both = {"dpp4_inhibitor", "glp1_agonist"} <= {d.drug_class for d in p.regimen}
        two = len({d.drug for d in p.regimen} - {"metformin"}) >= 2
        want = (["t2d.no-dpp4i-with-glp1ra"] if both else []) + (["t2d.stepwise-intensification"] if two else [])
        assert [s.id for s in p.indications] == want
        assert sum(t.utility for t in p.tradeoffs if t.term.startswith("indication:")) == pytest.approx(
            -0.5 * both - 0.25 * two
        )


def test_t2d_one_new_drug_at_a_time_below_1_5_points_above_goal(planner):
    """ADA 2024 section 9: two glucose-lowering drugs at once only from 1.5-2.0 points above the goal."""
    rec = planner.recommend(_t2d("step", 7.8).record(), area="t2d", top=60)
    assert len({d.drug for d in rec.plans[0].regimen} - {"metformin"}) == 1
    two = [p for p in rec.plans if len({d.drug for d in p.regimen} - {"metformin"}) >= 2]
    assert two, "the candidates include two-drug starts"
    for p in two:
        s = _status(p, "t2d.stepwise-intensification")
        assert not s.met and "one new glucose-lowering drug at a time" in s.label
        assert "7.8%, 0.8 from the target 7%" in s.message and "Guideline indication not met" in p.rationale
    # 2.4 points above goal: a combination may be considered, the rule does not apply
    high = planner.recommend(_t2d("step-high", 9.4).record(), area="t2d", top=60)
    assert all(s.id != "t2d.stepwise-intensification" for p in high.plans for s in p.indications)
    # an older adult's goal is 8.0 (rules/areas/t2d.yaml): 9.4 is 1.4 above it, so the rule applies again
    old = planner.recommend(_t2d("step-old", 9.4, born="1940-01-01").record(), area="t2d", top=60)
    assert any(s.id == "t2d.stepwise-intensification" for p in old.plans for s in p.indications)


def test_dpp4_inhibitor_with_glp1_ra_is_advised_against(planner):
    rec = planner.recommend(_mi_patient().record(), area="t2d", top=60)
    both = [p for p in rec.plans if {"dpp4_inhibitor", "glp1_agonist"} <= {d.drug_class for d in p.regimen}]
    assert both and all(not _status(p, "t2d.no-dpp4i-with-glp1ra").met for p in both)
    assert all("same incretin pathway" in p.rationale for p in both)
    assert not {"dpp4_inhibitor", "glp1_agonist"} <= {d.drug_class for d in rec.plans[0].regimen}


# ---- hypertension -----------------------------------------------------------------------------------------


def _htn(pid: str, sbp: float, drug: str, dose: float) -> BundleBuilder:
    b = BundleBuilder(patient_id=pid, birth_date="1960-01-01", sex="male", as_of=AS_OF)
    b.condition("59621000", display="Essential hypertension", onset="2015-01-01")
    b.medication(drug, dose_mg_day=dose, start="2020-01-01")
    b.blood_pressure(sbp, 86, date="2024-05-01")
    return b


def test_hypertension_diabetes_with_albuminuria_gets_an_acei_or_arb(planner):
    b = _htn("alb", 148, "amlodipine", 5)
    b.condition("44054006", display="Diabetes mellitus type 2", onset="2015-01-01")
    b.observation("uacr", 120, date="2024-05-01")
    rec = planner.recommend(b.record(), area="hypertension")
    raas = {"lisinopril", "enalapril", "ramipril", "losartan", "valsartan", "olmesartan"}
    assert _drugs(rec.plans[0]) & raas
    assert _status(rec.plans[0], "htn.raas-diabetes-albuminuria-ckd").met
    _unmet_plans_say_so(rec, "htn.raas-diabetes-albuminuria-ckd")
    assert any(t.term == "secondary:hyperkalaemia" and t.value > 0 for t in rec.plans[0].tradeoffs)


def test_hypertension_after_mi_gets_a_beta_blocker(planner):
    b = _htn("mi", 142, "lisinopril", 20)
    b.condition("22298006", display="Myocardial infarction", onset="2023-03-01")
    rec = planner.recommend(b.record(), area="hypertension")
    assert _drugs(rec.plans[0]) & {"metoprolol", "carvedilol", "atenolol"}
    _unmet_plans_say_so(rec, "htn.beta-blocker-mi-hfref")


def test_hypertension_hfref_gets_an_evidence_based_beta_blocker_not_atenolol(planner):
    b = _htn("hfref", 138, "lisinopril", 20)
    b.condition("703272007", display="Heart failure with reduced ejection fraction", onset="2022-01-01")
    rec = planner.recommend(b.record(), area="hypertension", top=20)
    assert _drugs(rec.plans[0]) & {"metoprolol", "carvedilol"}
    for p in rec.plans:
        if "atenolol" in _drugs(p) and not _drugs(p) & {"metoprolol", "carvedilol"}:
            assert not _status(p, "htn.evidence-based-beta-blocker-hfref").met


# ---- lipids -----------------------------------------------------------------------------------------------


def _lipids(pid: str, ldl: float, *, born: str = "1962-01-01") -> BundleBuilder:
    b = BundleBuilder(patient_id=pid, birth_date=born, sex="male", as_of=AS_OF)
    b.condition("55822004", display="Hyperlipidemia", onset="2015-01-01")
    b.medication("simvastatin", dose_mg_day=20, start="2020-01-01")
    b.observation("ldl", ldl, date="2024-05-01")
    return b


def test_lipids_ascvd_gets_a_high_intensity_statin_and_the_goal_is_reported(planner):
    b = _lipids("ascvd", 128)
    b.condition("22298006", display="Myocardial infarction", onset="2023-03-01")
    rec = planner.recommend(b.record(), area="lipids")
    top = rec.plans[0]
    high = {(d.drug, d.dose_mg_day) for d in top.regimen} & {
        ("atorvastatin", 40.0),
        ("atorvastatin", 80.0),
        ("rosuvastatin", 20.0),
        ("rosuvastatin", 40.0),
    }
    assert high and _status(top, "lipids.high-intensity-ascvd").met
    goal = _status(top, "lipids.goal-very-high-risk")  # ESC/EAS very high risk: < 55 mg/dL
    assert "P(ldl < 55)" in goal.message
    assert not any(s.id == "lipids.goal-high-risk" for s in top.indications)  # first matching category only
    # the simvastatin 20 plan (moderate intensity) is not high intensity and says so
    for p in rec.plans:
        if _drugs(p) == {"simvastatin"}:
            assert not _status(p, "lipids.high-intensity-ascvd").met


def test_lipids_diabetes_at_50_needs_at_least_moderate_intensity(planner):
    b = BundleBuilder(patient_id="dm", birth_date="1974-01-01", sex="female", as_of=AS_OF)
    b.condition("55822004", display="Hyperlipidemia", onset="2015-01-01")
    b.condition("44054006", display="Diabetes mellitus type 2", onset="2015-01-01")
    b.observation("ldl", 140, date="2024-05-01")
    rec = planner.recommend(b.record(), area="lipids", top=30)
    assert _status(rec.plans[0], "lipids.moderate-intensity-diabetes").met
    for p in rec.plans:
        if _drugs(p) <= {"ezetimibe"}:  # no statin at all
            assert not _status(p, "lipids.moderate-intensity-diabetes").met


# ---- depression -------------------------------------------------------------------------------------------


def _depression_history() -> BundleBuilder:
    b = BundleBuilder(patient_id="dep", birth_date="1980-01-01", sex="female", as_of=AS_OF)
    b.condition("370143000", display="Major depressive disorder", onset="2019-01-01")
    b.medication("sertraline", dose_mg_day=50, start="2023-01-10", end="2023-01-22", status="stopped")
    b.medication("fluoxetine", dose_mg_day=20, start="2023-03-01", end="2023-06-01", status="completed")
    b.observation("phq9", 18, date="2023-02-25")
    b.observation("phq9", 17, date="2023-05-25")
    b.medication("bupropion", dose_mg_day=300, start="2021-01-01", end="2021-07-01", status="completed")
    b.observation("phq9", 19, date="2020-12-20")
    b.observation("phq9", 6, date="2021-04-01")
    b.observation("phq9", 16, date="2024-05-20")
    return b


def test_depression_history_is_read_from_the_medication_record():
    area = load_area("depression")
    g = load_guidelines(area)
    ctx = PatientContext.from_record(_depression_history().record(), area, g)
    by_drug = {c.ingredient: c.outcome for c in ctx.courses}
    assert by_drug == {"sertraline": "not_tolerated", "fluoxetine": "no_response", "bupropion": "response"}
    ids = {a.indication.id for a in applicable_indications(g, ctx)}
    assert ids == {"dep.avoid-not-tolerated", "dep.avoid-no-response", "dep.prefer-prior-response"}


def test_a_stop_for_an_adverse_effect_on_the_order_is_not_tolerated_however_long_the_course(planner):
    """MedicationRequest.statusReason: escitalopram stopped after 63 days "due to side effects" is a drug not
    tolerated (the 28-day rule alone would read it by its PHQ-9 values); the same stop without a reason is not."""
    area = load_area("depression")
    g = load_guidelines(area)

    def record(reason):
        b = BundleBuilder(patient_id="dep-ae", birth_date="1980-01-01", sex="female", as_of=AS_OF)
        b.condition("370143000", display="Major depressive disorder", onset="2019-01-01")
        b.observation("phq9", 18, date="2023-02-25")
        b.medication("escitalopram", 10, start="2023-03-01", end="2023-05-03", status="stopped", status_reason=reason)
        b.observation("phq9", 12, date="2023-04-20")
        b.observation("phq9", 16, date="2024-05-20")
        return b.record()

    stopped = PatientContext.from_record(record("Stopped due to side effects"), area, g).courses
    assert [(c.ingredient, c.outcome, c.recorded_adverse) for c in stopped] == [("escitalopram", "not_tolerated", True)]
    plain = PatientContext.from_record(record(None), area, g).courses
    assert [c.outcome for c in plain] == ["partial"]  # 18 -> 12 over 9 weeks: read from the PHQ-9 values
    rec = planner.recommend(record("Stopped due to side effects"), area="depression", top=40)
    assert "escitalopram" not in _drugs(rec.plans[0])
    retry = next(p for p in rec.plans if "escitalopram" in _drugs(p))
    assert "re-tries escitalopram stopped after 63 days (recorded as stopped for an adverse effect)" in retry.rationale


def test_after_two_trials_an_adjunct_to_the_drug_without_response_meets_the_guideline(planner):
    """CANMAT 2016: switch after a first trial without response; after two or more trials adding an adjunct
    (bupropion, mirtazapine) to the tolerated drug taken now is the other option."""

    def record(past_trial: bool):
        b = BundleBuilder(patient_id="dep-adj", birth_date="1980-01-01", sex="female", as_of=AS_OF)
        b.condition("370143000", display="Major depressive disorder", onset="2019-01-01")
        if past_trial:
            b.observation("phq9", 18, date="2022-12-20")
            b.medication("fluoxetine", 20, start="2023-01-01", end="2023-04-01", status="completed")
            b.observation("phq9", 17, date="2023-03-25")
        b.observation("phq9", 17, date="2024-02-25")
        b.medication("sertraline", 100, start="2024-03-01")
        b.observation("phq9", 16, date="2024-05-20")
        return b.record()

    def plans(rec, drugs):
        return [p for p in rec.plans if _drugs(p) == drugs]

    two = planner.recommend(record(True), area="depression", top=80)
    add = plans(two, {"sertraline", "mirtazapine"}) + plans(two, {"sertraline", "bupropion"})
    assert add
    for p in add:
        s = _status(p, "dep.avoid-no-response")
        assert s.met and "an adjunct added after 2 or more trials" in s.message
    assert all(not _status(p, "dep.avoid-no-response").met for p in plans(two, {"sertraline"}))
    assert all(not _status(p, "dep.avoid-no-response").met for p in plans(two, {"sertraline", "escitalopram"}))
    one = planner.recommend(record(False), area="depression", top=80)  # a first trial: switch
    assert all(not _status(p, "dep.avoid-no-response").met for p in one.plans if "sertraline" in _drugs(p))


def test_depression_prefers_what_worked_and_does_not_retry_what_failed(planner):
    rec = planner.recommend(_depression_history().record(), area="depression", top=40)
    top = rec.plans[0]
    assert "bupropion" in _drugs(top) and not _drugs(top) & {"sertraline", "fluoxetine"}
    assert all(s.met for s in top.indications)
    retry = [p for p in rec.plans if _drugs(p) & {"sertraline", "fluoxetine"}]
    assert retry
    for p in retry:
        assert "re-tries" in p.rationale
    # adverse effects are part of every plan's trade-offs
    assert {t.term for t in top.tradeoffs} >= {"secondary:sexual_dysfunction", "secondary:nausea"}


# ---- preferences ------------------------------------------------------------------------------------------


def _mi_patient() -> BundleBuilder:
    b = _t2d("mi", 7.6, born="1960-01-01")
    b.condition("22298006", display="Myocardial infarction", onset="2023-03-01")
    return b


def _moved(rec) -> bool:
    return any(p.rank_without_preferences != p.rank for p in rec.plans)


def test_preference_avoid_injections(planner):
    rec0 = planner.recommend(_mi_patient().record(), area="t2d")
    rec = planner.recommend(_mi_patient().record(), area="t2d", preferences="avoid-injections")
    assert _drugs(rec0.plans[0]) & INJECTABLE
    assert not _drugs(rec.plans[0]) & INJECTABLE
    assert _drugs(rec.plans[0]) & CV_BENEFIT  # still meets the indication (an SGLT2 inhibitor)
    assert rec.preferences == ("avoid-injections",) and _moved(rec)
    assert "Preferences: avoid injections" in rec.plans[0].rationale and "without preferences" in rec.plans[0].rationale


def test_preference_avoid_weight_gain(planner):
    b = _t2d("high", 10.5)
    base = planner.recommend(b.record(), area="t2d")
    rec = planner.recommend(b.record(), area="t2d", preferences=["avoid-weight-gain"])

    def gain(p):
        return next(t.value for t in p.tradeoffs if t.term == "secondary:weight")

    assert gain(base.plans[0]) > 0  # insulin or a sulfonylurea: weight gain
    assert gain(rec.plans[0]) < gain(base.plans[0]) and _moved(rec)


def _measure(p, term):
    return next(t.value for t in p.tradeoffs if t.term == term)


def test_preference_fewest_pills(planner):
    b = _t2d("pills", 10.5)
    base = planner.recommend(b.record(), area="t2d")
    rec = planner.recommend(b.record(), area="t2d", preferences="fewest-pills")
    assert all(not any(t.term.startswith("preference:") for t in p.tradeoffs) for p in base.plans)
    top, term = rec.plans[0], "preference:fewest-pills"
    assert top.key != base.plans[0].key and top.rank_without_preferences > 1
    base_top = planner.recommend(b.record(), area="t2d", top=50, preferences="fewest-pills")
    was = next(p for p in base_top.plans if p.key == base.plans[0].key)
    assert _measure(top, term) < _measure(was, term)  # fewer oral doses a day than the plan it displaced


def test_preference_lowest_cost(planner):
    b = _t2d("cost", 8.4)
    base = planner.recommend(b.record(), area="t2d", top=50, preferences="lowest-cost")
    rec = planner.recommend(b.record(), area="t2d", preferences="lowest-cost")
    term = "preference:lowest-cost"
    assert _moved(rec)
    up = [p for p in rec.plans if p.rank < p.rank_without_preferences]
    assert up
    for p in up:  # every plan the preference moved up costs less than a plan it passed
        passed = [q for q in base.plans if q.rank_without_preferences < p.rank_without_preferences and q.rank > p.rank]
        assert passed and _measure(p, term) < max(_measure(q, term) for q in passed)


def _new_depression() -> BundleBuilder:
    """A first episode, untreated: every antidepressant is open."""
    b = BundleBuilder(patient_id="dep-new", birth_date="1985-01-01", sex="male", as_of=AS_OF)
    b.condition("370143000", display="Major depressive disorder", onset="2024-04-01")
    b.observation("phq9", 17, date="2024-05-20")
    return b


def test_sexual_dysfunction_is_shown_and_weighed_only_when_the_patient_asks(planner):
    """No published disutility sets a default weight (rules/ranking.yaml): the risk is in every plan's trade-offs
    at no cost; avoid-sexual-side-effects weighs it and moves plans with less of it up."""
    term, pref = "secondary:sexual_dysfunction", "preference:avoid-sexual-side-effects"
    base = planner.recommend(_new_depression().record(), area="depression", top=60)
    risk = {p.key: _measure(p, term) for p in base.plans}
    assert max(risk.values()) - min(risk.values()) > 0.2  # serotonergic plans carry more of it
    assert all(next(t.utility for t in p.tradeoffs if t.term == term) == 0.0 for p in base.plans)
    rec = planner.recommend(
        _new_depression().record(), area="depression", top=60, preferences="avoid-sexual-side-effects"
    )
    assert rec.preferences == ("avoid-sexual-side-effects",) and _moved(rec)
    assert any(risk[p.key] > 0.4 for p in base.plans[:5])  # an SSRI or SNRI among the first five
    assert all(_measure(p, term) < 0.2 for p in rec.plans[:5])  # none with the patient's preference
    assert "Preferences: avoid sexual side effects" in rec.plans[0].rationale
    assert "% (treatment course)" in rec.plans[0].rationale.split("Preferences:")[1]  # shown as a risk
    for p in rec.plans:  # the preference's cost is its weight times the plan's expected risk
        cost = next(t.utility for t in p.tradeoffs if t.term == pref)
        assert cost == pytest.approx(-0.75 * _measure(p, term), abs=2e-3)  # both rounded in the output
    # an area without the outcome is not moved by it
    t2d = planner.recommend(_mi_patient().record(), area="t2d", preferences="avoid-sexual-side-effects")
    assert not _moved(t2d)


def test_unknown_preference_is_a_clear_error(planner):
    with pytest.raises(ConfigError) as err:
        planner.recommend(_mi_patient().record(), area="t2d", preferences="avoid-needles")
    msg = str(err.value)
    assert "avoid-needles" in msg and "avoid-injections" in msg


def test_a_preference_on_a_secondary_outcome_no_guideline_has_is_refused(tmp_path):
    """A misspelt "secondary:<id>" would weigh nothing in every area while the output says the preference was
    used: the rules folder is refused, naming the preference, the id and the outcomes its guidelines define."""
    from planner.manifest import main as pin
    from planner.rank import RankingConfig

    root = tmp_path / "rules"
    shutil.copytree(rules_dir(), root)
    path = root / "ranking.yaml"
    path.write_text(path.read_text().replace('"secondary:sexual_dysfunction"', '"secondary:sexual_dysfuntion"'))
    pin([str(root)])
    with pytest.raises(RuleError) as err:
        RankingConfig.load(root)
    msg = str(err.value)
    assert "preferences.avoid-sexual-side-effects.measure" in msg and "secondary:sexual_dysfuntion" in msg
    assert "secondary:sexual_dysfunction" in msg  # the ids the guidelines do define are listed
    assert RankingConfig.load().preferences["avoid-sexual-side-effects"].measure == "secondary:sexual_dysfunction"


def test_a_preference_on_a_change_outcome_weighs_its_rise_only(tmp_path):
    """secondary:weight as a preference: a plan expected to lower weight pays nothing (no reward either), one
    expected to raise it pays the weight per kg, as avoid-weight-gain does."""
    from planner.manifest import main as pin

    root = tmp_path / "rules"
    shutil.copytree(rules_dir(), root)
    path = root / "ranking.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["preferences"]["avoid-weight-rise"] = {"weight": 0.1, "measure": "secondary:weight", "per": "kg"}
    path.write_text(yaml.safe_dump(raw))
    pin([str(root)])
    rec = Planner.load(rules=root).recommend(
        _t2d("high", 10.5).record(), area="t2d", top=300, preferences="avoid-weight-rise"
    )
    seen = set()
    for p in rec.plans:
        gain = _measure(p, "secondary:weight")
        cost = next(t.utility for t in p.tradeoffs if t.term == "preference:avoid-weight-rise")
        if abs(gain) >= 1.0:  # per draw: a plan near zero pays for its draws that rise
            assert cost == pytest.approx(-0.1 * max(gain, 0.0), abs=0.02)
            seen.add(gain > 0)
    assert seen == {True, False}  # both kinds of plan were ranked


def test_tradeoffs_add_up_to_the_utility_and_json_round_trips(planner):
    rec = planner.recommend(_mi_patient().record(), area="t2d", preferences="avoid-injections,lowest-cost")
    for p in rec.plans:
        assert sum(t.utility for t in p.tradeoffs) == pytest.approx(p.utility, abs=2e-3)
    doc = json.loads(rec.to_json())
    assert doc["preferences"] == ["avoid-injections", "lowest-cost"]
    assert doc["plans"][0]["tradeoffs"] and doc["plans"][0]["indications"]
    assert type(rec).model_validate_json(rec.to_json()) == rec
    again = planner.recommend(_mi_patient().record(), area="t2d", preferences="avoid-injections,lowest-cost")
    assert again.to_json() == rec.to_json()  # same input + seed: same output


def test_cli_prefer(tmp_path):
    import os
    import subprocess
    import sys

    path = tmp_path / "mi.json"
    path.write_text(json.dumps(_mi_patient().build()))
    env = {**os.environ}
    cmd = [sys.executable, "-m", "planner.cli", "recommend", str(path), "--area", "t2d", "--as-of", AS_OF]
    out = subprocess.run(
        [*cmd, "--prefer", "avoid-injections", "--format", "json"], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["preferences"] == ["avoid-injections"]
    assert not {d["drug"] for d in doc["plans"][0]["regimen"]} & INJECTABLE
    bad = subprocess.run([*cmd, "--prefer", "cheapest"], capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "cheapest" in bad.stderr and "lowest-cost" in bad.stderr


# ---- secondary outcomes: the priors at work -----------------------------------------------------------------


def test_weight_loss_counts_only_with_overweight_and_gain_always_counts(planner):
    lean = _t2d("lean", 8.4)
    heavy = _t2d("heavy", 8.4)
    heavy.observation("bmi", 33, date="2024-05-01")

    def weight_term(rec, drug):
        p = next(p for p in rec.plans if drug in _drugs(p))
        return next(t for t in p.tradeoffs if t.term == "secondary:weight")

    r_lean = planner.recommend(lean.record(), area="t2d", top=60)
    r_heavy = planner.recommend(heavy.record(), area="t2d", top=60)
    assert weight_term(r_lean, "semaglutide").value < 0 and weight_term(r_lean, "semaglutide").utility == 0
    assert weight_term(r_heavy, "semaglutide").utility > 0  # BMI >= 25: weight lost is a benefit
    assert weight_term(r_lean, "insulin glargine").utility < 0  # weight gained is a harm either way


def test_hypoglycaemia_risk_rises_a_little_the_deeper_a_sulfonylurea_drives_hba1c():
    import numpy as np

    from planner.areas import regimen_of
    from planner.guidelines.evaluate import secondary_draws

    area = load_area("t2d")
    g = load_guidelines(area)
    so = next(s for s in g.secondary_outcomes if s.id == "hypoglycaemia")
    ctx = PatientContext.from_record(_t2d("h", 8.0).record(), area, g)
    regs = [
        regimen_of(area, {"metformin": 2000, "glipizide": 10}),
        regimen_of(area, {"metformin": 2000, "sitagliptin": 100}),
    ]

    def draws(level: float, s=so) -> np.ndarray:
        return secondary_draws(
            s, area, regs, ctx, g, 400, np.random.default_rng(0), outcome_draws=np.full((400, 2), level)
        )

    shallow, deep, high = draws(7.2), draws(5.8), draws(8.5)
    assert shallow[:, 0].mean() > 3 * shallow[:, 1].mean()  # sulfonylurea vs DPP-4 inhibitor (RR 4.57)
    # Lipska 2013: RR 1.25 under HbA1c 6% vs 7-7.9%: a little more risk 1.2 points below 7, none above it
    ratio = deep[:, 0].mean() / shallow[:, 0].mean()
    assert 1.1 < ratio < 1.3
    assert np.allclose(high, shallow)
    assert np.allclose(deep[:, 1], shallow[:, 1])  # a DPP-4 inhibitor's risk does not depend on the HbA1c
    # the two-sided form (relative risks measured at the trials' achieved HbA1c) still works: less of the
    # drug's excess above the level, never below baseline
    two = so.model_copy(
        update={"intensity": so.intensity.model_copy(update={"two_sided": True, "log_rr_per_unit": 1.0})}
    )
    hi2, lo2 = draws(8.5, two), draws(7.2, two)
    assert hi2[:, 0].mean() < 0.5 * lo2[:, 0].mean()
    assert np.all(hi2[:, 0] >= hi2[:, 1] - 1e-12) and np.allclose(hi2[:, 1], shallow[:, 1])


def test_hypertension_ckd_by_egfr_gets_an_acei_or_arb_with_hyperkalaemia_shown(planner):
    b = _htn("ckd", 146, "amlodipine", 5)
    b.observation("egfr", 48, date="2024-05-01")
    rec = planner.recommend(b.record(), area="hypertension")
    top = rec.plans[0]
    assert _status(top, "htn.raas-diabetes-albuminuria-ckd").met
    k = next(t for t in top.tradeoffs if t.term == "secondary:hyperkalaemia")
    assert k.value > 0.04  # CKD baseline 4% x the ACEi/ARB relative risk
