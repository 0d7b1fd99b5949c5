"""Conformance: every CPIC diplotype row (25,117, fixtures/cpic) gives CPIC's phenotype and activity score,
computed from planner's own allele data (rules/pgx), in both allele orders."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from planner.rule_files import rules_dir
from planner.safety.phenotype import GeneKnowledge

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "cpic"


@pytest.fixture(scope="module")
def knowledge() -> GeneKnowledge:
    return GeneKnowledge(rules_dir())


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    with open(FIX / "diplotype_phenotype.csv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_table_size(rows):
    assert len(rows) == 25117
    assert Counter(r["gene"] for r in rows)["CYP2D6"] == 15051


def test_every_cpic_diplotype_conforms(knowledge, rows):
    bad = []
    for r in rows:
        t = knowledge.translate(r["gene"], r["diplotype"])
        if t.phenotype != r["phenotype"] or (t.score or "") != r["activity_score"]:
            bad.append((r["gene"], r["diplotype"], r["phenotype"], r["activity_score"], t.phenotype, t.score))
    assert not bad, f"{len(bad)} rows differ, e.g. {bad[:5]}"


def test_reversed_order_gives_the_same(knowledge, rows):
    for r in rows[::7]:
        a, b = knowledge.split(r["gene"], r["diplotype"])
        assert knowledge.translate(r["gene"], f"{b}/{a}") == knowledge.translate(r["gene"], r["diplotype"])


def test_activity_genes_are_computed_not_looked_up():
    """The rules folder holds allele values and bins only, never the diplotype table."""
    pgx = rules_dir() / "pgx"
    for f in pgx.iterdir():
        text = f.read_text(encoding="utf-8")
        assert "*1/*1x2" not in text and "Reference/c.46C>G" not in text, f
