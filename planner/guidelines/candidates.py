"""Candidates that meet a guideline indication: what a clinician would also consider.

The generator proposes the regimens clinicians usually choose, and single moves from the current one. When an
indication applies (an SGLT2 inhibitor in heart failure, a high-intensity statin in ASCVD), the plans that also
improve the outcome most (e.g. metformin + semaglutide) may lack the indicated drug, and the candidate that has
it may be only the single add-on. :func:`indicated_candidates` adds, for every candidate that does not meet an
applicable ``include`` indication, the same regimen with the indication's first listed drug of each class added (or put in
place of a drug of the same class), at its reference dose (or the lowest dose of the required intensity), when
the area's combination limits allow it (for the generator's first 30 candidates). The safety screen then treats these
like every other candidate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..areas import Area, is_allowed
from ..handoffs import CandidateSet
from ..record import DrugDose, PatientRecord, Regimen
from .context import PatientContext
from .evaluate import applicable_indications
from .schema import Guidelines, Indication, load_guidelines

__all__ = ["add_indicated", "indicated_candidates"]

# candidates augmented per indicated drug: the generator's first (the current regimen, then its most probable
# moves); more cost sampling and screening time for regimens that rarely rank
_PER_DRUG = 30


def _dose(area: Area, g: Guidelines, ind: Indication, ingredient: str) -> float:
    entry = area.drug(ingredient)
    if ind.min_intensity is None or g.intensity is None:
        return entry.reference_dose
    for level in entry.doses:
        if g.intensity.at_least(ingredient, level, ind.min_intensity):
            return level
    return entry.doses[-1]


def _with(area: Area, reg: Regimen, drug: DrugDose) -> Regimen:
    kept = [d for d in reg.drugs if (d.drug_class or area.drug(d.ingredient).drug_class) != drug.drug_class]
    return Regimen.of([*kept, drug])


def indicated_candidates(
    area: Area, record: PatientRecord, candidates: Sequence[Regimen], *, rules: str | Path | None = None
) -> list[Regimen]:
    """New regimens (not already in ``candidates``) that meet the patient's unmet ``include`` indications."""
    g = load_guidelines(area, rules)
    if g is None:
        return []
    ctx = PatientContext.from_record(record, area, g)
    seen = {c.key() for c in candidates}
    out: list[Regimen] = []
    for a in applicable_indications(g, ctx):
        ind = a.indication
        if ind.kind != "include":
            continue
        for drug in _first_of_each_class(area, g, ind):
            for reg in candidates[:_PER_DRUG]:
                if set(reg.ingredients) & set(ind.drugs) and ind.min_intensity is None:
                    continue
                new = _with(area, reg, drug)
                if new.key() not in seen and is_allowed(area, new):
                    seen.add(new.key())
                    out.append(new)
    return out


def _first_of_each_class(area: Area, g: Guidelines, ind: Indication) -> list[DrugDose]:
    """The indication's first listed drug of each class (an oral and an injectable choice where both exist)."""
    out: dict[str, DrugDose] = {}
    for name in ind.drugs:
        entry = area.drug(name)
        out.setdefault(
            entry.drug_class,
            DrugDose(
                ingredient=entry.ingredient,
                rxcui=entry.rxcui,
                dose_mg_day=_dose(area, g, ind, name),
                drug_class=entry.drug_class,
            ),
        )
    return list(out.values())


def add_indicated(
    cands: CandidateSet, record: PatientRecord, area: Area, *, rules: str | Path | None = None
) -> CandidateSet:
    """The candidate set with :func:`indicated_candidates` appended (unchanged when there are none)."""
    extra = indicated_candidates(area, record, cands.candidates, rules=rules)
    if not extra:
        return cands
    return cands.model_copy(update={"candidates": (*cands.candidates, *extra)})
