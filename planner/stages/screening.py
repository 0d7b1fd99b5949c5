"""The screening stage: ``CandidateSet -> ScreenedCandidates``.

Each candidate is screened as the whole medication list it leaves the patient on, through the safety layer's
public ``RuleSet.screen_plan`` (what :func:`planner.safety.screen_plan` calls: screen, apply dose adjustments, screen the adjusted regimen again;
excluded when a rule excludes it or the adjustment does not settle). Kept regimens are de-duplicated by their
final key (the first candidate that reached it wins), excluded ones by their own key. The stage also screens
the current medications and records the test status of every gene a candidate's drugs have rules for.
"""

from __future__ import annotations

from ..areas import Area
from ..errors import ConfigError
from ..handoffs import CandidateSet, ExcludedCandidate, GeneNeed, ScreenedCandidates, ScreenedRegimen
from ..record import PatientRecord
from ..safety import RuleSet
from ..safety.context import PatientContext
from ..safety.findings import built
from ..status import GeneStatus

__all__ = ["screen_candidates"]


def screen_candidates(
    candidates: CandidateSet, record: PatientRecord, *, area: Area, rules: RuleSet
) -> ScreenedCandidates:
    """Screen every candidate for ``record`` (the record the features were computed from) under ``rules``."""
    f = candidates.features
    if record.as_of != f.as_of or record.patient_id != f.patient_id or area.id != f.area:
        raise ConfigError(
            "the record and area do not match the candidates' features",
            field="record",
            value=f"{area.id} as of {record.as_of.isoformat()}",
            expected=f"{f.area} as of {f.as_of.isoformat()}, the same patient",
        )
    ctx = rules.prepare(record, on=record.as_of, area=area.id)
    current = frozenset(f.current.ingredients)
    kept: dict[str, ScreenedRegimen] = {}
    excluded: list[tuple[str, ExcludedCandidate]] = []
    for cand in candidates.candidates:
        ps = rules.screen_plan(ctx, cand, new_start=[d.ingredient for d in cand.drugs if d.ingredient not in current])
        if ps.final is None:  # candidates are unique by key (CandidateSet): no excluded key repeats
            excluded.append((cand.key(), built(ExcludedCandidate, regimen=cand, findings=ps.exclusions)))
            continue
        key = ps.final.key()
        if key not in kept:
            kept[key] = built(
                ScreenedRegimen,
                proposed=cand,
                regimen=ps.final,
                findings=ps.findings,
                adjusted_by=dict(ps.adjusted_by),
            )
    excluded.sort(key=lambda e: e[0])
    return built(
        ScreenedCandidates,
        candidates=candidates,
        kept=tuple(kept.values()),
        excluded=tuple([e for _k, e in excluded]),
        current_findings=tuple(rules.check(ctx)),  # the context of this record on its as_of date
        genes=_gene_needs(candidates, ctx, rules),
        rules_version=rules.rules_version,
    )


def _gene_needs(candidates: CandidateSet, ctx: PatientContext, rules: RuleSet) -> tuple[GeneNeed, ...]:
    ingredients = {d.ingredient for cand in candidates.candidates for d in cand.drugs}
    needed: dict[str, set[str]] = {}
    for ing in ingredients:
        for g in rules.genes_for(ing):
            needed.setdefault(g, set()).add(ing)
    phenos = rules.phenotypes(ctx)
    out = []
    for gene in sorted(needed):
        res = phenos.get(gene)
        status = GeneStatus.NOT_TESTED if res is None else GeneStatus(res.status)
        out.append(built(GeneNeed, gene=gene, status=status, drugs=tuple(sorted(needed[gene]))))
    return tuple(out)
