"""planner: personalized treatment plan recommendations from FHIR R4 records.

Pipeline: FHIR bundles -> :class:`~planner.record.PatientRecord` -> features -> Bayesian model samples
candidate regimens -> pharmacogenomic rule layer screens -> ranked plans with uncertainty.
"""

from __future__ import annotations

from .errors import PlannerError
from .version import __version__

__all__ = ["__version__", "PlannerError", "Planner", "Recommendation", "PatientRecord"]


def __getattr__(name: str):  # lazy: importing planner must not import torch
    if name == "Planner":
        from .api import Planner

        return Planner
    if name == "Recommendation":
        from . import render  # noqa: F401 - registers the notebook views of Recommendation
        from .recommendation import Recommendation

        return Recommendation
    if name == "PatientRecord":
        from .record import PatientRecord

        return PatientRecord
    raise AttributeError(f"module 'planner' has no attribute {name!r}")
