"""The safety layer: pharmacogenomic and medication-safety rules as data, screening of regimens.

Public API::

    rs = RuleSet.load(path=None)              # validated once per process and folder; rs.rules_version
    ctx = rs.prepare(record, on=None, area=None, populations=())
    rs.screen(ctx_or_record, regimen, new_start=None, stopping=()) -> list[Finding]
    rs.check(record) -> list[Finding]         # current medications
    rs.phenotypes(record_or_context) -> dict[str, GeneResult]
    rs.genes_for(ingredient) -> tuple[str, ...]
    apply_findings(regimen, findings) -> Regimen | None

Rule data lives under ``rules/``: ``pgx/`` (allele functions, gene phenotype knowledge, CPIC gene-drug rules,
populations, wording map), ``interactions/``, ``allergy/``, ``conditions/`` (condition sets, drug-condition,
drug-lab), ``drugs/`` (classes, CYP inhibitors, maximum doses).
"""

from .engine import PatientContext, RuleSet, apply_findings, sort_findings
from .phenotype import GeneResult

__all__ = ["RuleSet", "PatientContext", "GeneResult", "apply_findings", "sort_findings"]
