"""The screening stage: ``CandidateSet -> ScreenedCandidates``.

Each candidate is screened as the whole medication list it leaves the patient on, through the safety layer's
verdict (``RuleSet.verdicts``: what ``RuleSet.screen_plan`` and :func:`planner.safety.screen_plan` give, without
their ``PlanScreen``: screen, apply dose adjustments, screen the adjusted regimen again; excluded when a rule
excludes it or the adjustment does not settle). Kept regimens are de-duplicated by their
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
from ..safety.findings import built, made
from ..safety.verdict import exclusions_of
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
    # the drugs a candidate starts are those not taken now: when the features' current drugs are the context's,
    # that is the screen's default (starts None), the same findings without a set per candidate
    same = current == ctx.current_names
    judge = rules.verdicts()
    kept: dict[str, ScreenedRegimen] = {}
    excluded: list[tuple[str, ExcludedCandidate]] = []
    for cand in candidates.candidates:
        starts = None if same else frozenset([d.ingredient for d in cand.drugs if d.ingredient not in current])
        final, findings, adjusted_by = judge(ctx, cand, starts)
        if final is None:  # candidates are unique by key (CandidateSet): no excluded key repeats
            excluded.append((cand.key(), made(ExcludedCandidate, regimen=cand, findings=exclusions_of(findings, True))))
            continue
        key = final.key()
        if key not in kept:
            kept[key] = made(ScreenedRegimen, proposed=cand, regimen=final, findings=findings, adjusted_by=adjusted_by)
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
    """Each gene some candidate drug has rules for, with its status after phenoconversion by the current drugs
    (``rules.phenotypes``'s, computed for these genes only); a gene without a result is not tested."""
    needs = rules.genes_needed(frozenset([d.ingredient for cand in candidates.candidates for d in cand.drugs]))
    effective = rules.gene_drug_kind.effective
    drugs = frozenset(ctx.current)
    out = []
    for gene, ings in needs:
        status = GeneStatus(effective(ctx, gene, drugs, "").status) if gene in ctx.genes else GeneStatus.NOT_TESTED
        out.append(made(GeneNeed, gene=gene, status=status, drugs=ings))
    return tuple(out)
