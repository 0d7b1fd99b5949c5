"""Areas and guidelines are remembered per rules folder: a run pointed at another folder (``rules=`` or
``$PLANNER_RULES_DIR``) reads that folder's files, never what an earlier call in the process read elsewhere."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from planner.areas import load_area
from planner.errors import AreaError
from planner.guidelines import load_guidelines
from planner.rule_files import default_rules_dir


@pytest.fixture()
def copy(tmp_path: Path) -> Path:
    out = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), out)
    (out / "areas" / "lipids.yaml").unlink()  # this folder has no lipids area
    (out / "guidelines" / "t2d.yaml").unlink()  # nor t2d guidelines
    return out


def test_areas_and_guidelines_follow_the_rules_folder(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    packaged = load_area("t2d")
    assert load_area("t2d") is packaged and load_area("lipids").id == "lipids"
    assert load_guidelines(packaged) is load_guidelines(packaged) is not None
    mine = load_area("t2d", copy)
    assert mine is not packaged and load_area("t2d", str(copy)) is mine
    assert load_guidelines(mine, copy) is None  # the packaged t2d guidelines are not this folder's
    with pytest.raises(AreaError, match="unknown area"):
        load_area("lipids", copy)
    monkeypatch.setenv("PLANNER_RULES_DIR", str(copy))
    assert load_area("t2d") is mine and load_guidelines(mine) is None
    with pytest.raises(AreaError, match="unknown area"):
        load_area("lipids")
    monkeypatch.delenv("PLANNER_RULES_DIR")
    assert load_area("t2d") is packaged and load_area("lipids").id == "lipids"
    got = load_guidelines(packaged)
    assert got is not None and got.area == "t2d"


def test_a_relative_rules_folder_is_the_one_under_the_working_directory(
    copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same relative ``rules`` from two working directories names two folders: each its own areas."""
    other = tmp_path / "elsewhere" / "rules"
    shutil.copytree(copy, other)
    shutil.copy(default_rules_dir() / "areas" / "lipids.yaml", other / "areas" / "lipids.yaml")
    monkeypatch.chdir(copy.parent)
    here = load_area("t2d", "rules")
    with pytest.raises(AreaError, match="unknown area"):
        load_area("lipids", "rules")
    monkeypatch.chdir(other.parent)
    assert load_area("t2d", "rules") is not here  # read from the other folder's file
    assert load_area("lipids", "rules").id == "lipids"
