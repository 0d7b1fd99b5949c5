"""Hypothesis fuzzing: mutated bundles and random bytes give a record or a PlannerError, never anything else."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from planner.errors import PlannerError
from planner.ingest import read_records
from planner.testing import BundleBuilder


def _seed() -> dict[str, Any]:
    b = BundleBuilder(patient_id="p1", birth_date="1960-01-01")
    b.condition("44054006", onset="2019-01-01", icd10="E11.9")
    b.medication("metformin", dose_mg_day=1000, start="2023-01-01", end="2024-01-01")
    b.medication("sertraline", dose_mg_day=50, start="2023-01-01", statement=True)
    b.observation("hba1c", 8.0, date="2024-01-05")
    b.observation("ldl", 3.1, unit="mmol/L", date="2024-01-05")
    b.blood_pressure(140, 85, date="2024-01-06")
    b.allergy("codeine", reactions=["Hives"])
    b.genotype("CYP2C19", "*2/*2")
    b.phenotype("CYP2D6", "Poor Metabolizer")
    b.hla("HLA-B*57:01")
    return b.build()


SEED = _seed()

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(
        [
            "2024-02-30",
            "2999-01-01",
            "",
            "mg",
            "mmol/mol",
            "Patient/ghost",
            "urn:uuid:x",
            "4548-4",
            "85354-9",
            "84413-4",
            "LA9657-3",
            "HGNC:2621",
            "*1/*2",
            "entered-in-error",
        ]
    ),
)
json_value = st.recursive(
    json_leaf,
    lambda ch: st.one_of(st.lists(ch, max_size=3), st.dictionaries(st.text(max_size=8), ch, max_size=3)),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


PATHS = [p for p in _paths(SEED) if p]


def _apply(doc: Any, path: tuple, op: str, value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    if op == "delete":
        if isinstance(parent, dict):
            parent.pop(key, None)
        elif isinstance(parent, list) and key < len(parent):
            parent.pop(key)
    elif op == "duplicate" and isinstance(parent, list):
        parent.append(copy.deepcopy(parent[key]))
    else:
        parent[key] = value
    return doc


@settings(max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "250")), deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(PATHS), st.sampled_from(["set", "delete", "duplicate"]), json_value),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_bundles_never_crash(mutations) -> None:
    doc = copy.deepcopy(SEED)
    for path, op, value in mutations:
        try:
            doc = _apply(doc, path, op, value)
        except (KeyError, IndexError, TypeError):
            continue  # the path no longer exists after an earlier mutation
    try:
        records = read_records(doc, today="2026-01-01")
    except PlannerError:
        return
    for r in records:
        type(r).model_validate_json(r.model_dump_json())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(data: bytes) -> None:
    try:
        read_records(data)
    except PlannerError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2000), st.binary(min_size=1, max_size=4))
def test_corrupted_serialisation_never_crashes(pos: int, junk: bytes) -> None:
    text = json.dumps(SEED).encode()
    pos = pos % len(text)
    data = text[:pos] + junk + text[pos + len(junk) :]
    try:
        read_records(data, today="2026-01-01")
    except PlannerError:
        pass


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.lists(
            st.one_of(
                st.sampled_from(
                    [
                        "CYP2D6",
                        "HLA-B",
                        "cyp2c19",
                        "*1/*4",
                        "*57:01 positive",
                        "PM",
                        "No Result",
                        "1.0",
                        "n/a",
                        "≥6.0",
                        "-1",
                        "nan",
                        "",
                    ]
                ),
                st.text(max_size=6),
            ),
            max_size=6,
        ),
        max_size=5,
    )
)
def test_pharmcat_tsv_never_crashes(tmp_path_factory, lines) -> None:
    from planner.ingest import read_pharmcat

    path = tmp_path_factory.mktemp("pc") / "calls.tsv"
    path.write_text("\n".join("\t".join(cols) for cols in lines), encoding="utf-8", errors="surrogatepass")
    try:
        for r in read_pharmcat(path):
            assert r.gene == r.gene.upper() and r.source == "pharmcat-tsv"
    except PlannerError:
        pass
