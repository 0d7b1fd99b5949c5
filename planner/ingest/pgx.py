"""Pharmacogenomic results: FHIR Observations (Genomics Reporting IG genotype and therapeutic-implication,
STU1 53040-2 phenotype with LA codes, HLA allele status) and PharmCAT outputs (phenotype JSON, outside-call TSV).

Each statement becomes one :class:`~planner.record.PgxResult`, as the source made it: gene symbol upper case,
diplotype without the gene prefix, phenotype as a CPIC term. Interpretation (diplotype -> phenotype, conflicts,
phenoconversion) belongs to :mod:`planner.safety`. A statement whose gene cannot be determined from the resource
itself is skipped with a warning: planner never attributes a result to a gene the source did not name.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Callable, Iterable

import msgspec

from ..errors import InputError
from ..record import DataWarning, PatientRecord, PgxResult
from .codes import CodeTables, code_tables
from .fhir_types import CodeableConcept, Observation

__all__ = ["is_pgx_observation", "pgx_from_observation", "read_pharmcat", "attach_pgx", "pgx_conflicts"]

_GENE = re.compile(r"^[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)?$")
_GENE_DIPLO = re.compile(r"^\s*(?P<gene>[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)?)?\s*(?P<dip>[*\[].*)$")
_HLA_STATUS = re.compile(r"(?P<gene>HLA-[A-Z0-9]+)?\s*(?P<allele>\*\d{2,3}(?::\d{2,3}){0,3})\s*(?P<status>positive|negative)?",
                         re.IGNORECASE)


def _texts(cc: CodeableConcept | None) -> list[str]:
    if cc is None:
        return []
    out = [c.display for c in cc.coding if c.display]
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
    for comp in obs.component:
        if set(_codes(comp.code)) & studied:
            cc = comp.valueCodeableConcept
            if cc is None:
                continue
            for c in cc.coding:
                if c.code and c.code.upper().startswith("HGNC:") and c.code.upper() in {k.upper() for k in tables.pgx["hgnc"]}:
                    return {k.upper(): v for k, v in tables.pgx["hgnc"].items()}[c.code.upper()]
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


def _split_diplotype(text: str) -> tuple[str | None, str | None]:
    """``"CYP2C19 *2/*2"`` -> (``"CYP2C19"``, ``"*2/*2"``); ``"*1/*17"`` -> (None, ``"*1/*17"``)."""
    m = _GENE_DIPLO.match(text.strip())
    if not m:
        return None, None
    gene = m.group("gene").upper() if m.group("gene") else None
    return gene, m.group("dip").strip()


def pgx_from_observation(
    obs: Observation,
    *,
    ref: str,
    date: dt.date | None,
    tables: CodeTables,
    lookup: Callable[[str], Observation | None],
    warn: Callable[[str, str], None],
) -> list[PgxResult]:
    """The PGx statements of one Observation (usually one). ``lookup`` resolves derivedFrom references."""
    codes = set(_codes(obs.code))
    pg = tables.pgx
    gene = _gene_of(obs, tables)
    if gene is None:  # a therapeutic implication names its gene through the genotype it was derived from
        for r in obs.derivedFrom:
            target = lookup(r.reference) if r.reference else None
            if target is not None:
                gene = _gene_of(target, tables)
                if gene is None:
                    for t in _texts(target.valueCodeableConcept):
                        gene = _split_diplotype(t)[0] or gene
            if gene:
                break
    value_texts = _texts(obs.valueCodeableConcept) + ([obs.valueString] if obs.valueString else [])
    code_texts = _texts(obs.code)
    # ---- HLA allele status ------------------------------------------------------------------------------
    hla_gene = gene if gene and gene.startswith("HLA-") else None
    if hla_gene is None:
        for t in value_texts + code_texts:
            m = re.search(r"HLA-[A-Z0-9]+", t.upper())
            if m:
                hla_gene = m.group(0)
                break
    if hla_gene is not None:
        status = _la(obs.valueCodeableConcept, pg["la_status"])
        allele = None
        for t in value_texts + code_texts:
            for m in _HLA_STATUS.finditer(t):
                allele = allele or m.group("allele")
                if m.group("status") and status is None:
                    status = m.group("status").lower()
        if status is None and obs.valueBoolean is not None:
            status = "positive" if obs.valueBoolean else "negative"
        if status is None:
            for t in value_texts:
                low = t.strip().lower()
                if low in {"positive", "present", "detected"}:
                    status = "positive"
                elif low in {"negative", "absent", "not detected"}:
                    status = "negative"
        if allele and status:
            return [PgxResult(gene=hla_gene, allele=allele, allele_status=status, source="fhir-hla",
                              source_ref=ref, date=date)]
        dip = None
        for t in value_texts:
            g, d = _split_diplotype(t.replace(hla_gene, "") if hla_gene in t else t)
            if d and "/" in d:
                dip = d
        if dip:
            return [PgxResult(gene=hla_gene, diplotype=dip, source="fhir-genotype", source_ref=ref, date=date)]
        warn("pgx-unreadable", f"HLA result without an allele and a positive/negative status in {ref}")
        return []
    # ---- genotype ------------------------------------------------------------------------------------------
    if codes & set(pg["loinc"]["genotype"]):
        for t in value_texts:
            g, dip = _split_diplotype(t)
            if dip is None:
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
            warn("pgx-unreadable", f"{ref}: {gene} genotype value is not a star-allele diplotype; skipped")
        return []
    # ---- phenotype / therapeutic implication ----------------------------------------------------------------
    phen = _la(obs.valueCodeableConcept, pg["la_phenotype"])
    profiles = obs.meta.profile if obs.meta is not None else []
    implication = any("therapeutic-implication" in p for p in profiles) or bool(codes & set(pg["loinc"]["implication_codes"]))
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
    return [PgxResult(gene=gene, phenotype=phen, source=source, source_ref=ref, date=date)]


# ---- PharmCAT -----------------------------------------------------------------------------------------------


def _strip_gene(gene: str, dip: str) -> str:
    dip = dip.strip()
    if dip.upper().startswith(gene.upper()):
        dip = dip[len(gene):].strip()
    return dip


def _score(value: Any, *, file: str, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InputError("activity score is a boolean", file=file, field=where, value=value, expected="a number")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip().lstrip("≥>=").strip()
    if text.lower() in {"", "n/a", "no result", "na", "none"}:
        return None
    try:
        out = float(text)
    except ValueError:
        raise InputError("activity score is not a number", file=file, field=where, value=value,
                         expected="a number such as 1.0 or n/a") from None
    if out != out or out in (float("inf"), float("-inf")) or out < 0:
        raise InputError("activity score out of range", file=file, field=where, value=value, expected="a number >= 0")
    return out


def _hla_result(gene: str, text: str, *, source: str, ref: str) -> PgxResult | None:
    m = _HLA_STATUS.search(text)
    if m and m.group("status"):
        return PgxResult(gene=gene, allele=m.group("allele"), allele_status=m.group("status").lower(),
                         source=source, source_ref=ref)  # type: ignore[arg-type]
    return None


def _read_pharmcat_tsv(path: Path, text: str, tables: CodeTables) -> list[PgxResult]:
    out: list[PgxResult] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cols = [c.strip() for c in line.split("\t")]
        if len(cols) > 4:
            raise InputError(f"line {n} has {len(cols)} tab-separated fields", file=str(path),
                             expected="gene, diplotype, phenotype, activity score (at most 4 fields)")
        cols += [""] * (4 - len(cols))
        gene, dip, phen, score = cols
        gene = gene.upper()
        if not _GENE.match(gene):
            raise InputError(f"line {n}: gene symbol", file=str(path), field="gene", value=cols[0],
                             expected="an HGNC gene symbol such as CYP2D6")
        if not (dip or phen or score):
            raise InputError(f"line {n}: {gene} has no diplotype, phenotype or activity score", file=str(path),
                             expected="at least one of columns 2-4")
        ref = f"{path.name} line {n}"
        if gene.startswith("HLA-") and (phen or dip):
            hla = _hla_result(gene, phen or dip, source="pharmcat-tsv", ref=ref)
            if hla is not None:
                out.append(hla)
                continue
        term = None
        if phen:
            if tables.is_no_result(phen):
                continue
            term = tables.phenotype_term(phen) or phen
        out.append(PgxResult(gene=gene, diplotype=_strip_gene(gene, dip) or None, phenotype=term,
                             activity_score=_score(score or None, file=str(path), where=f"line {n} activity score"),
                             source="pharmcat-tsv", source_ref=ref))
    if not out and not any(ln.strip() and not ln.lstrip().startswith("#") for ln in text.splitlines()):
        raise InputError("outside-call file has no calls", file=str(path), expected="one tab-separated line per gene")
    return out


def _read_pharmcat_json(path: Path, doc: Any, tables: CodeTables) -> list[PgxResult]:
    if not isinstance(doc, dict) or not isinstance(doc.get("geneReports"), dict):
        raise InputError("not a PharmCAT phenotype JSON", file=str(path), field="geneReports",
                         expected="an object with geneReports: {source: {gene: report}}")
    out: list[PgxResult] = []
    done: set[str] = set()
    sources = sorted(doc["geneReports"], key=lambda s: (s != "CPIC", s))  # CPIC first; others only for new genes
    for src in sources:
        genes = doc["geneReports"][src]
        if not isinstance(genes, dict):
            raise InputError("gene reports are not an object", file=str(path), field=f"geneReports.{src}",
                             expected="{gene: report}")
        for gene_key in sorted(genes):
            report = genes[gene_key]
            if not isinstance(report, dict):
                raise InputError("gene report is not an object", file=str(path), field=f"geneReports.{src}.{gene_key}")
            gene = str(report.get("geneSymbol") or gene_key).upper()
            if gene in done or report.get("callSource") == "NONE":
                continue
            dips = report.get("recommendationDiplotypes") or report.get("sourceDiplotypes") or []
            if not isinstance(dips, list):
                raise InputError("diplotypes are not a list", file=str(path),
                                 field=f"geneReports.{src}.{gene_key}.recommendationDiplotypes")
            ref = f"{path.name} geneReports.{src}.{gene}"
            made = False
            for i, d in enumerate(dips):
                if not isinstance(d, dict):
                    raise InputError("diplotype is not an object", file=str(path), field=f"{ref}[{i}]")
                label = str(d.get("label") or "")
                phenos = [str(p) for p in (d.get("phenotypes") or []) if p is not None]
                if all(tables.is_no_result(p) for p in phenos) and tables.is_no_result(label):
                    continue
                if gene.startswith("HLA-"):
                    hla = None
                    for t in phenos + [label]:
                        hla = hla or _hla_result(gene, t, source="pharmcat-json", ref=ref)
                    if hla is not None:
                        out.append(hla)
                        made = True
                        continue
                a1 = (d.get("allele1") or {}).get("name") if isinstance(d.get("allele1"), dict) else None
                a2 = (d.get("allele2") or {}).get("name") if isinstance(d.get("allele2"), dict) else None
                dip = _strip_gene(gene, label) if label and "/" in label else ("/".join(a for a in (a1, a2) if a) or None)
                phen = next((tables.phenotype_term(p) or p for p in phenos if not tables.is_no_result(p)), None)
                out.append(PgxResult(gene=gene, diplotype=dip, phenotype=phen,
                                     activity_score=_score(d.get("activityScore"), file=str(path), where=f"{ref}.activityScore"),
                                     source="pharmcat-json", source_ref=ref))
                made = True
            if made:
                done.add(gene)
    return out


def read_pharmcat(path: str | Path, *, rules: str | Path | None = None, max_bytes: int = 50_000_000) -> list[PgxResult]:
    """PgxResults from a PharmCAT phenotype JSON (``*.phenotype.json``) or outside-call TSV file.

    Genes PharmCAT did not call (``callSource: NONE``, ``No Result``) give no result: they are *not tested*.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("no such file", file=str(p), expected="a PharmCAT phenotype JSON or outside-call TSV")
    if p.stat().st_size > max_bytes:
        raise InputError("file over the size limit", file=str(p), expected=f"at most {max_bytes:,} bytes")
    data = p.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", file=str(p), expected="UTF-8 (PharmCAT writes UTF-8)") from None
    tables = code_tables(rules)
    if text.lstrip().startswith("{"):
        try:
            doc = msgspec.json.decode(data.lstrip(b"\xef\xbb\xbf"))
        except msgspec.DecodeError as exc:
            raise InputError(f"not valid JSON: {exc}", file=str(p)) from None
        except RecursionError:
            raise InputError("JSON is nested too deeply", file=str(p)) from None
        return _read_pharmcat_json(p, doc, tables)
    if not text.strip():
        raise InputError("empty file", file=str(p), expected="a PharmCAT phenotype JSON or outside-call TSV")
    return _read_pharmcat_tsv(p, text, tables)


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
            out.append(DataWarning(code="pgx-conflict",
                                   message=f"{gene}: sources disagree on {', '.join(bad)}; reported, not resolved"))
    return out


def attach_pgx(record: PatientRecord, results: Iterable[PgxResult]) -> PatientRecord:
    """A copy of ``record`` with ``results`` added to its PGx results (and a warning per conflicting gene)."""
    merged = list(record.pgx)
    for r in results:
        if r not in merged:
            merged.append(r)
    warnings = [w for w in record.warnings if w.code != "pgx-conflict"] + pgx_conflicts(merged)
    return PatientRecord.model_validate({**record.model_dump(), "pgx": merged, "warnings": warnings})
