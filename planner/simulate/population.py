"""Population data for the simulator (allele frequencies, diplotype -> phenotype), read from
``rules/areas/simulation/pgx_population.yaml``."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import RuleError
from ..rule_files import read_yaml, rules_dir

__all__ = ["GenePopulation", "load_pgx_population", "sample_diplotypes"]

PGX_POPULATION_FILE = "areas/simulation/pgx_population.yaml"


@dataclass(frozen=True)
class GenePopulation:
    gene: str
    hgnc: str
    alleles: tuple[str, ...]
    freqs: tuple[float, ...]
    diplotypes: dict[str, str]  # "*1/*2" -> phenotype (CPIC term)
    data_version: str

    def phenotype(self, a: str, b: str) -> tuple[str, str]:
        """(diplotype as CPIC writes it, phenotype) for two alleles in either order."""
        for d in (f"{a}/{b}", f"{b}/{a}"):
            if d in self.diplotypes:
                return d, self.diplotypes[d]
        raise RuleError(
            "diplotype missing from the population table",
            file=PGX_POPULATION_FILE,
            field=f"genes.{self.gene}.diplotypes",
            value=f"{a}/{b}",
        )


@functools.lru_cache(maxsize=4)
def _load(path: str) -> tuple[float, dict[str, GenePopulation]]:
    raw = read_yaml(path)
    try:
        tested = float(raw["tested_share"])
        genes = {}
        for gene, spec in raw["genes"].items():
            alleles = tuple(spec["alleles"])
            freqs = np.array([float(spec["alleles"][a]) for a in alleles])
            if np.any(freqs < 0) or abs(freqs.sum() - 1.0) > 0.01:
                raise RuleError(
                    "allele frequencies must be >= 0 and sum to 1",
                    file=path,
                    field=f"genes.{gene}.alleles",
                    value=float(freqs.sum()),
                )
            genes[gene] = GenePopulation(
                gene=gene,
                hgnc=str(spec["hgnc"]),
                alleles=alleles,
                freqs=tuple(freqs / freqs.sum()),
                diplotypes=dict(spec["diplotypes"]),
                data_version=str(spec.get("data_version", "")),
            )
            for i, a in enumerate(alleles):
                for b in alleles[i:]:
                    genes[gene].phenotype(a, b)
    except (KeyError, TypeError, ValueError) as exc:
        raise RuleError(f"invalid pgx population file ({exc})", file=path) from None
    return tested, genes


def load_pgx_population(rules: str | Path | None = None) -> tuple[float, dict[str, GenePopulation]]:
    """(share of patients with a genotype panel, gene -> :class:`GenePopulation`)."""
    return _load(str(rules_dir(rules) / PGX_POPULATION_FILE))


def sample_diplotypes(pop: GenePopulation, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` diplotypes under Hardy-Weinberg: (diplotype strings, phenotypes), object arrays."""
    idx = rng.choice(len(pop.alleles), size=(n, 2), p=np.asarray(pop.freqs))
    table = {}
    for i, a in enumerate(pop.alleles):
        for j, b in enumerate(pop.alleles):
            table[(i, j)] = pop.phenotype(a, b)
    dip = np.empty(n, dtype=object)
    phe = np.empty(n, dtype=object)
    for k in range(n):
        dip[k], phe[k] = table[(int(idx[k, 0]), int(idx[k, 1]))]
    return dip, phe
