"""Code tables ingest reads, loaded once from ``rules/codes/`` (data, not code).

* ``rxnorm.csv``: RxNorm ingredient rows (with name synonyms: salt forms, brands) and clinical-drug rows that map a
  product code to its ingredient.
* ``quantities.yaml``: quantity name -> LOINC codes, canonical UCUM unit, accepted units with their conversion,
  plausible range; blood pressure panels to unpack.
* ``pgx.yaml``: the LOINC codes of pharmacogenomic Observations, LA answer codes, CPIC phenotype terms, HGNC ids.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path
from typing import Any

from ..errors import RuleError
from ..rule_files import read_csv, read_yaml, rules_dir

__all__ = ["Ingredient", "Quantity", "UnitRule", "CodeTables", "code_tables", "RXNORM_SYSTEMS", "LOINC_SYSTEM"]

RXNORM_SYSTEMS = frozenset(
    {
        "http://www.nlm.nih.gov/research/umls/rxnorm",
        "http://www.nlm.nih.gov/research/umls/rxnorm/",
        "urn:oid:2.16.840.1.113883.6.88",
    }
)
LOINC_SYSTEM = "http://loinc.org"


@dataclasses.dataclass(frozen=True)
class Ingredient:
    """One ingredient: lower-case name and RxCUI (``None`` where the source gives none)."""

    name: str
    rxcui: str | None
    mg_per_unit: float | None = None  # for drugs dosed in units (insulin): mg per unit


@dataclasses.dataclass(frozen=True)
class UnitRule:
    factor: float
    offset: float = 0.0

    def apply(self, value: float) -> float:
        return value * self.factor + self.offset


@dataclasses.dataclass(frozen=True)
class Quantity:
    name: str
    label: str
    loinc: tuple[str, ...]
    unit: str
    accept: dict[str, UnitRule]
    plausible: tuple[float, float] | None
    assume_missing_unit: bool = False


_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def _norm_name(text: str) -> str:
    """Lower case, words only, single spaces: the key names are matched on."""
    return " ".join(_WORD.findall(text.lower()))


_IN_TEXT_MAX = 20_000  # distinct medication texts remembered per code tables


@dataclasses.dataclass(frozen=True)
class CodeTables:
    """All code tables ingest uses. Build with :func:`code_tables`."""

    rxcui_to_ingredient: dict[str, Ingredient]
    name_to_ingredient: dict[str, Ingredient]  # normalised name or synonym -> ingredient
    max_name_words: int
    loinc_to_quantity: dict[str, Quantity]
    quantities: dict[str, Quantity]
    panels: frozenset[str]
    pgx: dict[str, Any]
    versions: dict[str, str]
    pgx_codes: frozenset[str] = frozenset()  # Observation.code values that mark a PGx result
    gene_studied_codes: frozenset[str] = frozenset()
    products: dict[str, tuple[Ingredient, ...]] = dataclasses.field(default_factory=dict)  # brand/pack -> ingredients
    timing_codes: dict[str, float] = dataclasses.field(default_factory=dict)  # BID -> 2.0
    timing_text: dict[str, float] = dataclasses.field(default_factory=dict)  # "twice daily" -> 2.0
    system_alias: dict[str, str] = dataclasses.field(default_factory=dict)  # alias URI -> canonical URI
    sex_extensions: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)  # url -> code -> gender

    def canonical_system(self, system: str | None) -> str | None:
        """The canonical URI of a code system written under an alias (``urn:oid:...6.90`` -> ICD-10-CM)."""
        if system is None:
            return None
        return self.system_alias.get(system.strip(), system.strip())

    def systems_of(self, canonical: str) -> frozenset[str]:
        """The canonical URI and every alias of it."""
        return frozenset({canonical, *(a for a, c in self.system_alias.items() if c == canonical)})

    @functools.cached_property
    def icd10_systems(self) -> frozenset[str]:
        return self.systems_of("http://hl7.org/fhir/sid/icd-10-cm") | self.systems_of("http://hl7.org/fhir/sid/icd-10")

    @functools.cached_property
    def snomed_systems(self) -> frozenset[str]:
        return self.systems_of("http://snomed.info/sct")

    @functools.cached_property
    def loinc_systems(self) -> frozenset[str]:
        return self.systems_of(LOINC_SYSTEM)

    # ---- medications ----------------------------------------------------------------------------------
    def ingredient_for_code(self, code: str | None) -> Ingredient | None:
        return self.rxcui_to_ingredient.get(code) if code else None

    def ingredients_in_text(self, text: str | None) -> list[Ingredient]:
        """Ingredients named in a display or text, in order, longest name first at each position (remembered per
        text: the same product texts recur across records; the tables never change)."""
        if not text:
            return []
        memo = self.__dict__.get("_in_text")
        if memo is None:
            memo = self.__dict__["_in_text"] = {}
        got = memo.get(text)
        if got is None:
            got = tuple(self._ingredients_in_text(text))
            if len(memo) >= _IN_TEXT_MAX:
                memo.clear()
            memo[text] = got
        return list(got)

    def _ingredients_in_text(self, text: str) -> list[Ingredient]:
        norm = _norm_name(text)
        words = norm.split()
        found: list[Ingredient] = []
        if self.products:
            padded = f" {norm} "
            for name, ings in self.products.items():
                if f" {name} " in padded:
                    found.extend(i for i in ings if i not in found)
        i = 0
        while i < len(words):
            hit = None
            for n in range(min(self.max_name_words, len(words) - i), 0, -1):
                ing = self.name_to_ingredient.get(" ".join(words[i : i + n]))
                if ing is not None:
                    hit, i = ing, i + n
                    break
            if hit is None:
                i += 1
            elif hit not in found:
                found.append(hit)
        return found

    def timing_per_day(self, coding: list[Any], text: str | None) -> float | None:
        """Administrations per day of a ``timing.code`` (GTS abbreviation code, or its text/display)."""
        for c in coding:
            if c.code and c.code.strip().upper() in self.timing_codes:
                return self.timing_codes[c.code.strip().upper()]
        for t in [text] + [c.display for c in coding]:
            if t and " ".join(t.lower().split()) in self.timing_text:
                return self.timing_text[" ".join(t.lower().split())]
        return None

    def ingredient_by_name(self, name: str) -> Ingredient | None:
        return self.name_to_ingredient.get(_norm_name(name))

    # ---- pgx --------------------------------------------------------------------------------------------
    def loinc_set(self, key: str) -> frozenset[str]:
        return frozenset(self.pgx["loinc"][key])

    def phenotype_term(self, text: str | None) -> str | None:
        """A CPIC phenotype term for free text ("poor metaboliser", "PM", "CYP2C19 Poor Metabolizer")."""
        if not text:
            return None
        t = _norm_name(re.sub(r"\([^)]*\)", " ", text))
        t = re.sub(r"metabolis(?:er|ers)\b|metabolizers\b", "metabolizer", t)
        genes = self.gene_symbols
        t = " ".join(w for w in t.split() if w.upper() not in genes)  # "cyp2c19 poor metabolizer"
        terms: dict[str, str] = self.pgx["phenotype_terms"]
        if t in terms:
            return terms[t]
        for key in sorted(terms, key=len, reverse=True):  # "... ultrarapid metabolizer ..." -> longest term inside
            if len(key) > 2 and re.search(r"(?:^| )" + re.escape(key) + r"(?: |$)", t):
                return terms[key]
        return None

    @functools.cached_property
    def gene_symbols(self) -> frozenset[str]:
        """HGNC symbols of the pharmacogenes in rules/codes/pgx.yaml (upper case)."""
        return frozenset(str(v).upper() for v in self.pgx["hgnc"].values())

    def is_no_result(self, text: str | None) -> bool:
        return text is None or text.strip().lower() in set(self.pgx["no_result"])


def _build(root: Path) -> CodeTables:
    codes = root / "codes"
    by_code, by_name, ingredients = _read_rxnorm(codes)
    qdoc, quantities, by_loinc = _read_quantities(codes)
    pgx = read_yaml(codes / "pgx.yaml")
    variants_file = codes / "pgx_variants.yaml"
    if variants_file.is_file():  # genes whose results labs send as variants (MT-RNR1, RYR1, CACNA1S)
        pgx = {**pgx, "variant_genes": sorted(read_yaml(variants_file).get("genes") or {})}
    timing_codes, timing_text = _read_timing(codes)
    system_alias, sex_extensions = _read_systems(codes)
    versions = {
        "quantities": str(qdoc.get("version")),
        "pgx": str(pgx.get("version")),
    }
    return CodeTables(
        rxcui_to_ingredient=by_code,
        name_to_ingredient=by_name,
        max_name_words=max((len(k.split()) for k in by_name), default=1),
        loinc_to_quantity=by_loinc,
        quantities=quantities,
        panels=frozenset(str(p) for p in (qdoc.get("panels") or {})),
        pgx=pgx,
        versions=versions,
        pgx_codes=frozenset(
            str(c)
            for key in ("genotype", "phenotype", "implication_codes", "haplotype", "variant", "region_studied")
            for c in pgx["loinc"].get(key, ())
        ),
        products=_read_products(codes, ingredients),
        timing_codes=timing_codes,
        timing_text=timing_text,
        system_alias=system_alias,
        sex_extensions=sex_extensions,
        gene_studied_codes=frozenset(str(c) for c in pgx["loinc"]["gene_studied"]),
    )


def _read_rxnorm(codes: Path) -> tuple[dict[str, Ingredient], dict[str, Ingredient], dict[str, Ingredient]]:
    """``rxnorm.csv``: RxCUI -> ingredient (ingredient and clinical-drug rows), normalized name (and synonyms)
    -> ingredient, and the ingredients by name."""
    rows = read_csv(codes / "rxnorm.csv")
    by_code: dict[str, Ingredient] = {}
    by_name: dict[str, Ingredient] = {}
    ingredients: dict[str, Ingredient] = {}
    for row in rows:
        if row.get("tty") != "IN":
            continue
        try:
            mg_per_unit = float(row["mg_per_unit"]) if (row.get("mg_per_unit") or "").strip() else None
        except ValueError:
            raise RuleError(
                "mg_per_unit is not a number",
                file=str(codes / "rxnorm.csv"),
                field=row["ingredient"],
                value=row.get("mg_per_unit"),
            ) from None
        ing = Ingredient(
            name=row["ingredient"].strip().lower(),
            rxcui=(row["ingredient_rxcui"] or "").strip() or None,
            mg_per_unit=mg_per_unit,
        )
        ingredients[ing.name] = ing
        if ing.rxcui:
            by_code[ing.rxcui] = ing
        for name in [ing.name, *(s for s in (row.get("synonyms") or "").split("|") if s.strip())]:
            key = _norm_name(name)
            if key in by_name and by_name[key] != ing:
                raise RuleError("name maps to two ingredients", file=str(codes / "rxnorm.csv"), value=name)
            by_name[key] = ing
    for row in rows:
        if row.get("tty") == "IN":
            continue
        ing = ingredients.get(row["ingredient"].strip().lower())
        if ing is None:
            raise RuleError(
                "clinical drug names an ingredient without an IN row",
                file=str(codes / "rxnorm.csv"),
                value=row["ingredient"],
                expected="an ingredient listed with tty IN",
            )
        by_code[row["rxcui"].strip()] = ing
    return by_code, by_name, ingredients


def _read_quantities(codes: Path) -> tuple[dict[str, Any], dict[str, Quantity], dict[str, Quantity]]:
    """``quantities.yaml``: the document, the quantities by name and by LOINC code (each code once)."""
    qdoc = read_yaml(codes / "quantities.yaml")
    quantities: dict[str, Quantity] = {}
    by_loinc: dict[str, Quantity] = {}
    for name, spec in (qdoc.get("quantities") or {}).items():
        try:
            accept = {
                str(u): UnitRule(float(r["factor"]), float(r.get("offset", 0.0))) for u, r in spec["accept"].items()
            }
            plaus = spec.get("plausible")
            q = Quantity(
                name=name,
                label=spec.get("label", name),
                loinc=tuple(str(c) for c in spec["loinc"]),
                unit=str(spec["unit"]),
                accept=accept,
                plausible=(float(plaus[0]), float(plaus[1])) if plaus else None,
                assume_missing_unit=spec.get("missing_unit") == "assume",
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise RuleError(
                f"invalid quantity definition ({exc})", file=str(codes / "quantities.yaml"), field=name
            ) from None
        if q.unit not in q.accept:
            raise RuleError(
                "canonical unit is not among the accepted units",
                file=str(codes / "quantities.yaml"),
                field=name,
                value=q.unit,
            )
        quantities[name] = q
        for code in q.loinc:
            if code in by_loinc:
                raise RuleError(
                    "LOINC code listed under two quantities", file=str(codes / "quantities.yaml"), value=code
                )
            by_loinc[code] = q
    return qdoc, quantities, by_loinc


def _read_products(codes: Path, ingredients: dict[str, Ingredient]) -> dict[str, tuple[Ingredient, ...]]:
    """``products.csv`` (optional): a combination product's normalized name -> its ingredients."""
    products: dict[str, tuple[Ingredient, ...]] = {}
    ppath = codes / "products.csv"
    if ppath.is_file():
        for row in read_csv(ppath):
            ings = []
            for n in (row.get("ingredients") or "").split("|"):
                ing = ingredients.get(n.strip().lower())
                if ing is None:
                    raise RuleError(
                        "product names an ingredient without an IN row",
                        file=str(ppath),
                        value=n,
                        expected="an ingredient listed in rxnorm.csv with tty IN",
                    )
                ings.append(ing)
            products[_norm_name(row["name"])] = tuple(ings)
    return products


def _read_timing(codes: Path) -> tuple[dict[str, float], dict[str, float]]:
    """``timing.yaml`` (optional): doses a day by timing code and by normalized free text."""
    tdoc = read_yaml(codes / "timing.yaml") if (codes / "timing.yaml").is_file() else {}
    try:
        timing_codes = {str(k).upper(): float(v) for k, v in (tdoc.get("codes") or {}).items()}
        timing_text = {" ".join(str(k).lower().split()): float(v) for k, v in (tdoc.get("text") or {}).items()}
    except (TypeError, ValueError) as exc:
        raise RuleError(f"invalid timing code table ({exc})", file=str(codes / "timing.yaml")) from None
    return timing_codes, timing_text


def _read_systems(codes: Path) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """``systems.yaml`` (optional): code-system alias -> canonical URI, and the sex extensions by URL."""
    system_alias: dict[str, str] = {}
    sex_extensions: dict[str, dict[str, str]] = {}
    spath = codes / "systems.yaml"
    if spath.is_file():
        sdoc = read_yaml(spath)
        sex_extensions = {
            str(u): {str(k): str(v) for k, v in m.items()} for u, m in (sdoc.get("sex_extensions") or {}).items()
        }
        for canonical, aliases in (sdoc.get("systems") or {}).items():
            for a in aliases or ():
                system_alias[str(a).strip()] = str(canonical)
    return system_alias, sex_extensions


@functools.lru_cache(maxsize=4)
def _cached(root: str) -> CodeTables:
    return _build(Path(root))


def code_tables(rules: str | Path | None = None) -> CodeTables:
    """The code tables of a rules folder (default: the packaged one), loaded once and cached."""
    return _cached(str(rules_dir(rules)))
