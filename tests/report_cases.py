"""Patients the report tests render: the Synthea fixtures, the PGx fixtures and a few built vignettes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from planner.ingest import read_record
from planner.record import PatientRecord
from planner.testing import BundleBuilder

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
MARKUP = "<script>alert('x')</script><img src=x onerror=alert(1)>"


def depression_vignette() -> dict[str, Any]:
    """CYP2C19 poor metabolizer, CYP2D6 indeterminate (unknown allele), on omeprazole, PHQ-9 18."""
    b = BundleBuilder(patient_id="vignette-pgx", birth_date="1978-03-02", sex="female")
    b.condition("35489007", display="Depressive disorder", onset="2023-10-01")
    b.observation("phq9", 18, date="2024-05-20")
    b.genotype("CYP2C19", "*2/*2")
    b.genotype("CYP2D6", "*1/*999")
    b.medication("omeprazole", 20, start="2024-01-10")
    return b.build()


def markup_vignette() -> dict[str, Any]:
    """EHR text fields that carry markup: it must show as text and never run or load anything."""
    b = BundleBuilder(patient_id="vignette-markup", birth_date="1960-05-05", sex="male")
    b.condition("44054006", display="Diabetes " + MARKUP, onset="2015-01-01")
    b.observation("hba1c", 8.6, date="2024-05-01")
    b.observation("egfr", 72, date="2024-05-01")
    b.medication("metformin", 1000, start="2020-01-01")
    b.add(
        {
            "resourceType": "MedicationRequest",
            "id": "unresolved-1",
            "status": "active",
            "intent": "order",
            "subject": b._subject(),
            "authoredOn": "2024-02-01",
            "medicationCodeableConcept": {"text": "Herbal tonic " + MARKUP},
        }
    )
    return b.build()


def cases() -> list[tuple[str, PatientRecord]]:
    """(name, record) for every patient the browser test opens."""
    out = [(p.stem.split("_")[0].lower(), read_record(p)) for p in sorted((FIXTURES / "synthea").glob("*.json"))]
    out += [
        (p.stem, read_record(p))
        for p in (
            FIXTURES / "fhir" / "pgx_genomics_ig.json",
            FIXTURES / "fhir" / "pgx_hla.json",
            FIXTURES / "fhir" / "medication_reference_us_core.json",
        )
    ]
    pharmcat = [FIXTURES / "pharmcat" / "sample.phenotype.json", FIXTURES / "pharmcat" / "outside_calls.tsv"]
    b = BundleBuilder(patient_id="vignette-pharmcat", birth_date="1970-01-01", sex="male")
    b.condition("55822004", display="Hyperlipidemia", onset="2019-01-01")
    b.observation("ldl", 168, date="2024-04-02")
    out.append(("pharmcat", read_record(b.build(), pharmcat=pharmcat)))
    out.append(("depression-pgx", read_record(depression_vignette(), as_of="2024-06-01")))
    b = BundleBuilder(patient_id="vignette-no-outcome", birth_date="1955-07-01", sex="female")
    b.condition("44054006", display="Diabetes mellitus type 2", onset="2018-01-01")
    b.observation("egfr", 38, date="2024-03-01")
    b.medication("metformin", 2000, start="2019-01-01")
    out.append(("no-outcome", read_record(b.build(), as_of="2024-06-01")))  # no HbA1c: no plan, exclusions still
    out.append(("markup", read_record(markup_vignette(), as_of="2024-06-01")))
    return out
