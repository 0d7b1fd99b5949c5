"""Therapeutic areas as data: one validated YAML file per area under ``rules/areas/``.

Adding an area is adding a file. ``load_area("t2d")`` returns a frozen :class:`Area`; ``list_areas()`` the ids.

Regimens and effect arithmetic shared by the simulator's truth and the model::

    enumerate_regimens(area, *, doses="reference"|"all", max_drugs=None, include_empty=True) -> list[Regimen]
    is_allowed(area, regimen) -> bool; regimen_violations(area, regimen) -> list[str]
    regimen_of(area, {"metformin": 2000, ...}) -> Regimen; fill_doses(regimen, area) -> Regimen (reference doses)
    dose_scaled_effect(effect, dose / reference_dose, class_prior.dose_response) -> ndarray
    combine_effects(effects[..., k], subadditivity) -> ndarray        # largest full, others x subadditivity
    area.target_for(condition_codes, age) -> float; code_matches(code, patterns) -> bool

The TRUE effect of any regimen in a simulated world: :func:`planner.simulate.expected_outcome`.
"""

from .regimens import (
    combine_effects,
    dose_scaled_effect,
    enumerate_regimens,
    fill_doses,
    is_allowed,
    regimen_of,
    regimen_violations,
)
from .schema import (
    Area,
    ChoiceTerm,
    ClassChoice,
    ClassPrior,
    Combination,
    DoseResponse,
    DrugEntry,
    FeatureSpec,
    Modifier,
    Outcome,
    PgxEffect,
    SimCondition,
    SimQuantity,
    Simulation,
    TargetRule,
    code_matches,
    list_areas,
    load_area,
)

__all__ = [
    "Area",
    "ChoiceTerm",
    "ClassChoice",
    "PgxEffect",
    "SimCondition",
    "SimQuantity",
    "Simulation",
    "code_matches",
    "combine_effects",
    "dose_scaled_effect",
    "enumerate_regimens",
    "fill_doses",
    "is_allowed",
    "regimen_of",
    "regimen_violations",
    "ClassPrior",
    "Combination",
    "DoseResponse",
    "DrugEntry",
    "FeatureSpec",
    "Modifier",
    "Outcome",
    "TargetRule",
    "list_areas",
    "load_area",
]
