"""Genotype -> phenotype, computed from CPIC allele data (``rules/pgx/``), never from a diplotype lookup table.

* Activity-score genes (CYP2D6, CYP2C9, DPYD): score = sum of the two allele activity values
  (``allele_function.csv``; copy-number alleles such as ``*1x2`` use their listed value, or ``N x`` the
  single-copy value; a ``≥`` value keeps ``≥`` on the sum); phenotype = the CPIC score bin (``genes.yaml``).
  An allele with unknown activity (``n/a``) makes the score ``n/a`` and the phenotype Indeterminate.
* Function-pair genes (CYP2C19, SLCO1B1, TPMT, NUDT15, UGT1A1, CYP3A5, CYP2B6, ABCG2, VKORC1): phenotype of the
  unordered pair of allele clinical functions.
* HLA-A/HLA-B: allele status (positive/negative); "reported" genes (G6PD, MT-RNR1, RYR1, CACNA1S, CFTR): the
  reported phenotype, checked against the gene's vocabulary.

A gene with no result is ``not-tested`` (:class:`planner.status.GeneStatus`), a diplotype that cannot be translated is ``indeterminate``; neither is
ever read as normal. A diplotype whose phenotype differs from the phenotype or activity score reported with it,
or two results that differ, give ``conflict``: every candidate value is kept (``lookup``) and the gene-drug
lookup takes the most severe recommendation among them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..errors import RuleError
from ..ingest.alleles import AlleleNames
from ..record import Frozen, PgxResult
from ..rule_files import read_csv, read_yaml
from ..status import GeneStatus

__all__ = ["GeneResult", "GeneKnowledge", "GeneStatus", "Translation", "format_score", "NO_RESULT", "INDETERMINATE"]

NO_RESULT = "No Result"  # CPIC's lookup value for a gene with no result (the status is GeneStatus.NOT_TESTED)
INDETERMINATE = "Indeterminate"
NA_SCORE = "n/a"


class GeneResult(Frozen):
    """The interpreted state of one gene for one patient (after phenoconversion when ``phenoconverted_by``)."""

    gene: str
    status: GeneStatus
    phenotype: str | None = None  # CPIC term; "A / B" when in conflict; None when not tested
    activity_score: str | None = None  # CPIC-formatted ("1.25", "≥3.0", "n/a") for activity-score genes
    diplotype: str | None = None
    alleles: tuple[tuple[str, str], ...] = ()  # HLA: (allele, positive|negative)
    hla_typed: bool = False  # HLA: a full type was given (alleles not listed are negative)
    lookup: tuple[str, ...] = ()  # key values tried against gene-drug rules (several when uncertain)
    phenoconverted_by: tuple[str, ...] = ()
    note: str | None = None

    def allele_status(self, allele: str) -> str:
        """``positive`` / ``negative`` / ``No Result`` for one HLA allele (e.g. ``*15:02``)."""
        for a, s in self.alleles:
            if a == allele:
                return s
        if self.hla_typed:
            return "negative"
        return NO_RESULT


def format_score(value: float, *, at_least: bool = False) -> str:
    """CPIC's way of writing an activity score: ``0.0``, ``0.25``, ``1.5``, ``≥3.0``."""
    v = round(value, 2)
    text = f"{v:.1f}" if abs(v * 10 - round(v * 10)) < 1e-9 else f"{v:.2f}"
    return ("≥" if at_least else "") + text


def _parse_score(text: str) -> tuple[float, bool] | None:
    t = text.strip()
    if not t or t.lower() == NA_SCORE:
        return None
    at_least = t.startswith("≥") or t.startswith(">=")
    t = t.lstrip("≥>=").strip()
    try:
        return float(t), at_least
    except ValueError:
        return None


@dataclass(frozen=True)
class Translation:
    """Phenotype and activity score of one diplotype (``score`` None for function-pair genes)."""

    phenotype: str
    score: str | None
    ok: bool  # False: indeterminate (allele or pair not known)


@dataclass
class _AsGene:
    bins: list[tuple[float, float, str]]
    step: float
    factors: dict[str, float] = field(default_factory=dict)


class GeneKnowledge:
    """Allele functions, score bins and function-pair tables, loaded once from ``rules/pgx``."""

    def __init__(self, root: Path) -> None:
        gpath = root / "pgx" / "genes.yaml"
        apath = root / "pgx" / "allele_function.csv"
        data = read_yaml(gpath)
        try:
            self.version = str(data["version"])
            self.data_version = str(data.get("data_version", ""))
            self.source = str(data["source"])
            self.as_genes: dict[str, _AsGene] = {
                g: _AsGene(
                    bins=[(float(lo), float(hi), str(ph)) for lo, hi, ph in spec["bins"]],
                    step=float(spec.get("step", 0.25)),
                    factors={k: float(v) for k, v in (spec.get("inhibitor_factor") or {}).items()},
                )
                for g, spec in data["activity_score"].items()
            }
            self.pairs: dict[str, dict[frozenset[str] | tuple[str, str], str]] = {}
            for g, rows in data["function_pairs"].items():
                table: dict = {}
                for a, b, ph in rows:
                    table[tuple(sorted((str(a), str(b))))] = str(ph)
                self.pairs[g] = table
            self.step_down: dict[str, dict] = dict(data.get("step_down") or {})
            self.vocab: dict[str, list[str]] = {g: [str(p) for p in v] for g, v in data["phenotypes"].items()}
            self.synonyms: dict[str, str] = {str(k).lower(): str(v) for k, v in (data.get("synonyms") or {}).items()}
            self.hla: set[str] = set(data["allele_status"])
            self.reported: set[str] = set(data["reported"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RuleError(f"invalid gene knowledge ({exc})", file=str(gpath)) from None
        self.functions: dict[str, dict[str, tuple[str, str]]] = {}
        for i, row in enumerate(read_csv(apath), start=2):
            try:
                self.functions.setdefault(row["gene"], {})[row["allele"]] = (row["function"], row["activity_value"])
            except KeyError as exc:
                raise RuleError("missing column", file=str(apath), field=str(exc), value=f"row {i}") from None
        for g in list(self.as_genes) + list(self.pairs):
            if g not in self.functions:
                raise RuleError("gene has no alleles", file=str(apath), field="gene", value=g)
        self._cache: dict[tuple[str, str], Translation] = {}
        self._names: dict[str, AlleleNames] = {}
        self.variants: dict[str, dict] = {}
        vpath = root / "codes" / "pgx_variants.yaml"
        if vpath.is_file():
            try:
                for g, spec in (read_yaml(vpath).get("genes") or {}).items():
                    table = {str(k).casefold(): str(v) for k, v in (spec.get("variants") or {}).items()}
                    for alias, target in (spec.get("aliases") or {}).items():
                        table[str(alias).casefold()] = table[str(target).casefold()]
                    self.variants[str(g)] = {
                        "reference": str(spec["reference"]),
                        "unlisted": str(spec["unlisted"]),
                        "table": table,
                    }
            except (KeyError, TypeError, AttributeError) as exc:
                raise RuleError(f"invalid variant table ({exc})", file=str(vpath)) from None
        self._not_tested: dict[str, GeneResult] = {}

    # ---- genes -------------------------------------------------------------------------------------------
    @property
    def genes(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.as_genes) | set(self.pairs) | self.hla | self.reported))

    def is_activity_gene(self, gene: str) -> bool:
        return gene in self.as_genes

    def bin_of(self, gene: str, score: str) -> str:
        parsed = _parse_score(score)
        if parsed is None:
            return INDETERMINATE
        value = parsed[0]
        for lo, hi, ph in self.as_genes[gene].bins:
            if lo - 1e-9 <= value <= hi + 1e-9:
                return ph
        return INDETERMINATE

    def scores_in_bin(self, gene: str, phenotype: str) -> tuple[str, ...]:
        """Every score CPIC may write for a phenotype (used when only the phenotype was reported)."""
        spec = self.as_genes[gene]
        out: list[str] = []
        for lo, hi, ph in spec.bins:
            if ph != phenotype:
                continue
            top = min(hi, 4.0)
            n = int(round((top - lo) / spec.step))
            out.extend(format_score(lo + i * spec.step) for i in range(n + 1))
            if hi >= 100:
                n2 = int(round((6.0 - 3.0) / 0.25))
                out.extend(format_score(3.0 + i * 0.25, at_least=True) for i in range(n2 + 1))
        return tuple(dict.fromkeys(out))

    # ---- diplotypes --------------------------------------------------------------------------------------
    def _allele_value(self, gene: str, allele: str) -> tuple[str, str] | None:
        table = self.functions.get(gene, {})
        if allele in table:
            return table[allele]
        m = re.fullmatch(r"(.+?)[xX](≥?)(\d+|N)", allele)
        if not m:
            return None
        base, ge, copies = m.groups()
        if base not in table:
            return None
        func, value = table[base]
        if copies == "N":  # two or more copies, count not known: at least twice the single-copy value
            parsed = _parse_score(value)
            if parsed is None:
                return func, NA_SCORE
            return func, format_score(parsed[0] * 2, at_least=parsed[0] > 0)
        n = int(copies)
        if n >= 3 and f"{base}x≥3" in table:
            return table[f"{base}x≥3"]
        parsed = _parse_score(value)
        if parsed is None:
            return func, NA_SCORE
        return func, format_score(parsed[0] * n, at_least=bool(ge) or parsed[1])

    def _xn_ceiling(self, gene: str, pair: tuple[str, str]) -> str:
        """Phenotype of a pair with ``xN`` alleles at many copies (10): equal to the two-copy phenotype when the
        unknown copy number cannot change the phenotype (``*1/*2xN``: ultrarapid either way)."""
        total = 0.0
        for a in pair:
            base = re.sub(r"[xX]N$", "", a)
            v = self._allele_value(gene, base)
            parsed = _parse_score(v[1]) if v is not None else None
            if parsed is None:
                return INDETERMINATE
            total += parsed[0] * (10 if base != a else 1)
        return self.bin_of(gene, format_score(total))

    def names(self, gene: str) -> AlleleNames:
        """The gene's CPIC allele names with the aliases labs write (HGVS alone, star name alone, rsID genotypes)."""
        hit = self._names.get(gene)
        if hit is None:
            hit = self._names[gene] = AlleleNames(self.functions.get(gene, {}))
        return hit

    def split(self, gene: str, diplotype: str) -> tuple[str, str] | None:
        """``"*2/*1"`` -> ("*2", "*1"); the gene prefix and spaces are removed and each allele is given its CPIC
        name (``c.1905+1G>A`` -> ``c.1905+1G>A (*2A)``, ``rs9923231 C/T`` -> the two rs9923231 alleles);
        None when not two alleles."""
        return self.names(gene).split(gene, diplotype)

    def translate(self, gene: str, diplotype: str) -> Translation:
        """Phenotype (and activity score) of a diplotype; unknown alleles or pairs give Indeterminate."""
        key = (gene, diplotype)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._translate(gene, diplotype)
            if len(self._cache) < 100_000:
                self._cache[key] = hit
        return hit

    def _translate(self, gene: str, diplotype: str) -> Translation:
        is_as = gene in self.as_genes
        bad = Translation(INDETERMINATE, NA_SCORE if is_as else None, False)
        pair = self.split(gene, diplotype)
        if pair is None:
            return bad
        values = [self._allele_value(gene, a) for a in pair]
        if any(v is None for v in values):
            return bad
        if is_as:
            total, at_least = 0.0, False
            for _func, val in values:  # type: ignore[misc]
                parsed = _parse_score(val)
                if parsed is None:
                    return Translation(INDETERMINATE, NA_SCORE, True)
                total += parsed[0]
                at_least = at_least or parsed[1]
            score = format_score(total, at_least=at_least)
            phenotype = self.bin_of(gene, score)
            if any(_is_unknown_copies(a) for a in pair) and phenotype != self._xn_ceiling(gene, pair):
                return Translation(INDETERMINATE, score, True)  # the copy number decides the phenotype
            return Translation(phenotype, score, True)
        funcs = tuple(sorted(v[0] for v in values))  # type: ignore[index]
        ph = self.pairs.get(gene, {}).get(funcs)
        if ph is None:
            return bad
        return Translation(ph, None, True)

    def variant_phenotype(self, gene: str, text: str) -> Translation:
        """Phenotype of a variant result of a "reported" gene (``m.1555A>G``, ``RYR1 c.1840C>T``,
        ``p.Arg614Cys/Reference``) from ``rules/codes/pgx_variants.yaml``. A listed variant gives its phenotype;
        ``Reference`` alone gives the gene's reference term; any other variant the gene's ``unlisted`` term
        (never normal). Genes without a variant table (G6PD, CFTR) are read from reported phenotypes only."""
        spec = self.variants.get(gene)
        if spec is None:
            return Translation(INDETERMINATE, None, False)
        body = text.strip()
        if body.upper().startswith(gene.upper()):
            body = body[len(gene) :]
        tokens = [t.strip(" ,;()[]").casefold() for t in re.split(r"[\s/;,+|]+", body) if t.strip(" ,;()[]")]
        found = [spec["table"][t] for t in tokens if t in spec["table"]]
        if found:
            return Translation(sorted(found)[0] if len(set(found)) == 1 else INDETERMINATE, None, True)
        words = {t for t in tokens if not re.match(r"^(het|hom|heterozygous|homozygous|heteroplasmic|homoplasmic)$", t)}
        if words and words <= {"reference", "ref", "wild-type", "wt", "negative"}:
            return Translation(spec["reference"], None, True)
        return Translation(spec["unlisted"], None, True)

    # ---- reported phenotypes -----------------------------------------------------------------------------
    def normalize_phenotype(self, gene: str, text: str) -> str | None:
        vocab = self.vocab.get(gene, [])
        low = " ".join(text.strip().lower().split())
        for term in vocab:
            if term.lower() == low:
                return term
        syn = self.synonyms.get(low)
        if syn and syn in vocab:
            return syn
        return None

    # ---- interpretation of a patient's results ----------------------------------------------------------
    def interpret(self, gene: str, results: Iterable[PgxResult]) -> GeneResult:
        """Merge every result reported for ``gene`` into one :class:`GeneResult`."""
        results = list(results)
        if not results:
            hit = self._not_tested.get(gene)
            if hit is None:
                hit = self._not_tested[gene] = GeneResult(gene=gene, status=GeneStatus.NOT_TESTED, lookup=(NO_RESULT,))
            return hit
        if gene in self.hla:
            return self._interpret_hla(gene, results)
        is_as = gene in self.as_genes
        readings: list[tuple[str, str | None]] = []  # (phenotype, score)
        notes: list[str] = []
        indeterminate = False
        for r in results:
            own, unread = self._readings(gene, r, is_as, notes)
            readings.extend(own)
            indeterminate = indeterminate or unread
        diplotype = " | ".join(dict.fromkeys(r.diplotype for r in results if r.diplotype)) or None
        if not readings:
            return GeneResult(
                gene=gene,
                status=GeneStatus.INDETERMINATE,
                phenotype=INDETERMINATE,
                activity_score=NA_SCORE if is_as else None,
                diplotype=diplotype,
                lookup=(NA_SCORE,) if is_as else (INDETERMINATE,),
                note="; ".join(notes) or None,
            )
        return self._merged(gene, readings, notes, indeterminate, diplotype, is_as)

    def _readings(
        self, gene: str, r: PgxResult, is_as: bool, notes: list[str]
    ) -> tuple[list[tuple[str, str | None]], bool]:
        """One result's (phenotype, score) readings, and whether part of it could not be read (notes added)."""
        own: list[tuple[str, str | None]] = []
        unread = False
        if r.diplotype:
            t = (
                self.translate(gene, r.diplotype)
                if gene not in self.reported
                else self.variant_phenotype(gene, r.diplotype)
            )
            if t.ok and t.phenotype != INDETERMINATE:
                own.append((t.phenotype, t.score))
            elif not (r.phenotype or r.activity_score is not None):
                unread = True
                notes.append(f"diplotype {r.diplotype} not translatable")
        if r.activity_score is not None and is_as:
            score = format_score(r.activity_score)
            own.append((self.bin_of(gene, score), score))
        if r.phenotype:
            ph = self.normalize_phenotype(gene, r.phenotype)
            if ph is None:
                if not own:
                    unread = True
                notes.append(f"phenotype '{r.phenotype}' not a {gene} term")
            elif ph == INDETERMINATE:
                if not own:
                    unread = True
            else:
                own.append((ph, None))
        return own, unread

    def _merged(
        self,
        gene: str,
        readings: list[tuple[str, str | None]],
        notes: list[str],
        indeterminate: bool,
        diplotype: str | None,
        is_as: bool,
    ) -> GeneResult:
        """The readings of every result as one result: tested, or in conflict when they disagree."""
        phenos = list(dict.fromkeys(p for p, _ in readings))
        scores = list(dict.fromkeys(s for _, s in readings if s is not None))
        # a phenotype-only reading agrees with a scored one when it names the same bin
        # ... and a source that could not be read at all, beside one that could, is a conflict too: the
        # readable one is used for the lookup, but the result is not reported as simply "tested"
        conflict = len(phenos) > 1 or len(scores) > 1 or indeterminate
        if is_as:
            lookup: list[str] = []
            if scores:
                lookup.extend(scores)
            for ph in phenos:
                if not any(self.bin_of(gene, s) == ph for s in scores):
                    lookup.extend(self.scores_in_bin(gene, ph))
            lookup = list(dict.fromkeys(lookup))
        else:
            lookup = phenos
        if len(phenos) > 1 or len(scores) > 1:
            notes.append("results disagree: " + " vs ".join(phenos + [s for s in scores if s not in phenos]))
        elif indeterminate:
            notes.append("another result for this gene could not be read")
        return GeneResult(
            gene=gene,
            status=GeneStatus.CONFLICT if conflict else GeneStatus.TESTED,
            phenotype=" / ".join(phenos),
            activity_score=" / ".join(scores) if scores else None,
            diplotype=diplotype,
            lookup=tuple(lookup),
            note="; ".join(notes) or None,
        )

    def _interpret_hla(self, gene: str, results: list[PgxResult]) -> GeneResult:
        statuses: dict[str, set[str]] = {}
        typed = False
        notes: list[str] = []
        for r in results:
            if r.allele and r.allele_status:
                allele = r.allele if r.allele.startswith("*") else "*" + r.allele.split("*")[-1]
                allele = ":".join(allele.rstrip("GPNLSQ").split(":")[:2])  # *57:01:01G -> *57:01 (CPIC's two fields)
                statuses.setdefault(allele, set()).add(r.allele_status)
            elif r.diplotype:
                pair = self.split(gene, r.diplotype)
                if pair is None:
                    notes.append(f"HLA type {r.diplotype} not readable")
                    continue
                typed = True
                for a in pair:
                    a = a if a.startswith("*") else "*" + a.split("*")[-1]
                    statuses.setdefault(":".join(a.rstrip("GPNLSQ").split(":")[:2]), set()).add("positive")
        if not statuses and not typed:
            return GeneResult(
                gene=gene,
                status=GeneStatus.INDETERMINATE,
                phenotype=INDETERMINATE,
                lookup=(INDETERMINATE,),
                note="; ".join(notes) or None,
            )
        alleles = tuple(sorted((a, "conflict" if len(s) > 1 else next(iter(s))) for a, s in statuses.items()))
        conflict = any(s == "conflict" for _, s in alleles)
        return GeneResult(
            gene=gene,
            status=GeneStatus.CONFLICT if conflict else GeneStatus.TESTED,
            phenotype=", ".join(f"{gene}{a} {s}" for a, s in alleles),
            alleles=alleles,
            hla_typed=typed,
            lookup=tuple(f"{a} {s}" for a, s in alleles),
            note=("allele status reported both positive and negative" if conflict else None),
        )


def _is_unknown_copies(allele: str) -> bool:
    return allele[-2:] in ("xN", "XN")


def floor_to(value: float, step: float) -> float:
    return math.floor(value / step + 1e-9) * step
