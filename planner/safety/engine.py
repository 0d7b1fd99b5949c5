"""The rule set and the screening engine.

``RuleSet.load(path)`` reads and validates every safety rule file under ``rules/`` once per process and folder;
``prepare(record)`` precomputes what a patient brings (phenotypes, allergies, conditions, labs, current drugs),
``screen(context, regimen)`` returns the :class:`~planner.record.Finding` list for one candidate regimen.
Screening is memoized per drug and per drug pair inside a context, so screening the ~200 candidates of one
patient costs little more than the distinct drugs among them.

Order of evaluation for each drug of a regimen (findings are independent; all are returned, sorted by action
severity, kind and rule id): gene-drug (after phenoconversion by the other current or candidate drugs),
drug-allergy, drug-condition and drug-age, drug-lab (a missing lab is a data gap), maximum daily dose; then
drug-drug pairs (at least one drug in the regimen) and duplicate therapy within a class.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import operator
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..rule_files import read_csv, read_yaml, rules_dir
from ..errors import RuleError
from ..record import DrugDose, Finding, Medication, PatientRecord, Regimen
from ..status import GeneStatus
from .phenotype import INDETERMINATE, NA_SCORE, NO_RESULT, GeneKnowledge, GeneResult, floor_to, format_score
from .schema import (
    ACTION_RANK, AllergyGroup, ConditionRule, DdiRule, DrugClass, GeneDrugRule, LabRule, Population, validate_rule,
)

__all__ = ["RuleSet", "PatientContext", "apply_findings", "sort_findings"]

_INACTIVE_ALLERGY = {"inactive", "resolved"}  # FHIR AllergyIntolerance clinicalStatus codes
_REFUTED = {"refuted", "entered-in-error"}  # FHIR verificationStatus codes


def _rule_severity(r: GeneDrugRule, strength_rank: dict[str, int]) -> tuple:
    """Most severe first: action, then strength (rules/pgx/action_map.yaml strength_order), then dose; the
    finding a gene-drug rule gives takes its action, strength and dose from the rule."""
    return (ACTION_RANK[r.action], strength_rank.get(r.strength or "", len(strength_rank)),
            r.dose_factor if r.dose_factor is not None else 9.0,
            r.max_dose_mg_day if r.max_dose_mg_day is not None else 1e9)


def _sort_key(f: Finding) -> tuple:
    return (ACTION_RANK[f.action], f.kind, f.rule_id, f.drugs, f.genes, f.target_drug or "", f.message)


_key_of = operator.itemgetter(0)  # (sort key, finding) -> sort key
_finding_of = operator.itemgetter(1)
_NO_INFO: tuple[None, None] = (None, None)


def _keyed(findings: list[Finding]) -> tuple[tuple[tuple, Finding], ...]:
    """Findings with their sort keys, computed once per finding object of a context."""
    return tuple([(_sort_key(f), f) for f in findings])


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Deterministic order: most severe action first, then kind, rule id, drugs."""
    return sorted(findings, key=_sort_key)


def _check_template(template: str, *, file: str, rule_id: str, **fields: str) -> None:
    """A message template must format with exactly the fields the engine gives it."""
    try:
        template.format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        raise RuleError(f"message template does not format ({exc!r})", file=file, resource=rule_id,
                        field="message", value=template, expected="placeholders among {" + ", ".join(fields) + "}") from exc


def _added(drugs: Iterable[str], current: frozenset[str]) -> tuple[str, ...]:
    """The drugs of a finding that the screened regimen starts (none when screening the current list)."""
    return tuple(sorted({d for d in drugs if d not in current}))


def _fit(text: str, limit: int = 140) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


@dataclass
class _Condset:
    snomed: frozenset[str]
    icd10: tuple[str, ...]
    terms: re.Pattern[str] | None
    negations: tuple[str, ...] = ()


def terms_pattern(terms: Iterable[str]) -> re.Pattern[str] | None:
    """Whole-word, case-insensitive matcher for display terms; ``word*`` matches words starting with ``word``."""
    parts = [re.escape(t[:-1]) + r"\w*" if t.endswith("*") else re.escape(t) for t in (str(x).lower() for x in terms)]
    if not parts:
        return None
    return re.compile(r"(?<![\w-])(?:" + "|".join(parts) + r")(?![\w-])", re.IGNORECASE)


@dataclass
class PatientContext:
    """What one patient brings to screening, computed once by :meth:`RuleSet.prepare`."""

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
    current_names: frozenset[str] = field(init=False, default=frozenset())

    def __post_init__(self) -> None:
        self.current_names = frozenset(self.current)


class RuleSet:
    """Every safety rule, validated and indexed. Build with :meth:`load` (cached per folder and process)."""

    def __init__(self, root: Path, rules_version: str) -> None:
        self.root = root
        self.rules_version = rules_version
        self.knowledge = GeneKnowledge(root)
        amap, afile = self._yaml("pgx/action_map.yaml")
        order = amap.get("strength_order")
        if not isinstance(order, list) or not order:
            raise RuleError("strength_order must be a non-empty list", file=afile, field="strength_order")
        self._strength_rank = {str(name): i for i, name in enumerate(order)}
        self._gene_list = self.knowledge.genes
        self._load_classes()
        self._load_gene_drug()
        self._load_populations()
        self._load_inhibitors()
        self._load_ddi()
        self._load_conditions()
        self._load_labs()
        self._load_allergy()
        self._load_max_doses()
        # per drug: the other drugs it can interact with or duplicate (a quick test that a regimen has no links)
        self._links: dict[str, frozenset[str]] = {}
        for d in set(self._ddi_partners) | set(self._dup_classes):
            near = set(self._ddi_partners.get(d, ()))
            for c in self._dup_classes.get(d, ()):
                near |= self.class_members[c]
            near.discard(d)
            if near:
                self._links[d] = frozenset(near)
        # per gene-drug drug: the CYP inhibitors that can change its genes' phenotypes (the only co-medications
        # its gene-drug findings depend on), so blocks are shared by regimens that differ only in other drugs
        # an inhibitor whose pair with the drug an exclude drug-drug rule already covers does not phenoconvert
        # it too (clopidogrel with omeprazole is excluded once, by the interaction rule)
        self._gd_inhibitors: dict[str, frozenset[str]] = {
            d: frozenset(x for g in genes for x in self.inhibitors.get(g, {}) if x != d and (d, x) not in self._excl_pairs)
            for d, genes in self._genes_of.items()}
        # both, in one look-up per drug of a regimen: (gene-drug inhibitors or None, linked drugs or None)
        self._drug_info: dict[str, tuple[frozenset[str] | None, frozenset[str] | None]] = {
            d: (self._gd_inhibitors.get(d), self._links.get(d)) for d in set(self._gd_inhibitors) | set(self._links)}

    # ---- loading -------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> "RuleSet":
        """The rule set of a rules folder (default: the packaged one); validated once per process and folder."""
        root = rules_dir(path).resolve()
        return _load_cached(str(root))

    def _yaml(self, rel: str) -> tuple[dict, str]:
        path = self.root / rel
        data = read_yaml(path)
        if not isinstance(data, dict) or not all(k in data for k in ("id", "version", "source")):
            raise RuleError("rule file must be a mapping with id, version and source", file=str(path))
        return data, str(path)

    def _load_classes(self) -> None:
        data, file = self._yaml("drugs/classes.yaml")
        self.classes: dict[str, DrugClass] = {}
        for cid, spec in (data.get("classes") or {}).items():
            self.classes[cid] = validate_rule(DrugClass, spec, file=file, rule_id=cid)
        self.area_max: dict[str, float] = {}
        self.usual_dose: dict[str, float] = {}  # area reference dose: the "usual dose" of CPIC dose factors
        self.area_formulary: dict[str, frozenset[str]] = {}
        self.rxcui_to_ingredient: dict[str, str] = {}
        members: dict[str, set[str]] = {c: set(v.members) for c, v in self.classes.items()}
        area_dir = self.root / "areas"
        for apath in sorted(area_dir.glob("*.yaml")) if area_dir.is_dir() else []:
            area = read_yaml(apath)
            names: set[str] = set()
            for entry in (area or {}).get("formulary", []) or []:
                try:
                    ing, cls_id = str(entry["ingredient"]).lower(), str(entry["class"])
                except (KeyError, TypeError):
                    raise RuleError("formulary entry needs ingredient and class", file=str(apath)) from None
                members.setdefault(cls_id, set()).add(ing)
                names.add(ing)
                if entry.get("max_dose"):
                    self.area_max.setdefault(ing, float(entry["max_dose"]))
                if entry.get("reference_dose"):
                    self.usual_dose.setdefault(ing, float(entry["reference_dose"]))
                if entry.get("rxcui"):
                    self.rxcui_to_ingredient[str(entry["rxcui"])] = ing
            self.area_formulary[str((area or {}).get("id", apath.stem))] = frozenset(names)
        self._replaced_cache: dict[tuple[str, ...], frozenset[str]] = {}
        self._drug_areas: dict[str, tuple[str, ...]] = {}
        for aid, names_ in sorted(self.area_formulary.items()):
            for n in names_:
                self._drug_areas[n] = self._drug_areas.get(n, ()) + (aid,)
        self.class_members: dict[str, frozenset[str]] = {c: frozenset(v) for c, v in members.items()}
        self.drug_classes: dict[str, frozenset[str]] = {}
        for c, ms in self.class_members.items():
            for m in ms:
                self.drug_classes[m] = self.drug_classes.get(m, frozenset()) | {c}
        self._dup_classes: dict[str, tuple[str, ...]] = {
            d: tuple(sorted(c for c in cs if c in self.classes and self.classes[c].duplicate is not None))
            for d, cs in self.drug_classes.items()}

    def expand(self, items: Iterable[str], *, file: str = "", rule_id: str = "") -> frozenset[str]:
        """Ingredients named directly, through ``class:<id>`` or through ``inhibitor:<GENE>[:strong|moderate]``
        (the CYP inhibitors of ``drugs/cyp_inhibitors.yaml``)."""
        out: set[str] = set()
        for item in items:
            if item.startswith("inhibitor:"):
                _, gene, *level = item.split(":")
                if gene not in self.inhibitors or (level and level[0] not in ("strong", "moderate")):
                    raise RuleError("unknown inhibitor reference", file=file, resource=rule_id, field="drugs",
                                    value=item, expected="inhibitor:<gene in drugs/cyp_inhibitors.yaml>[:strong|:moderate]")
                out |= {x for x, st in self.inhibitors[gene].items() if not level or st == level[0]}
            elif item.startswith("class:"):
                cid = item[6:]
                if cid not in self.class_members:
                    raise RuleError("unknown drug class", file=file, resource=rule_id, field="drugs", value=item,
                                    expected="a class in drugs/classes.yaml or an area formulary")
                out |= self.class_members[cid]
            else:
                out.add(item.lower())
        return frozenset(out)

    def _load_gene_drug(self) -> None:
        self.gene_drug: dict[str, list[GeneDrugRule]] = {}
        self._gd_index: dict[tuple[str, str], dict[frozenset, GeneDrugRule]] = {}
        for name in ("gene_drug.csv", "gene_drug_extra.csv"):
            path = self.root / "pgx" / name
            if name == "gene_drug.csv" or path.is_file():
                self._load_gene_drug_file(path)
        self._index_gene_drug()

    def _load_gene_drug_file(self, path: Path) -> None:
        for row in read_csv(path):
            rid = row.get("id") or "?"
            try:
                conds = tuple(tuple(part.split("=", 1)) for part in row["conditions"].split("; "))
                data = {
                    **{k: row[k] for k in ("id", "version", "drug", "rxcui", "population", "action", "strength",
                                           "message", "source", "data_version", "mapping")},
                    "genes": tuple(g for g in row["genes"].split(";") if g),
                    "conditions": conds,
                    "dose_factor": float(row["dose_factor"]) if row["dose_factor"] else None,
                    "max_dose_mg_day": float(row["max_dose_mg_day"]) if row["max_dose_mg_day"] else None,
                    "alternatives": tuple(a for a in row["alternatives"].split(";") if a),
                }
            except (KeyError, ValueError, AttributeError) as exc:
                raise RuleError(f"malformed row ({exc})", file=str(path), resource=rid) from None
            rule = validate_rule(GeneDrugRule, data, file=str(path), rule_id=rid)
            for locus, _ in rule.conditions:
                gene = locus.split("*")[0]
                if gene not in self.knowledge.genes:
                    raise RuleError("unknown gene", file=str(path), resource=rid, field="conditions", value=locus)
            self.gene_drug.setdefault(rule.drug, []).append(rule)
            key = frozenset(rule.conditions)
            slot = self._gd_index.setdefault((rule.drug, rule.population), {})
            if key in slot:
                raise RuleError("two rules for the same drug, population and lookup key", file=str(path),
                                resource=rid, field="conditions", value=row["conditions"])
            slot[key] = rule
            if rule.rxcui:
                self.rxcui_to_ingredient.setdefault(rule.rxcui, rule.drug)

    def _index_gene_drug(self) -> None:
        self._loci: dict[str, tuple[str, ...]] = {
            d: tuple(sorted({loc for r in rs for loc, _ in r.conditions})) for d, rs in self.gene_drug.items()
        }
        locsets: dict[tuple[str, str], set[tuple[str, ...]]] = {}
        for d, rs_ in self.gene_drug.items():
            for r in rs_:
                locsets.setdefault((d, r.population), set()).add(tuple(sorted(loc for loc, _ in r.conditions)))
        self._locisets: dict[tuple[str, str], tuple[tuple[str, ...], ...]] = {
            k: tuple(sorted(v, key=lambda t: (-len(t), t))) for k, v in locsets.items()}
        self._genes_of: dict[str, tuple[str, ...]] = {
            d: tuple(sorted({loc.split("*")[0] for loc in loci})) for d, loci in self._loci.items()}
        self._pops: dict[str, tuple[str, ...]] = {
            d: tuple(sorted({r.population for r in rs})) for d, rs in self.gene_drug.items()
        }

    def _load_populations(self) -> None:
        data, file = self._yaml("pgx/populations.yaml")
        self.populations = {name: validate_rule(Population, spec, file=file, rule_id=name)
                            for name, spec in (data.get("populations") or {}).items()}
        for d, pops in self._pops.items():
            for p in pops:
                if p not in self.populations:
                    raise RuleError("population used by a gene-drug rule is not defined", file=file, value=p,
                                    resource=d)

    def _load_inhibitors(self) -> None:
        data, file = self._yaml("drugs/cyp_inhibitors.yaml")
        self.inhibitors: dict[str, dict[str, str]] = {}  # gene -> ingredient -> strong|moderate
        for gene, spec in (data.get("inhibitors") or {}).items():
            for strength in ("strong", "moderate"):
                for ing in spec.get(strength, []) or []:
                    self.inhibitors.setdefault(gene, {})[str(ing).lower()] = strength
        self._inhibitor_drugs = frozenset(d for v in self.inhibitors.values() for d in v)
        for gene in self.inhibitors:  # every gene with inhibitors needs its phenoconversion data
            ok = (gene in self.knowledge.as_genes and "strong" in self.knowledge.as_genes[gene].factors
                  and "moderate" in self.knowledge.as_genes[gene].factors) or \
                 ("poor" in self.knowledge.step_down.get(gene, {}) and "steps" in self.knowledge.step_down[gene])
            if not ok:
                raise RuleError("gene has inhibitors but no phenoconversion data", file=file, resource=gene,
                                expected="activity_score.inhibitor_factor (strong, moderate) or step_down (poor, steps) "
                                         "in pgx/genes.yaml")
        self.inhibitors_source = str(data["source"])
        self.inhibitors_version = str(data["version"])

    def _load_ddi(self) -> None:
        data, file = self._yaml("interactions/ddi.yaml")
        self.ddi: list[tuple[DdiRule, frozenset[str], frozenset[str]]] = []
        self.ddi_data_version = str(data.get("data_version", ""))
        seen: set[str] = set()
        for spec in data.get("rules") or []:
            rule = validate_rule(DdiRule, spec, file=file)
            _check_template(rule.message, file=file, rule_id=rule.id, a="x", b="y")
            if rule.id in seen:
                raise RuleError("duplicate rule id", file=file, resource=rule.id, field="id")
            seen.add(rule.id)
            self.ddi.append((rule, self.expand(rule.a, file=file, rule_id=rule.id),
                             self.expand(rule.b, file=file, rule_id=rule.id)))
        self._ddi_by_drug: dict[str, list[int]] = {}
        partners: dict[str, set[str]] = {}
        for i, (_r, a, b) in enumerate(self.ddi):
            for d in a | b:
                self._ddi_by_drug.setdefault(d, []).append(i)
            for x in a:
                partners.setdefault(x, set()).update(b)
            for y in b:
                partners.setdefault(y, set()).update(a)
        self._ddi_partners: dict[str, frozenset[str]] = {d: frozenset(v) for d, v in partners.items()}
        self._cap_drugs = frozenset(d for r, a, b in self.ddi if r.action == "adjust_dose" for d in a | b)
        self._excl_pairs = frozenset(p for r, a, b in self.ddi if r.action == "exclude"
                                     for x in a for y in b if x != y for p in ((x, y), (y, x)))

    def _load_conditions(self) -> None:
        data, file = self._yaml("conditions/condition_sets.yaml")
        self.negations = tuple(str(n).lower() for n in data.get("negations") or ())
        self.condsets: dict[str, _Condset] = {}
        for name, spec in (data.get("sets") or {}).items():
            try:
                self.condsets[name] = _Condset(
                    frozenset(str(c) for c in spec.get("snomed", [])),
                    tuple(str(c).replace(".", "").upper() for c in spec.get("icd10", [])),
                    terms_pattern(spec.get("terms", [])),
                    tuple(str(n).lower() for n in spec.get("negations", [])),
                )
            except AttributeError:
                raise RuleError("condition set must be a mapping", file=file, resource=name) from None
        data, file = self._yaml("conditions/drug_condition.yaml")
        self.condition_rules: list[tuple[ConditionRule, frozenset[str]]] = []
        self.condition_data_version = str(data.get("data_version", ""))
        for spec in data.get("rules") or []:
            rule = validate_rule(ConditionRule, spec, file=file)
            _check_template(rule.message, file=file, rule_id=rule.id, drug="x")
            if rule.condition is not None and rule.condition not in self.condsets:
                raise RuleError("unknown condition set", file=file, resource=rule.id, field="condition",
                                value=rule.condition, expected="a set in conditions/condition_sets.yaml")
            self.condition_rules.append((rule, self.expand(rule.drugs, file=file, rule_id=rule.id)))
        for pname, pop in self.populations.items():
            for cs in filter(None, [pop.conditions, *pop.without]):
                if cs not in self.condsets:
                    raise RuleError("unknown condition set", file="pgx/populations.yaml", resource=pname, value=cs)

    def _load_labs(self) -> None:
        data, file = self._yaml("conditions/drug_lab.yaml")
        self.lab_labels = {q: str((spec or {}).get("label", q)) for q, spec in (data.get("labs") or {}).items()}
        self.lab_rules: list[tuple[LabRule, frozenset[str]]] = []
        self.lab_data_version = str(data.get("data_version", ""))
        for spec in data.get("rules") or []:
            rule = validate_rule(LabRule, spec, file=file)
            _check_template(rule.message, file=file, rule_id=rule.id, drug="x", value="1")
            self.lab_rules.append((rule, self.expand(rule.drugs, file=file, rule_id=rule.id)))

    def _load_allergy(self) -> None:
        data, file = self._yaml("allergy/allergy.yaml")
        self.allergy_version = str(data["version"])
        self.allergy_source = str(data["source"])
        self.allergy_data_version = str(data.get("data_version", ""))
        self.allergy_groups = {g: validate_rule(AllergyGroup, spec, file=file, rule_id=g)
                               for g, spec in (data.get("groups") or {}).items()}
        self.allergy_members = {g: self.expand([f"class:{c}" for c in grp.classes], file=file, rule_id=g)
                                for g, grp in self.allergy_groups.items()}
        self.allergy_cross = {g: {c: act for c, act in grp.cross.items()} for g, grp in self.allergy_groups.items()}
        self.allergy_terms = {g: terms_pattern(grp.terms) for g, grp in self.allergy_groups.items()}
        for g, grp in self.allergy_groups.items():
            for c in grp.cross:
                if c not in self.class_members:
                    raise RuleError("unknown class in cross", file=file, resource=g, field="cross", value=c)
        self.allergy_messages = {k: str(v) for k, v in (data.get("messages") or {}).items()}
        for k in ("same", "class", "cross"):
            if k not in self.allergy_messages:
                raise RuleError("missing message template", file=file, field=f"messages.{k}")
            _check_template(self.allergy_messages[k], file=file, rule_id=f"messages.{k}", drug="x", allergen="y",
                            group="z")

    def _load_max_doses(self) -> None:
        path = self.root / "drugs" / "max_doses.csv"
        self.max_dose: dict[str, tuple[float, str]] = {}
        for row in read_csv(path):
            try:
                if row["max_mg_day"]:
                    self.max_dose[row["ingredient"].lower()] = (float(row["max_mg_day"]), row["source"])
                if row.get("rxcui"):
                    self.rxcui_to_ingredient.setdefault(row["rxcui"], row["ingredient"].lower())
            except (KeyError, ValueError) as exc:
                raise RuleError(f"malformed row ({exc})", file=str(path), resource=row.get("ingredient")) from None
        for ing, mx in self.area_max.items():  # an area's own maximum is the one for its indication
            self.max_dose[ing] = (mx, "area formulary max_dose (FDA label for the area's indication)")

    # ---- public helpers ------------------------------------------------------------------------------------
    def genes_for(self, ingredient: str) -> tuple[str, ...]:
        """Genes with CPIC rules for a drug (for data-gap reporting)."""
        return tuple(sorted({g for r in self.gene_drug.get(ingredient.lower(), ()) for g in r.genes}))

    def all_rules(self) -> list[tuple[str, str, str, str]]:
        """(id, kind, version, source) of every rule, for ``planner rules list``."""
        out = [(r.id, "gene-drug", r.version, r.source) for rs in self.gene_drug.values() for r in rs]
        out += [(r.id, "drug-drug", r.version, r.source) for r, _a, _b in self.ddi]
        out += [(r.id, "drug-condition", r.version, r.source) for r, _ in self.condition_rules]
        out += [(r.id, "drug-lab", r.version, r.source) for r, _ in self.lab_rules]
        out += [(f"allergy.{g}", "drug-allergy", self.allergy_version, self.allergy_source)
                for g in self.allergy_groups]
        return sorted(out)

    def rule(self, rule_id: str) -> dict:
        """One rule as a dict, for ``planner rules show``."""
        for rs in self.gene_drug.values():
            for r in rs:
                if r.id == rule_id:
                    return {"kind": "gene-drug", **r.model_dump()}
        for r, _a, _b in self.ddi:
            if r.id == rule_id:
                return {"kind": "drug-drug", **r.model_dump()}
        for r2, _ in self.condition_rules:
            if r2.id == rule_id:
                return {"kind": "drug-condition", **r2.model_dump()}
        for r3, _ in self.lab_rules:
            if r3.id == rule_id:
                return {"kind": "drug-lab", **r3.model_dump()}
        if rule_id.startswith("allergy.") and rule_id[8:] in self.allergy_groups:
            return {"kind": "drug-allergy", "id": rule_id, **self.allergy_groups[rule_id[8:]].model_dump()}
        raise RuleError("no such rule", field="id", value=rule_id, hint="list them with: planner rules list")

    # ---- patient context -----------------------------------------------------------------------------------
    def prepare(
        self,
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
            ing = (m.ingredient or self.rxcui_to_ingredient.get(m.rxcui or "", "")).lower()
            if ing:
                prev = current.get(ing)
                if prev is None or (m.start or dt.date.min) < (prev.start or dt.date.min):
                    current[ing] = m  # keep the earliest start: how long the drug has been taken
        by_gene: dict[str, list] = {}
        for p in record.pgx:
            by_gene.setdefault(p.gene.strip().upper(), []).append(p)
        genes = {g: self.knowledge.interpret(g, by_gene.get(g, ())) for g in self._gene_list}
        for g in by_gene:
            if g not in genes:
                genes[g] = GeneResult(gene=g, status=GeneStatus.INDETERMINATE, phenotype=INDETERMINATE,
                                      lookup=(INDETERMINATE,), note="gene not supported by planner rules")
        allergies = self._match_allergies(record)
        conds = self._match_conditions(record, on)
        labs: dict[tuple[str, int], float | None] = {}
        for rule, _ in self.lab_rules:
            key = (rule.quantity, rule.within_days)
            if key not in labs:
                m = record.latest(rule.quantity, until=on, within_days=rule.within_days)
                labs[key] = None if m is None else m.value
        replaced: frozenset[str] | None = None
        if area is not None:
            if area not in self.area_formulary:
                raise RuleError("unknown area", field="area", value=area,
                                expected="one of " + ", ".join(sorted(self.area_formulary)))
            replaced = self.area_formulary[area]
        declared = frozenset(populations)
        for p in declared:
            if p not in self.populations:
                raise RuleError("unknown population", field="populations", value=p,
                                expected=", ".join(sorted(self.populations)))
        return PatientContext(
            record=record, on=on, age=record.age(on), current=current, genes=genes, allergies=allergies,
            conditions=conds, has_conditions=bool(record.conditions), labs=labs,
            declared_populations=declared, replaced=replaced,
        )

    def _match_allergies(self, record: PatientRecord) -> list[tuple[str, str | None, frozenset[str]]]:
        out = []
        for a in record.allergies:
            if a.verification_status in _REFUTED or a.clinical_status in _INACTIVE_ALLERGY:
                continue
            ing = (a.ingredient or self.rxcui_to_ingredient.get(a.rxcui or "", "") or "").lower() or None
            display = (a.display or "").lower()
            groups = set()
            sys_l = (a.system or "").lower()
            for g, grp in self.allergy_groups.items():
                coded = a.code is not None and (
                    ("rxnorm" not in sys_l and a.code in grp.snomed) or ("snomed" not in sys_l and a.code in grp.rxnorm))
                if coded or (a.rxcui and a.rxcui in grp.rxnorm) or (ing and ing in self.allergy_members[g]) \
                        or (self.allergy_terms[g] is not None and self.allergy_terms[g].search(display)):
                    groups.add(g)
            if ing is None and not groups:
                continue
            out.append((ing or a.display or a.code or "a substance", ing, frozenset(groups)))
        return out

    def _match_conditions(self, record: PatientRecord, on: dt.date) -> frozenset[str]:
        hits: set[str] = set()
        for c in record.active_conditions(on):
            codings = [(c.system, c.code, c.display)] + [(x.system, x.code, x.display) for x in c.codings]
            for name, cs in self.condsets.items():
                if name in hits:
                    continue
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
                    if m is not None:
                        before = f" {display[:m.start()].lower()}"  # a negation counts only before the term
                        if not any(n in before for n in self.negations + cs.negations):
                            hits.add(name)
                            break
        return frozenset(hits)

    # ---- phenotypes ----------------------------------------------------------------------------------------
    def phenotypes(self, record_or_context: PatientRecord | PatientContext) -> dict[str, GeneResult]:
        """Every gene's interpreted result, after phenoconversion by the patient's current drugs."""
        ctx = self.prepare(record_or_context)
        drugs = frozenset(ctx.current)
        return {g: self._effective(ctx, g, drugs, "") for g in sorted(ctx.genes)}

    def _effective(self, ctx: PatientContext, gene: str, drugs: frozenset[str], subject: str) -> GeneResult:
        base = ctx.genes.get(gene)
        if base is None:
            base = GeneResult(gene=gene, status=GeneStatus.NOT_TESTED, lookup=(NO_RESULT,))
        inh = self.inhibitors.get(gene)
        if not inh:
            return base
        strong = sorted(d for d in drugs if d != subject and inh.get(d) == "strong")
        moderate = sorted(d for d in drugs if d != subject and inh.get(d) == "moderate")
        if not strong and not moderate:
            return base
        key = ("pheno", gene, tuple(strong), tuple(moderate))
        hit = ctx.cache.get(key)
        if hit is not None:
            return hit
        kn = self.knowledge
        level = "strong" if strong else "moderate"
        by = tuple(strong or moderate)
        if kn.is_activity_gene(gene):
            spec = kn.as_genes[gene]
            factor = spec.factors[level]  # genes.yaml inhibitor_factor (CYP2D6: strong 0, moderate 0.5)
            if factor == 0:
                vals = [format_score(0.0)]  # any score x 0: poor, whether or not the gene was tested
            else:
                vals = []
                for v in base.lookup:
                    if v in (NO_RESULT, NA_SCORE):
                        vals.append(v)
                        continue
                    vals.append(format_score(floor_to(float(v.lstrip("≥")) * factor, spec.step)))
                vals = list(dict.fromkeys(vals))
            phen = " / ".join(dict.fromkeys(kn.bin_of(gene, v) for v in vals if v != NO_RESULT))
            res = base.model_copy(update={"lookup": tuple(vals), "activity_score": " / ".join(vals),
                                          "phenotype": phen or base.phenotype, "phenoconverted_by": by})
        elif strong:
            poor = kn.step_down[gene]["poor"]
            res = base.model_copy(update={"phenotype": poor, "lookup": (poor,), "phenoconverted_by": by})
        else:
            steps = kn.step_down[gene]["steps"]
            vals = list(dict.fromkeys(steps.get(v, v) for v in base.lookup))
            res = base.model_copy(update={"lookup": tuple(vals), "phenotype": " / ".join(vals),
                                          "phenoconverted_by": by})
        if base.status == GeneStatus.NOT_TESTED and moderate and not strong:
            res = base  # a moderate inhibitor says nothing about an untested gene
        ctx.cache[key] = res
        return res

    # ---- screening -----------------------------------------------------------------------------------------
    def check(self, record: PatientRecord | PatientContext) -> list[Finding]:
        """Screen the patient's current medications (what ``planner check`` reports)."""
        ctx = self.prepare(record)
        drugs = [DrugDose(ingredient=ing, rxcui=m.rxcui or "", dose_mg_day=m.dose_mg_day)
                 for ing, m in sorted(ctx.current.items())]
        return self.screen(ctx, Regimen.of(drugs), new_start=set())

    def screen(
        self,
        record_or_context: PatientRecord | PatientContext,
        regimen: Regimen,
        *,
        new_start: set[str] | None = None,
        stopping: Iterable[str] = (),
    ) -> list[Finding]:
        """Findings for one regimen; the record's other current drugs count for interactions.

        ``new_start``: the regimen drugs being started (default: those not currently taken).
        ``stopping``: current drugs the regimen stops (not counted as co-medications).
        """
        ctx = record_or_context if isinstance(record_or_context, PatientContext) else self.prepare(record_or_context)
        cache = ctx.cache
        drugs = regimen.drugs
        kd = tuple([(d.ingredient, d.dose_mg_day) for d in drugs])
        default = new_start is None and not stopping
        if default:  # others and starts follow from the drugs alone: look the result up before computing them
            hit = cache.get(kd)
            if hit is not None:
                return list(hit)
        ings = tuple([x for x, _ in kd])
        ing_set = frozenset(ings)
        current = ctx.current
        if current:
            stop = ctx.replaced
            if stop is None:
                stop = self._replaced_cache.get(ings)
                if stop is None:
                    stop = self._replaced_by(ings)
            if stopping:
                stop = stop.union(stopping)
            rest = ctx.current_names.difference(ing_set, stop)
            others = tuple(sorted(rest)) if len(rest) > 1 else tuple(rest)
        else:
            others = ()
        starts = frozenset(new_start) if new_start is not None else ing_set.difference(ctx.current_names)
        if not default:
            key = (kd, others, starts)
            hit = cache.get(key)
            if hit is not None:
                return list(hit)
        all_drugs = ing_set.union(others) if others else ing_set
        info = self._drug_info
        linked = False  # does some drug interact with or duplicate another one present?
        out: list[tuple[tuple, Finding]] = []  # (sort key, finding)
        for d, dose in kd:
            is_new = d in starts
            inh, near = info.get(d, _NO_INFO)
            if near is not None and not linked:
                linked = not near.isdisjoint(all_drugs)
            dkey = ("block", d, dose, is_new, None if inh is None else inh & all_drugs)
            block = cache.get(dkey)
            if block is None:
                block = cache[dkey] = _keyed(
                    self._gene_drug(ctx, d, dose, all_drugs, is_new)
                    + [self._cap(f, dose) for f in self._drug_findings(ctx, d, is_new)]
                    + self._max_dose(d, dose))
            out += block
        if others:  # a regimen drug that phenoconverts a current drug's gene changes that drug's CPIC finding
            out += self._current_effects(ctx, others, all_drugs)
        if linked:  # some drug interacts with or duplicates another: pairs and duplicates
            caps = self._cap_drugs
            pkey = ("pd", ings, others, tuple([dose for d, dose in kd if d in caps]))
            pd = cache.get(pkey)
            if pd is None:  # they depend on the drug set (and on doses only for dose caps)
                pd = cache[pkey] = _keyed(self._pairs(ctx, kd, ings, ing_set, all_drugs)
                                          + self._duplicates(ctx, ings, all_drugs))
            out += pd
        if len(out) < 2:
            result = list(map(_finding_of, out))
        else:
            if len(ing_set) < len(ings):  # a drug listed twice brings the same finding objects twice: once each
                first: dict[int, tuple[tuple, Finding]] = {}
                for kf in out:
                    first.setdefault(id(kf[1]), kf)
                out = list(first.values())
            out.sort(key=_key_of)
            result = list(map(_finding_of, out))
        if len(cache) < 50_000:
            cache[kd if default else (kd, others, starts)] = tuple(result)
        return result

    def _replaced_by(self, ings: tuple[str, ...]) -> frozenset[str]:
        hit = self._replaced_cache.get(ings)
        if hit is None:
            out: frozenset[str] = frozenset()
            for d in ings:
                for a in self._drug_areas.get(d, ()):
                    out |= self.area_formulary[a]
            hit = out
            if len(self._replaced_cache) < 100_000:
                self._replaced_cache[ings] = hit
        return hit

    # -- gene-drug
    def _population_member(self, ctx: PatientContext, pop: str, d: str, is_new: bool) -> bool | None:
        spec = self.populations[pop]
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

    def _gene_drug(self, ctx: PatientContext, d: str, dose: float | None, all_drugs: frozenset[str],
                   is_new: bool) -> list[Finding]:
        if d not in self._loci:
            return []
        bests, gaps = self._gdm(ctx, d, all_drugs, is_new)
        out = [self._dose_adjusted(r, f, d, dose) if f.action == "adjust_dose" and dose is not None else f
               for r, f in bests]
        return out + list(gaps)

    def _gdm(self, ctx: PatientContext, d: str, drugs: frozenset[str],
             is_new: bool) -> tuple[tuple[tuple[GeneDrugRule, Finding], ...], tuple[Finding, ...]]:
        """Gene-drug matches of ``d`` beside ``drugs`` (memoized on the inhibitors among them)."""
        key = ("gdm", d, is_new, self._gd_inhibitors[d] & drugs)
        hit = ctx.cache.get(key)
        if hit is None:
            hit = ctx.cache[key] = self._gene_drug_match(ctx, d, drugs, is_new)
        return hit

    def _current_effects(self, ctx: PatientContext, others: tuple[str, ...],
                         all_drugs: frozenset[str]) -> list[tuple[tuple, Finding]]:
        """Findings on current drugs kept beside a regimen whose drugs phenoconvert their genes (both named)."""
        out: list[tuple[tuple, Finding]] = []
        rest = frozenset(others)
        gdi = self._gd_inhibitors
        for c in others:
            inh = gdi.get(c)
            if not inh:
                continue
            with_plan, without = inh & all_drugs, inh & rest
            if with_plan == without:
                continue
            key = ("ce", c, with_plan, without)
            hit = ctx.cache.get(key)
            if hit is None:
                hit = ctx.cache[key] = _keyed(self._current_effect(ctx, c, with_plan, without))
            out += hit
        return out

    def _current_effect(self, ctx: PatientContext, c: str, with_plan: frozenset[str],
                        without: frozenset[str]) -> list[Finding]:
        before = {r.id for r, _f in self._gdm(ctx, c, without, False)[0]}
        by = tuple(sorted(with_plan - without))
        dose = ctx.current[c].dose_mg_day
        out: list[Finding] = []
        for rule, f in self._gdm(ctx, c, with_plan, False)[0]:
            if rule.id in before or f.action == "info":
                continue
            adjusted = None
            if f.action == "adjust_dose" and dose is not None:
                adjusted = self._dose_adjusted(rule, f, c, dose).adjusted_dose_mg_day
            action = "info" if f.action == "adjust_dose" and dose is not None and adjusted is None else f.action
            if action == "info":
                continue
            head = f"{' and '.join(by)} phenoconverts {'/'.join(rule.genes)} for the current {c}: "
            msg = head + f.message[:1].lower() + f.message[1:]
            if len(msg) > 140:
                msg = head + {"exclude": f"CPIC advises against {c} then.", "caution": f"use {c} with caution.",
                              "adjust_dose": f"{c} needs a dose change."}[action]
            out.append(f.model_copy(update={
                "action": action, "message": _fit(msg),
                "drugs": tuple(sorted({c, *by, *f.drugs})), "target_drug": by[0] if action == "exclude" else c,
                "adjusted_dose_mg_day": adjusted, "plan_adds": _added(by, ctx.current_names),
            }))
        return out

    def _dose_adjusted(self, rule: GeneDrugRule, f: Finding, d: str, dose: float) -> Finding:
        """The regimen's dose after a CPIC dose rule; ``info`` when the dose already complies."""
        adjusted = dose
        if rule.dose_factor is not None:
            usual = self.usual_dose.get(d)
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
            return f.model_copy(update={"action": "info"})
        return f.model_copy(update={"adjusted_dose_mg_day": adjusted})

    def _gene_drug_match(self, ctx: PatientContext, d: str, all_drugs: frozenset[str],
                         is_new: bool) -> tuple[tuple[tuple[GeneDrugRule, Finding], ...], tuple[Finding, ...]]:
        loci = self._loci[d]
        genes = self._genes_of[d]
        conv_by = self._gd_inhibitors[d] & all_drugs
        eff = {g: self._effective(ctx, g, conv_by, d) for g in genes}
        values: dict[str, list[str]] = {}
        for loc in loci:
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
        members = {p: self._population_member(ctx, p, d, is_new) for p in self._pops[d]}
        declared = [p for p in members if p in ctx.declared_populations]
        chosen = declared or [p for p, m in members.items() if m is True] \
            or [p for p, m in members.items() if m is None] or list(members)
        matches = self._lookup(d, chosen, values)
        widened = False
        if not matches:
            # an activity score CPIC lists no row for (e.g. 3.5, or a phenoconverted score): use the other scores
            # of the same phenotype bin, most severe first (CPIC's score rows follow the phenotype)
            wide = {}
            for loc, vals in values.items():
                if self.knowledge.is_activity_gene(loc):
                    more = [x for v in vals if v not in (NO_RESULT, NA_SCORE)
                            for x in self.knowledge.scores_in_bin(loc, self.knowledge.bin_of(loc, v))]
                    wide[loc] = list(dict.fromkeys(vals + more))
                else:
                    wide[loc] = vals
            if wide != values:
                matches = self._lookup(d, chosen, wide)
                widened = bool(matches)
        if len(matches) > 1:  # a row keyed on more genes is more specific than one keyed on fewer of them
            sets = {locset for _r, _p, locset in matches}
            matches = [m for m in matches if not any(set(m[2]) < set(o) for o in sets)]
        findings: list[Finding] = []
        converted = sorted({x for g in genes for x in eff[g].phenoconverted_by})
        groups: dict[tuple[str, ...], list[tuple[GeneDrugRule, str]]] = {}
        for r, pop, locset in matches:  # one recommendation per set of genes (e.g. warfarin CYP2C9, VKORC1)
            groups.setdefault(locset, []).append((r, pop))
        bests: list[tuple[GeneDrugRule, Finding]] = []
        for locset in sorted(groups):
            group = groups[locset]
            uncertain_pop = len({pop for _r, pop in group}) > 1
            # the most severe candidate (the first of equals); only its finding is built
            best_rule = min((r for r, _ in group), key=lambda r: _rule_severity(r, self._strength_rank))
            best = self._gd_finding(best_rule, d, eff, converted, ctx.current_names)
            if uncertain_pop or widened or len({r.id for r, _ in group}) > 1:
                why = ("population not determined" if uncertain_pop else
                       "no CPIC row for this exact activity score; same phenotype used" if widened else
                       "uncertain genotype")
                best = best.model_copy(update={"phenotype": f"{best.phenotype}; most severe of {len(group)} "
                                                            f"possible recommendations ({why})"})
            bests.append((best_rule, best))
        gaps = [g for g in genes if eff[g].status.is_gap
                and not eff[g].phenoconverted_by]
        if not bests and not gaps:  # tested, but no rule matches: say so rather than pass silently
            keys = "; ".join(f"{loc}={'/'.join(v)}" for loc, v in values.items())
            findings.append(Finding(
                rule_id="gap.pgx.no-rule", rule_version=self.knowledge.version, kind="data-gap", action="caution",
                message=_fit(f"No CPIC rule matches {d} for {keys}; review the genotype manually."),
                source=self._guideline(d), data_version=self.knowledge.data_version, drugs=(d,), genes=genes,
                phenotype=keys, target_drug=d,
            ))
        if gaps and not any(f.action == "exclude" for _r, f in bests):
            for g in gaps:
                st = eff[g].status
                word = "reported with conflicting results" if st == GeneStatus.CONFLICT else GeneStatus(st).label
                findings.append(Finding(
                    rule_id=f"gap.pgx.{g}", rule_version=self.knowledge.version, kind="data-gap",
                    action="caution", strength=None,
                    message=_fit(f"{g} is {word} while {d} has CPIC rules for it; treat the phenotype as unknown."),
                    source=self._guideline(d), data_version=self.knowledge.data_version, drugs=(d,), genes=(g,),
                    phenotype=f"{g} {st}" + (f": {eff[g].phenotype}" if eff[g].phenotype else ""),
                    target_drug=d,
                ))
        return tuple(bests), tuple(findings)

    def _lookup(self, d: str, pops: list[str],
                values: dict[str, list[str]]) -> list[tuple[GeneDrugRule, str, tuple[str, ...]]]:
        """Rules of ``d`` whose lookup key is one combination of ``values`` (per set of loci the rules use)."""
        out: list[tuple[GeneDrugRule, str, tuple[str, ...]]] = []
        for pop in pops:
            slot = self._gd_index.get((d, pop), {})
            for locset in self._locisets[(d, pop)]:
                for combo in itertools.product(*[[(loc, v) for v in values[loc]] for loc in locset]):
                    rule = slot.get(frozenset(combo))
                    if rule is not None:
                        out.append((rule, pop, locset))
        return out

    def _guideline(self, d: str) -> str:
        rs = self.gene_drug.get(d)
        return rs[0].source if rs else ""

    def _gd_finding(self, rule: GeneDrugRule, d: str, eff: dict[str, GeneResult], converted: list[str],
                    current: frozenset[str]) -> Finding:
        pheno = "; ".join(
            f"{loc}={val}" + (f" (phenoconverted by {', '.join(eff[loc.split('*')[0]].phenoconverted_by)})"
                              if eff[loc.split('*')[0]].phenoconverted_by else "")
            for loc, val in rule.conditions)
        msg = rule.message
        if converted:
            extra = f" Phenotype set by {', '.join(converted)} (CYP inhibitor)."
            msg = msg + extra if len(msg + extra) <= 140 else _fit(
                f"{msg.rstrip('.')}; due to {', '.join(converted)}.")
        return Finding(
            rule_id=rule.id, rule_version=rule.version, kind="gene-drug", action=rule.action,
            strength=rule.strength, message=msg, source=rule.source, data_version=rule.data_version,
            drugs=tuple(sorted({d, *converted})), genes=rule.genes, phenotype=pheno, target_drug=d,
            dose_factor=rule.dose_factor, max_dose_mg_day=rule.max_dose_mg_day, alternatives=rule.alternatives,
            plan_adds=_added((d, *converted), current) if converted else (),
        )

    # -- allergy, condition, lab (per drug, memoized)
    def _drug_findings(self, ctx: PatientContext, d: str, is_new: bool) -> list[Finding]:
        key = ("drug", d, is_new)
        hit = ctx.cache.get(key)
        if hit is not None:
            return hit
        out: list[Finding] = []
        classes = self.drug_classes.get(d, frozenset())
        for allergen, ing, groups in ctx.allergies:
            kind, action, gname = None, None, ""
            if ing == d:
                kind, action = "same", "exclude"
            else:
                for g in sorted(groups):
                    if d in self.allergy_members[g]:
                        kind, action, gname = "class", "exclude", g
                        break
                if kind is None:
                    for g in sorted(groups):
                        for c, act in self.allergy_cross[g].items():
                            if c in classes:
                                kind, action, gname = "cross", act, c
                                break
                        if kind:
                            break
            if kind is None:
                continue
            label = self.classes[gname].label if gname in self.classes else gname
            out.append(Finding(
                rule_id=f"allergy.{kind}" + (f".{gname}" if gname else ""), rule_version=self.allergy_version,
                kind="drug-allergy", action=action, strength="allergy",
                message=_fit(self.allergy_messages[kind].format(drug=d, allergen=allergen, group=label)),
                source=self.allergy_source, data_version=self.allergy_data_version, drugs=(d,),
                target_drug=d,
            ))
        for rule, drugs in self.condition_rules:
            if d not in drugs:
                continue
            if rule.condition is not None:
                if rule.condition not in ctx.conditions:
                    continue
            elif rule.min_age is not None and (ctx.age is None or ctx.age < rule.min_age):
                continue
            out.append(Finding(
                rule_id=rule.id, rule_version=rule.version, kind="drug-condition", action=rule.action,
                strength=rule.strength, message=_fit(rule.message.format(drug=d)), source=rule.source,
                data_version=self.condition_data_version, drugs=(d,), target_drug=d,
                max_dose_mg_day=rule.max_dose_mg_day,
            ))
        gap_done: set[str] = set()
        for rule, drugs in self.lab_rules:
            if d not in drugs:
                continue
            if rule.when == "new_start" and not is_new or rule.when == "continuing" and is_new:
                continue
            value = ctx.labs.get((rule.quantity, rule.within_days))
            if value is None:
                if rule.quantity not in gap_done:
                    gap_done.add(rule.quantity)
                    label = self.lab_labels.get(rule.quantity, rule.quantity)
                    out.append(Finding(
                        rule_id=f"gap.lab.{rule.quantity}", rule_version=rule.version, kind="data-gap",
                        action="caution", message=_fit(f"No {label} in the last {rule.within_days} days; "
                                                       f"{d} needs it to be checked before use."),
                        source=rule.source, data_version=self.lab_data_version, drugs=(d,), target_drug=d,
                    ))
                continue
            if rule.below is not None and not value < rule.below:
                continue
            if rule.at_least is not None and not value >= rule.at_least:
                continue
            out.append(Finding(
                rule_id=rule.id, rule_version=rule.version, kind="drug-lab", action=rule.action,
                strength=rule.strength, message=_fit(rule.message.format(drug=d, value=f"{value:g}")),
                source=rule.source, data_version=self.lab_data_version, drugs=(d,), target_drug=d,
                phenotype=f"{rule.quantity}={value:g}", max_dose_mg_day=rule.max_dose_mg_day,
            ))
        ctx.cache[key] = out
        return out

    @staticmethod
    def _cap(f: Finding, dose: float | None) -> Finding:
        """A dose cap applied to the regimen's dose: adjusted when above it, ``info`` when within it."""
        if f.action != "adjust_dose" or f.max_dose_mg_day is None or dose is None:
            return f
        if dose <= f.max_dose_mg_day:
            return f.model_copy(update={"action": "info"})
        return f.model_copy(update={"adjusted_dose_mg_day": f.max_dose_mg_day})

    def _max_dose(self, d: str, dose: float | None) -> list[Finding]:
        if dose is None or d not in self.max_dose:
            return []
        mx, src = self.max_dose[d]
        if dose <= mx:
            return []
        return [Finding(
            rule_id=f"maxdose.{re.sub(r'[^a-z0-9]+', '-', d)}", rule_version="1.0.0", kind="max-dose",
            action="adjust_dose", strength="label", message=_fit(f"{d} {dose:g} mg/day is above the labelled "
                                                                 f"maximum of {mx:g} mg/day; cap it there."),
            source=src, data_version="FDA labels", drugs=(d,), target_drug=d, max_dose_mg_day=mx,
            adjusted_dose_mg_day=mx,
        )]

    # -- pairs
    def _pairs(self, ctx: PatientContext, kd: tuple[tuple[str, float | None], ...], ings: tuple[str, ...],
               ing_set: frozenset[str], all_drugs: frozenset[str]) -> list[Finding]:
        """Drug-drug findings of a regimen's (ingredient, dose) list: each pair with a regimen drug once."""
        out: list[Finding] = []
        doses: dict[str, float | None] | None = None  # the last dose of each ingredient
        empty: frozenset[str] = frozenset()
        cache = ctx.cache
        caps = self._cap_drugs
        partners = self._ddi_partners
        for x in ings:
            for y in partners.get(x, empty) & all_drugs:  # order: findings are sorted at the end
                if y == x or (y in ing_set and y < x):
                    continue  # each regimen pair once
                if x in caps or y in caps:
                    if doses is None:
                        doses = dict(kd)
                    dx = doses[x]
                    cur = ctx.current.get(y)  # a current drug outside the regimen keeps its recorded dose
                    dy = doses[y] if y in doses else (cur.dose_mg_day if cur is not None else None)
                else:
                    dx = dy = None
                hit = cache.get(("pair", x, y, dx, dy))
                if hit is None:
                    hit = self._pair(ctx, x, y, dx, dy)
                out.extend(hit)
        return out

    def _pair(self, ctx: PatientContext, x: str, y: str, dx: float | None, dy: float | None) -> list[Finding]:
        key = ("pair", x, y, dx, dy)
        out: list[Finding] = []
        idx = sorted(set(self._ddi_by_drug.get(x, ())) & set(self._ddi_by_drug.get(y, ())))
        doses = {x: dx, y: dy}
        for i in idx:
            rule, a, b = self.ddi[i]
            for da, db in ((x, y), (y, x)):
                if da in a and db in b:
                    break
            else:
                continue
            target = {"a": da, "b": db}.get(rule.target or "", rule.target)
            action = rule.action
            adjusted = None
            if action == "adjust_dose":
                dose = doses.get(target or "")
                if dose is not None:
                    adjusted = min(dose, rule.max_dose_mg_day)  # type: ignore[type-var]
                    if adjusted == dose:
                        action, adjusted = "info", None
            out.append(Finding(
                rule_id=rule.id, rule_version=rule.version, kind="drug-drug", action=action,
                strength=rule.strength, message=_fit(rule.message.format(a=da, b=db)), source=rule.source,
                data_version=self.ddi_data_version, drugs=tuple(sorted((da, db))), target_drug=target,
                max_dose_mg_day=rule.max_dose_mg_day, adjusted_dose_mg_day=adjusted, alternatives=rule.alternatives,
                plan_adds=_added((da, db), ctx.current_names),
            ))
        ctx.cache[key] = out
        return out

    def _duplicates(self, ctx: PatientContext, ings: tuple[str, ...], all_drugs: frozenset[str]) -> list[Finding]:
        out: list[Finding] = []
        seen: set[str] = set()
        for x in ings:
            for c in self._dup_classes.get(x, ()):
                spec = self.classes[c]
                if c in seen:
                    continue
                present = self.class_members[c] & all_drugs
                if len(present) < 2:
                    continue
                members = sorted(present)
                seen.add(c)
                dkey = ("dup", c, tuple(members), x)
                hit = ctx.cache.get(dkey)
                if hit is not None:
                    out.append(hit)
                    continue
                hit = ctx.cache[dkey] = Finding(
                    rule_id=f"duplicate.{c}", rule_version="1.0.0", kind="duplicate-therapy",
                    action=spec.duplicate, strength="duplicate therapy",
                    message=_fit(f"{' and '.join(members)} are both {spec.label}: use one drug of a class."),
                    source="rules/drugs/classes.yaml (therapeutic duplication)", data_version=None,
                    drugs=tuple(members), target_drug=x, plan_adds=_added(members, ctx.current_names),
                )
                out.append(hit)
        return out


@functools.lru_cache(maxsize=8)
def _load_cached(root: str) -> RuleSet:
    from ..manifest import verify

    version = verify(root)
    return RuleSet(Path(root), version)


def apply_findings(regimen: Regimen, findings: Iterable[Finding]) -> Regimen | None:
    """The regimen after findings: None if any finding excludes it; ``adjust_dose`` applied to its target
    (the lowest adjusted dose wins when several apply)."""
    new: dict[str, float | None] = {d.ingredient: d.dose_mg_day for d in regimen.drugs}
    for f in findings:
        if f.action == "exclude":
            return None
        if f.action == "adjust_dose" and f.target_drug in new and f.adjusted_dose_mg_day is not None:
            cur = new[f.target_drug]
            new[f.target_drug] = f.adjusted_dose_mg_day if cur is None else min(cur, f.adjusted_dose_mg_day)
    return Regimen.of([d.model_copy(update={"dose_mg_day": new[d.ingredient]}) for d in regimen.drugs])
