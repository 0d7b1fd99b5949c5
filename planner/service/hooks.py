"""The three hooks: order-select, order-sign and patient-view, over the planner's stages.

* ``order-select`` / ``order-sign``: the draft MedicationRequests of ``context.draftOrders`` (order-select: the
  ``selections`` among them, the other drafts counting as co-medications) are screened with the patient's current
  medications, genotypes, allergies, conditions and labs, in both directions (a draft that phenoconverts a current
  drug's gene is a finding naming both). Findings the current medications already had without the drafts are
  left to patient-view. order-select also suggests safer drugs: the finding's own alternatives (data, from the
  rules) or, failing those, drugs of the same therapeutic-area formulary, each screened in place of the draft.
* ``patient-view``: the ranked plan summary per therapeutic area the patient is in, and findings on the current
  medications.

A draft order whose drug cannot be read gets a card saying so: it is never passed over silently.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

from ..areas import load_area
from ..ingest import read_record
from ..record import DrugDose, Finding, Medication, PatientRecord, Regimen
from ..safety import screen_plan, sort_findings
from .batching import RecommendBatcher
from .cards import CardFactory, dose_words, med_request
from .config import ServiceConfig, ServiceDefinitions
from .fhirdata import FHIR_ID, BadRequest

__all__ = ["HookEngine", "Draft", "OrderScreen"]

_CACHE_MAX = 512
# the seed of every recommendation the service makes, in its own threads and in its planner processes alike
# (same record, same cards: the per-record cache and tests/test_service_pool.py rely on it)
SEED = 0


@dataclass(frozen=True)
class Draft:
    ref: str | None  # "MedicationRequest/<id>", when the draft has an id
    med: Medication | None  # None: the drug could not be read
    label: str  # what the order says it is (for a card about an unreadable draft)


@dataclass(frozen=True)
class OrderScreen:
    findings: list[Finding]  # what the drafts bring, most severe first, one per rule and drug
    final_doses: dict[str, float | None]  # the medication list's doses after every adjustment ({} if excluded)


def _finding_key(f: Finding) -> tuple:
    return (f.rule_id, f.target_drug, f.action, f.phenotype, f.drugs)


class HookEngine:
    """Runs hooks for one loaded :class:`~planner.api.Planner` (rules and models loaded once)."""

    def __init__(self, planner: Any, defs: ServiceDefinitions, config: ServiceConfig, audit: Any = None) -> None:
        self.planner = planner
        self.audit = audit  # recommendations shown are audited here when the planner has no audit log of its own
        self.rules = planner.ruleset
        self.defs = defs
        self.config = config
        self._area_of: dict[str, list[str]] = {}
        for area_id in sorted(planner.models):
            for d in load_area(area_id, planner.rules_path).formulary:
                self._area_of.setdefault(d.ingredient, []).append(area_id)
        self._cache: OrderedDict[str, list[Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.pool = None
        run = None
        if config.planners:  # patient-view planned in separate processes fed from one queue
            from .pool import PlannerPool

            self.pool = PlannerPool(
                config.planners,
                model=config.model,
                rules=config.rules,
                num_samples=config.num_samples,
                top=config.top,
                seed=SEED,
            )
            run = self.pool.plan
        self._batcher = RecommendBatcher(
            planner,
            top=config.top,
            seed=SEED,
            window_s=config.batch_window_ms / 1000,
            max_batch=config.batch_max,
            parallel=config.planners or 1,
            run=run,
        )
        from ..ingest import code_tables
        from ..rule_files import rules_dir

        self._rules_dir = rules_dir(config.rules)  # resolved once (not per call)
        self._tables = code_tables(self._rules_dir)

    def today(self) -> dt.date:
        return self.config.today or dt.datetime.now(dt.timezone.utc).date()

    # ---- records -----------------------------------------------------------------------------------------
    def record(self, entries: list[dict[str, Any]]) -> PatientRecord:
        """The record of Bundle entries (``resource`` and optional ``fullUrl``), as of today."""
        today = self.today()
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
        return read_record(
            bundle, as_of=today, today=today, rules=self._rules_dir, max_bytes=self.config.max_request_bytes * 2
        )

    def drafts(
        self, context: dict[str, Any], patient: dict[str, Any], *, selected_only: bool
    ) -> tuple[list[Draft], list[Draft]]:
        """(drafts the hook is about, the other drafts) from ``context.draftOrders``."""
        orders = context.get("draftOrders")
        if not isinstance(orders, dict) or orders.get("resourceType") != "Bundle":
            raise BadRequest("context.draftOrders", "a FHIR Bundle of draft orders")
        entries = orders.get("entry") or []
        if not isinstance(entries, list):
            raise BadRequest("context.draftOrders.entry", "a list of Bundle entries")
        resources = [e.get("resource") for e in entries if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
        meds = [r for r in resources if r.get("resourceType") == "MedicationRequest"]
        sel = context.get("selections")
        if sel is not None and (not isinstance(sel, list) or not all(isinstance(s, str) for s in sel)):
            raise BadRequest("context.selections", "a list of references such as MedicationRequest/<id>")
        pid = patient.get("id")
        mini = [patient] + [r for r in resources if r.get("resourceType") == "Medication"]
        for i, r in enumerate(meds):
            rid = r.get("id") if isinstance(r.get("id"), str) and FHIR_ID.match(r["id"]) else f"draft-{i + 1}"
            mini.append(
                {
                    **r,
                    "id": rid,
                    "status": "active",
                    "intent": "order",
                    "authoredOn": self.today().isoformat(),
                    "subject": {"reference": f"Patient/{pid}"},
                }
            )
        rec = self.record([{"resource": r} for r in mini])
        by_id = {m.id: m for m in rec.medications}
        about: list[Draft] = []
        others: list[Draft] = []
        for i, r in enumerate(meds):
            has_id = isinstance(r.get("id"), str) and FHIR_ID.match(r["id"]) is not None
            rid = r["id"] if has_id else f"draft-{i + 1}"
            ref = f"MedicationRequest/{rid}" if has_id else None
            m = by_id.get(rid)
            cc = r.get("medicationCodeableConcept")
            label = (
                cc.get("text") if isinstance(cc, dict) and isinstance(cc.get("text"), str) else None
            ) or "a draft order"
            d = Draft(ref=ref, med=m if m is not None and m.ingredient else None, label=label[:60])
            chosen = not selected_only or not sel or (ref is not None and ref in sel)
            (about if chosen else others).append(d)
        return about, others

    # ---- order hooks -------------------------------------------------------------------------------------
    def screen_orders(self, record: PatientRecord, drafts: list[Draft], others: list[Draft]) -> OrderScreen:
        """Findings the drafts bring: the whole medication list they leave (current + drafts) screened with
        :func:`planner.safety.screen_plan` (both directions, doses applied), minus what the current medications
        already had without them, plus every finding on a draft drug itself; one finding per rule and drug
        (the most severe: a cap the adjusted dose respects is not repeated as info), and the doses of the list
        after every adjustment (what an adjust-dose suggestion orders)."""
        ctx = self.rules.prepare(record, on=record.as_of)
        baseline = {_finding_key(f) for f in self.rules.check(ctx)}
        drugs: dict[str, DrugDose] = {
            ing: DrugDose(ingredient=ing, rxcui=m.rxcui or "", dose_mg_day=m.dose_mg_day)
            for ing, m in ctx.current.items()
        }
        draft_ings: set[str] = set()
        for d in [*drafts, *others]:
            if d.med is not None and d.med.ingredient:
                drugs[d.med.ingredient] = DrugDose(
                    ingredient=d.med.ingredient, rxcui=d.med.rxcui or "", dose_mg_day=d.med.dose_mg_day
                )
                if d in drafts:
                    draft_ings.add(d.med.ingredient)
        starts = {i for i in drugs if i not in ctx.current}
        verdict = screen_plan(ctx, Regimen.of(list(drugs.values())), rules=self.rules, new_start=starts)
        final = {} if verdict.final is None else {d.ingredient: d.dose_mg_day for d in verdict.final.drugs}
        out: list[Finding] = []
        seen: set[tuple[str, str | None]] = set()
        for f in sort_findings(verdict.findings):
            if (f.rule_id, f.target_drug) in seen:
                continue
            if _finding_key(f) not in baseline or set(f.drugs) & draft_ings or f.target_drug in draft_ings:
                seen.add((f.rule_id, f.target_drug))
                out.append(f)
        return OrderScreen(findings=out, final_doses=final)

    def _concerned(self, f: Finding, drafts: list[Draft]) -> list[Draft]:
        """The drafts a finding is about: those it names (``drugs``, ``plan_adds``, target), else those its
        message or lookup names (a draft that phenoconverts a current drug)."""
        named = set(f.drugs) | set(f.plan_adds) | ({f.target_drug} if f.target_drug else set())
        direct = [d for d in drafts if d.med and d.med.ingredient in named]
        if direct:
            return direct
        text = f"{f.message} {f.phenotype or ''}".lower()  # e.g. "Phenotype set by paroxetine"
        return [d for d in drafts if d.med and d.med.ingredient and d.med.ingredient in text]

    def order_cards(
        self, record: PatientRecord, drafts: list[Draft], others: list[Draft], cf: CardFactory, *, suggest: bool
    ) -> list[dict[str, Any]]:
        cards: list[dict[str, Any]] = []
        for d in drafts:
            if d.med is None:
                cards.append(
                    cf.note_card(
                        "A draft medication order could not be screened: its drug was not recognized",
                        f"{d.ref or 'A draft MedicationRequest'}: the medication code and text did not resolve to an "
                        "RxNorm ingredient planner knows, so no safety rule could be checked for it.",
                    )
                )
        screened = self.screen_orders(record, drafts, others)
        final = screened.final_doses
        for f in screened.findings:
            if f.action == "info":  # order hooks show what needs attention; info findings stay in patient-view
                continue
            concerned = self._concerned(f, drafts)
            if not concerned:
                continue
            names = sorted({d.med.ingredient for d in concerned if d.med and d.med.ingredient})
            involved = sorted(set(f.drugs) | ({f.target_drug} if f.target_drug else set()))
            extra = [n for n in involved if n not in names]
            prefix = " + ".join(names + extra)
            summary = f"{prefix}: {f.message}" if not all(n in f.message.lower() for n in names + extra) else f.message
            sugg = self._suggestions(record, f, concerned, drafts, others, cf, alternatives=suggest, final=final)
            cards.append(cf.finding_card(f, summary=summary, about=names, suggestions=sugg))
        return cards

    def _suggestions(
        self,
        record: PatientRecord,
        f: Finding,
        concerned: list[Draft],
        drafts: list[Draft],
        others: list[Draft],
        cf: CardFactory,
        *,
        alternatives: bool,
        final: dict[str, float | None],
    ) -> list[dict[str, Any]]:
        if f.action not in ("exclude", "adjust_dose"):
            return []
        out: list[dict[str, Any]] = []
        pid = record.patient_id
        for d in concerned:
            med = d.med
            if med is None or not med.ingredient:
                continue
            delete = (
                [
                    {
                        "type": "delete",
                        "description": f"Remove the draft order for {med.ingredient}",
                        "resourceId": [d.ref],
                    }
                ]
                if d.ref
                else []
            )
            if f.action == "adjust_dose" and f.target_drug == med.ingredient and f.adjusted_dose_mg_day is not None:
                dose = final.get(med.ingredient) or f.adjusted_dose_mg_day  # every adjustment applied
                words = dose_words(med.ingredient, dose, self._rules_dir)
                out.append(
                    cf.suggestion(
                        f"Order {words} instead",
                        delete
                        + [
                            {
                                "type": "create",
                                "description": f"Order {words}",
                                "resource": med_request(med.ingredient, med.rxcui or "", dose, pid, self._rules_dir),
                            }
                        ],
                        recommended=True,
                    )
                )
                continue
            if alternatives:
                for alt, rxcui, dose in self._alternatives(record, f, med, drafts, others):
                    out.append(
                        cf.suggestion(
                            f"Order {alt} instead of {med.ingredient}",
                            delete
                            + [
                                {
                                    "type": "create",
                                    "description": f"Order {dose_words(alt, dose, self._rules_dir)}",
                                    "resource": med_request(alt, rxcui, dose, pid, self._rules_dir),
                                }
                            ],
                            recommended=not out,
                        )
                    )
            if delete:
                out.append(cf.suggestion(f"Remove the draft order for {med.ingredient}", delete))
        return out

    def _alternatives(
        self, record: PatientRecord, f: Finding, med: Medication, drafts: list[Draft], others: list[Draft]
    ) -> list[tuple[str, str, float | None]]:
        """Drugs to order instead of ``med``, each screened in its place with no exclude and no new caution."""
        names: list[str] = []
        for a in f.alternatives:
            ing = self._tables.ingredient_by_name(a)
            if ing is not None and ing.rxcui:
                names.append(ing.name)
        if not names:  # same-class drugs of the draft's therapeutic area first, then the rest of its formulary
            for area_id in self._area_of.get(med.ingredient or "", []):
                area = load_area(area_id, self.planner.rules_path)
                mine = area.drug(med.ingredient or "").drug_class
                ranked = sorted(area.formulary, key=lambda e: (e.drug_class != mine, not e.first_line, e.ingredient))
                names += [e.ingredient for e in ranked]
        current = {m.ingredient for m in record.active_medications() if m.ingredient}
        out: list[tuple[str, str, float | None]] = []
        for name in dict.fromkeys(names):
            if name == med.ingredient or name in current or len(out) >= self.defs.max_alternatives:
                continue
            ing = self._tables.ingredient_by_name(name)
            if ing is None or not ing.rxcui:
                continue
            dose = next(
                (load_area(a, self.planner.rules_path).drug(name).reference_dose for a in self._area_of.get(name, [])),
                None,
            )
            swapped = Medication(id="alt", rxcui=ing.rxcui, ingredient=name, dose_mg_day=dose, status="active")
            trial = [Draft(ref=None, med=swapped, label=name)]
            rest = [d for d in drafts if d.med is not med] + others
            found = self.screen_orders(record, trial, rest).findings
            if any(x.action in ("exclude", "adjust_dose", "caution") for x in found if x.kind != "data-gap"):
                continue
            out.append((name, ing.rxcui, dose))
        return out

    # ---- patient-view ------------------------------------------------------------------------------------
    def recommendations(self, record: PatientRecord) -> list[Any]:
        """``recommend_all`` for the record, cached by content (same input + seed: same output)."""
        key = hashlib.sha256(orjson.dumps(record.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)).hexdigest()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
        if hit is not None:
            recs = hit
            if self.planner.audit is not None:  # the planner audited the first call; audit this one too
                for r in recs:
                    self.planner.audit.write(r, input_sha256=key)
        else:
            if self.config.batch_window_ms or self.pool is not None:  # concurrent new patients planned together
                recs = self._batcher.recommend_all(record, digest=key)
            else:
                recs = self.planner.recommend_all(record, top=self.config.top, seed=SEED, input_digest=key)
            with self._lock:
                self._cache[key] = recs
                while len(self._cache) > _CACHE_MAX:
                    self._cache.popitem(last=False)
        if self.audit is not None and self.audit is not self.planner.audit:
            for r in recs:
                self.audit.write(r, input_sha256=key)
        return recs

    def patient_view_cards(self, record: PatientRecord, cf: CardFactory) -> list[dict[str, Any]]:
        cards = [cf.plan_card(r) for r in self.recommendations(record)]
        for f in sort_findings(self.rules.check(record)):
            cards.append(cf.finding_card(f, about=f.drugs))
        return cards
