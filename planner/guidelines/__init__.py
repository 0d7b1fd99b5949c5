"""Guideline indications, secondary outcomes and harms as data (``rules/guidelines/<area>.yaml``).

    g = load_guidelines(area)                       # validated against the area's formulary; None if no file
    ctx = PatientContext.from_record(record, area, g)  # condition codes, labs, age, medication courses
    applicable_indications(g, ctx) -> [Applicable]  # what the guidelines ask for this patient
    indicated_candidates(area, record, candidates) -> [Regimen]  # add the indicated drug where it is missing
    utility_terms(...) -> UtilityTerms              # per-draw utility of secondary outcomes, indications, preferences

The ranking (:mod:`planner.rank`) adds these terms to the outcome utility with ``rules/ranking.yaml``'s weights.
"""

from .candidates import add_indicated, indicated_candidates
from .context import Course, PatientContext, medication_courses
from .evaluate import (
    PREFERENCE_MEASURES,
    SECONDARY_MEASURE,
    Applicable,
    Term,
    UtilityTerms,
    applicable_indications,
    utility_terms,
)
from .schema import Guidelines, Indication, SecondaryOutcome, load_guidelines, secondary_outcome_ids

__all__ = [
    "Applicable",
    "Course",
    "add_indicated",
    "Guidelines",
    "Indication",
    "PREFERENCE_MEASURES",
    "SECONDARY_MEASURE",
    "PatientContext",
    "SecondaryOutcome",
    "Term",
    "UtilityTerms",
    "applicable_indications",
    "indicated_candidates",
    "load_guidelines",
    "medication_courses",
    "secondary_outcome_ids",
    "utility_terms",
]
