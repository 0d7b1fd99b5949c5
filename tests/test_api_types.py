"""The Python API given the wrong types raises a PlannerError saying what it expected (never a TypeError)."""

from __future__ import annotations

import pytest

from planner import Planner
from planner.errors import ConfigError
from planner.testing import BundleBuilder


@pytest.fixture(scope="module")
def planner() -> Planner:
    return Planner.load()


@pytest.fixture(scope="module")
def doc() -> dict:
    b = BundleBuilder()
    b.condition("44054006", onset="2015-01-01")
    b.medication("metformin", dose_mg_day=1000, start="2023-01-01")
    b.observation("hba1c", 8.4, date="2024-01-05")
    return b.build()


@pytest.mark.parametrize(
    "args,kwargs,message",
    [
        (
            (123,),
            {"area": "t2d"},
            "source 'int': unsupported input type; expected a path, JSON text, bytes, a dict or a PatientRecord",
        ),
        (None, {"area": "t2d", "top": "5"}, "top '5': top must be an integer; expected an int from 1 to 10,000"),
        (None, {"area": "t2d", "top": True}, "top True: top must be an integer; expected an int from 1 to 10,000"),
        (None, {"area": "t2d", "top": 0}, "top 0: top out of range; expected an int from 1 to 10,000"),
        (None, {"area": "t2d", "seed": -1}, "seed -1: seed out of range; expected an int from 0 to 4,294,967,295"),
        (
            None,
            {"area": "t2d", "seed": 2**70},
            "seed 1180591620717411303424: seed out of range; expected an int from 0 to 4,294,967,295",
        ),
        (
            None,
            {"area": "t2d", "seed": "x"},
            "seed 'x': seed must be an integer; expected an int from 0 to 4,294,967,295",
        ),
    ],
)
def test_wrong_types_raise_planner_error(planner, doc, args, kwargs, message) -> None:
    with pytest.raises(ConfigError) as info:
        planner.recommend(*(args or (doc,)), **kwargs)
    assert str(info.value) == message


def test_damaged_model_folder_is_a_model_error(tmp_path) -> None:
    import json

    from planner.areas import load_area
    from planner.errors import ModelError
    from planner.model import ResponseModel

    saved = ResponseModel.from_area(load_area("t2d")).save(tmp_path / "t2d")
    meta = json.loads((saved / "meta.json").read_text())
    del meta["params"]
    (saved / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError) as info:
        Planner.load(model=saved)
    assert "damaged model folder (missing 'params')" in str(info.value)
    saved2 = ResponseModel.from_area(load_area("t2d")).save(tmp_path / "t2d-b")
    draws = saved2 / "draws.npz"
    draws.write_bytes(draws.read_bytes()[: draws.stat().st_size // 2])  # truncated
    with pytest.raises(ModelError) as info:
        Planner.load(model=saved2)
    assert str(info.value).startswith(f"{saved2}: damaged model folder (")


def test_audit_database_of_another_schema_is_refused_before_any_work(tmp_path) -> None:
    import sqlite3

    db = tmp_path / "other.db"
    with sqlite3.connect(db) as con:
        con.execute("create table recommendation_audit (x int)")
    with pytest.raises(ConfigError) as info:
        Planner.load(audit=db)
    # the error names the file (long values are shortened, so only its start is compared: tmp paths vary)
    assert str(info.value).startswith(f"audit {str(db)[:40]!r}"[:-1])
    assert ": audit database has another schema; expected table recommendation_audit with columns area, as_of, " in str(
        info.value
    )
