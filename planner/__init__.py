"""planner: personalized treatment plan recommendations from FHIR R4 records.

Pipeline: FHIR bundles -> :class:`~planner.record.PatientRecord` -> features -> Bayesian model samples
candidate regimens -> pharmacogenomic rule layer screens -> ranked plans with uncertainty.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import PlannerError  # noqa: E402

__all__ = ["__version__", "PlannerError"]
