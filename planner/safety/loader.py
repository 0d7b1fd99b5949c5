"""Loading the safety rules: every rule file under ``rules/`` read, validated and indexed once.

:class:`RuleData` holds the validated rules of one rules folder (gene-drug, populations, CYP inhibitors,
drug-drug, drug classes and the area formularies read through :mod:`planner.areas`, conditions, labs,
allergy groups, maximum doses) and the indexes the screen loop and the rule kinds use. Versions and sources
come from the files themselves. Invalid data raises :class:`~planner.errors.RuleError` naming file, rule and
field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..areas import list_areas, load_area
from ..errors import RuleError
from ..rule_files import read_csv, read_yaml
from .phenotype import GeneKnowledge
from .schema import (
    ACTION_RANK,
    AllergyGroup,
    ConditionRule,
    DdiRule,
    DrugClass,
    GeneDrugRule,
    LabRule,
    Population,
    validate_rule,
)

__all__ = ["RuleData", "Condset", "terms_pattern", "check_template", "csv_header", "rule_severity"]


def rule_severity(r: GeneDrugRule, strength_rank: dict[str, int]) -> tuple:
    """Most severe first: action, then strength (rules/pgx/action_map.yaml strength_order), then dose; the
    finding a gene-drug rule gives takes its action, strength and dose from the rule."""
    return (
        ACTION_RANK[r.action],
        strength_rank.get(r.strength or "", len(strength_rank)),
        r.dose_factor if r.dose_factor is not None else 9.0,
        r.max_dose_mg_day if r.max_dose_mg_day is not None else 1e9,
    )


def check_template(template: str, *, file: str, rule_id: str, **fields: str) -> None:
    """A message template must format with exactly the fields the engine gives it."""
    try:
        template.format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        raise RuleError(
            f"message template does not format ({exc!r})",
            file=file,
            resource=rule_id,
            field="message",
            value=template,
            expected="placeholders among {" + ", ".join(fields) + "}",
        ) from exc


def csv_header(path: Path) -> dict[str, str]:
    """The ``# key: value`` comment lines that head a rules CSV (id, version, source, data_version)."""
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.startswith("#"):
                break
            key, sep, value = line[1:].partition(":")
            if sep:
                out[key.strip()] = value.strip()
    return out


@dataclass
class Condset:
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


class RuleData:
    """Every safety rule of one rules folder, validated and indexed (built once per folder by ``RuleSet``)."""

    def __init__(self, root: Path, rules_version: str) -> None:
        self.root = root
        self.rules_version = rules_version
        self.knowledge = GeneKnowledge(root)
        amap, afile = self._yaml("pgx/action_map.yaml")
        order = amap.get("strength_order")
        if not isinstance(order, list) or not order:
            raise RuleError("strength_order must be a non-empty list", file=afile, field="strength_order")
        self.strength_rank = {str(name): i for i, name in enumerate(order)}
        self.gene_list = self.knowledge.genes
        self._load_classes()
        self._load_gene_drug()
        self._load_populations()
        self._load_inhibitors()
        self._load_ddi()
        self._load_conditions()
        self._load_labs()
        self._load_allergy()
        self._load_max_doses()
        self._link()

    def _link(self) -> None:
        """Indexes the screen loop uses: per drug, the drugs it can interact with or duplicate, and the CYP
        inhibitors its gene-drug findings depend on."""
        # per drug: the other drugs it can interact with, and those it can duplicate (quick tests that a
        # regimen has no pair or no duplicate to look at)
        self.dup_near: dict[str, frozenset[str]] = {}
        for d, cs in self.dup_classes.items():
            near: set[str] = set()
            for c in cs:
                near |= self.class_members[c]
            near.discard(d)
            if near:
                self.dup_near[d] = frozenset(near)
        # per gene-drug drug: the CYP inhibitors that can change its genes' phenotypes (the only co-medications
        # its gene-drug findings depend on), so blocks are shared by regimens that differ only in other drugs
        # an inhibitor whose pair with the drug an exclude drug-drug rule already covers does not phenoconvert
        # it too (clopidogrel with omeprazole is excluded once, by the interaction rule)
        self.gd_inhibitors: dict[str, frozenset[str]] = {
            d: frozenset(
                x for g in genes for x in self.inhibitors.get(g, {}) if x != d and (d, x) not in self.excl_pairs
            )
            for d, genes in self.genes_of.items()
        }
        # per drug: its condition and lab rules, in file order (a drug's block scans only its own rules)
        self.condition_rules_of: dict[str, tuple[tuple[ConditionRule, frozenset[str]], ...]] = {}
        for cr in self.condition_rules:
            for d in cr[1]:
                self.condition_rules_of[d] = self.condition_rules_of.get(d, ()) + (cr,)
        self.lab_rules_of: dict[str, tuple[tuple[LabRule, frozenset[str]], ...]] = {}
        for lr in self.lab_rules:
            for d in lr[1]:
                self.lab_rules_of[d] = self.lab_rules_of.get(d, ()) + (lr,)
        # all three, in one look-up per drug of a regimen (None where there are none)
        self.drug_info: dict[str, tuple[frozenset[str] | None, frozenset[str] | None, frozenset[str] | None]] = {
            d: (self.gd_inhibitors.get(d), (self.ddi_partners.get(d, frozenset()) - {d}) or None, self.dup_near.get(d))
            for d in set(self.gd_inhibitors) | set(self.ddi_partners) | set(self.dup_near)
        }

    def _yaml(self, rel: str) -> tuple[dict, str]:
        path = self.root / rel
        data = read_yaml(path)
        if not isinstance(data, dict) or not all(k in data for k in ("id", "version", "source")):
            raise RuleError("rule file must be a mapping with id, version and source", file=str(path))
        return data, str(path)

    def _load_classes(self) -> None:
        data, file = self._yaml("drugs/classes.yaml")
        self.classes_version = str(data["version"])
        self.classes_source = str(data["source"])
        self.classes: dict[str, DrugClass] = {}
        for cid, spec in (data.get("classes") or {}).items():
            self.classes[cid] = validate_rule(DrugClass, spec, file=file, rule_id=cid)
        self.area_max: dict[str, float] = {}
        self.usual_dose: dict[str, float] = {}  # area reference dose: the "usual dose" of CPIC dose factors
        self.area_formulary: dict[str, frozenset[str]] = {}
        self.rxcui_to_ingredient: dict[str, str] = {}
        members: dict[str, set[str]] = {c: set(v.members) for c, v in self.classes.items()}
        for aid in list_areas(self.root):  # formularies through planner.areas (validated Area models)
            area = load_area(aid, self.root)
            names: set[str] = set()
            for entry in area.formulary:
                ing = entry.ingredient.lower()
                members.setdefault(entry.drug_class, set()).add(ing)
                names.add(ing)
                self.area_max.setdefault(ing, float(entry.max_dose))
                self.usual_dose.setdefault(ing, float(entry.reference_dose))
                if entry.rxcui:
                    self.rxcui_to_ingredient[str(entry.rxcui)] = ing
            self.area_formulary[area.id] = frozenset(names)
        self.replaced_cache: dict[tuple[str, ...], frozenset[str]] = {}
        self.drug_areas: dict[str, tuple[str, ...]] = {}
        for aid, names_ in sorted(self.area_formulary.items()):
            for n in names_:
                self.drug_areas[n] = self.drug_areas.get(n, ()) + (aid,)
        self.class_members: dict[str, frozenset[str]] = {c: frozenset(v) for c, v in members.items()}
        self.drug_classes: dict[str, frozenset[str]] = {}
        for c, ms in self.class_members.items():
            for mm in ms:
                self.drug_classes[mm] = self.drug_classes.get(mm, frozenset()) | {c}
        self.dup_classes: dict[str, tuple[str, ...]] = {
            d: tuple(sorted(c for c in cs if c in self.classes and self.classes[c].duplicate is not None))
            for d, cs in self.drug_classes.items()
        }

    def expand(self, items: Iterable[str], *, file: str = "", rule_id: str = "") -> frozenset[str]:
        """Ingredients named directly, through ``class:<id>`` or through ``inhibitor:<GENE>[:strong|moderate]``
        (the CYP inhibitors of ``drugs/cyp_inhibitors.yaml``)."""
        out: set[str] = set()
        for item in items:
            if item.startswith("inhibitor:"):
                _, gene, *level = item.split(":")
                if gene not in self.inhibitors or (level and level[0] not in ("strong", "moderate")):
                    raise RuleError(
                        "unknown inhibitor reference",
                        file=file,
                        resource=rule_id,
                        field="drugs",
                        value=item,
                        expected="inhibitor:<gene in drugs/cyp_inhibitors.yaml>[:strong|:moderate]",
                    )
                out |= {x for x, st in self.inhibitors[gene].items() if not level or st == level[0]}
            elif item.startswith("class:"):
                cid = item[6:]
                if cid not in self.class_members:
                    raise RuleError(
                        "unknown drug class",
                        file=file,
                        resource=rule_id,
                        field="drugs",
                        value=item,
                        expected="a class in drugs/classes.yaml or an area formulary",
                    )
                out |= self.class_members[cid]
            else:
                out.add(item.lower())
        return frozenset(out)

    def _load_gene_drug(self) -> None:
        self.gene_drug: dict[str, list[GeneDrugRule]] = {}
        self.gd_index: dict[tuple[str, str], dict[frozenset, GeneDrugRule]] = {}
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
                    **{
                        k: row[k]
                        for k in (
                            "id",
                            "version",
                            "drug",
                            "rxcui",
                            "population",
                            "action",
                            "strength",
                            "message",
                            "source",
                            "data_version",
                            "mapping",
                        )
                    },
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
            slot = self.gd_index.setdefault((rule.drug, rule.population), {})
            if key in slot:
                raise RuleError(
                    "two rules for the same drug, population and lookup key",
                    file=str(path),
                    resource=rid,
                    field="conditions",
                    value=row["conditions"],
                )
            slot[key] = rule
            if rule.rxcui:
                self.rxcui_to_ingredient.setdefault(rule.rxcui, rule.drug)

    def _index_gene_drug(self) -> None:
        self.loci: dict[str, tuple[str, ...]] = {
            d: tuple(sorted({loc for r in rs for loc, _ in r.conditions})) for d, rs in self.gene_drug.items()
        }
        locsets: dict[tuple[str, str], set[tuple[str, ...]]] = {}
        for d, rs_ in self.gene_drug.items():
            for r in rs_:
                locsets.setdefault((d, r.population), set()).add(tuple(sorted(loc for loc, _ in r.conditions)))
        self.locisets: dict[tuple[str, str], tuple[tuple[str, ...], ...]] = {
            k: tuple(sorted(v, key=lambda t: (-len(t), t))) for k, v in locsets.items()
        }
        self.genes_of: dict[str, tuple[str, ...]] = {
            d: tuple(sorted({loc.split("*")[0] for loc in loci})) for d, loci in self.loci.items()
        }
        self.pops: dict[str, tuple[str, ...]] = {
            d: tuple(sorted({r.population for r in rs})) for d, rs in self.gene_drug.items()
        }

    def _load_populations(self) -> None:
        data, file = self._yaml("pgx/populations.yaml")
        self.populations = {
            name: validate_rule(Population, spec, file=file, rule_id=name)
            for name, spec in (data.get("populations") or {}).items()
        }
        for d, pops in self.pops.items():
            for p in pops:
                if p not in self.populations:
                    raise RuleError(
                        "population used by a gene-drug rule is not defined", file=file, value=p, resource=d
                    )

    def _load_inhibitors(self) -> None:
        data, file = self._yaml("drugs/cyp_inhibitors.yaml")
        self.inhibitors: dict[str, dict[str, str]] = {}  # gene -> ingredient -> strong|moderate
        for gene, spec in (data.get("inhibitors") or {}).items():
            for strength in ("strong", "moderate"):
                for ing in spec.get(strength, []) or []:
                    self.inhibitors.setdefault(gene, {})[str(ing).lower()] = strength
        self.inhibitor_drugs = frozenset(d for v in self.inhibitors.values() for d in v)
        for gene in self.inhibitors:  # every gene with inhibitors needs its phenoconversion data
            ok = (
                gene in self.knowledge.as_genes
                and "strong" in self.knowledge.as_genes[gene].factors
                and "moderate" in self.knowledge.as_genes[gene].factors
            ) or ("poor" in self.knowledge.step_down.get(gene, {}) and "steps" in self.knowledge.step_down[gene])
            if not ok:
                raise RuleError(
                    "gene has inhibitors but no phenoconversion data",
                    file=file,
                    resource=gene,
                    expected="activity_score.inhibitor_factor (strong, moderate) or step_down (poor, steps) "
                    "in pgx/genes.yaml",
                )
        self.inhibitors_source = str(data["source"])
        self.inhibitors_version = str(data["version"])

    def _load_ddi(self) -> None:
        data, file = self._yaml("interactions/ddi.yaml")
        self.ddi: list[tuple[DdiRule, frozenset[str], frozenset[str]]] = []
        self.ddi_data_version = str(data.get("data_version", ""))
        seen: set[str] = set()
        for spec in data.get("rules") or []:
            rule = validate_rule(DdiRule, spec, file=file)
            check_template(rule.message, file=file, rule_id=rule.id, a="x", b="y")
            if rule.id in seen:
                raise RuleError("duplicate rule id", file=file, resource=rule.id, field="id")
            seen.add(rule.id)
            self.ddi.append(
                (rule, self.expand(rule.a, file=file, rule_id=rule.id), self.expand(rule.b, file=file, rule_id=rule.id))
            )
        self.ddi_by_drug: dict[str, list[int]] = {}
        partners: dict[str, set[str]] = {}
        for i, (_r, a, b) in enumerate(self.ddi):
            for d in a | b:
                self.ddi_by_drug.setdefault(d, []).append(i)
            for x in a:
                partners.setdefault(x, set()).update(b)
            for y in b:
                partners.setdefault(y, set()).update(a)
        self.ddi_partners: dict[str, frozenset[str]] = {d: frozenset(v) for d, v in partners.items()}
        self.cap_drugs = frozenset(d for r, a, b in self.ddi if r.action == "adjust_dose" for d in a | b)
        self.excl_pairs = frozenset(
            p for r, a, b in self.ddi if r.action == "exclude" for x in a for y in b if x != y for p in ((x, y), (y, x))
        )

    def _load_conditions(self) -> None:
        data, file = self._yaml("conditions/condition_sets.yaml")
        self.negations = tuple(str(n).lower() for n in data.get("negations") or ())
        self.condsets: dict[str, Condset] = {}
        for name, spec in (data.get("sets") or {}).items():
            try:
                self.condsets[name] = Condset(
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
            check_template(rule.message, file=file, rule_id=rule.id, drug="x")
            if rule.condition is not None and rule.condition not in self.condsets:
                raise RuleError(
                    "unknown condition set",
                    file=file,
                    resource=rule.id,
                    field="condition",
                    value=rule.condition,
                    expected="a set in conditions/condition_sets.yaml",
                )
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
            check_template(rule.message, file=file, rule_id=rule.id, drug="x", value="1")
            self.lab_rules.append((rule, self.expand(rule.drugs, file=file, rule_id=rule.id)))

    def _load_allergy(self) -> None:
        data, file = self._yaml("allergy/allergy.yaml")
        self.allergy_version = str(data["version"])
        self.allergy_source = str(data["source"])
        self.allergy_data_version = str(data.get("data_version", ""))
        self.allergy_groups = {
            g: validate_rule(AllergyGroup, spec, file=file, rule_id=g) for g, spec in (data.get("groups") or {}).items()
        }
        self.allergy_members = {
            g: self.expand([f"class:{c}" for c in grp.classes], file=file, rule_id=g)
            for g, grp in self.allergy_groups.items()
        }
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
            check_template(
                self.allergy_messages[k], file=file, rule_id=f"messages.{k}", drug="x", allergen="y", group="z"
            )

    def _load_max_doses(self) -> None:
        path = self.root / "drugs" / "max_doses.csv"
        header = csv_header(path)
        self.max_dose_version = header.get("version", "")
        self.max_dose_data_version = header.get("data_version", "")
        self.max_dose: dict[str, tuple[float, str]] = {}
        for row in read_csv(path):
            try:
                if row["max_mg_day"]:
                    self.max_dose[row["ingredient"].lower()] = (float(row["max_mg_day"]), row["source"])
                if row.get("rxcui"):
                    self.rxcui_to_ingredient.setdefault(row["rxcui"], row["ingredient"].lower())
            except (KeyError, ValueError) as exc:
                raise RuleError(f"malformed row ({exc})", file=str(path), resource=row.get("ingredient")) from None
        if not self.max_dose_version:
            raise RuleError("CSV header needs '# version:'", file=str(path), field="version")
        for ing, mx in self.area_max.items():  # an area's own maximum is the one for its indication
            self.max_dose[ing] = (mx, "area formulary max_dose (FDA label for the area's indication)")

    # ---- public helpers ------------------------------------------------------------------------------------
    def genes_for(self, ingredient: str) -> tuple[str, ...]:
        """Genes with CPIC rules for a drug (for data-gap reporting)."""
        return tuple(sorted({g for r in self.gene_drug.get(ingredient.lower(), ()) for g in r.genes}))

    def named_drugs(self) -> frozenset[str]:
        """Every ingredient some rule names: gene-drug, interaction sides, CYP inhibitors, condition and lab rules,
        allergy groups, duplicate-therapy classes and maximum doses."""
        out: set[str] = set(self.gene_drug) | set(self.max_dose) | self.inhibitor_drugs
        for _r, a, b in self.ddi:
            out |= a | b
        for _r2, drugs in self.condition_rules:
            out |= drugs
        for _r3, drugs3 in self.lab_rules:
            out |= drugs3
        for members in self.allergy_members.values():
            out |= members
        for c in self.dup_classes.values():
            for cid in c:
                out |= self.class_members[cid]
        return frozenset(out)

    def all_rules(self) -> list[tuple[str, str, str, str]]:
        """(id, kind, version, source) of every rule, for ``planner rules list``."""
        out = [(r.id, "gene-drug", r.version, r.source) for rs in self.gene_drug.values() for r in rs]
        out += [(r.id, "drug-drug", r.version, r.source) for r, _a, _b in self.ddi]
        out += [(r.id, "drug-condition", r.version, r.source) for r, _ in self.condition_rules]
        out += [(r.id, "drug-lab", r.version, r.source) for r, _ in self.lab_rules]
        out += [
            (f"allergy.{g}", "drug-allergy", self.allergy_version, self.allergy_source) for g in self.allergy_groups
        ]
        return sorted(out)

    def rule(self, rule_id: str) -> dict:
        """One rule as a dict, for ``planner rules show``."""
        for rs in self.gene_drug.values():
            for r in rs:
                if r.id == rule_id:
                    return {"kind": "gene-drug", **r.model_dump()}
        for r1, _a, _b in self.ddi:
            if r1.id == rule_id:
                return {"kind": "drug-drug", **r1.model_dump()}
        for r2, _ in self.condition_rules:
            if r2.id == rule_id:
                return {"kind": "drug-condition", **r2.model_dump()}
        for r3, _ in self.lab_rules:
            if r3.id == rule_id:
                return {"kind": "drug-lab", **r3.model_dump()}
        if rule_id.startswith("allergy.") and rule_id[8:] in self.allergy_groups:
            return {"kind": "drug-allergy", "id": rule_id, **self.allergy_groups[rule_id[8:]].model_dump()}
        raise RuleError("no such rule", field="id", value=rule_id, hint="list them with: planner rules list")

    def replaced_by(self, ings: tuple[str, ...]) -> frozenset[str]:
        hit = self.replaced_cache.get(ings)
        if hit is None:
            out: frozenset[str] = frozenset()
            for d in ings:
                for a in self.drug_areas.get(d, ()):
                    out |= self.area_formulary[a]
            hit = out
            if len(self.replaced_cache) < 100_000:
                self.replaced_cache[ings] = hit
        return hit
