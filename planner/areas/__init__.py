"""Therapeutic areas as data: one validated YAML file per area under ``rules/areas/``.

Adding an area is adding a file. ``load_area("t2d")`` returns a frozen :class:`Area`; ``list_areas()`` the ids.
"""

from .regimens import (
    combine_effects,
    dose_scaled_effect,
    enumerate_regimens,
    is_allowed,
    regimen_of,
    regimen_violations,
)
from .schema import (
    Area,
    ChoiceTerm,
    ClassChoice,
    PgxEffect,
    SimCondition,
    SimQuantity,
    Simulation,
    code_matches,
    ClassPrior,
    Combination,
    DoseResponse,
    DrugEntry,
    FeatureSpec,
    Modifier,
    Outcome,
    TargetRule,
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
