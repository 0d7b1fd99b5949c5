"""Therapeutic areas as data: one validated YAML file per area under ``rules/areas/``.

Adding an area is adding a file. ``load_area("t2d")`` returns a frozen :class:`Area`; ``list_areas()`` the ids.
"""

from .schema import (
    Area,
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
