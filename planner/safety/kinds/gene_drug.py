"""Gene-drug rules (CPIC): the drug's genes after phenoconversion by the other drugs of the list, the patient's
CPIC population, the lookup (most specific row; widened to the phenotype bin when CPIC lists no row for an
activity score), data gaps for genes not tested, indeterminate or in conflict, and CPIC dose factors applied
to the regimen's dose."""

from __future__ import annotations

import itertools

from ...record import Finding, PatientRecord
from ...status import GeneStatus
from ..context import PatientContext, prepare
from ..findings import added, fit, new_finding, replace
from ..loader import RuleData, rule_severity
from ..phenotype import INDETERMINATE, NA_SCORE, NO_RESULT, GeneResult, floor_to, format_score
from ..schema import GeneDrugRule
from . import DrugKind, ScreenInput

__all__ = ["GeneDrugKind"]

Matches = tuple[tuple[tuple[GeneDrugRule, Finding], ...], tuple[Finding, ...]]


class GeneDrugKind(DrugKind):
    kind = "gene-drug"

    def __init__(self, rules: RuleData) -> None:
        self.rules = rules
        # each rule's finding where no co-medication changes the drug's genes, built once per rule set
        self.plain: dict[str, Finding] = {
            r.id: self._finding(r, r.drug, {}, [], frozenset()) for rs in rules.gene_drug.values() for r in rs
        }
        # a plain dose rule's finding when the regimen's dose already complies
        self.plain_info: dict[int, Finding] = {
            id(f): replace(f, action="info") for f in self.plain.values() if f.action == "adjust_dose"
        }
        # each gene-drug drug's data gap for a gene not tested (no phenotype), built once per rule set
        self.untested: dict[tuple[str, str], Finding] = {
            (d, g): self._gap(d, g, GeneResult(gene=g, status=GeneStatus.NOT_TESTED, lookup=(NO_RESULT,)))
            for d, genes in rules.genes_of.items()
            for g in genes
        }
        # per activity-score gene, the score any score x 0 gives (a strong inhibitor's factor) and its phenotype
        kn = rules.knowledge
        self.zero: dict[str, tuple[str, str]] = {
            g: (format_score(0.0), kn.bin_of(g, format_score(0.0))) for g in kn.as_genes
        }
        # drugs whose rules are one population keyed on one set of genes (no allele): (the population, the genes,
        # the rules by key), so that a patient with one value per gene is one look-up (:meth:`match`)
        self.simple: dict[str, tuple[str, tuple[str, ...], dict]] = {}
        for d, loci in rules.loci.items():
            pops = rules.pops[d]
            sets = rules.locisets.get((d, pops[0]), ()) if len(pops) == 1 else ()
            if len(sets) == 1 and sets[0] == loci and all("*" not in loc for loc in loci):
                self.simple[d] = (pops[0], loci, rules.gd_index.get((d, pops[0]), {}))

    # ---- phenotypes ----------------------------------------------------------------------------------------
    def phenotypes(self, record_or_context: PatientRecord | PatientContext) -> dict[str, GeneResult]:
        """Every gene's interpreted result, after phenoconversion by the patient's current drugs."""
        ctx = prepare(self.rules, record_or_context)
        drugs = frozenset(ctx.current)
        return {g: self.effective(ctx, g, drugs, "") for g in sorted(ctx.genes)}

    def effective(self, ctx: PatientContext, gene: str, drugs: frozenset[str], subject: str) -> GeneResult:
        base = ctx.genes.get(gene)
        if base is None:
            base = GeneResult(gene=gene, status=GeneStatus.NOT_TESTED, lookup=(NO_RESULT,))
        if not drugs:  # no co-medication: nothing converts it
            return base
        inh = self.rules.inhibitors.get(gene)
        if not inh:
            return base
        strong: list[str] = []
        moderate: list[str] = []
        for d in drugs:
            level = inh.get(d)
            if level is not None and d != subject:
                if level == "strong":
                    strong.append(d)
                elif level == "moderate":
                    moderate.append(d)
        if not strong and not moderate:
            return base
        strong.sort()
        moderate.sort()
        key = ("pheno", gene, tuple(strong), tuple(moderate))
        hit = ctx.cache.get(key)
        if hit is not None:
            return hit
        kn = self.rules.knowledge
        level = "strong" if strong else "moderate"
        by = tuple(strong or moderate)
        if kn.is_activity_gene(gene):
            spec = kn.as_genes[gene]
            factor = spec.factors[level]  # genes.yaml inhibitor_factor (CYP2D6: strong 0, moderate 0.5)
            if factor == 0:  # any score x 0: poor, whether or not the gene was tested (score and bin per rule set)
                zero, phen = self.zero[gene]
                res = replace(
                    base, lookup=(zero,), activity_score=zero, phenotype=phen or base.phenotype, phenoconverted_by=by
                )
                if base.status == GeneStatus.NOT_TESTED and moderate and not strong:
                    res = base  # a moderate inhibitor says nothing about an untested gene
                ctx.cache[key] = res
                return res
            else:
                vals = []
                for v in base.lookup:
                    if v in (NO_RESULT, NA_SCORE):
                        vals.append(v)
                        continue
                    vals.append(format_score(floor_to(float(v.lstrip("≥")) * factor, spec.step)))
                vals = list(dict.fromkeys(vals))
            phen = " / ".join(dict.fromkeys(kn.bin_of(gene, v) for v in vals if v != NO_RESULT))
            res = replace(
                base,
                lookup=tuple(vals),
                activity_score=" / ".join(vals),
                phenotype=phen or base.phenotype,
                phenoconverted_by=by,
            )
        elif strong:
            poor = kn.step_down[gene]["poor"]
            res = replace(base, phenotype=poor, lookup=(poor,), phenoconverted_by=by)
        else:
            steps = kn.step_down[gene]["steps"]
            vals = list(dict.fromkeys(steps.get(v, v) for v in base.lookup))
            res = replace(base, lookup=tuple(vals), phenotype=" / ".join(vals), phenoconverted_by=by)
        if base.status == GeneStatus.NOT_TESTED and moderate and not strong:
            res = base  # a moderate inhibitor says nothing about an untested gene
        ctx.cache[key] = res
        return res

    # -- gene-drug
    def population_member(self, ctx: PatientContext, pop: str, d: str, is_new: bool) -> bool | None:
        spec = self.rules.populations[pop]
        kind = spec.kind
        if kind == "always":
            return True
        if kind == "declared":
            return pop in ctx.declared_populations
        if kind in ("new_start", "established_use"):
            med = ctx.current.get(d)
            if is_new or med is None:
                used = 0
            elif med.start is None:
                return None
            else:
                used = (ctx.on - med.start).days
            established = used >= (spec.min_days or 0)
            return established if kind == "established_use" else not established
        if kind == "age":
            if ctx.age is None:
                return None
            if spec.min is not None and ctx.age < spec.min:
                return False
            if spec.max is not None and ctx.age >= spec.max:
                return False
            return True
        if kind == "conditions":
            return True if spec.conditions in ctx.conditions else None
        if kind == "conditions_without":
            if any(w in ctx.conditions for w in spec.without):
                return False
            return True if spec.conditions in ctx.conditions else None
        return None  # pragma: no cover

    def applies(self, drug: str) -> bool:
        return drug in self.rules.loci

    def drug_findings(self, ctx: PatientContext, plan: ScreenInput, d: str, dose: float | None) -> list[Finding]:
        if d not in self.rules.loci:
            return []
        bests, gaps = self.gdm(ctx, d, plan.all_drugs, d in plan.starts)
        out = [
            self.dose_adjusted(r, f, d, dose) if f.action == "adjust_dose" and dose is not None else f for r, f in bests
        ]
        return out + list(gaps)

    def gdm(self, ctx: PatientContext, d: str, drugs: frozenset[str], is_new: bool) -> Matches:
        """Gene-drug matches of ``d`` beside ``drugs`` (memoized on the inhibitors among them)."""
        key = ("gdm", d, is_new, self.rules.gd_inhibitors[d] & drugs)
        hit = ctx.cache.get(key)
        if hit is None:
            hit = ctx.cache[key] = self.match(ctx, d, drugs, is_new)
        return hit

    def dose_adjusted(self, rule: GeneDrugRule, f: Finding, d: str, dose: float) -> Finding:
        """The regimen's dose after a CPIC dose rule; ``info`` when the dose already complies."""
        adjusted = dose
        if rule.dose_factor is not None:
            usual = self.rules.usual_dose.get(d)
            if usual is None:  # no usual dose known: the factor applies to the regimen's dose
                adjusted = dose * rule.dose_factor
            elif rule.dose_factor < 1:  # at most factor x the usual dose (idempotent when re-screened)
                adjusted = min(dose, usual * rule.dose_factor)
            else:  # at least factor x the usual dose
                adjusted = max(dose, usual * rule.dose_factor)
        if rule.max_dose_mg_day is not None:
            adjusted = min(adjusted, rule.max_dose_mg_day)
        adjusted = round(adjusted, 4)
        if adjusted == dose:
            info = self.plain_info.get(id(f))  # a plain finding (held by the rule set: its id is its own)
            return replace(f, action="info") if info is None else info
        return replace(f, adjusted_dose_mg_day=adjusted)

    def _values(self, d: str, eff: dict[str, GeneResult]) -> dict[str, list[str]]:
        """Each locus of ``d``'s rules -> the lookup values the patient's (effective) result can take."""
        values: dict[str, list[str]] = {}
        for loc in self.rules.loci[d]:
            gene, _, allele = loc.partition("*")
            res = eff[gene]
            if allele:
                if res.status == GeneStatus.NOT_TESTED:
                    vals = [NO_RESULT]
                elif res.status == GeneStatus.INDETERMINATE:
                    vals = [INDETERMINATE, NO_RESULT]
                else:
                    st = res.allele_status("*" + allele)
                    vals = ["positive", "negative"] if st == "conflict" else [st]
            else:
                vals = list(res.lookup) or [NO_RESULT]
            values[loc] = vals
        return values

    def match(self, ctx: PatientContext, d: str, all_drugs: frozenset[str], is_new: bool) -> Matches:
        """The best CPIC finding per set of genes of ``d``, and data gaps, for the patient beside ``all_drugs``."""
        genes = self.rules.genes_of[d]
        conv_by = self.rules.gd_inhibitors[d] & all_drugs
        eff = {g: self.effective(ctx, g, conv_by, d) for g in genes}
        simple = self.simple.get(d)
        if simple is not None:  # one population, one set of genes: one value per gene is one look-up
            found = self._simple_match(ctx, d, eff, simple)
            if found is not None:
                return found
        values = self._values(d, eff)
        pops = self.rules.pops[d]
        if len(pops) == 1:  # one population: it is the one chosen whatever the patient's membership
            chosen = list(pops)
        else:
            members = {p: self.population_member(ctx, p, d, is_new) for p in pops}
            declared = [p for p in members if p in ctx.declared_populations]
            chosen = (
                declared
                or [p for p, m in members.items() if m is True]
                or [p for p, m in members.items() if m is None]
                or list(members)
            )
        matches = self.lookup(d, chosen, values)
        widened = False
        if not matches:
            # an activity score CPIC lists no row for (e.g. 3.5, or a phenoconverted score): use the other scores
            # of the same phenotype bin, most severe first (CPIC's score rows follow the phenotype)
            wide = {}
            for loc, vals in values.items():
                if self.rules.knowledge.is_activity_gene(loc):
                    more = [
                        x
                        for v in vals
                        if v not in (NO_RESULT, NA_SCORE)
                        for x in self.rules.knowledge.scores_in_bin(loc, self.rules.knowledge.bin_of(loc, v))
                    ]
                    wide[loc] = list(dict.fromkeys(vals + more))
                else:
                    wide[loc] = vals
            if wide != values:
                matches = self.lookup(d, chosen, wide)
                widened = bool(matches)
        if len(matches) > 1:  # a row keyed on more genes is more specific than one keyed on fewer of them
            sets = {locset for _r, _p, locset in matches}
            matches = [m for m in matches if not any(set(m[2]) < set(o) for o in sets)]
        converted = sorted({x for g in genes for x in eff[g].phenoconverted_by})
        groups: dict[tuple[str, ...], list[tuple[GeneDrugRule, str]]] = {}
        for r, pop, locset in matches:  # one recommendation per set of genes (e.g. warfarin CYP2C9, VKORC1)
            groups.setdefault(locset, []).append((r, pop))
        bests: list[tuple[GeneDrugRule, Finding]] = []
        for locset in sorted(groups):
            group = groups[locset]
            uncertain_pop = len({pop for _r, pop in group}) > 1
            # the most severe candidate (the first of equals); only its finding is built
            best_rule = (
                group[0][0]
                if len(group) == 1
                else min((r for r, _ in group), key=lambda r: rule_severity(r, self.rules.strength_rank))
            )
            best = self.finding(best_rule, d, eff, converted, ctx.current_names)
            if uncertain_pop or widened or len({r.id for r, _ in group}) > 1:
                why = (
                    "population not determined"
                    if uncertain_pop
                    else "no CPIC row for this exact activity score; same phenotype used"
                    if widened
                    else "uncertain genotype"
                )
                best = replace(
                    best, phenotype=f"{best.phenotype}; most severe of {len(group)} possible recommendations ({why})"
                )
            bests.append((best_rule, best))
        return tuple(bests), tuple(self._gaps(d, genes, eff, values, bests))

    def _simple_match(
        self, ctx: PatientContext, d: str, eff: dict[str, GeneResult], simple: tuple[str, tuple[str, ...], dict]
    ) -> Matches | None:
        """:meth:`match` for a drug of :attr:`simple` whose genes have one lookup value each and a rule for them
        (what the general path gives then: that rule, no widening, no choice); None otherwise."""
        _pop, genes, index = simple
        vals = []
        for g in genes:
            lookup = eff[g].lookup
            if len(lookup) != 1:
                return None
            vals.append(lookup[0])
        rule = index.get(frozenset(zip(genes, vals)))
        if rule is None:
            return None
        converted = sorted({x for g in genes for x in eff[g].phenoconverted_by})
        bests = [(rule, self.finding(rule, d, eff, converted, ctx.current_names))]
        values = {g: [v] for g, v in zip(genes, vals)}
        return tuple(bests), tuple(self._gaps(d, genes, eff, values, bests))

    def _gaps(
        self,
        d: str,
        genes: tuple[str, ...],
        eff: dict[str, GeneResult],
        values: dict[str, list[str]],
        bests: list[tuple[GeneDrugRule, Finding]],
    ) -> list[Finding]:
        """Genes not tested, indeterminate or in conflict (unless an exclusion stands anyway), or no rule."""
        findings: list[Finding] = []
        gaps = [g for g in genes if eff[g].status.is_gap and not eff[g].phenoconverted_by]
        if not bests and not gaps:  # tested, but no rule matches: say so rather than pass silently
            keys = "; ".join(f"{loc}={'/'.join(v)}" for loc, v in values.items())
            findings.append(
                new_finding(
                    rule_id="gap.pgx.no-rule",
                    rule_version=self.rules.knowledge.version,
                    kind="data-gap",
                    action="caution",
                    message=fit(f"No CPIC rule matches {d} for {keys}; review the genotype manually."),
                    source=self.guideline(d),
                    data_version=self.rules.knowledge.data_version,
                    drugs=(d,),
                    genes=genes,
                    phenotype=keys,
                    target_drug=d,
                )
            )
        if gaps and not any(f.action == "exclude" for _r, f in bests):
            for g in gaps:
                res = eff[g]
                hit = self.untested.get((d, g)) if res.status == GeneStatus.NOT_TESTED and not res.phenotype else None
                findings.append(hit or self._gap(d, g, res))
        return findings

    def _gap(self, d: str, g: str, res: GeneResult) -> Finding:
        """The data gap of ``d``'s gene ``g`` whose result is ``res`` (not tested, indeterminate or in conflict)."""
        st = res.status
        word = "reported with conflicting results" if st == GeneStatus.CONFLICT else GeneStatus(st).label
        return new_finding(
            rule_id=f"gap.pgx.{g}",
            rule_version=self.rules.knowledge.version,
            kind="data-gap",
            action="caution",
            strength=None,
            message=fit(f"{g} is {word} while {d} has CPIC rules for it; treat the phenotype as unknown."),
            source=self.guideline(d),
            data_version=self.rules.knowledge.data_version,
            drugs=(d,),
            genes=(g,),
            phenotype=f"{g} {st}" + (f": {res.phenotype}" if res.phenotype else ""),
            target_drug=d,
        )

    def lookup(
        self, d: str, pops: list[str], values: dict[str, list[str]]
    ) -> list[tuple[GeneDrugRule, str, tuple[str, ...]]]:
        """Rules of ``d`` whose lookup key is one combination of ``values`` (per set of loci the rules use)."""
        out: list[tuple[GeneDrugRule, str, tuple[str, ...]]] = []
        for pop in pops:
            slot = self.rules.gd_index.get((d, pop), {})
            for locset in self.rules.locisets[(d, pop)]:
                for combo in itertools.product(*[[(loc, v) for v in values[loc]] for loc in locset]):
                    rule = slot.get(frozenset(combo))
                    if rule is not None:
                        out.append((rule, pop, locset))
        return out

    def guideline(self, d: str) -> str:
        rs = self.rules.gene_drug.get(d)
        return rs[0].source if rs else ""

    def finding(
        self, rule: GeneDrugRule, d: str, eff: dict[str, GeneResult], converted: list[str], current: frozenset[str]
    ) -> Finding:
        """The finding of ``rule`` for ``d`` (the rule's drug), phenoconverted by ``converted`` (if any)."""
        if not converted and d == rule.drug:
            return self.plain[rule.id]
        return self._finding(rule, d, eff, converted, current)

    def _finding(
        self, rule: GeneDrugRule, d: str, eff: dict[str, GeneResult], converted: list[str], current: frozenset[str]
    ) -> Finding:
        pheno = "; ".join(
            f"{loc}={val}"
            + (
                f" (phenoconverted by {', '.join(eff[loc.split('*')[0]].phenoconverted_by)})"
                if converted and eff[loc.split("*")[0]].phenoconverted_by
                else ""
            )
            for loc, val in rule.conditions
        )
        msg = rule.message
        if converted:
            extra = f" Phenotype set by {', '.join(converted)} (CYP inhibitor)."
            msg = msg + extra if len(msg + extra) <= 140 else fit(f"{msg.rstrip('.')}; due to {', '.join(converted)}.")
            plain = self.plain.get(rule.id) if d == rule.drug else None
            if (
                plain is not None and plain.target_drug == d
            ):  # the rule's plain finding with what the inhibitors change (the same fields set)
                return replace(
                    plain,
                    message=msg,
                    drugs=tuple(sorted({d, *converted})),
                    phenotype=pheno,
                    plan_adds=added((d, *converted), current),
                )
        return new_finding(
            rule_id=rule.id,
            rule_version=rule.version,
            kind="gene-drug",
            action=rule.action,
            strength=rule.strength,
            message=msg,
            source=rule.source,
            data_version=rule.data_version,
            drugs=tuple(sorted({d, *converted})),
            genes=rule.genes,
            phenotype=pheno,
            target_drug=d,
            dose_factor=rule.dose_factor,
            max_dose_mg_day=rule.max_dose_mg_day,
            alternatives=rule.alternatives,
            plan_adds=added((d, *converted), current) if converted else (),
        )
