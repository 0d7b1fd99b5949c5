"""Allele and diplotype names as labs write them -> the names CPIC's allele tables use.

Labs and tools write the same allele several ways. For one gene, given CPIC's allele names (``rules/pgx``), this
module reads:

* the CPIC name itself, case and spacing aside: ``*2A``, ``c.1905+1G>A (*2A)``, ``Reference``;
* the HGVS part alone or the name in brackets alone: ``c.1905+1G>A`` and ``*2A`` both mean ``c.1905+1G>A (*2A)``,
  ``HapB3`` means ``c.1129-5923C>G, c.1236G>A (HapB3)`` (only where exactly one CPIC allele has that part);
* copy-number alleles: ``*2x2``, ``*2X2``, ``*2x≥3``, ``*2xN`` (``N``: two or more copies, count not known);
* rsID genotypes for single-variant genes: ``rs9923231 T/T``, ``rs9923231 C>T het``-free forms such as
  ``rs2231142 G/T``, ``rs2231142 GT``, ``rs2231142(G;T)``: each base is mapped to the CPIC allele named
  ``<rsID> reference (<base>)`` / ``<rsID> variant (<base>)``.

Nothing here knows a gene, a base or an allele: every name comes from the CPIC table given to it.
"""

from __future__ import annotations

import re
from typing import Iterable

__all__ = ["AlleleNames", "strip_gene", "hla_statuses", "HLA_STATUS"]

_SPACE = re.compile(r"\s+")
_COPIES = re.compile(r"^(?P<base>.+?)\s*[xX×]\s*(?P<n>≥\s*\d+|>=\s*\d+|\d+|[nN])$")
_RS_NAME = re.compile(r"^(?P<rs>rs\d+)\s+(?:reference|variant)\s*\((?P<base>[ACGT]+|-)\)$", re.IGNORECASE)
_RS_GENOTYPE = re.compile(
    r"^(?P<rs>rs\d+)\s*[:(\[]?\s*(?P<a>[ACGT]+|-)\s*[/;|,]?\s*(?P<b>[ACGT]+|-)\s*[)\]]?$", re.IGNORECASE
)
_BASES = re.compile(r"^[ACGT]+$", re.IGNORECASE)
HLA_STATUS = re.compile(
    r"(?P<gene>HLA-[A-Z0-9]+)?\s*(?P<allele>\*\d{2,3}(?::\d{2,3}[A-Z]?){0,3}[A-Z]?)"
    r"(?:\s*[:=-]?\s*(?P<status>positive|negative|present|absent|detected|not detected))?",
    re.IGNORECASE,
)
_STATUS_WORDS = {
    "positive": "positive",
    "present": "positive",
    "detected": "positive",
    "negative": "negative",
    "absent": "negative",
    "not detected": "negative",
}


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text.strip()).casefold()


def strip_gene(gene: str, text: str) -> str:
    """``"CYP2D6 *1/*2"``, ``"CYP2D6*1/*2"``, ``"CYP2D6: *1/*2"`` -> ``"*1/*2"`` (other text unchanged)."""
    t = text.strip()
    if t.upper().startswith(gene.upper()):
        rest = t[len(gene) :]
        if not rest or rest[0] in " \t:*[(" or rest[0].isspace():
            t = rest.lstrip(" \t:")
    return t.strip()


class AlleleNames:
    """The allele names of one gene, and every alias that names exactly one of them."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names: frozenset[str] = frozenset(names)
        self._exact: dict[str, str] = {_norm(n): n for n in self.names}
        alias: dict[str, str | None] = {}
        self._rs: dict[str, dict[str, str]] = {}
        for n in sorted(self.names):
            m = _RS_NAME.match(n.strip())
            if m:
                self._rs.setdefault(m.group("rs").lower(), {})[m.group("base").upper()] = n
            if "(" in n and n.rstrip().endswith(")"):
                head, _, inner = n.rpartition("(")
                for part in (head.strip(), inner[:-1].strip()):
                    key = _norm(part)
                    if not key or _BASES.match(key) or key in self._exact:
                        continue
                    alias[key] = n if key not in alias or alias[key] == n else None  # None: ambiguous
        self._alias = {k: v for k, v in alias.items() if v is not None}

    def canonical(self, text: str) -> str | None:
        """The CPIC name ``text`` means, or None. Copy-number suffixes are kept (``*2X2`` -> ``*2x2``)."""
        key = _norm(text)
        hit = self._exact.get(key) or self._alias.get(key)
        if hit is not None:
            return hit
        m = _COPIES.match(text.strip())
        if m:
            base = self.canonical(m.group("base"))
            if base is not None:
                n = m.group("n").replace(" ", "").replace(">=", "≥").upper()
                full = f"{base}x{n}"
                return self._exact.get(_norm(full), full)
        return None

    def rs_genotype(self, text: str) -> tuple[str, str] | None:
        """``"rs9923231 T/T"`` -> the two CPIC allele names, when the rsID and both bases are in the table."""
        m = _RS_GENOTYPE.match(text.strip())
        if not m:
            return None
        table = self._rs.get(m.group("rs").lower())
        if not table:
            return None
        a, b = table.get(m.group("a").upper()), table.get(m.group("b").upper())
        if a is None or b is None:
            return None
        return a, b

    def split(self, gene: str, diplotype: str) -> tuple[str, str] | None:
        """A diplotype as written -> its two alleles by CPIC name (unknown alleles as written), or None."""
        text = strip_gene(gene, diplotype)
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1].strip()
        rs = self.rs_genotype(text)
        if rs is not None:
            return rs
        parts = [p.strip() for p in text.split("/")]
        if len(parts) < 2:
            return None
        if len(parts) == 2 and all(parts):
            return self._one(parts[0]), self._one(parts[1])
        for i in range(1, len(parts)):  # an allele name that itself holds '/'
            a, b = "/".join(parts[:i]).strip(), "/".join(parts[i:]).strip()
            ca, cb = self.canonical(a), self.canonical(b)
            if ca is not None and cb is not None:
                return ca, cb
        return None

    def _one(self, part: str) -> str:
        return self.canonical(part) or part


def hla_statuses(gene: str, text: str) -> list[tuple[str, str | None]]:
    """Every (allele, status) one text states for ``gene``: ``"HLA-B*15:02 positive, *58:01 negative"`` ->
    ``[("*15:02", "positive"), ("*58:01", "negative")]``; an allele without a status word has status None."""
    out: list[tuple[str, str | None]] = []
    for m in HLA_STATUS.finditer(text):
        if m.group("gene") and m.group("gene").upper() != gene.upper():
            continue
        word = (m.group("status") or "").lower()
        out.append((m.group("allele").upper(), _STATUS_WORDS.get(word)))
    if len(out) == 1 and out[0][1] is None:  # "HLA-B*57:01: positive" style: a status word elsewhere
        low = text.lower()
        for word, status in sorted(_STATUS_WORDS.items(), key=lambda kv: -len(kv[0])):
            if re.search(r"\b" + word + r"\b", low):
                out = [(out[0][0], status)]
                break
    return out
