"""The documented wording -> action mapping (rules/pgx/action_map.yaml) on representative CPIC sentences."""

from __future__ import annotations

import pytest

from planner.errors import RuleError
from planner.safety.cpic_import import ActionMap, compose_message, map_recommendation


@pytest.fixture(scope="module")
def amap() -> ActionMap:
    return ActionMap.load()


@pytest.mark.parametrize(
    "text,drug,action,factor,maximum",
    [
        ("Abacavir is not recommended", "abacavir", "exclude", None, None),
        ("Allopurinol is contraindicated", "allopurinol", "exclude", None, None),
        (
            "Avoid standard dose (75 mg/day) clopidogrel if possible. Use prasugrel or ticagrelor at standard dose if no "
            "contraindication.",
            "clopidogrel",
            "exclude",
            None,
            None,
        ),
        ("If patient is carbamazepine-naïve, do not use carbamazepine.", "carbamazepine", "exclude", None, None),
        (
            "Select alternative drug not predominantly metabolized by CYP2D6 (i.e., granisetron).",
            "ondansetron",
            "exclude",
            None,
            None,
        ),
        (
            "Reduce starting dose by 50% followed by titration of dose based on toxicity.",
            "fluorouracil",
            "adjust_dose",
            0.5,
            None,
        ),
        (
            "Consider a 25% reduction of recommended starting dose. Utilize therapeutic drug monitoring.",
            "nortriptyline",
            "adjust_dose",
            0.75,
            None,
        ),
        (
            "Start with reduced starting doses (30%-80% of normal dose) if normal starting dose is 2-3 mg/kg/day",
            "azathioprine",
            "adjust_dose",
            0.8,
            None,
        ),
        (
            "Prescribe ≤20mg as a starting dose and adjust doses of rosuvastatin based on disease-specific guidelines.",
            "rosuvastatin",
            "adjust_dose",
            None,
            20,
        ),
        (
            "Consider initiating efavirenz with decreased dose of 400 or 200 mg/day",
            "efavirenz",
            "adjust_dose",
            None,
            400,
        ),
        (
            "Increase starting daily dose by 100%. Daily dose may be given in divided doses.",
            "omeprazole",
            "adjust_dose",
            2.0,
            None,
        ),
        ("Initiate therapy with recommended starting dose.", "codeine", "info", None, None),
        (
            "Initiate standard starting daily dose. For chronic therapy (>12 weeks) and efficacy achieved, consider 50% "
            "reduction in daily dose and monitor for continued efficacy.",
            "omeprazole",
            "caution",
            None,
            None,
        ),
        ("No reason to avoid based on G6PD status", "dapsone", "info", None, None),
        (
            "There is no need to avoid prescribing of atazanavir based on UGT1A1 genetic test result.",
            "atazanavir",
            "info",
            None,
            None,
        ),
        ("If considering clopidogrel, use at standard dose (75 mg/day)", "clopidogrel", "info", None, None),
        (
            "Avoid moderate and strong CYP2D6 inhibitors. Initiate therapy with recommended standard of care dosing "
            "(tamoxifen 20 mg/day).",
            "tamoxifen",
            "caution",
            None,
            None,
        ),
        (
            "Use drug cautiously; if used, close monitoring for acute exacerbation of chronic hemolysis is recommended",
            "dapsone",
            "caution",
            None,
            None,
        ),
        ("No recommendation", "amitriptyline", "info", None, None),
    ],
)
def test_mapping(amap, text, drug, action, factor, maximum):
    m = map_recommendation(text, drug=drug, amap=amap)
    assert (m.action, m.dose_factor, m.max_dose_mg_day) == (action, factor, maximum)


def test_alternatives_are_extracted(amap):
    m = map_recommendation(
        "Avoid standard dose clopidogrel (75 mg) if possible. Use prasugrel or ticagrelor at "
        "standard dose if no contraindication.",
        drug="clopidogrel",
        amap=amap,
    )
    assert m.alternatives == ("prasugrel", "ticagrelor")


def test_adjust_dose_without_a_figure_is_an_error(amap):
    bad = ActionMap({"rules": [{"id": "x", "pattern": "reduce", "action": "adjust_dose"}], "dose_patterns": []})
    with pytest.raises(RuleError, match="without a readable dose"):
        map_recommendation("Reduce the dose somewhat", drug="x", amap=bad)


def test_message_is_short_and_own_words(amap):
    m = map_recommendation("Avoid codeine use because of potential for serious toxicity.", drug="codeine", amap=amap)
    msg = compose_message("codeine", [("CYP2D6", "≥3.0")], m, "general")
    assert msg == "Do not use codeine with CYP2D6 activity score ≥3.0."
    long = compose_message(
        "amitriptyline", [("CYP2C19", "Likely Intermediate Metabolizer"), ("CYP2D6", "≥3.25")], m, "general"
    )
    assert len(long) <= 140
