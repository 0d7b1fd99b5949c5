"""The rule set: the safety layer's one entry object.

``RuleSet.load(path)`` reads and validates every safety rule file under ``rules/`` once per process and folder
(:mod:`.loader`), ``prepare(record)`` computes what a patient brings (:mod:`.context`), ``screen(context,
regimen)`` runs the screen loop (:mod:`.screen`) over the rule kinds (:mod:`.kinds`, one module a kind behind
one protocol: context + the list a regimen leaves -> findings) and returns the sorted
:class:`~planner.record.Finding` list. ``check`` screens the current medications with the same logic, and
:func:`planner.safety.screen_plan` adds dose adjustment and re-screening.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from pathlib import Path
from typing import Any, Callable, Iterable

from ..manifest import verify
from ..record import DrugDose, Finding, PatientRecord, Regimen
from ..rule_files import rules_dir
from .context import PatientContext, prepare
from .findings import apply_findings, sort_findings
from .kinds import RuleKind
from .kinds.allergy import AllergyKind
from .kinds.conditions import ConditionKind
from .kinds.current_effects import CurrentEffectKind
from .kinds.duplicates import DuplicateKind
from .kinds.gene_drug import GeneDrugKind
from .kinds.interactions import InteractionKind
from .kinds.labs import LabKind
from .kinds.max_dose import MaxDoseKind
from .loader import RuleData
from .phenotype import GeneResult
from .screen import Screener
from .verdict import PlanScreen, verdict, verdict_parts

__all__ = ["RuleSet", "PatientContext", "apply_findings", "sort_findings"]


class RuleSet:
    """Every safety rule, validated and indexed, and the screen over them. Build with :meth:`load` (cached per
    folder and process). Rule data (``gene_drug``, ``ddi``, ``inhibitors``, ``lab_rules``, ...) is read
    through to :class:`~planner.safety.loader.RuleData`."""

    def __init__(self, root: Path, rules_version: str) -> None:
        self.data = RuleData(root, rules_version)
        self.root = root
        self.rules_version = rules_version
        self.knowledge = self.data.knowledge
        self.gene_drug_kind = GeneDrugKind(self.data)
        drug_kinds = (
            self.gene_drug_kind,
            AllergyKind(self.data),
            ConditionKind(self.data),
            LabKind(self.data),
            MaxDoseKind(self.data),
        )
        current = CurrentEffectKind(self.data, self.gene_drug_kind)
        pairs, dups = InteractionKind(self.data), DuplicateKind(self.data)
        self.kinds: tuple[RuleKind, ...] = (*drug_kinds, current, pairs, dups)
        self._screener = Screener(self.data, drug_kinds, current, pairs, dups)
        self._genes_needed: dict[frozenset[str], tuple[tuple[str, tuple[str, ...]], ...]] = {}

    def __getattr__(self, name: str) -> Any:  # rule data read through (rs.gene_drug, rs.ddi, rs.usual_dose, ...)
        if name.startswith("__") or name == "data":
            raise AttributeError(name)
        return getattr(self.data, name)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> "RuleSet":
        """The rule set of a rules folder (default: the packaged one); validated once per process and folder."""
        root = rules_dir(path).resolve()
        return _load_cached(str(root))

    # ---- rules ---------------------------------------------------------------------------------------------
    def genes_for(self, ingredient: str) -> tuple[str, ...]:
        """Genes with CPIC rules for a drug (for data-gap reporting)."""
        return self.data.genes_for(ingredient)

    def genes_needed(self, ingredients: frozenset[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(gene, the sorted ingredients of ``ingredients`` with CPIC rules for it) for every such gene, sorted:
        rule data alone, memoized per ingredient set (at most 4,096 sets; a patient's candidates share few)."""
        got = self._genes_needed.get(ingredients)
        if got is None:
            needed: dict[str, set[str]] = {}
            for ing in ingredients:
                for g in self.data.genes_for(ing):
                    needed.setdefault(g, set()).add(ing)
            got = tuple([(g, tuple(sorted(needed[g]))) for g in sorted(needed)])
            if len(self._genes_needed) < 4096:
                self._genes_needed[ingredients] = got
        return got

    def verdicts(self) -> Callable[[PatientContext, Regimen, frozenset[str] | None], tuple]:
        """``f(ctx, regimen, starts)``: :meth:`screen_plan`'s verdict on a prepared context as (the regimen after
        its dose adjustments or None when excluded, its findings, drug -> adjusting rule id) without the
        :class:`PlanScreen` (:func:`~planner.safety.verdict.verdict_parts`); ``starts`` None: the regimen drugs
        the patient does not take now, as ``new_start=None``. For the screening stage's per-candidate loop."""
        return functools.partial(verdict_parts, self._screener)

    def named_drugs(self) -> frozenset[str]:
        """Every ingredient some rule names."""
        return self.data.named_drugs()

    def all_rules(self) -> list[tuple[str, str, str, str]]:
        """(id, kind, version, source) of every rule, for ``planner rules list``."""
        return self.data.all_rules()

    def rule(self, rule_id: str) -> dict:
        """One rule as a dict, for ``planner rules show``."""
        return self.data.rule(rule_id)

    # ---- patients ------------------------------------------------------------------------------------------
    def prepare(
        self,
        record: PatientRecord | PatientContext,
        *,
        on: dt.date | None = None,
        area: str | None = None,
        populations: Iterable[str] = (),
    ) -> PatientContext:
        """Precompute a patient's phenotypes, allergies, conditions, labs and current drugs
        (:func:`planner.safety.context.prepare`; a context is returned as it is)."""
        return prepare(self.data, record, on=on, area=area, populations=populations)

    def phenotypes(self, record_or_context: PatientRecord | PatientContext) -> dict[str, GeneResult]:
        """Every gene's interpreted result, after phenoconversion by the patient's current drugs."""
        return self.gene_drug_kind.phenotypes(self.prepare(record_or_context))

    # ---- screening -----------------------------------------------------------------------------------------
    def screen(
        self,
        record_or_context: PatientRecord | PatientContext,
        regimen: Regimen,
        *,
        new_start: set[str] | None = None,
        stopping: Iterable[str] = (),
    ) -> list[Finding]:
        """Findings for the list ``regimen`` leaves: the regimen plus the current drugs it does not replace.

        ``new_start``: the regimen drugs being started (default: those not currently taken).
        ``stopping``: current drugs the regimen stops (not counted as co-medications).
        """
        ctx = record_or_context if isinstance(record_or_context, PatientContext) else self.prepare(record_or_context)
        return self._screener.screen(ctx, regimen, new_start=new_start, stopping=stopping)

    def screen_tuple(
        self, ctx: PatientContext, regimen: Regimen, *, new_start: set[str] | None = None
    ) -> tuple[Finding, ...]:
        """:meth:`screen` of a prepared context, as the memoized tuple (for :func:`~planner.safety.screen_plan`)."""
        return self._screener.screen_tuple(ctx, regimen, new_start=new_start)

    def check(self, record: PatientRecord | PatientContext) -> list[Finding]:
        """Screen the patient's current medications together (what ``planner check`` reports)."""
        ctx = self.prepare(record)
        drugs = [
            DrugDose(ingredient=ing, rxcui=m.rxcui or "", dose_mg_day=m.dose_mg_day)
            for ing, m in sorted(ctx.current.items())
        ]
        return self.screen(ctx, Regimen.of(drugs), new_start=set())

    def screen_plan(
        self,
        record_or_context: PatientRecord | PatientContext,
        regimen: Regimen,
        *,
        area: str | None = None,
        new_start: Iterable[str] | None = None,
    ) -> PlanScreen:
        """:func:`planner.safety.screen_plan` with this rule set: the regimen's verdict (:mod:`.verdict`)."""
        ctx = (
            record_or_context
            if isinstance(record_or_context, PatientContext)
            else self.prepare(record_or_context, area=area)
        )
        return verdict(self._screener, ctx, regimen, None if new_start is None else frozenset(new_start))


@functools.lru_cache(maxsize=8)
def _load_cached(root: str) -> RuleSet:
    version = verify(root)
    return RuleSet(Path(root), version)
