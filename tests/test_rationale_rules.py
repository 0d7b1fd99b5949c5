"""Which effect modifiers a rationale names is data: ``rules/rationale.yaml`` ``modifiers.min_share_of_class_effect``
(the packaged value, 15%, writes what it wrote when the share was a literal in planner/rationale.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from planner.areas import load_area
from planner.errors import RuleError
from planner.manifest import main as pin
from planner.rationale import modifier_share, rationale
from planner.recommendation import PlanDrug, Predicted
from planner.rule_files import read_yaml, rules_dir

PRED = Predicted(mean=7.4, lower=6.4, upper=8.4, level=0.9, obs_lower=6.1, obs_upper=8.7)
METFORMIN = PlanDrug(drug="metformin", rxnorm="6809", drug_class="biguanide", change="continue")
SAID = "Metformin: smaller effect expected with baseline"


def _rules_with(tmp_path: Path, share: object) -> Path:
    root = tmp_path / "rules"
    shutil.copytree(rules_dir(), root)
    path = root / "rationale.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["modifiers"]["min_share_of_class_effect"] = share
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    pin([str(root)])  # re-pinned: the setting is under test (an unpinned edit is refused earlier)
    return root


def _text(baseline: float, rules: Path | None = None) -> str:
    return rationale(
        area=load_area("t2d"),
        drugs=[METFORMIN],
        stopped=[],
        pred=PRED,
        p_target=0.4,
        baseline=baseline,
        target=7.0,
        findings=[],
        features={"baseline": baseline, "baseline_missing": 0.0},
        rules=rules,
    )


def _share_of(baseline: float) -> float:
    """How much metformin's baseline modifier moves its class effect at ``baseline`` (its share of the effect)."""
    prior = load_area("t2d").class_prior("biguanide")
    m = next(m for m in prior.modifiers if m.feature == "baseline")
    return abs(m.per_unit * (baseline - m.center)) / abs(prior.effect_on_scale())


def test_the_packaged_share_is_sourced_and_versioned() -> None:
    raw = read_yaml(rules_dir() / "rationale.yaml")
    assert raw["id"] == "rationale" and raw["version"] and raw["source"]
    assert modifier_share() == raw["modifiers"]["min_share_of_class_effect"] == 0.15


def test_the_rules_file_decides_which_modifiers_are_named(tmp_path) -> None:
    # metformin's effect shrinks with a lower baseline HbA1c: 7.0% moves it by 27%, 7.5% by 13%
    assert _share_of(7.0) == pytest.approx(0.268, abs=1e-3) and _share_of(7.5) == pytest.approx(0.134, abs=1e-3)
    assert f"{SAID} 7.0%." in _text(7.0) and SAID not in _text(7.5)  # the packaged 15%
    lower, higher = _rules_with(tmp_path / "lower", 0.10), _rules_with(tmp_path / "higher", 0.30)
    assert f"{SAID} 7.5%." in _text(7.5, lower)
    assert SAID not in _text(7.0, higher)


@pytest.mark.parametrize("bad", [1.5, -0.1, "15%", True, None])
def test_a_bad_share_names_the_file_and_field(tmp_path, bad) -> None:
    root = _rules_with(tmp_path, bad)
    with pytest.raises(RuleError) as err:
        modifier_share(root)
    msg = str(err.value)
    assert "rationale.yaml" in msg and "modifiers.min_share_of_class_effect" in msg and "[0, 1)" in msg
