"""The safety layer: pharmacogenomic and medication-safety rules as data, screening of regimens.

Public API::

    rs = RuleSet.load(path=None)              # validated once per process and folder; rs.rules_version
    ctx = rs.prepare(record, *, on=None, area=None, populations=())
    rs.screen(record_or_context, regimen, *, new_start=None, stopping=()) -> list[Finding]
    rs.check(record_or_context) -> list[Finding]        # the current medications
    rs.phenotypes(record_or_context) -> dict[str, GeneResult]
    rs.genes_for(ingredient) -> tuple[str, ...]
    apply_findings(regimen, findings) -> Regimen | None  # None when any finding excludes
    screen_plan(record_or_context, regimen, *, rules=None, area=None, new_start=None) -> PlanScreen
        # the list the plan leaves (plan + current drugs outside the area), both directions, doses applied

Semantics worth knowing:

* A regimen is an area's complete drug set: the patient's current drugs of the formulary of any area that
  contains a regimen drug are taken as replaced (``area=`` pins the area; ``stopping=`` names more); every other
  current drug counts for interactions, duplicates and phenoconversion.
* ``new_start`` (default: regimen drugs not currently taken) decides start-only rules (metformin at eGFR 30-45,
  CPIC "naive" populations).
* A strong CYP2D6/CYP2C19 inhibitor among the other current or candidate drugs makes the phenotype poor before
  the gene-drug lookup (moderate: one step down; CYP2C9 moderate inhibitors too); the finding's ``phenotype`` and
  ``message`` name the inhibitor. A gene not tested, indeterminate or in conflict gives a ``data-gap`` finding
  (and conflicts take the most severe recommendation); a tested gene with no matching rule is a data gap too.
* ``adjust_dose`` findings carry ``adjusted_dose_mg_day`` for the regimen's dose: a CPIC dose factor applies to
  the drug's usual (area reference) dose, so re-screening an adjusted regimen is stable; caps that the dose
  already respects become ``info``.

Modules: ``loader`` (RuleData: every rule file read, validated, indexed; area formularies through
``planner.areas``; versions from the files), ``context`` (PatientContext, ``prepare``), ``kinds/`` (one module a
rule kind behind one protocol, ``findings(ctx, plan) -> [Finding]``: gene_drug, allergy, conditions, labs,
max_dose, interactions, duplicates, current_effects), ``screen`` (the memoized screen loop), ``plan``
(``screen_plan``), ``engine`` (RuleSet, the facade), ``cpic_import`` (CPIC tables -> gene_drug.csv),
``sources`` (checkable sources report).

Rule data lives under ``rules/``: ``pgx/`` (allele functions, gene phenotype knowledge, CPIC gene-drug rules and
hand-authored extras, populations, wording map), ``interactions/ddi.yaml``, ``allergy/allergy.yaml``,
``conditions/`` (condition sets, drug-condition, drug-lab), ``drugs/`` (classes, CYP inhibitors, maximum doses).
"""

from .engine import PatientContext, RuleSet, apply_findings, sort_findings
from .phenotype import GeneResult
from .plan import PlanScreen, merge_findings, screen_plan

__all__ = [
    "RuleSet",
    "PatientContext",
    "GeneResult",
    "PlanScreen",
    "apply_findings",
    "merge_findings",
    "screen_plan",
    "sort_findings",
]
