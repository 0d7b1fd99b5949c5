"""Doses as prescribed (planner.dosing): every formulary drug, at every dose level, in every output."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.areas import list_areas, load_area
from planner.dosing import dosage, dose_text, load_prescribing
from planner.errors import RuleError
from planner.rank import RankingConfig, describe_changes, rank_plans
from planner.recommendation import OutcomeSummary, Provenance, Recommendation
from planner.record import DrugDose, Regimen
from planner.render import render
from planner.render.fhir import render_fhir

AREAS = list_areas()
FORMS = load_prescribing()


def _all_levels():
    for area_id in AREAS:
        area = load_area(area_id)
        for d in area.formulary:
            # dose levels, the label maximum and a rule-halved lowest dose (adjust_dose findings)
            for mg in sorted({*d.doses, d.max_dose, d.doses[0] / 2}):
                yield area_id, d.ingredient, mg


LEVELS = list(_all_levels())


def _implied_mg_day(ingredient: str, mg_day: float) -> float:
    form = FORMS.form(ingredient)
    dz = dosage(ingredient, mg_day)
    per = (form.mg_per_unit or 1.0) * dz.amount * dz.times
    return per / 7.0 if dz.period == "week" else per


def test_every_formulary_drug_has_a_prescribing_form():
    missing = [(a, d.ingredient) for a in AREAS for d in load_area(a).formulary if FORMS.form(d.ingredient) is None]
    assert not missing


@pytest.mark.parametrize(
    ("mg", "ingredient", "text"),
    [
        (1.456, "insulin glargine", "40 units once daily"),
        (0.364, "insulin glargine", "10 units once daily"),
        (0.286, "semaglutide", "2 mg once weekly"),
        (0.143, "semaglutide", "1 mg once weekly"),
        (0.107, "dulaglutide", "0.75 mg once weekly"),
        (2000, "metformin", "1000 mg twice daily"),
        (500, "metformin", "500 mg once daily"),
        (20, "glipizide", "10 mg twice daily"),
        (10, "glipizide", "10 mg once daily"),
        (6.25, "carvedilol", "3.125 mg twice daily"),
        (40, "atorvastatin", "40 mg once daily"),
        (1.8, "liraglutide", "1.8 mg once daily"),
    ],
)
def test_doses_read_as_a_clinician_writes_them(mg, ingredient, text):
    assert dosage(ingredient, mg).text == text


def test_unknown_dose_and_unknown_drug():
    assert dosage("metformin", None) is None
    assert dosage("metformin", float("nan")) is None
    odd = dosage("not-a-formulary-drug", 20)
    assert odd is not None and "no prescribing form" in odd.text


@settings(max_examples=150, deadline=None)
@given(idx=st.integers(0, len(LEVELS) - 1), factor=st.floats(0.3, 1.5))
def test_written_dose_is_the_model_dose(idx, factor):
    """Any mg/day (a level, or one a rule scaled) is written in the drug's unit and schedule, and the written dose
    is the model's dose: within the 5% strength snap, or half a unit of insulin."""
    _, ingredient, mg = LEVELS[idx]
    mg = mg * factor
    form = FORMS.form(ingredient)
    dz = dosage(ingredient, mg)
    assert dz.period == form.period and dz.unit == FORMS.units[form.unit].display
    tol = max(0.051 * mg, 0.5 * (form.mg_per_unit or 0) * (7 if form.period == "week" else 1) + 1e-3 * mg)
    assert abs(_implied_mg_day(ingredient, mg) - mg) <= tol


def _recommendation(area, regimen: Regimen) -> Recommendation:
    current = Regimen()
    rng = np.random.default_rng(0)
    mean = 7.0 + 0.1 * rng.standard_normal((200, 1))
    plans = rank_plans(
        area=area,
        current=current,
        candidates=[regimen],
        findings=[[]],
        mean_draws=mean,
        pred_draws=mean + 0.1,
        baseline=8.0,
        target=area.outcome.target,
        config=RankingConfig.load(),
    )
    o = area.outcome
    return Recommendation(
        patient_id=None,
        area=area.id,
        area_name=area.name,
        outcome=OutcomeSummary(
            quantity=o.quantity,
            loinc=o.loinc[0],
            unit=o.unit,
            direction=o.direction,
            baseline=8.0,
            baseline_date=dt.date(2024, 1, 1),
            target=o.target,
        ),
        current_regimen=describe_changes(regimen, regimen, area)[0],
        plans=tuple(plans),
        provenance=Provenance(
            planner_version="t",
            rules_version="t",
            area_version="t",
            model="t",
            seed=0,
            as_of=dt.date(2024, 6, 1),
            num_samples=200,
            candidates_considered=1,
        ),
    )


@pytest.mark.parametrize(("area_id", "ingredient", "mg"), LEVELS)
def test_no_output_writes_a_dose_in_a_unit_or_schedule_the_drug_is_not_prescribed_in(area_id, ingredient, mg):
    area = load_area(area_id)
    e = area.drug(ingredient)
    rec = _recommendation(
        area, Regimen.of([DrugDose(ingredient=e.ingredient, rxcui=e.rxcui, dose_mg_day=mg, drug_class=e.drug_class)])
    )
    form = FORMS.form(ingredient)
    want = dosage(ingredient, mg)
    unit = FORMS.units[form.unit].display
    # JSON: the prescribed dose beside the model's mg/day
    doc = json.loads(render(rec, "json"))
    pd = doc["plans"][0]["regimen"][0]
    assert pd["dose_mg_day"] == mg and pd["dosage"]["text"] == want.text
    assert pd["dosage"]["period"] == form.period and pd["dosage"]["unit"] == unit
    # table and rationale: the prescribed text, never mg/day, never a daily schedule for a weekly drug
    table = render(rec, "table")
    rationale = rec.plans[0].rationale
    for text in (table, rationale):
        assert want.text in text
        assert not re.search(r"mg ?/ ?d(ay)?\b|mg per day", text)
        assert not re.search(
            rf"{re.escape(ingredient)} [\d.]+ (mg|units) (once|twice|three|four)"
            rf"{' daily' if form.period == 'week' else ' weekly'}",
            text,
        )
        if form.unit != "mg":
            assert not re.search(rf"{re.escape(ingredient)} [\d.]+ mg", text)
    # HTML (planner.render.html, issue 15): the same text, never mg/day
    page = render(rec, "html")
    assert want.text in page and not re.search(r"mg ?/ ?d(ay)?\b|mg per day|mg&nbsp;/", page)
    # FHIR: doseQuantity in the drug's UCUM unit, timing per day or per week, route coded
    bundle = render_fhir(rec)
    reqs = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "MedicationRequest"]
    assert reqs
    for r in reqs:
        di = r["dosageInstruction"][0]
        assert di["text"] == want.text
        q = di["doseAndRate"][0]["doseQuantity"]
        assert q["code"] == FORMS.units[form.unit].ucum and q["value"] == want.amount
        rep = di["timing"]["repeat"]
        assert rep["periodUnit"] == ("wk" if form.period == "week" else "d") and rep["frequency"] == want.times
        assert di["route"]["coding"][0]["code"] == FORMS.routes[form.route].code


def test_dose_text_uses_the_plan_drugs_dosage():
    area = load_area("t2d")
    e = area.drug("semaglutide")
    drugs, _ = describe_changes(
        Regimen(), Regimen.of([DrugDose(ingredient=e.ingredient, rxcui=e.rxcui, dose_mg_day=0.286)]), area
    )
    assert drugs[0].dosage is not None and dose_text(drugs[0]) == "2 mg once weekly"
    assert dose_text(drugs[0].model_copy(update={"dose_mg_day": None, "dosage": None})) == ""


def test_bad_prescribing_file_names_the_file(tmp_path):
    from planner.rule_files import rules_dir

    root = tmp_path / "rules"
    shutil.copytree(rules_dir(), root)
    path = root / "prescribing.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["drugs"]["metformin"]["route"] = "intranasal"
    path.write_text(yaml.safe_dump(raw))
    from planner.manifest import main as pin

    pin([str(root)])  # re-pinned: the schema error is the one under test (an unpinned edit is refused earlier)
    with pytest.raises(RuleError) as err:
        load_prescribing(root)
    assert "prescribing.yaml" in str(err.value) and "intranasal" in str(err.value)
