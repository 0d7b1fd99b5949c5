"""PharmCAT outputs -> :class:`~planner.record.PgxResult`: the phenotype JSON of PharmCAT 3.x (``geneReports`` keyed
by gene) and 2.x (``geneReports`` keyed by source, then gene: CPIC first, other sources only for genes CPIC did
not call), and the outside-call TSV (gene, diplotype, phenotype, activity score).

Every HLA allele status a call states is kept (``*15:02 positive, *57:01 positive, *58:01 negative`` gives three
results). Genes PharmCAT did not call (``callSource: NONE``, ``No Result``) give no result: they are *not tested*.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec

from ..errors import InputError
from ..record import PgxResult
from .alleles import hla_statuses
from .codes import CodeTables, code_tables

__all__ = ["read_pharmcat"]

_GENE = re.compile(r"^[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)?$")


def _strip_gene(gene: str, dip: str) -> str:
    dip = dip.strip()
    if dip.upper().startswith(gene.upper()):
        dip = dip[len(gene) :].strip()
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
        raise InputError(
            "activity score is not a number",
            file=file,
            field=where,
            value=value,
            expected="a number such as 1.0 or n/a",
        ) from None
    if out != out or out in (float("inf"), float("-inf")) or out < 0:
        raise InputError("activity score out of range", file=file, field=where, value=value, expected="a number >= 0")
    return out


def _hla_results(gene: str, texts: list[str], *, source: str, ref: str) -> list[PgxResult]:
    """Every allele status the texts state (``*15:02 positive, *57:01 positive, *58:01 negative``: three)."""
    out: list[PgxResult] = []
    for text in texts:
        for allele, status in hla_statuses(gene, text):
            if status is not None:
                r = PgxResult(
                    gene=gene,
                    allele=allele,
                    allele_status=status,  # type: ignore[arg-type]
                    source=source,  # type: ignore[arg-type]
                    source_ref=ref,
                )
                if r not in out:
                    out.append(r)
    return out


def _read_pharmcat_tsv(path: Path, text: str, tables: CodeTables) -> list[PgxResult]:
    out: list[PgxResult] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cols = [c.strip() for c in line.split("\t")]
        if len(cols) > 4:
            raise InputError(
                f"line {n} has {len(cols)} tab-separated fields",
                file=str(path),
                expected="gene, diplotype, phenotype, activity score (at most 4 fields)",
            )
        cols += [""] * (4 - len(cols))
        gene, dip, phen, score = cols
        gene = gene.upper()
        if not _GENE.match(gene):
            raise InputError(
                f"line {n}: gene symbol",
                file=str(path),
                field="gene",
                value=cols[0],
                expected="an HGNC gene symbol such as CYP2D6",
            )
        if not (dip or phen or score):
            raise InputError(
                f"line {n}: {gene} has no diplotype, phenotype or activity score",
                file=str(path),
                expected="at least one of columns 2-4",
            )
        ref = f"{path.name} line {n}"
        if gene.startswith("HLA-") and (phen or dip):
            hla = _hla_results(gene, [t for t in (phen, dip) if t], source="pharmcat-tsv", ref=ref)
            if hla:
                out.extend(hla)
                continue
        term = None
        if phen:
            if tables.is_no_result(phen):
                continue
            term = tables.phenotype_term(phen) or phen
        out.append(
            PgxResult(
                gene=gene,
                diplotype=_strip_gene(gene, dip) or None,
                phenotype=term,
                activity_score=_score(score or None, file=str(path), where=f"line {n} activity score"),
                source="pharmcat-tsv",
                source_ref=ref,
            )
        )
    if not out and not any(ln.strip() and not ln.lstrip().startswith("#") for ln in text.splitlines()):
        raise InputError("outside-call file has no calls", file=str(path), expected="one tab-separated line per gene")
    return out


def _is_gene_report(value: Any) -> bool:
    return isinstance(value, dict) and any(
        k in value for k in ("geneSymbol", "sourceDiplotypes", "recommendationDiplotypes", "callSource")
    )


def _read_pharmcat_json(path: Path, doc: Any, tables: CodeTables) -> list[PgxResult]:
    """PharmCAT 3.x ``{geneReports: {gene: report}}`` or 2.x ``{geneReports: {source: {gene: report}}}``."""
    if not isinstance(doc, dict) or not isinstance(doc.get("geneReports"), dict):
        raise InputError(
            "not a PharmCAT phenotype JSON",
            file=str(path),
            field="geneReports",
            expected="an object with geneReports: {gene: report} (PharmCAT 3) or {source: {gene: report}} (PharmCAT 2)",
        )
    reports = doc["geneReports"]
    if any(_is_gene_report(v) for v in reports.values()):
        layout = {"": reports}  # PharmCAT 3.x: by gene
    else:
        layout = {src: reports[src] for src in sorted(reports, key=lambda s: (s != "CPIC", s))}  # CPIC first
    out: list[PgxResult] = []
    done: set[str] = set()
    for src, genes in layout.items():
        where = f"geneReports.{src}" if src else "geneReports"
        if not isinstance(genes, dict):
            raise InputError("gene reports are not an object", file=str(path), field=where, expected="{gene: report}")
        for gene_key in sorted(genes):
            report = genes[gene_key]
            if not isinstance(report, dict):
                raise InputError(
                    "gene report is not an object",
                    file=str(path),
                    field=f"{where}.{gene_key}",
                    expected="an object with geneSymbol and diplotypes",
                )
            gene = str(report.get("geneSymbol") or gene_key).upper()
            if gene in done or report.get("callSource") == "NONE":
                continue
            made = _gene_report(path, gene, report, f"{where}.{gene_key}", tables)
            if made:
                out.extend(made)
                done.add(gene)
    return out


def _gene_report(path: Path, gene: str, report: dict[str, Any], where: str, tables: CodeTables) -> list[PgxResult]:
    dips = report.get("recommendationDiplotypes") or report.get("sourceDiplotypes") or []
    if not isinstance(dips, list):
        raise InputError(
            "diplotypes are not a list",
            file=str(path),
            field=f"{where}.recommendationDiplotypes",
            expected="a list of diplotype objects",
        )
    ref = f"{path.name} {where}"
    out: list[PgxResult] = []
    for i, d in enumerate(dips):
        if not isinstance(d, dict):
            raise InputError(
                "diplotype is not an object",
                file=str(path),
                field=f"{where}[{i}]",
                expected="an object with label, phenotypes, activityScore",
            )
        label = str(d.get("label") or "")
        phenos = [str(p) for p in (d.get("phenotypes") or []) if p is not None]
        if all(tables.is_no_result(p) for p in phenos) and tables.is_no_result(label):
            continue
        if gene.startswith("HLA-"):
            hla = _hla_results(gene, phenos + [label], source="pharmcat-json", ref=ref)
            if hla:
                out.extend(r for r in hla if r not in out)
                continue
        a1 = (d.get("allele1") or {}).get("name") if isinstance(d.get("allele1"), dict) else None
        a2 = (d.get("allele2") or {}).get("name") if isinstance(d.get("allele2"), dict) else None
        dip = (
            _strip_gene(gene, label)
            if label and "/" in label
            else ("/".join(a for a in (a1, a2) if a) or label or None)
        )
        phen = next((tables.phenotype_term(p) or p for p in phenos if not tables.is_no_result(p)), None)
        out.append(
            PgxResult(
                gene=gene,
                diplotype=dip,
                phenotype=phen,
                activity_score=_score(d.get("activityScore"), file=str(path), where=f"{ref}.activityScore"),
                source="pharmcat-json",
                source_ref=ref,
            )
        )
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
