"""Build planner's own gene-drug rule data from CPIC's CC0 tables.

Run once per CPIC release (the output is committed as data; nothing is read from CPIC at run time)::

    python -m planner.safety.cpic_import CPIC_DIR [--rules RULES_DIR]

Reads ``recommendations.csv`` and ``allele_function.csv`` from ``CPIC_DIR`` and writes

* ``rules/pgx/allele_function.csv``: gene, allele, clinical function, activity value (the inputs of the
  phenotype engine; the 25,117-row diplotype table is *not* copied into rules: phenotypes are computed);
* ``rules/pgx/gene_drug.csv``: one structured rule per CPIC recommendation row: drug, lookup conditions,
  population, action (``exclude``/``adjust_dose``/``caution``/``info``), dose factor or maximum, alternatives,
  CPIC classification, guideline URL, data version, and a message in planner's own words.

The wording -> action mapping is data (``rules/pgx/action_map.yaml``, by classification and text);
:func:`map_recommendation` applies it. Rows it cannot decide are set by hand in ``rules/pgx/action_overrides.csv``
(drug, population, lookup key -> action, dose, alternatives, and the reason); every override must match exactly
one CPIC row. ``--check`` compares the committed ``gene_drug.csv`` with what this module generates.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RuleError
from ..rule_files import read_csv, read_yaml, rules_dir
from .phenotype import NO_RESULT

__all__ = ["MappedAction", "ActionMap", "map_recommendation", "load_overrides", "build_gene_drug_rows", "main"]

OVERRIDE_COLUMNS = (
    "drug",
    "population",
    "lookup_key",
    "action",
    "dose_factor",
    "max_dose_mg_day",
    "alternatives",
    "reason",
)

GENE_DRUG_COLUMNS = (
    "id",
    "version",
    "drug",
    "rxcui",
    "genes",
    "conditions",
    "population",
    "action",
    "dose_factor",
    "max_dose_mg_day",
    "strength",
    "alternatives",
    "message",
    "source",
    "data_version",
    "mapping",
)


@dataclass(frozen=True)
class MappedAction:
    """The structured reading of one recommendation sentence."""

    action: str
    mapping: str  # id of the action_map rule that decided
    dose_factor: float | None = None
    max_dose_mg_day: float | None = None
    alternatives: tuple[str, ...] = ()


class ActionMap:
    """The ordered wording patterns of ``rules/pgx/action_map.yaml``, compiled."""

    def __init__(self, data: dict[str, Any], *, file: str = "pgx/action_map.yaml") -> None:
        try:
            self.rules = [
                (r["id"], re.compile(r["pattern"]), r["action"], frozenset(r.get("classification") or ()))
                for r in data["rules"]
            ]
            self.doses = [(d["id"], re.compile(d["pattern"]), d["kind"], d["value"]) for d in data["dose_patterns"]]
            self.alternatives = dict(data.get("alternatives") or {})
        except (KeyError, TypeError, re.error) as exc:
            raise RuleError(f"invalid action map: {exc}", file=file) from None
        self.version = str(data.get("version", ""))

    @classmethod
    def load(cls, root: Path | None = None) -> "ActionMap":
        path = rules_dir(root) / "pgx" / "action_map.yaml"
        return cls(read_yaml(path), file=str(path))


def _evaluate(expr: str, groups: tuple[str | None, ...]) -> float:
    """Evaluate the tiny arithmetic of a dose pattern (``g1``, ``g2``, ``+ - * /`` and numbers)."""
    if not re.fullmatch(r"[0-9g.+\-*/ ]+", expr):
        raise RuleError("dose pattern value may use only g1..g9, numbers and + - * /", field="value", value=expr)
    env = {f"g{i + 1}": float(g) for i, g in enumerate(groups) if g is not None}
    return float(eval(expr, {"__builtins__": {}}, env))  # noqa: S307 - restricted, validated above


def map_recommendation(text: str, *, drug: str, amap: ActionMap, classification: str | None = None) -> MappedAction:
    """Map one CPIC recommendation sentence to a :class:`MappedAction` (first matching pattern wins; a pattern
    limited to classifications applies only to rows of those)."""
    low = " ".join(text.lower().split())
    action, mapping = "info", "default"
    for rid, rx, act, classes in amap.rules:
        if classes and classification not in classes:
            continue
        if rx.search(low):
            action, mapping = act, rid
            break
    factor = maximum = None
    if action == "adjust_dose":
        for _did, rx, kind, expr in amap.doses:
            m = rx.search(low)
            if not m:
                continue
            value = round(_evaluate(expr, m.groups()), 4)
            if kind == "factor" and factor is None:
                factor = value
            elif kind == "max" and maximum is None:
                maximum = value
        if factor is None and maximum is None:
            raise RuleError(
                "adjust_dose recommendation without a readable dose",
                field="recommendation",
                value=text,
                expected="a pattern in action_map.yaml dose_patterns",
            )
    alternatives: list[str] = []
    if action in {"exclude", "adjust_dose", "caution"}:
        for frag, shown in amap.alternatives.items():
            if frag in low and shown != drug and shown not in alternatives:
                alternatives.append(shown)
    return MappedAction(action, mapping, factor, maximum, tuple(alternatives))


def _conditions(row: dict[str, str], hla_alleles: dict[tuple[str, str], str]) -> list[tuple[str, str]]:
    """``lookup_key`` -> [(locus, value)]; HLA loci carry the allele (``HLA-B*15:02``)."""
    out: list[tuple[str, str]] = []
    for part in row["lookup_key"].split("; "):
        gene, _, value = part.partition("=")
        if gene.startswith("HLA-"):
            if value == NO_RESULT:
                allele = hla_alleles.get((row["drug"], gene))
                if allele is None:
                    raise RuleError("HLA 'No Result' row without a known allele", field="lookup_key", value=part)
                out.append((f"{gene}{allele}", NO_RESULT))
            else:
                allele, _, status = value.partition(" ")
                out.append((f"{gene}{allele}", status))
        else:
            out.append((gene, value))
    return out


def _describe(conds: list[tuple[str, str]]) -> str:
    parts = []
    for locus, value in conds:
        if value == NO_RESULT:
            parts.append(f"{locus} not tested")
        elif value in {"n/a", "Indeterminate"}:
            parts.append(f"{locus} indeterminate")
        elif re.fullmatch(r"≥?[\d.]+", value):
            parts.append(f"{locus} activity score {value}")
        elif locus.startswith("HLA-"):
            parts.append(f"{locus} {value}")
        else:
            parts.append(f"{locus} {value.lower() if value[:1].isupper() else value}")
    return ", ".join(parts)


def _pct(f: float) -> str:
    return f"{f * 100:g}%"


def compose_message(drug: str, conds: list[tuple[str, str]], m: MappedAction, population: str) -> str:
    """One sentence in planner's words, <= 140 characters (shortened when needed)."""
    who = _describe(conds)
    pop = "" if population == "general" else f" ({population})"
    alt = f"; consider {' or '.join(m.alternatives[:2])}" if m.alternatives else ""
    if m.action == "exclude":
        base = f"Do not use {drug} with {who}{pop}"
    elif m.action == "adjust_dose":
        dose = []
        if m.dose_factor is not None:
            dose.append(f"at {_pct(m.dose_factor)} of the usual dose")
        if m.max_dose_mg_day is not None:
            dose.append(f"at most {m.max_dose_mg_day:g} mg/day")
        base = f"Give {drug} {' and '.join(dose)} with {who}{pop}"
    elif m.action == "caution":
        base = f"Use {drug} with caution and monitoring with {who}{pop}"
    elif m.mapping == "no-action":
        base = f"CPIC gives no genotype-based recommendation for {drug} with {who}{pop}"
    else:
        base = f"No change to {drug} needed for {who}{pop}"
    for text in (base + alt + ".", base + ".", f"{base[:130]}...".rstrip()):
        if len(text) <= 140:
            return text
    return base[:136] + "..."


def load_overrides(root: Path | None = None) -> dict[tuple[str, str, str], dict[str, str]]:
    """``pgx/action_overrides.csv`` keyed by (drug, population, lookup key); every row needs a reason."""
    path = rules_dir(root) / "pgx" / "action_overrides.csv"
    out: dict[tuple[str, str, str], dict[str, str]] = {}
    for row in read_csv(path):
        key = (row.get("drug", ""), row.get("population", ""), row.get("lookup_key", ""))
        if row.get("action") not in {"exclude", "adjust_dose", "caution", "info"} or not row.get("reason"):
            raise RuleError(
                "override needs an action and a reason",
                file=str(path),
                resource="; ".join(key),
                field="action" if row.get("reason") else "reason",
                value=row.get("action"),
            )
        if row["action"] == "adjust_dose" and not (row.get("dose_factor") or row.get("max_dose_mg_day")):
            raise RuleError(
                "adjust_dose override needs dose_factor or max_dose_mg_day", file=str(path), resource="; ".join(key)
            )
        if key in out:
            raise RuleError("two overrides for one CPIC row", file=str(path), resource="; ".join(key))
        out[key] = row
    return out


def _overridden(row: dict[str, str]) -> MappedAction:
    return MappedAction(
        action=row["action"],
        mapping="hand",
        dose_factor=float(row["dose_factor"]) if row.get("dose_factor") else None,
        max_dose_mg_day=float(row["max_dose_mg_day"]) if row.get("max_dose_mg_day") else None,
        alternatives=tuple(a for a in (row.get("alternatives") or "").split(";") if a),
    )


def build_gene_drug_rows(
    recommendations: list[dict[str, str]],
    amap: ActionMap,
    overrides: dict[tuple[str, str, str], dict[str, str]] | None = None,
) -> list[dict[str, str]]:
    """One output row per CPIC recommendation row, in a stable order (hand-set rows from ``overrides``)."""
    overrides = load_overrides() if overrides is None else overrides
    used: set[tuple[str, str, str]] = set()
    hla_alleles: dict[tuple[str, str], str] = {}
    for row in recommendations:
        for part in row["lookup_key"].split("; "):
            gene, _, value = part.partition("=")
            if gene.startswith("HLA-") and value != NO_RESULT:
                hla_alleles[(row["drug"], gene)] = value.split(" ")[0]
    out: list[dict[str, str]] = []
    for row in sorted(recommendations, key=lambda r: (r["drug"], r["population"], r["lookup_key"])):
        drug = row["drug"]
        conds = _conditions(row, hla_alleles)
        key = (drug, row["population"], row["lookup_key"])
        if key in overrides:
            m = _overridden(overrides[key])
            used.add(key)
        else:
            m = map_recommendation(
                row["recommendation"], drug=drug, amap=amap, classification=row.get("classification")
            )
        digest = hashlib.sha256(f"{drug}|{row['lookup_key']}|{row['population']}".encode()).hexdigest()[:8]
        rxcui = row["drug_id"].split(":", 1)[1] if row["drug_id"].startswith("RxNorm:") else ""
        out.append(
            {
                "id": f"cpic.{re.sub(r'[^a-z0-9]+', '-', drug)}.{digest}",
                "version": "1.0.0",
                "drug": drug,
                "rxcui": rxcui,
                "genes": ";".join(sorted({c[0].split("*")[0] for c in conds})),
                "conditions": "; ".join(f"{locus}={value}" for locus, value in conds),
                "population": row["population"],
                "action": m.action,
                "dose_factor": "" if m.dose_factor is None else f"{m.dose_factor:g}",
                "max_dose_mg_day": "" if m.max_dose_mg_day is None else f"{m.max_dose_mg_day:g}",
                "strength": row["classification"],
                "alternatives": ";".join(m.alternatives),
                "message": compose_message(drug, conds, m, row["population"]),
                "source": row["guideline_url"],
                "data_version": f"CPIC {row['cpic_data_version']}",
                "mapping": f"{amap.version}:{m.mapping}",
            }
        )
    unused = sorted(set(overrides) - used)
    if unused:
        raise RuleError(
            "override matches no CPIC recommendation row",
            file="pgx/action_overrides.csv",
            resource="; ".join(unused[0]),
            expected="drug, population and lookup_key of a CPIC row",
        )
    return out


def write_csv(path: Path, rows: list[dict[str, str]], columns: tuple[str, ...], header: list[str]) -> None:
    buf = io.StringIO()
    for line in header:
        buf.write(f"# {line}\n")
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cpic_dir", type=Path)
    ap.add_argument("--rules", type=Path, default=None)
    ap.add_argument(
        "--check",
        action="store_true",
        help="compare with the committed rules instead of writing (exit 1 when they differ)",
    )
    args = ap.parse_args(argv)
    root = rules_dir(args.rules)
    recs = read_csv(args.cpic_dir / "recommendations.csv")
    alleles = read_csv(args.cpic_dir / "allele_function.csv")
    amap = ActionMap.load(root)
    rows = build_gene_drug_rows(recs, amap, load_overrides(root))
    if args.check:
        committed = read_csv(root / "pgx" / "gene_drug.csv")
        diff = [r["id"] for r, c in zip(rows, committed) if r != c]
        if len(rows) != len(committed) or diff:
            print(
                f"gene_drug.csv differs from CPIC ({len(rows)} generated, {len(committed)} committed; "
                f"first differing rule: {diff[0] if diff else '-'})"
            )
            return 1
        print(f"gene_drug.csv matches CPIC ({len(rows)} rules)")
        return 0
    dv = sorted({r["cpic_data_version"] for r in recs})
    write_csv(
        root / "pgx" / "gene_drug.csv",
        rows,
        GENE_DRUG_COLUMNS,
        [
            "id: pgx-gene-drug",
            "version: 1.0.0",
            f"source: CPIC recommendations (CC0, cpicpgx.org), export {', '.join(dv)}; structured by "
            "planner.safety.cpic_import with pgx/action_map.yaml",
            f"data_version: CPIC {', '.join(dv)}",
        ],
    )
    arows = [
        {
            "gene": a["gene"],
            "allele": a["allele"],
            "function": a["clinical_function"],
            "activity_value": a["activity_value"],
            "data_version": a["data_version"],
        }
        for a in alleles
    ]
    write_csv(
        root / "pgx" / "allele_function.csv",
        arows,
        ("gene", "allele", "function", "activity_value", "data_version"),
        [
            "id: pgx-allele-function",
            "version: 1.0.0",
            "source: CPIC allele functionality tables (CC0, cpicpgx.org) as distributed with PharmCAT",
            f"data_version: CPIC {', '.join(sorted({a['data_version'] for a in alleles}))}",
        ],
    )
    print(f"{len(rows)} gene-drug rules, {len(arows)} alleles written to {root / 'pgx'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
