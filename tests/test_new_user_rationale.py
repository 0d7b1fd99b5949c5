"""The modifier sentence of a plan's rationale writes the value as a clinician reads it: rounded, with its unit,
and says when it is a population default rather than the patient's measurement.

Found on fixtures/synthea/Morris_Lockman (t2d, as of 2024-06-01): the rationale read "Metformin: smaller effect
expected with baseline 5.58135" (six digits, no unit)."""

from __future__ import annotations

from planner.areas import load_area
from planner.rationale import rationale
from planner.recommendation import PlanDrug, Predicted

PRED = Predicted(mean=5.6, lower=4.6, upper=6.6, level=0.9, obs_lower=4.3, obs_upper=6.9)


def _text(drug: str, rxnorm: str, cls: str, features: dict) -> str:
    return rationale(
        area=load_area("t2d"),
        drugs=[PlanDrug(drug=drug, rxnorm=rxnorm, drug_class=cls, change="continue")],
        stopped=[],
        pred=PRED,
        p_target=0.96,
        baseline=5.58135,
        target=7.0,
        findings=[],
        features=features,
    )


def test_baseline_modifier_is_rounded_with_its_unit() -> None:
    text = _text("metformin", "6809", "biguanide", {"baseline": 5.58135, "baseline_missing": 0.0})
    assert "Metformin: smaller effect expected with baseline 5.6%." in text
    assert "5.58135" not in text


def test_a_population_default_is_named_as_such() -> None:
    # pioglitazone's effect grows with BMI; a BMI not measured is the area's default, not the patient's value
    feats = {"baseline": 8.0, "baseline_missing": 0.0, "bmi": 45.0, "bmi_missing": 1.0}
    text = _text("pioglitazone", "33738", "thiazolidinedione", feats)
    assert "with bmi 45.0 kg/m² (not measured: population default)" in text


def test_a_condition_modifier_reads_as_present_not_as_a_number() -> None:
    # depression: mirtazapine's effect on the PHQ-9 is larger with insomnia (a condition feature, 0 or 1)
    text = rationale(
        area=load_area("depression"),
        drugs=[PlanDrug(drug="mirtazapine", rxnorm="15996", drug_class="nassa", change="continue")],
        stopped=[],
        pred=PRED,
        p_target=0.5,
        baseline=14.0,
        target=5.0,
        findings=[],
        features={"baseline": 14.0, "baseline_missing": 0.0, "insomnia": 1.0},
    )
    assert "Mirtazapine: larger effect expected with insomnia." in text


def test_a_baseline_not_recent_is_named_the_last_value_not_a_default() -> None:
    text = _text("metformin", "6809", "biguanide", {"baseline": 5.58135, "baseline_missing": 1.0})
    assert "with baseline 5.6% (the last value on record, not recent)." in text
