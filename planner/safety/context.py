"""The patient context: what one patient brings to screening, computed once per patient.

:func:`prepare` reads a :class:`~planner.record.PatientRecord` against the rule data: current medications by
ingredient (RxCUI resolved), every gene's interpreted result (a gene with no result is not tested), matched
allergy groups, condition sets, the labs rules need, declared CPIC populations, and which area's current drugs
a regimen replaces. The context also carries the memo every rule kind and the screen loop share.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Iterable

from ..errors import RuleError
from ..record import Medication, PatientRecord
from ..status import GeneStatus
from .loader import RuleData
from .phenotype import INDETERMINATE, GeneResult

__all__ = ["PatientContext", "prepare", "match_allergies", "match_conditions"]

_INACTIVE_ALLERGY = {"inactive", "resolved"}  # FHIR AllergyIntolerance clinicalStatus codes
_REFUTED = {"refuted", "entered-in-error"}  # FHIR verificationStatus codes


@dataclass
class PatientContext:
    """What one patient brings to screening, computed once by :func:`prepare` (``RuleSet.prepare``)."""

    record: PatientRecord
    on: dt.date
    age: float | None
    current: dict[str, Medication]  # active medications by ingredient
    genes: dict[str, GeneResult]
    allergies: list[tuple[str, str | None, frozenset[str]]]  # (allergen label, ingredient, matched groups)
    conditions: frozenset[str]  # names of condition sets the patient's active conditions fall in
    has_conditions: bool
    labs: dict[tuple[str, int], float | None]
    declared_populations: frozenset[str]
    replaced: frozenset[str] | None  # formulary whose current drugs each regimen replaces (None: inferred)
    cache: dict = field(default_factory=dict)
    kept: dict = field(default_factory=dict)  # replaced set -> (current drugs it keeps, the same sorted)
    slots: dict = field(default_factory=dict)  # the screen's per-(drug, dose) slots (:mod:`.screen`)
    base: tuple | None = None  # the screen's kept current drugs of a regimen that replaces none (:mod:`.screen`)
    current_names: frozenset[str] = field(init=False, default=frozenset())

    def __post_init__(self) -> None:
        self.current_names = frozenset(self.current)


# ---- patient context -----------------------------------------------------------------------------------
def prepare(
    data: RuleData,
    record: PatientRecord | PatientContext,
    *,
    on: dt.date | None = None,
    area: str | None = None,
    populations: Iterable[str] = (),
) -> PatientContext:
    """Precompute a patient's phenotypes, allergies, conditions, labs and current drugs.

    ``area``: the therapeutic area whose complete regimens will be screened; the patient's current drugs of
    that area's formulary are then treated as replaced by each regimen (not as co-medications). Without it,
    a regimen replaces the current drugs of every area formulary that contains one of its drugs (a regimen
    is an area's complete drug set, DESIGN.md); ``check`` screens all current drugs together.
    ``populations``: CPIC populations the caller declares (e.g. ``"CBZ-no alternatives"``).
    """
    if isinstance(record, PatientContext):
        return record
    on = on or record.as_of
    current: dict[str, Medication] = {}
    for m in record.active_medications(on):
        ing = (m.ingredient or data.rxcui_to_ingredient.get(m.rxcui or "", "")).lower()
        if ing:
            prev = current.get(ing)
            if prev is None or (m.start or dt.date.min) < (prev.start or dt.date.min):
                current[ing] = m  # keep the earliest start: how long the drug has been taken
    by_gene: dict[str, list] = {}
    for p in record.pgx:
        by_gene.setdefault(p.gene.strip().upper(), []).append(p)
    genes = {g: data.knowledge.interpret(g, by_gene.get(g, ())) for g in data.gene_list}
    for g in by_gene:
        if g not in genes:
            genes[g] = GeneResult(
                gene=g,
                status=GeneStatus.INDETERMINATE,
                phenotype=INDETERMINATE,
                lookup=(INDETERMINATE,),
                note="gene not supported by planner rules",
            )
    allergies = match_allergies(data, record)
    conds = match_conditions(data, record, on)
    labs: dict[tuple[str, int], float | None] = {}
    for rule, _ in data.lab_rules:
        key = (rule.quantity, rule.within_days)
        if key not in labs:
            latest = record.latest(rule.quantity, until=on, within_days=rule.within_days)
            labs[key] = None if latest is None else latest.value
    replaced: frozenset[str] | None = None
    if area is not None:
        if area not in data.area_formulary:
            raise RuleError(
                "unknown area", field="area", value=area, expected="one of " + ", ".join(sorted(data.area_formulary))
            )
        replaced = data.area_formulary[area]
    declared = frozenset(populations)
    for pop in declared:
        if pop not in data.populations:
            raise RuleError(
                "unknown population", field="populations", value=pop, expected=", ".join(sorted(data.populations))
            )
    return PatientContext(
        record=record,
        on=on,
        age=record.age(on),
        current=current,
        genes=genes,
        allergies=allergies,
        conditions=conds,
        has_conditions=bool(record.conditions),
        labs=labs,
        declared_populations=declared,
        replaced=replaced,
    )


def match_allergies(data: RuleData, record: PatientRecord) -> list[tuple[str, str | None, frozenset[str]]]:
    out = []
    for a in record.allergies:
        if a.verification_status in _REFUTED or a.clinical_status in _INACTIVE_ALLERGY:
            continue
        ing = (a.ingredient or data.rxcui_to_ingredient.get(a.rxcui or "", "") or "").lower() or None
        display = (a.display or "").lower()
        groups = set()
        sys_l = (a.system or "").lower()
        for g, grp in data.allergy_groups.items():
            coded = a.code is not None and (
                ("rxnorm" not in sys_l and a.code in grp.snomed) or ("snomed" not in sys_l and a.code in grp.rxnorm)
            )
            if (
                coded
                or (a.rxcui and a.rxcui in grp.rxnorm)
                or (ing and ing in data.allergy_members[g])
                or ((terms := data.allergy_terms[g]) is not None and terms.search(display))
            ):
                groups.add(g)
        if ing is None and not groups:
            continue
        out.append((ing or a.display or a.code or "a substance", ing, frozenset(groups)))
    return out


def match_conditions(data: RuleData, record: PatientRecord, on: dt.date) -> frozenset[str]:
    """The condition sets the record's active conditions on ``on`` fall in: the union, over conditions, of the
    sets each one's codings match (:func:`_condition_sets`, memoized per rule data and codings)."""
    memo = _CONDITION_MEMO.get(id(data))
    if memo is None or memo[0] is not data:
        if len(_CONDITION_MEMO) >= 8:
            _CONDITION_MEMO.clear()
        memo = _CONDITION_MEMO[id(data)] = (data, {})
    known = memo[1]
    hits: set[str] = set()
    for c in record.active_conditions(on):
        codings = ((c.system, c.code, c.display), *[(x.system, x.code, x.display) for x in c.codings])
        got = known.get(codings)
        if got is None:
            got = _condition_sets(data, codings)
            if len(known) < 4096:
                known[codings] = got
        hits.update(got)
    return frozenset(hits)


# per rule data (held, so its id is not reused while here): condition codings -> the condition sets they match
_CONDITION_MEMO: dict[int, tuple[RuleData, dict[tuple, frozenset[str]]]] = {}


def _condition_sets(data: RuleData, codings: tuple[tuple[str | None, str | None, str | None], ...]) -> frozenset[str]:
    """The condition sets one condition's codings (system, code, display) match: a SNOMED code, an ICD-10
    prefix, or a term of the set's display pattern not preceded by a negation."""
    hits: set[str] = set()
    for name, cs in data.condsets.items():
        for system, code, display in codings:
            sys_l = (system or "").lower()
            if code:
                if "icd" not in sys_l and code in cs.snomed:
                    hits.add(name)
                    break
                if "snomed" not in sys_l:
                    norm = code.replace(".", "").upper()
                    if any(norm.startswith(p) for p in cs.icd10):
                        hits.add(name)
                        break
            m = cs.terms.search(display) if display and cs.terms is not None else None
            if m is not None and display:
                before = f" {display[: m.start()].lower()}"  # a negation counts only before the term
                if not any(n in before for n in data.negations + cs.negations):
                    hits.add(name)
                    break
    return frozenset(hits)
