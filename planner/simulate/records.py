"""PatientRecords of a simulated cohort, through the real ingest (bundles built in memory, no files)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..record import PatientRecord

if TYPE_CHECKING:  # pragma: no cover
    from .result import SimCohort


def build_records(cohort: "SimCohort") -> list[PatientRecord]:
    """One record per simulated patient, in patient order, via :func:`planner.ingest.read_record`."""
    from ..ingest import read_record
    from .fhir import _Writer

    w = _Writer(cohort)
    return [read_record(w.bundle(i)) for i in range(cohort.n)]
