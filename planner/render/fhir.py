"""Recommendation -> FHIR R4 Bundle (collection).

* one ``CarePlan`` per plan (status ``draft``, intent ``proposal``), its activities referencing
  ``MedicationRequest`` resources with intent ``proposal``, each dose as prescribed (:mod:`planner.dosing`:
  doseQuantity in the drug's unit, timing once/twice daily or once weekly, route);
* one ``DetectedIssue`` per finding (plans, excluded regimens and current medications), with severity
  from the action and the rule id, version and source in its detail/reference;
* one ``Provenance`` naming planner, rules and model versions and the seed.

Ids are deterministic UUIDs derived from the recommendation's content, so the same input and seed give the
same bundle.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from ..dosing import dosage, dose_text
from ..recommendation import PlanDrug, Recommendation
from ..record import Finding
from ..units import rounded

_NS = uuid.UUID("6f1b7d3e-7f0e-4c8a-9d44-2b1c6a0f9e51")
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
_PERIOD = {"day": "d", "week": "wk"}  # FHIR Timing.repeat.periodUnit (UCUM)
_SEVERITY = {"exclude": "high", "adjust_dose": "moderate", "caution": "moderate", "info": "low"}


def _uid(seed: str, *parts: object) -> str:
    return "urn:uuid:" + str(uuid.uuid5(_NS, seed + "|" + "|".join(map(str, parts))))


def _med_request(drug: PlanDrug, subject: dict[str, str] | None, note: str) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "proposal",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": drug.rxnorm, "display": drug.drug}],
            "text": drug.drug,
        },
        "note": [{"text": note}],
    }
    if subject:
        res["subject"] = subject
    dose = drug.dosage or dosage(drug.drug, drug.dose_mg_day)
    if dose is not None:
        instruction: dict[str, Any] = {
            "text": dose_text(drug),
            "timing": {"repeat": {"frequency": dose.times, "period": 1, "periodUnit": _PERIOD[dose.period]}},
            "doseAndRate": [
                {
                    "doseQuantity": {
                        "value": dose.amount,
                        "unit": dose.unit,
                        "system": "http://unitsofmeasure.org",
                        "code": dose.ucum,
                    }
                }
            ],
        }
        if dose.route_code:
            instruction["route"] = {"coding": [{"system": SNOMED, "code": dose.route_code}], "text": dose.route}
        res["dosageInstruction"] = [instruction]
    return res


def _issue(f: Finding, subject: dict[str, str] | None, implicated: list[str]) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "DetectedIssue",
        "status": "preliminary",
        "code": {
            "coding": [{"system": "https://planner.example/fhir/CodeSystem/finding-kind", "code": f.kind}],
            "text": f.kind,
        },
        "severity": _SEVERITY[f.action],
        "detail": f.message,
        "reference": f.source if f.source.startswith(("http://", "https://")) else None,
        "identifier": [{"system": "https://planner.example/fhir/rule", "value": f"{f.rule_id}@{f.rule_version}"}],
        "mitigation": [{"action": {"text": f.action}}],
    }
    if res["reference"] is None:
        del res["reference"]
    if subject:
        res["patient"] = subject
    if implicated:
        res["implicated"] = [{"reference": r} for r in implicated]
    return res


def render_fhir(rec: Recommendation) -> dict[str, Any]:
    seed = rec.model_dump_json()
    subject = {"reference": f"Patient/{rec.patient_id}"} if rec.patient_id else None
    entries: list[dict[str, Any]] = []

    def add(res: dict[str, Any], *key: object) -> str:
        full = _uid(seed, *key)
        entries.append({"fullUrl": full, "resource": {"id": full.rsplit(":", 1)[1], **res}})
        return full

    plan_urls = []
    for plan in rec.plans:
        med_urls = [
            add(_med_request(d, subject, f"plan {plan.rank}: {d.change}"), "mr", plan.rank, d.drug)
            for d in plan.regimen
        ]
        care: dict[str, Any] = {
            "resourceType": "CarePlan",
            "status": "draft",
            "intent": "proposal",
            "title": f"{rec.area_name}: option {plan.rank}",
            "description": plan.rationale,
            "activity": [{"reference": {"reference": u}} for u in med_urls]
            + [
                {
                    "detail": {
                        "status": "not-started",
                        "kind": "MedicationRequest",
                        "description": f"stop {d.drug}",
                        "code": {"coding": [{"system": RXNORM, "code": d.rxnorm, "display": d.drug}]},
                    }
                }
                for d in plan.stopped
            ],
            "note": [
                {
                    "text": (
                        f"predicted {rec.outcome.quantity} {rounded(plan.predicted.mean, rec.outcome.unit)} "
                        f"({round(100 * plan.predicted.level)}% interval {rounded(plan.predicted.lower, rec.outcome.unit)} "
                        f"to {rounded(plan.predicted.upper, rec.outcome.unit)}); "
                        f"P(target) {plan.p_target:.2f}; P(best) {plan.p_best:.2f}"
                    )
                }
            ],
        }
        if subject:
            care["subject"] = subject
        else:
            care["subject"] = {"display": "patient withheld"}
        url = add(care, "careplan", plan.rank)
        plan_urls.append(url)
        for j, f in enumerate(plan.findings):
            add(_issue(f, subject, med_urls), "issue", "plan", plan.rank, j)
    for k, ex in enumerate(rec.excluded):
        for j, f in enumerate(ex.findings):
            add(_issue(f, subject, []), "issue", "excluded", k, j)
    for j, f in enumerate(rec.current_findings):
        add(_issue(f, subject, []), "issue", "current", j)
    p = rec.provenance
    add(
        {
            "resourceType": "Provenance",
            "target": [{"reference": u} for u in plan_urls] or [{"display": "no plan"}],
            "recorded": f"{p.as_of.isoformat()}T00:00:00Z",
            "agent": [
                {
                    "type": {"text": "software"},
                    "who": {
                        "display": f"planner {p.planner_version}; rules {p.rules_version}; model {p.model}; seed {p.seed}"
                    },
                }
            ],
        },
        "provenance",
    )
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def render_fhir_json(rec: Recommendation) -> str:
    return orjson.dumps(render_fhir(rec), option=orjson.OPT_INDENT_2).decode()
