"""CDS Hooks 2.0 cards from safety findings and recommendations.

Every card has a ``uuid``, a ``summary`` under 140 characters, an ``indicator`` (info / warning / critical, from
the finding's action and strength through the table in ``rules/service/cds_services.yaml``), a ``source`` with a
label and the guideline URL, and, on warning and critical cards, ``overrideReasons``. Suggestions carry their own
``uuid`` and ``create`` / ``delete`` MedicationRequest actions; a card with suggestions says
``selectionBehavior: at-most-one``. UUIDs are derived from the hookInstance and the card's content, so the same
request gives the same response and different calls give different ids.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Iterable

from ..dosing import dosage, dose_text
from ..recommendation import Recommendation
from ..record import Finding
from ..units import unit_display
from ..warnings_table import SHOWN
from .config import ServiceDefinitions

__all__ = ["CardFactory", "fit_summary", "med_request", "dose_words"]

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_NS = uuid.UUID("0d7f3b1e-4c52-4a53-9a6f-6b2f1d8c3e70")
SUMMARY_MAX = 139
_PERIOD = {"day": "d", "week": "wk"}
_URL = re.compile(r"https?://[^\s;,)]+")


def fit_summary(text: str, limit: int = SUMMARY_MAX) -> str:
    """One line, at most ``limit`` characters (cut at a word, with an ellipsis)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"


def med_request(
    ingredient: str, rxcui: str, dose_mg_day: float | None, patient_id: str, rules: Any = None
) -> dict[str, Any]:
    """A draft MedicationRequest (order) for a suggestion's ``create`` action; the dose written as prescribed
    (:func:`planner.dosing.dosage`, the formatter every renderer uses)."""
    res: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient_id}"},
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": rxcui, "display": ingredient}],
            "text": ingredient,
        },
    }
    dose = dosage(ingredient, dose_mg_day, rules=rules)
    if dose is not None:
        res["dosageInstruction"] = [
            {
                "text": dose.text,
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
        ]
    return res


def dose_words(ingredient: str, dose_mg_day: float | None, rules: Any = None) -> str:
    """``"sertraline 50 mg once daily"`` (or the bare name when the dose is unknown)."""
    d = dosage(ingredient, dose_mg_day, rules=rules)
    return ingredient if d is None else f"{ingredient} {d.text}"


def _is_url(text: str | None) -> bool:
    return isinstance(text, str) and text.startswith(("https://", "http://"))


def _url_in(text: str | None) -> str | None:
    """The source itself when it is a URL, else the first http(s) URL it quotes (e.g. "CPIC ...: https://...")."""
    if _is_url(text):
        return str(text).split()[0]
    m = _URL.search(text or "")
    return m.group(0).rstrip(".,;)") if m else None


class CardFactory:
    """Builds the cards of one hook call (ids derived from ``hook_instance``)."""

    def __init__(self, defs: ServiceDefinitions, hook_instance: str, *, rules_version: str) -> None:
        self.defs = defs
        self.hook_instance = hook_instance
        self.rules_version = rules_version
        self._n = 0
        self.issued: list[dict[str, Any]] = []  # what the audit store keeps per card (no patient data)

    def _issue(self, card: dict[str, Any], rule_id: str | None) -> dict[str, Any]:
        self.issued.append(
            {
                "uuid": card["uuid"],
                "indicator": card["indicator"],
                "rule_id": rule_id,
                "suggestions": [s["uuid"] for s in card.get("suggestions") or ()],
            }
        )
        return card

    def uid(self, *parts: object) -> str:
        self._n += 1
        return str(uuid.uuid5(_NS, "|".join(map(str, (self.hook_instance, self._n, *parts)))))

    def _override(self) -> list[dict[str, Any]]:
        return [
            {"code": c["code"], "system": self.defs.override_system, "display": c["display"]}
            for c in self.defs.override_codes
        ]

    def suggestion(self, label: str, actions: list[dict[str, Any]], *, recommended: bool = False) -> dict[str, Any]:
        return {
            "label": fit_summary(label, 80),
            "uuid": self.uid("suggestion", label),
            "isRecommended": recommended,
            "actions": actions,
        }

    def finding_card(
        self,
        f: Finding,
        *,
        summary: str | None = None,
        about: Iterable[str] = (),
        suggestions: list[dict[str, Any]] | None = None,
        note: str = "",
    ) -> dict[str, Any]:
        indicator = self.defs.indicator(f.action, f.strength)
        label = self.defs.source_labels.get(f.kind, "planner rules")
        url = _url_in(f.source)
        lines = [f.message, ""]
        facts = [f"rule `{f.rule_id}` v{f.rule_version}", f"action **{f.action.replace('_', ' ')}**"]
        if f.strength:
            facts.append(f"strength {f.strength}")
        if f.phenotype:
            facts.append(f"lookup: {f.phenotype}")
        if f.data_version:
            facts.append(f"data {f.data_version}")
        lines.append("; ".join(facts) + ".")
        if note:
            lines += ["", note]
        card: dict[str, Any] = {
            "uuid": self.uid("card", f.rule_id, f.target_drug, *about),
            "summary": fit_summary(summary or f.message),
            "detail": "\n".join(lines).strip(),
            "indicator": indicator,
            "source": {
                "label": label,
                **({"url": url} if url else {}),
                "topic": {
                    "system": "https://planner.example/fhir/CodeSystem/finding-kind",
                    "code": f.kind,
                    "display": f.kind,
                },
            },
        }
        if not _is_url(f.source) and f.source:
            card["detail"] += f"\n\nSource: {f.source}"  # the citation beside its URL
        if suggestions:
            card["suggestions"] = suggestions
            card["selectionBehavior"] = "at-most-one"
        if indicator != "info":
            card["overrideReasons"] = self._override()
        if url:
            card["links"] = [{"label": "Guideline", "url": url, "type": "absolute"}]
        return self._issue(card, f.rule_id)

    def note_card(self, summary: str, detail: str, *, indicator: str = "warning") -> dict[str, Any]:
        """A card about the data itself (e.g. a draft order that could not be read)."""
        return self._issue(
            {
                "uuid": self.uid("note", summary),
                "summary": fit_summary(summary),
                "detail": detail,
                "indicator": indicator,
                "source": {"label": self.defs.plan_source_label},
            },
            None,
        )

    def plan_card(self, rec: Recommendation) -> dict[str, Any]:
        """The ranked plan summary of one therapeutic area (patient-view)."""
        o = rec.outcome
        shown = o.unit_display or unit_display(o.unit)
        unit = f" {shown}" if shown else ""
        if rec.plans:
            top = rec.plans[0]
            regimen = " + ".join(_drug_text(d) for d in top.regimen) or "no drug"
            summary = f"{rec.area_name}: top plan {regimen}; P(reaching target) {top.p_target:.0%}"
        else:
            gap = next((g.message for g in rec.data_gaps if g.code == "no-outcome"), "no plan could be ranked")
            summary = f"{rec.area_name}: no ranked plan ({gap})"
        lines = [
            f"Target {o.quantity} {o.target:g}{unit} ({o.target_label}).",
            "",
            "| rank | plan | predicted (90% interval) | P(target) | P(best) |",
            "|---|---|---|---|---|",
        ]
        for p in rec.plans:
            reg = " + ".join(f"{_drug_text(d)} ({d.change})" for d in p.regimen) or "no drug"
            q = p.predicted
            lines.append(
                f"| {p.rank} | {reg} | {q.mean:.1f} ({q.lower:.1f}-{q.upper:.1f}){unit} "
                f"| {p.p_target:.0%} | {p.p_best:.0%} |"
            )
        if rec.excluded:
            lines += ["", f"{len(rec.excluded)} regimen(s) excluded by safety rules."]
        if rec.data_gaps:
            lines += ["", "Data gaps:"] + [f"- {g.message}" for g in rec.data_gaps]
        if rec.record_warnings:
            lines += ["", *_warning_lines(rec)]
        pv = rec.provenance
        lines += ["", f"planner {pv.planner_version}, rules {pv.rules_version}, model {pv.model}, seed {pv.seed}."]
        return self._issue(
            {
                "uuid": self.uid("plan", rec.area),
                "summary": fit_summary(summary),
                "detail": "\n".join(lines),
                "indicator": "info",
                "source": {
                    "label": self.defs.plan_source_label,
                    "topic": {
                        "system": "https://planner.example/fhir/CodeSystem/area",
                        "code": rec.area,
                        "display": rec.area_name,
                    },
                },
            },
            f"plan:{rec.area}",
        )


def _warning_lines(rec: Recommendation) -> list[str]:
    """The record's data-quality warnings, one markdown item each (code, why, resource and field)."""
    ws = rec.record_warnings
    lines = [f"Data-quality warnings in the record ({len(ws)}):"]
    for w in ws[:SHOWN]:
        lines.append(f"- {w.code}: {w.message} ({w.resource or 'input'}{f' {w.field}' if w.field else ''})")
    if len(ws) > SHOWN:
        lines.append(f"- and {len(ws) - SHOWN} more (planner inspect lists them all)")
    return lines


def _drug_text(d: Any) -> str:
    text = dose_text(d)
    return f"{d.drug} {text}" if text else d.drug
