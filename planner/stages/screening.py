"""The screening stage: ``CandidateSet -> ScreenedCandidates``.

Each candidate is screened as the whole medication list it leaves the patient on, through the safety layer's
public :func:`planner.safety.screen_plan` (screen, apply dose adjustments, screen the adjusted regimen again;
excluded when a rule excludes it or the adjustment does not settle). Kept regimens are de-duplicated by their
final key (the first candidate that reached it wins), excluded ones by their own key. The stage also screens
the current medications and records the test status of every gene a candidate's drugs have rules for.
"""

from __future__ import annotations

from ..areas import Area
from ..errors import ConfigError
from ..handoffs import CandidateSet, ExcludedCandidate, GeneNeed, ScreenedCandidates, ScreenedRegimen
from ..record import PatientRecord
from ..safety import RuleSet, screen_plan
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
    current = set(f.current.ingredients)
    kept: dict[str, ScreenedRegimen] = {}
    excluded: dict[str, ExcludedCandidate] = {}
    for cand in candidates.candidates:
        ps = screen_plan(ctx, cand, rules=rules, new_start=set(cand.ingredients) - current)
        if ps.final is None:
            excluded.setdefault(cand.key(), ExcludedCandidate(regimen=cand, findings=ps.exclusions))
            continue
        kept.setdefault(
            ps.final.key(),
            ScreenedRegimen(proposed=cand, regimen=ps.final, findings=ps.findings, adjusted_by=ps.adjusted_by),
        )
    return ScreenedCandidates(
        candidates=candidates,
        kept=tuple(kept.values()),
        excluded=tuple(sorted(excluded.values(), key=lambda e: e.regimen.key())),
        current_findings=tuple(rules.check(record)),
        genes=_gene_needs(candidates, record, rules),
        rules_version=rules.rules_version,
    )


def _gene_needs(candidates: CandidateSet, record: PatientRecord, rules: RuleSet) -> tuple[GeneNeed, ...]:
    needed: dict[str, set[str]] = {}
    for cand in candidates.candidates:
        for d in cand.drugs:
            for g in rules.genes_for(d.ingredient):
                needed.setdefault(g, set()).add(d.ingredient)
    phenos = rules.phenotypes(record)
    out = []
    for gene in sorted(needed):
        res = phenos.get(gene)
        status = GeneStatus.NOT_TESTED if res is None else GeneStatus(res.status)
        out.append(GeneNeed(gene=gene, status=status, drugs=tuple(sorted(needed[gene]))))
    return tuple(out)
