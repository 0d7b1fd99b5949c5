"""Pharmacogenomic results in FHIR: Genomics Reporting IG genotype (84413-4), haplotype (84414-2), variant
(69548-6) and therapeutic-implication Observations, the STU1 53040-2 phenotype with LA codes, HLA allele status,
and HLA typing as GL strings. PharmCAT outputs are read by :mod:`planner.ingest.pharmcat`.

Each statement becomes one :class:`~planner.record.PgxResult`, as the source made it: gene symbol upper case,
diplotype (or variant) without the gene prefix, phenotype as a CPIC term. Interpretation (diplotype -> phenotype,
conflicts, phenoconversion) belongs to :mod:`planner.safety.phenotype`. A statement whose gene cannot be determined
from the resource itself is skipped with a warning: planner never attributes a result to a gene the source did
not name. Every HLA allele status one resource states is kept (``*15:02 positive, *57:01 positive, *58:01
negative`` gives three results); a text status that contradicts the coded status gives both (a conflict).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Callable, Iterable

from ..record import DataWarning, PatientRecord, PgxResult
from .alleles import hla_statuses
from .codes import CodeTables
from .fhir_types import CodeableConcept, Observation
from .pharmcat import read_pharmcat

__all__ = ["is_pgx_observation", "pgx_from_observation", "read_pharmcat", "attach_pgx", "pgx_conflicts", "split_gene"]

_GENE = re.compile(r"^[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)?$")
_GENE_AT_START = re.compile(r"^\s*([A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)?)(?=$|[\s:*\[(])")
_RS_GENOTYPE = re.compile(r"^rs\d+\b", re.IGNORECASE)
_VARIANT = re.compile(r"\b(?:[cmgp]\.\S+|rs\d+)", re.IGNORECASE)

Warn = Callable[[str, str], None]
# what a caller of pgx_from_observation passes: (code, message, gene the result is about or None)
GeneWarn = Callable[[str, str, "str | None"], None]


def _texts(cc: CodeableConcept | None, code_systems: Iterable[str] = ()) -> list[str]:
    if cc is None:
        return []
    systems = set(code_systems)
    out = [c.display for c in cc.coding if c.display]
    out += [c.code for c in cc.coding if c.code and c.system in systems]
    if cc.text:
        out.append(cc.text)
    return out


def _codes(cc: CodeableConcept | None) -> list[str]:
    return [c.code for c in cc.coding if c.code] if cc is not None else []


def is_pgx_observation(obs: Observation, tables: CodeTables) -> bool:
    """A pharmacogenomic Observation: PGx code, Genomics Reporting profile, or a gene-studied component."""
    if obs.code is not None:
        for c in obs.code.coding:
            if c.code in tables.pgx_codes:
                return True
    if obs.meta is not None and any(("genomics-reporting" in p) for p in obs.meta.profile):
        return True
    for comp in obs.component:
        if comp.code is not None and any(c.code in tables.gene_studied_codes for c in comp.code.coding):
            return True
    return False


def _gene_of(obs: Observation, tables: CodeTables) -> str | None:
    studied = set(tables.pgx["loinc"]["gene_studied"])
    hgnc = {str(k).upper(): str(v) for k, v in tables.pgx["hgnc"].items()}
    for comp in obs.component:
        if set(_codes(comp.code)) & studied:
            cc = comp.valueCodeableConcept
            if cc is None:
                continue
            for c in cc.coding:
                if c.code and c.code.upper() in hgnc:
                    return hgnc[c.code.upper()]
                if c.display and _GENE.match(c.display.strip().upper()):
                    return c.display.strip().upper()
            if cc.text and _GENE.match(cc.text.strip().upper()):
                return cc.text.strip().upper()
    return None


def _la(cc: CodeableConcept | None, table: dict[str, str]) -> str | None:
    if cc is None:
        return None
    for c in cc.coding:
        if c.code in table:
            return table[c.code]
    return None


def split_gene(text: str, genes: frozenset[str]) -> tuple[str | None, str]:
    """``"CYP2C19 *2/*2"`` -> (``"CYP2C19"``, ``"*2/*2"``); ``"*1/*17"`` -> (None, ``"*1/*17"``). Only a known
    pharmacogene symbol counts as a gene prefix (``"Reference/c.61C>T"`` and ``"rs9923231 T/T"`` have none)."""
    t = text.strip()
    m = _GENE_AT_START.match(t)
    if m and m.group(1).upper() in genes:
        return m.group(1).upper(), t[m.end() :].lstrip(" \t:").strip()
    return None, t


def _looks_like_genotype(dip: str, gene: str | None, tables: CodeTables) -> bool:
    if not dip:
        return False
    if "/" in dip or dip.startswith("*") or _RS_GENOTYPE.match(dip):
        return True
    return gene is not None and gene in set(tables.pgx.get("variant_genes", ())) and bool(_VARIANT.search(dip))


def _gene_through_derived(
    obs: Observation, tables: CodeTables, lookup: Callable[[str], Observation | None]
) -> str | None:
    for r in obs.derivedFrom:
        target = lookup(r.reference) if r.reference else None
        if target is None:
            continue
        gene = _gene_of(target, tables)
        if gene is None:
            for t in _texts(target.valueCodeableConcept):
                gene = split_gene(t, tables.gene_symbols)[0] or gene
        if gene:
            return gene
    return None


def pgx_from_observation(
    obs: Observation,
    *,
    ref: str,
    date: dt.date | None,
    tables: CodeTables,
    lookup: Callable[[str], Observation | None],
    warn: GeneWarn,
    _depth: int = 0,
) -> list[PgxResult]:
    """The PGx statements of one Observation (usually one). ``lookup`` resolves derivedFrom references.
    Each warning names the gene the Observation is about (None when none is named), so that a result that
    could not be read says which gene may show as not tested."""
    codes = set(_codes(obs.code))
    loinc = tables.pgx["loinc"]
    gene = _gene_of(obs, tables) or _gene_through_derived(obs, tables, lookup)
    value_texts = _texts(obs.valueCodeableConcept, tables.pgx.get("gl_string_systems", ()))
    value_texts += [obs.valueString] if obs.valueString else []
    hla_gene = gene if gene and gene.startswith("HLA-") else None
    if hla_gene is None and gene is None:
        for t in value_texts + _texts(obs.code):
            m = re.search(r"HLA-[A-Z0-9]+", t.upper())
            if m:
                hla_gene = m.group(0)
                break
    about = hla_gene or gene

    def gene_warn(code: str, message: str) -> None:
        warn(code, message, about)

    if hla_gene is not None:
        return _hla(
            obs, hla_gene, value_texts, ref=ref, date=date, tables=tables, lookup=lookup, warn=gene_warn, depth=_depth
        )
    if codes & set(loinc.get("region_studied", ())):
        if gene:
            gene_warn(
                "pgx-not-interpreted",
                f"{gene} was studied (region-studied Observation); planner uses only the "
                "genotype or phenotype results reported for it",
            )
        return []
    if codes & set(loinc.get("variant", ())):
        return _variant(obs, gene, ref=ref, date=date, tables=tables, warn=gene_warn)
    if codes & set(loinc.get("haplotype", ())):
        return []  # one haplotype of a star-allele gene: the genotype Observation it belongs to carries the call
    if codes & set(loinc["genotype"]):
        return _genotype(obs, gene, value_texts, ref=ref, date=date, tables=tables, warn=gene_warn)
    return _phenotype(obs, gene, codes, value_texts, ref=ref, date=date, tables=tables, warn=gene_warn)


def _genotype(
    obs: Observation,
    gene: str | None,
    value_texts: list[str],
    *,
    ref: str,
    date: dt.date | None,
    tables: CodeTables,
    warn: Warn,
) -> list[PgxResult]:
    rs = _component_texts(obs, tables.pgx["loinc"].get("dbsnp", ()))
    for t in value_texts:
        g, dip = split_gene(t, tables.gene_symbols)
        if rs and not _RS_GENOTYPE.match(dip):
            dip = f"{rs[0]} {dip}"  # dbSNP id in a component, the bases in the value
        if not _looks_like_genotype(dip, gene or g, tables):
            continue
        if gene and g and g != gene:
            warn("pgx-gene-mismatch", f"{ref} names gene {g} in its value but {gene} as the gene studied; skipped")
            return []
        g = gene or g
        if g is None:
            break
        return [PgxResult(gene=g, diplotype=dip, source="fhir-genotype", source_ref=ref, date=date)]
    if gene is None:
        warn("pgx-no-gene", f"{ref}: genotype without a gene studied; skipped (never attributed to a gene)")
    else:
        warn("pgx-unreadable", f"{ref}: {gene} genotype value is not a diplotype planner can read; skipped")
    return []


def _component_texts(obs: Observation, codes: Iterable[str]) -> list[str]:
    wanted = set(codes)
    out: list[str] = []
    for comp in obs.component:
        if set(_codes(comp.code)) & wanted:
            out += _texts(comp.valueCodeableConcept) + _codes(comp.valueCodeableConcept)
            if comp.valueString:
                out.append(comp.valueString)
    return [t.strip() for t in out if t and t.strip()]


def _variant(
    obs: Observation, gene: str | None, *, ref: str, date: dt.date | None, tables: CodeTables, warn: Warn
) -> list[PgxResult]:
    """A Genomics IG variant Observation: read for genes whose result is a variant (MT-RNR1, RYR1, CACNA1S)."""
    loinc = tables.pgx["loinc"]
    names = [
        t
        for t in _component_texts(obs, list(loinc.get("dna_change", ())) + list(loinc.get("amino_acid_change", ())))
        if _VARIANT.search(t)
    ]
    status = _la(obs.valueCodeableConcept, tables.pgx["la_status"])
    if gene is None:
        warn("pgx-no-gene", "variant(s) without a gene studied; not used (never attributed to a gene)")
        return []
    if gene not in set(tables.pgx.get("variant_genes", ())) or not names:
        warn(
            "pgx-variant-not-read",
            f"{gene} variant(s) given as sequence positions, not as a genotype; "
            "planner reads genotypes and phenotypes, so these results are not used",
        )
        return []
    if status == "negative":
        warn("pgx-variant-absent", f"{ref}: {gene} {names[0]} reported absent; not read as a normal result")
        return []
    return [PgxResult(gene=gene, diplotype=names[0], source="fhir-genotype", source_ref=ref, date=date)]


def _phenotype(
    obs: Observation,
    gene: str | None,
    codes: set[str],
    value_texts: list[str],
    *,
    ref: str,
    date: dt.date | None,
    tables: CodeTables,
    warn: Warn,
) -> list[PgxResult]:
    pg = tables.pgx
    phen = _la(obs.valueCodeableConcept, pg["la_phenotype"])
    profiles = obs.meta.profile if obs.meta is not None else []
    implication = any("therapeutic-implication" in p for p in profiles) or bool(
        codes & set(pg["loinc"]["implication_codes"])
    )
    source = "fhir-implication" if implication or not codes & set(pg["loinc"]["phenotype"]) else "fhir-phenotype-stu1"
    if phen is None:
        for comp in obs.component:
            phen = _la(comp.valueCodeableConcept, pg["la_phenotype"])
            if phen:
                break
    if phen is None:
        for t in value_texts + [t for comp in obs.component for t in _texts(comp.valueCodeableConcept)]:
            phen = tables.phenotype_term(t)
            if phen:
                break
    if phen is None:
        warn("pgx-unreadable", f"{ref}: no phenotype (LA code or CPIC term) found; skipped")
        return []
    if gene is None:
        warn("pgx-no-gene", f"{ref}: phenotype {phen!r} without a gene studied; skipped (never attributed to a gene)")
        return []
    return [PgxResult(gene=gene, phenotype=phen, source=source, source_ref=ref, date=date)]  # type: ignore[arg-type]


# ---- HLA ----------------------------------------------------------------------------------------------------


def gl_alleles(gene: str, gl: str) -> list[str] | None:
    """The two typed alleles of ``gene`` in a GL string (``hla#3.23.0#HLA-B*15:01:01G+HLA-B*57:01:01G``), or
    None when the string is ambiguous (``/`` or ``|``) or an allele is not written ``GENE*fields``."""
    body = gl.rsplit("#", 1)[-1].strip()
    for locus in body.split("^"):
        if not locus.upper().startswith(gene.upper()):
            continue
        if "|" in locus or "/" in locus:
            return None
        copies = [c.strip() for c in locus.split("+")]
        out = []
        for c in copies:
            m = re.fullmatch(re.escape(gene) + r"(\*\d{2,3}(?::\d{2,3}){0,3}[A-Z]?)", c, re.IGNORECASE)
            if m is None:
                return None
            out.append(m.group(1).upper())
        return out if len(out) == 2 else None
    return None


def _hla(
    obs: Observation,
    gene: str,
    value_texts: list[str],
    *,
    ref: str,
    date: dt.date | None,
    tables: CodeTables,
    lookup: Callable[[str], Observation | None],
    warn: Warn,
    depth: int,
) -> list[PgxResult]:
    pg = tables.pgx
    loinc = pg["loinc"]
    codes = set(_codes(obs.code))
    gl_systems = set(pg.get("gl_string_systems", ()))
    gl = [
        c.code
        for c in (obs.valueCodeableConcept.coding if obs.valueCodeableConcept else [])
        if c.system in gl_systems and c.code
    ]
    if gl:
        alleles = gl_alleles(gene, gl[0])
        if alleles is None:
            warn(
                "pgx-unreadable",
                f"{ref}: {gene} GL string {gl[0]!r} is ambiguous or not written GENE*allele; "
                "not used (the gene is not read as typed)",
            )
            return []
        return [PgxResult(gene=gene, diplotype="/".join(alleles), source="fhir-genotype", source_ref=ref, date=date)]
    coded = _la(obs.valueCodeableConcept, pg["la_status"])
    if coded is None and obs.valueBoolean is not None:
        coded = "positive" if obs.valueBoolean else "negative"
    stated: list[tuple[str, str | None]] = []
    for t in value_texts + _texts(obs.code):
        for a, s in hla_statuses(gene, t):
            if (a, s) not in stated:
                stated.append((a, s))
    out: list[PgxResult] = []
    typed_pair = [a for a, s in stated if s is None]
    genotype_like = bool(codes & (set(loinc["genotype"]) | set(loinc.get("haplotype", ()))))
    if coded is None and len(typed_pair) == 2 and genotype_like and not any(s for _, s in stated):
        return [PgxResult(gene=gene, diplotype="/".join(typed_pair), source="fhir-genotype", source_ref=ref, date=date)]
    for allele, status in stated:
        for s in dict.fromkeys(x for x in (status, coded) if x is not None):
            out.append(
                PgxResult(
                    gene=gene,
                    allele=allele,
                    allele_status=s,  # type: ignore[arg-type]
                    source="fhir-hla",
                    source_ref=ref,
                    date=date,
                )
            )
        if status is None and coded is None and genotype_like:  # a genotype naming one allele: it is present
            out.append(
                PgxResult(
                    gene=gene,
                    allele=allele,
                    allele_status="positive",
                    source="fhir-genotype",
                    source_ref=ref,
                    date=date,
                )
            )
    if out:
        return list(dict.fromkeys(out))
    if depth == 0 and obs.derivedFrom and _high_risk(obs, tables):
        out = _positive_sources(obs, gene, ref=ref, date=date, tables=tables, lookup=lookup)
        if out:
            return out
    warn("pgx-unreadable", f"{ref}: {gene} result without an allele and a positive/negative status; skipped")
    return []


def _positive_sources(
    obs: Observation,
    gene: str,
    *,
    ref: str,
    date: dt.date | None,
    tables: CodeTables,
    lookup: Callable[[str], Observation | None],
) -> list[PgxResult]:
    """A high-risk implication without its own allele: the positive alleles of ``gene`` in the Observations it
    is derived from (read one level deep), credited to the implication."""
    out: list[PgxResult] = []
    for r in obs.derivedFrom:
        target = lookup(r.reference) if r.reference else None
        if target is None:
            continue
        for res in pgx_from_observation(
            target, ref=ref, date=date, tables=tables, lookup=lookup, warn=lambda c, m, g: None, _depth=1
        ):
            if res.gene == gene and res.allele_status == "positive":
                out.append(res.model_copy(update={"source": "fhir-implication", "source_ref": ref}))
    return out


def _high_risk(obs: Observation, tables: CodeTables) -> bool:
    wanted = set(tables.pgx["loinc"].get("high_risk_effect", ()))
    answers = set(tables.pgx.get("la_high_risk", ()))
    return any(set(_codes(c.code)) & wanted and set(_codes(c.valueCodeableConcept)) & answers for c in obs.component)


# ---- merging -----------------------------------------------------------------------------------------------


def pgx_conflicts(results: Iterable[PgxResult]) -> list[DataWarning]:
    """One warning per gene whose results disagree (different diplotype, phenotype or allele status)."""
    by_gene: dict[str, set[tuple[str, str | None]]] = {}
    for r in results:
        s = by_gene.setdefault(r.gene, set())
        if r.diplotype:
            s.add(("diplotype", r.diplotype))
        if r.phenotype:
            s.add(("phenotype", r.phenotype))
        if r.allele:
            s.add((f"allele {r.allele}", r.allele_status))
    out = []
    for gene in sorted(by_gene):
        kinds: dict[str, set[str | None]] = {}
        for k, v in by_gene[gene]:
            kinds.setdefault(k, set()).add(v)
        bad = sorted(k for k, vals in kinds.items() if len(vals) > 1)
        if bad:
            out.append(
                DataWarning(
                    code="pgx-conflict", message=f"{gene}: sources disagree on {', '.join(bad)}; reported, not resolved"
                )
            )
    return out


def attach_pgx(record: PatientRecord, results: Iterable[PgxResult]) -> PatientRecord:
    """A copy of ``record`` with ``results`` added to its PGx results (and a warning per conflicting gene)."""
    merged = list(record.pgx)
    for r in results:
        if r not in merged:
            merged.append(r)
    warnings = [w for w in record.warnings if w.code != "pgx-conflict"] + pgx_conflicts(merged)
    return PatientRecord.model_validate({**record.model_dump(), "pgx": merged, "warnings": warnings})
