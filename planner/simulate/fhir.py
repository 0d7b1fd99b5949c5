"""Write a simulated cohort as FHIR R4 transaction bundles shaped like Synthea's, plus its truth.

Layout of ``out_dir``::

    fhir/<patient_id>.json     one transaction Bundle per patient (Patient, Condition, MedicationRequest,
                               Observation labs/vitals/surveys and genotype results, AllergyIntolerance)
    truth.parquet              every decision point (SimCohort.decisions without object columns) plus
                               ``truth:<regimen key>``: the TRUE expected follow-up under every regimen of
                               ``enumerate_regimens(area, doses="reference")`` (or those given)
    truth_params.yaml          the true world (TruthParams.to_dict(); TruthParams.from_dict(yaml.safe_load(...)))
    simulation.yaml            area, area version, seed, n, rules version, counts

The metadata is YAML, not JSON, so that the whole folder can be handed to ``planner.ingest.read_records`` (which
reads every .json file under a folder) as well as its ``fhir/`` subfolder.

Resources follow Synthea's shapes: ``urn:uuid`` fullUrls with ``request: POST``; MedicationRequest with an RxNorm
ingredient coding, a display with the per-dose strength, ``dosageInstruction`` (timing + doseQuantity in mg) and
``dispenseRequest.validityPeriod`` (end written when the drug stopped; a dose change ends the earlier request,
sometimes without an end date, as the episode rules allow); blood pressure as the 85354-9 panel with systolic
and diastolic components; genotypes in the Genomics Reporting IG form (84413-4, ``"GENE *a/*b"``, gene
component 48018-6 with its HGNC id). Output is byte-identical for the same area, n and seed (orjson, no clocks).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from ..errors import ConfigError
from ..record import Regimen

if TYPE_CHECKING:  # pragma: no cover
    from .result import SimCohort

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
HGNC = "http://www.genenames.org"
OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"
_TERM = "http://terminology.hl7.org/CodeSystem/"
COND_CLINICAL = {"coding": [{"system": _TERM + "condition-clinical", "code": "active"}]}
COND_VERIFIED = {"coding": [{"system": _TERM + "condition-ver-status", "code": "confirmed"}]}
ALLERGY_CLINICAL = {"coding": [{"system": _TERM + "allergyintolerance-clinical", "code": "active"}]}
ALLERGY_VERIFIED = {"coding": [{"system": _TERM + "allergyintolerance-verification", "code": "confirmed"}]}
DOSE_ORDERED = {"coding": [{"system": _TERM + "dose-rate-type", "code": "ordered", "display": "Ordered"}]}
GENOTYPE_PROFILE = "http://hl7.org/fhir/uv/genomics-reporting/StructureDefinition/genotype"
BP_PANEL = ("85354-9", "Blood pressure panel with all children optional")
DBP = ("8462-4", "Diastolic blood pressure")
GENOTYPE = ("84413-4", "Genotype display name")
GENE_STUDIED = ("48018-6", "Gene studied [ID]")


def _uuid(seed: bytes, k: int) -> str:
    h = hashlib.blake2b(seed + k.to_bytes(4, "little"), digest_size=16).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def _dt(date: dt.date) -> str:
    return date.isoformat() + "T09:00:00+00:00"


class _Entries:
    """A bundle's entries being written: ``urn:uuid`` fullUrls and POST requests, ids derived from the patient."""

    def __init__(self, seed: bytes) -> None:
        self.seed = seed
        self.counter = 0
        self.entries: list[dict[str, Any]] = []

    def add(self, res: dict[str, Any], rid: str | None = None) -> None:
        if rid is None:
            self.counter += 1
            rid = _uuid(self.seed, self.counter)
        res["id"] = rid
        self.entries.append(
            {"fullUrl": f"urn:uuid:{rid}", "resource": res, "request": {"method": "POST", "url": res["resourceType"]}}
        )


class _Writer:
    def __init__(self, cohort: "SimCohort") -> None:
        self.c = cohort
        self.area = cohort.area
        self.sim = cohort.area.simulation
        self.index = cohort.patients["index_date"].dt.date.tolist()
        self.birth = cohort.patients["birth_date"].dt.date.tolist()
        self.sex = cohort.patients["sex"].tolist()
        self.ids = cohort.patients["patient_id"].tolist()
        logs = cohort.logs
        n = cohort.n
        self.obs = {}
        for q, (pid, day, val) in logs.obs.items():
            bounds = np.searchsorted(pid, np.arange(n + 1))
            self.obs[q] = (bounds, day.tolist(), val.tolist())
        self.tables = {}
        for name in ("meds", "conditions", "pgx", "allergies"):
            df = getattr(logs, name)
            bounds = np.searchsorted(df["pid"].to_numpy(), np.arange(n + 1)) if len(df) else np.zeros(n + 1, dtype=int)
            self.tables[name] = (bounds, df.to_dict("records"))
        self.qspec = {q.quantity: q for q in self.sim.quantities}
        self.dbp_rng = np.random.default_rng([cohort.seed, 3571, n])
        self.dbp_noise = self.dbp_rng.normal(0.0, 5.0, max(len(logs.obs[self.area.outcome.quantity][0]), 1))
        self.dbp_k = 0

    def day(self, i: int, d: int) -> dt.date:
        return self.index[i] + dt.timedelta(days=int(d))

    def bundle(self, i: int) -> dict[str, Any]:
        """Patient ``i``'s transaction bundle: Patient, Conditions, AllergyIntolerances, MedicationRequests,
        Observations (outcome and other quantities), genotype Observations; in that order."""
        pid = self.ids[i]
        b = _Entries(hashlib.blake2b(pid.encode(), digest_size=8).digest())
        b.add(
            {
                "resourceType": "Patient",
                "name": [{"use": "official", "family": "Simulated", "given": [f"Patient {i}"]}],
                "gender": self.sex[i],
                "birthDate": self.birth[i].isoformat(),
            },
            rid=pid,
        )
        subject = {"reference": f"urn:uuid:{pid}"}
        self.conditions(i, b, subject)
        self.allergies(i, b, subject)
        self.medication_requests(i, b, subject)
        self.observations(i, b, subject)
        self.genotypes(i, b, subject)
        return {"resourceType": "Bundle", "type": "transaction", "entry": b.entries}

    def rows(self, table: str, i: int) -> list[dict[str, Any]]:
        bounds, rows = self.tables[table]
        return rows[bounds[i] : bounds[i + 1]]

    def conditions(self, i: int, b: "_Entries", subject: dict[str, str]) -> None:
        for r in self.rows("conditions", i):
            onset = _dt(self.day(i, r["onset"]))
            b.add(
                {
                    "resourceType": "Condition",
                    "clinicalStatus": COND_CLINICAL,
                    "verificationStatus": COND_VERIFIED,
                    "code": {
                        "coding": [{"system": SNOMED, "code": r["code"], "display": r["display"]}],
                        "text": r["display"],
                    },
                    "subject": subject,
                    "onsetDateTime": onset,
                    "recordedDate": onset,
                }
            )

    def allergies(self, i: int, b: "_Entries", subject: dict[str, str]) -> None:
        for r in self.rows("allergies", i):
            drug = self.area.formulary[int(r["drug"])]
            b.add(
                {
                    "resourceType": "AllergyIntolerance",
                    "clinicalStatus": ALLERGY_CLINICAL,
                    "verificationStatus": ALLERGY_VERIFIED,
                    "type": "allergy",
                    "category": ["medication"],
                    "criticality": "high",
                    "code": {
                        "coding": [{"system": RXNORM, "code": drug.rxcui, "display": drug.ingredient}],
                        "text": drug.ingredient,
                    },
                    "patient": subject,
                    "recordedDate": _dt(self.day(i, r["day"])),
                }
            )

    def medication_requests(self, i: int, b: "_Entries", subject: dict[str, str]) -> None:
        for r in self.rows("meds", i):
            drug = self.area.formulary[int(r["drug"])]
            dose = float(r["dose"])
            times = 2 if dose >= 1000 and (dose / 2).is_integer() else 1
            per = dose / times
            start = _dt(self.day(i, r["start"]))
            validity: dict[str, str] = {"start": start}
            end = r["end"]
            if end is not None and not (isinstance(end, float) and np.isnan(end)) and r["end_written"]:
                validity["end"] = _dt(self.day(i, int(end)))
            label = f"{drug.ingredient} {per:g} MG"
            b.add(
                {
                    "resourceType": "MedicationRequest",
                    "status": r["status"],
                    "intent": "order",
                    "medicationCodeableConcept": {
                        "coding": [{"system": RXNORM, "code": drug.rxcui, "display": label}],
                        "text": label,
                    },
                    "subject": subject,
                    "authoredOn": start,
                    "dosageInstruction": [
                        {
                            "sequence": 1,
                            "timing": {"repeat": {"frequency": times, "period": 1, "periodUnit": "d"}},
                            "asNeededBoolean": False,
                            "doseAndRate": [
                                {
                                    "type": DOSE_ORDERED,
                                    "doseQuantity": {"value": per, "unit": "mg", "system": UCUM, "code": "mg"},
                                }
                            ],
                        }
                    ],
                    "dispenseRequest": {"validityPeriod": validity, "numberOfRepeatsAllowed": 3},
                    **({"statusReason": {"text": why}} if isinstance(why := r.get("stop_reason"), str) else {}),
                }
            )

    def observations(self, i: int, b: "_Entries", subject: dict[str, str]) -> None:
        """The outcome and the other quantities; systolic blood pressure as the panel with a diastolic part."""
        out = self.area.outcome
        for q, (bounds, days, vals) in self.obs.items():
            lo, hi = bounds[i], bounds[i + 1]
            if q == out.quantity:
                loinc, display, unit = out.loinc[0], self.sim.outcome_display, out.unit
                cat, decimals = self.sim.outcome_category, self.sim.outcome_decimals
            else:
                spec = self.qspec[q]
                loinc, display, unit, cat, decimals = spec.loinc, spec.display, spec.unit, spec.category, spec.decimals
            for k in range(lo, hi):
                code = {"coding": [{"system": LOINC, "code": loinc, "display": display}], "text": display}
                value = vals[k]
                value = int(value) if decimals == 0 else value
                when = _dt(self.day(i, days[k]))
                vq = {"value": value, "unit": unit, "system": UCUM, "code": unit}
                res: dict[str, Any] = {
                    "resourceType": "Observation",
                    "status": "final",
                    "category": [{"coding": [{"system": OBS_CAT, "code": cat, "display": cat}]}],
                    "code": code,
                    "subject": subject,
                    "effectiveDateTime": when,
                    "issued": when,
                }
                if q == "sbp":
                    res["code"] = {
                        "coding": [{"system": LOINC, "code": BP_PANEL[0], "display": BP_PANEL[1]}],
                        "text": BP_PANEL[1],
                    }
                    res["component"] = [self.diastolic(value), {"code": code, "valueQuantity": vq}]
                else:
                    res["valueQuantity"] = vq
                b.add(res)

    def diastolic(self, sbp: float) -> dict[str, Any]:
        """The panel's diastolic component, drawn around the systolic value (its own seeded noise)."""
        dbp = int(round(0.5 * sbp + 12 + self.dbp_noise[self.dbp_k % self.dbp_noise.size]))
        self.dbp_k += 1
        return {
            "code": {"coding": [{"system": LOINC, "code": DBP[0], "display": DBP[1]}], "text": DBP[1]},
            "valueQuantity": {"value": dbp, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"},
        }

    def genotypes(self, i: int, b: "_Entries", subject: dict[str, str]) -> None:
        """Genotype results in the Genomics Reporting IG form."""
        for r in self.rows("pgx", i):
            gene = r["gene"]
            hgnc = self.c_hgnc(gene)
            when = _dt(self.day(i, r["day"]))
            b.add(
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "meta": {"profile": [GENOTYPE_PROFILE]},
                    "category": [{"coding": [{"system": OBS_CAT, "code": "laboratory"}]}],
                    "code": {"coding": [{"system": LOINC, "code": GENOTYPE[0], "display": GENOTYPE[1]}]},
                    "subject": subject,
                    "effectiveDateTime": when,
                    "issued": when,
                    "valueCodeableConcept": {"text": f"{gene} {r['diplotype']}"},
                    "component": [
                        {
                            "code": {
                                "coding": [{"system": LOINC, "code": GENE_STUDIED[0], "display": GENE_STUDIED[1]}]
                            },
                            "valueCodeableConcept": {"coding": [{"system": HGNC, "code": hgnc, "display": gene}]},
                        }
                    ],
                }
            )

    def c_hgnc(self, gene: str) -> str:
        pop = getattr(self, "_pop", None)
        if pop is None:
            from .population import load_pgx_population

            pop = self._pop = load_pgx_population()[1]
        return pop[gene].hgnc


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def _yaml(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(_plain(data), sort_keys=True, default_flow_style=False)


def write_cohort(
    cohort: "SimCohort", out_dir: str | Path, *, truth_regimens: "list[Regimen] | None" = None, overwrite: bool = False
) -> dict[str, Any]:
    """Write bundles and truth (see the module docstring); returns counts and paths."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError("output path is not a folder", field="--out", value=str(out), expected="a folder")
    fdir = out / "fhir"
    old = sorted(fdir.glob("*.json")) if fdir.is_dir() else []
    if old and not overwrite:
        raise ConfigError(
            "output folder already holds bundles",
            field="--out",
            value=str(out),
            expected="a new or empty folder",
            hint="pass --overwrite to replace them",
        )
    for p in old:
        p.unlink()
    fdir.mkdir(parents=True, exist_ok=True)
    w = _Writer(cohort)
    n_res = 0
    for i in range(cohort.n):
        bundle = w.bundle(i)
        n_res += len(bundle["entry"])
        (fdir / f"{w.ids[i]}.json").write_bytes(orjson.dumps(bundle))
    table = cohort.truth_table(truth_regimens)
    table.to_parquet(out / "truth.parquet", index=False)
    (out / "truth_params.yaml").write_text(_yaml(cohort.truth.to_dict()), encoding="utf-8")
    from ..manifest import verify

    try:
        rules_version = verify(strict=False)
    except Exception:  # noqa: BLE001 - a mismatched manifest must not stop a simulation; recorded as such
        rules_version = "unverified"
    info = {
        "area": cohort.area.id,
        "area_version": cohort.area.version,
        "seed": cohort.seed,
        "n": cohort.n,
        "rules_version": rules_version,
        "bundles": cohort.n,
        "resources": n_res,
        "decisions": int(len(cohort.decisions)),
        "episodes": int(cohort.decisions["episode"].sum()),
        "truth_regimens": int(sum(c.startswith("truth:") for c in table.columns)),
    }
    (out / "simulation.yaml").write_text(_yaml(info), encoding="utf-8")
    return {**info, "fhir_dir": str(fdir), "truth": str(out / "truth.parquet")}
