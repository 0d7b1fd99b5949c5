"""Test helpers: :class:`BundleBuilder` writes small, valid FHIR R4 Bundles for tests of every stage.

Example::

    b = BundleBuilder(patient_id="p1", birth_date="1960-01-01", sex="female")
    b.condition("44054006", display="Diabetes mellitus type 2", onset="2019-03-01")
    b.medication("metformin", dose_mg_day=1000, start="2023-01-01")
    b.observation("hba1c", 8.4, date="2024-01-05")
    b.genotype("CYP2C19", "*2/*2")
    record = b.record()          # ingested through planner.ingest, like real input

Codes come from the packaged code tables (``rules/codes/``), so a builder call names a drug, quantity or gene the
way a test reads best ("metformin", "hba1c") and the bundle carries the real codes. Ids are deterministic
(``cond-1``, ``med-1``, ``obs-1``, ...), so the same calls give the same bundle.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any, Iterable

from .errors import ConfigError
from .ingest.codes import LOINC_SYSTEM, code_tables
from .record import PatientRecord

__all__ = ["BundleBuilder"]

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
UCUM = "http://unitsofmeasure.org"
HGNC = "http://www.genenames.org"


def _d(value: str | dt.date | None) -> str | None:
    return value.isoformat() if isinstance(value, dt.date) else value


class BundleBuilder:
    """Build a one-patient FHIR R4 collection Bundle, call by call."""

    def __init__(
        self,
        *,
        patient_id: str = "p1",
        birth_date: str | dt.date | None = "1960-01-01",
        sex: str | None = "female",
        as_of: str | dt.date | None = None,
        deceased: str | dt.date | None = None,
        rules: str | None = None,
    ) -> None:
        self.patient_id = patient_id
        self.birth_date = _d(birth_date)
        self.sex = sex
        self.as_of = _d(as_of)
        self.deceased = _d(deceased)
        self.rules = rules
        self._tables = code_tables(rules)
        self._resources: list[dict[str, Any]] = []
        self._counts: dict[str, int] = {}

    # ---- helpers -----------------------------------------------------------------------------------------
    def _id(self, prefix: str) -> str:
        self._counts[prefix] = self._counts.get(prefix, 0) + 1
        return f"{prefix}-{self._counts[prefix]}"

    def _subject(self) -> dict[str, str]:
        return {"reference": f"Patient/{self.patient_id}"}

    def add(self, resource: dict[str, Any]) -> "BundleBuilder":
        """Add any resource as given (for edge cases the typed methods do not write)."""
        self._resources.append(copy.deepcopy(resource))
        return self

    def _ingredient(self, drug: str):
        t = self._tables
        ing = t.ingredient_for_code(drug) if drug.isdigit() else t.ingredient_by_name(drug)
        if ing is None:
            raise ConfigError(
                "unknown drug for BundleBuilder",
                field="drug",
                value=drug,
                expected="an ingredient name or RxCUI listed in rules/codes/rxnorm.csv",
            )
        return ing

    # ---- resources ----------------------------------------------------------------------------------------
    def condition(
        self,
        code: str,
        display: str | None = None,
        *,
        onset: str | dt.date | None = "2020-01-01",
        icd10: str | None = None,
        status: str = "active",
        abatement: str | dt.date | None = None,
        system: str = SNOMED,
    ) -> str:
        """A Condition coded in SNOMED CT (``system`` to change it), optionally with an ICD-10-CM coding too."""
        rid = self._id("cond")
        coding = [{"system": system, "code": code, **({"display": display} if display else {})}]
        if icd10:
            coding.append({"system": ICD10CM, "code": icd10})
        res: dict[str, Any] = {
            "resourceType": "Condition",
            "id": rid,
            "clinicalStatus": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": status}]
            },
            "verificationStatus": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}
                ]
            },
            "code": {"coding": coding, **({"text": display} if display else {})},
            "subject": self._subject(),
        }
        if onset is not None:
            res["onsetDateTime"] = _d(onset)
        if abatement is not None:
            res["abatementDateTime"] = _d(abatement)
        self._resources.append(res)
        return rid

    def medication(
        self,
        drug: str,
        dose_mg_day: float | None = None,
        *,
        start: str | dt.date | None = "2023-01-01",
        end: str | dt.date | None = None,
        status: str = "active",
        statement: bool = False,
        times_per_day: int = 1,
        status_reason: str | None = None,
    ) -> str:
        """A MedicationRequest (or MedicationStatement) for an ingredient name or RxCUI.

        With ``dose_mg_day`` the dosage says ``dose_mg_day / times_per_day`` mg, ``times_per_day`` times a day,
        so ingest derives exactly ``dose_mg_day``; without it there is no dosage (ingest warns).
        ``status_reason``: the text of ``statusReason`` (why it was stopped).
        """
        ing = self._ingredient(drug)
        rid = self._id("med")
        cc = {"coding": [{"system": RXNORM, "code": ing.rxcui, "display": ing.name}], "text": ing.name}
        if not ing.rxcui:
            cc = {"text": ing.name}
        dosage = []
        if dose_mg_day is not None:
            per = dose_mg_day / times_per_day
            dosage = [
                {
                    "sequence": 1,
                    "timing": {"repeat": {"frequency": times_per_day, "period": 1, "periodUnit": "d"}},
                    "doseAndRate": [{"doseQuantity": {"value": per, "unit": "mg", "system": UCUM, "code": "mg"}}],
                }
            ]
        if statement:
            res: dict[str, Any] = {
                "resourceType": "MedicationStatement",
                "id": rid,
                "status": status,
                "medicationCodeableConcept": cc,
                "subject": self._subject(),
            }
            period = {k: _d(v) for k, v in (("start", start), ("end", end)) if v is not None}
            if period:
                res["effectivePeriod"] = period
            if dosage:
                res["dosage"] = dosage
        else:
            res = {
                "resourceType": "MedicationRequest",
                "id": rid,
                "status": status,
                "intent": "order",
                "medicationCodeableConcept": cc,
                "subject": self._subject(),
            }
            if start is not None:
                res["authoredOn"] = _d(start)
            if dosage:
                res["dosageInstruction"] = dosage
            if end is not None:
                res["dispenseRequest"] = {"validityPeriod": {**({"start": _d(start)} if start else {}), "end": _d(end)}}
        if status_reason is not None:
            res["statusReason"] = [{"text": status_reason}] if statement else {"text": status_reason}
        self._resources.append(res)
        return rid

    def observation(
        self, quantity: str, value: float, unit: str | None = None, *, date: str | dt.date = "2024-01-01"
    ) -> str:
        """An Observation of a quantity name (``"hba1c"``) or LOINC code, in ``unit`` (default: canonical)."""
        t = self._tables
        if quantity in t.quantities:
            q = t.quantities[quantity]
            loinc = q.loinc[0]
        elif quantity in t.loinc_to_quantity:
            q = t.loinc_to_quantity[quantity]
            loinc = quantity
        else:
            raise ConfigError(
                "unknown quantity for BundleBuilder",
                field="quantity",
                value=quantity,
                expected="a quantity name or LOINC code from rules/codes/quantities.yaml",
            )
        unit = q.unit if unit is None else unit
        rid = self._id("obs")
        self._resources.append(
            {
                "resourceType": "Observation",
                "id": rid,
                "status": "final",
                "code": {"coding": [{"system": LOINC_SYSTEM, "code": loinc, "display": q.label}], "text": q.label},
                "subject": self._subject(),
                "effectiveDateTime": _d(date),
                "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
            }
        )
        return rid

    def blood_pressure(
        self, sbp: float, dbp: float, *, date: str | dt.date = "2024-01-01", panel: str = "85354-9"
    ) -> str:
        """A blood pressure panel (85354-9 or 55284-4) with systolic and diastolic components."""
        rid = self._id("obs")
        comp = [
            {
                "code": {"coding": [{"system": LOINC_SYSTEM, "code": self._tables.quantities["sbp"].loinc[0]}]},
                "valueQuantity": {"value": sbp, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"},
            },
            {
                "code": {"coding": [{"system": LOINC_SYSTEM, "code": self._tables.quantities["dbp"].loinc[0]}]},
                "valueQuantity": {"value": dbp, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"},
            },
        ]
        self._resources.append(
            {
                "resourceType": "Observation",
                "id": rid,
                "status": "final",
                "code": {"coding": [{"system": LOINC_SYSTEM, "code": panel}]},
                "subject": self._subject(),
                "effectiveDateTime": _d(date),
                "component": comp,
            }
        )
        return rid

    def allergy(
        self,
        substance: str,
        *,
        system: str = "rxnorm",
        display: str | None = None,
        reactions: Iterable[str] = (),
        category: str = "medication",
        criticality: str | None = "high",
        recorded: str | dt.date | None = "2015-01-01",
    ) -> str:
        """An AllergyIntolerance to a drug (``system="rxnorm"``: ingredient name or RxCUI) or a SNOMED substance."""
        rid = self._id("allergy")
        if system == "rxnorm":
            ing = self._ingredient(substance)
            code = (
                {"coding": [{"system": RXNORM, "code": ing.rxcui, "display": ing.name}], "text": ing.name}
                if ing.rxcui
                else {"text": ing.name}
            )
        elif system == "snomed":
            code = {
                "coding": [{"system": SNOMED, "code": substance, **({"display": display} if display else {})}],
                **({"text": display} if display else {}),
            }
        else:
            raise ConfigError("unknown allergy code system", field="system", value=system, expected="rxnorm or snomed")
        res: dict[str, Any] = {
            "resourceType": "AllergyIntolerance",
            "id": rid,
            "clinicalStatus": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}
                ]
            },
            "category": [category],
            "code": code,
            "patient": self._subject(),
        }
        if criticality:
            res["criticality"] = criticality
        if recorded is not None:
            res["recordedDate"] = _d(recorded)
        reactions = list(reactions)
        if reactions:
            res["reaction"] = [{"manifestation": [{"text": r} for r in reactions]}]
        self._resources.append(res)
        return rid

    def _gene_component(self, gene: str) -> dict[str, Any]:
        hgnc = {v: k for k, v in self._tables.pgx["hgnc"].items()}
        coding: dict[str, Any] = {"system": HGNC, "display": gene}
        if gene in hgnc:
            coding["code"] = hgnc[gene]
        return {
            "code": {
                "coding": [
                    {
                        "system": LOINC_SYSTEM,
                        "code": self._tables.pgx["loinc"]["gene_studied"][0],
                        "display": "Gene studied [ID]",
                    }
                ]
            },
            "valueCodeableConcept": {"coding": [coding]},
        }

    def genotype(self, gene: str, diplotype: str, *, date: str | dt.date = "2022-01-01") -> str:
        """A Genomics Reporting IG genotype Observation (LOINC 84413-4), e.g. ``genotype("CYP2C19", "*2/*2")``."""
        rid = self._id("pgx")
        self._resources.append(
            {
                "resourceType": "Observation",
                "id": rid,
                "status": "final",
                "code": {
                    "coding": [
                        {
                            "system": LOINC_SYSTEM,
                            "code": self._tables.pgx["loinc"]["genotype"][0],
                            "display": "Genotype display name",
                        }
                    ]
                },
                "subject": self._subject(),
                "effectiveDateTime": _d(date),
                "valueCodeableConcept": {"text": f"{gene} {diplotype}"},
                "component": [self._gene_component(gene)],
            }
        )
        return rid

    def phenotype(self, gene: str, phenotype: str, *, date: str | dt.date = "2022-01-01") -> str:
        """An STU1 phenotype Observation (LOINC 53040-2) with the LA answer code for a metabolizer status."""
        la = {v: k for k, v in self._tables.pgx["la_phenotype"].items()}
        term = self._tables.phenotype_term(phenotype) or phenotype
        value: dict[str, Any] = {"text": term}
        if term in la:
            value["coding"] = [{"system": LOINC_SYSTEM, "code": la[term], "display": term}]
        rid = self._id("pgx")
        self._resources.append(
            {
                "resourceType": "Observation",
                "id": rid,
                "status": "final",
                "code": {
                    "coding": [
                        {
                            "system": LOINC_SYSTEM,
                            "code": self._tables.pgx["loinc"]["phenotype"][0],
                            "display": "Genetic variation's effect on drug metabolism",
                        }
                    ]
                },
                "subject": self._subject(),
                "effectiveDateTime": _d(date),
                "valueCodeableConcept": value,
                "component": [self._gene_component(gene)],
            }
        )
        return rid

    def hla(self, allele: str, positive: bool = True, *, date: str | dt.date = "2022-01-01") -> str:
        """An HLA allele status, e.g. ``hla("HLA-B*57:01", positive=True)``."""
        gene, _, rest = allele.partition("*")
        if not gene.upper().startswith("HLA-") or not rest:
            raise ConfigError("HLA allele", field="allele", value=allele, expected="e.g. HLA-B*57:01")
        status = "positive" if positive else "negative"
        la = {v: k for k, v in self._tables.pgx["la_status"].items()}
        rid = self._id("pgx")
        self._resources.append(
            {
                "resourceType": "Observation",
                "id": rid,
                "status": "final",
                "code": {
                    "coding": [
                        {
                            "system": LOINC_SYSTEM,
                            "code": self._tables.pgx["loinc"]["genotype"][0],
                            "display": "Genotype display name",
                        }
                    ],
                    "text": allele,
                },
                "subject": self._subject(),
                "effectiveDateTime": _d(date),
                "valueCodeableConcept": {
                    "coding": [{"system": LOINC_SYSTEM, "code": la[status], "display": status}],
                    "text": f"{allele} {status}",
                },
                "component": [self._gene_component(gene.upper())],
            }
        )
        return rid

    # ---- output --------------------------------------------------------------------------------------------
    def patient_resource(self) -> dict[str, Any]:
        p: dict[str, Any] = {"resourceType": "Patient", "id": self.patient_id}
        if self.sex:
            p["gender"] = self.sex
        if self.birth_date:
            p["birthDate"] = self.birth_date
        if self.deceased:
            p["deceasedDateTime"] = self.deceased
        return p

    def build(self, *, bundle_type: str = "collection") -> dict[str, Any]:
        """The FHIR Bundle (a fresh dict each call)."""
        entries = [self.patient_resource(), *copy.deepcopy(self._resources)]
        return {
            "resourceType": "Bundle",
            "type": bundle_type,
            "entry": [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r} for r in entries],
        }

    def record(self, **ingest_kwargs: Any) -> PatientRecord:
        """Ingest the built bundle with :func:`planner.ingest.read_record` (``as_of`` defaults to the builder's)."""
        from .ingest import read_record

        if self.as_of is not None:
            ingest_kwargs.setdefault("as_of", self.as_of)
        if self.rules is not None:
            ingest_kwargs.setdefault("rules", self.rules)
        return read_record(self.build(), **ingest_kwargs)
