"""Cohort simulator with a known true world (see :mod:`planner.simulate.cohort` for the generative story and
the decisions-frame columns, :mod:`planner.simulate.truth` for the truth).

Public API::

    simulate_cohort(area, n, *, seed) -> SimCohort                 # in memory, vectorized
    expected_outcome(area, features, regimens, *, truth_params) -> ndarray (n_rows, n_regimens)
    draw_truth(area, seed) -> TruthParams
    SimCohort.decisions / .episodes / .truth / .patients / .expected_outcome(regimens) / .truth_table()
    SimCohort.truth_rows(patient_ids, dates)   # truth inputs at any (patient, date), e.g. a recommendation date
    SimCohort.records()                         # PatientRecords through the real ingest (no files)
    SimCohort.write_fhir(dir)                                       # FHIR bundles + truth.parquet
"""

from .cohort import SimCohort, simulate_cohort
from .truth import LATENT, TruthParams, draw_truth, drug_effects, expected_outcome

__all__ = ["LATENT", "SimCohort", "TruthParams", "draw_truth", "drug_effects", "expected_outcome", "simulate_cohort"]
