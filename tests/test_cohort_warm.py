"""Warming a planner (``Planner.warm``, ``planner cohort run --warm``) fills its per-regimen caches and changes
no output: warmed and cold planners give byte-identical recommendations and cohort rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from planner import Planner
from planner.cohort import read_results, run_cohort
from planner.errors import ConfigError


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from planner.simulate import simulate_cohort

    out = tmp_path_factory.mktemp("sim")
    simulate_cohort("t2d", 8, seed=5).write_fhir(str(out))
    return out


def _caches(planner: Planner, area: str) -> tuple[int, int]:
    """Sizes of two per-regimen caches: the sampler's regimen parts and the generator's candidate moves."""
    from planner.model import batched

    parts = batched._CACHES.get(planner.models[area], {})
    return len(parts), len(getattr(planner.generators[area], "_moves_cache", None) or {})


def test_warm_fills_the_caches_and_changes_no_recommendation(sim_dir: Path) -> None:
    bundles = sorted((sim_dir / "fhir").glob("*.json"))
    cold = Planner.load()
    one = [cold.recommend(b, area="t2d").to_json() for b in bundles]  # one at a time, cold planner
    warm = Planner.load()
    assert _caches(warm, "t2d") == (0, 0)
    stats = warm.warm("t2d", n=12)
    assert stats.areas == ("t2d",) and stats.patients == 12 and stats.seconds > 0
    parts, moves = _caches(warm, "t2d")
    assert parts > 0 and moves > 0
    many = warm.recommend_many(bundles, area="t2d")
    assert [r.to_json() for r in many] == one
    with pytest.raises(ConfigError, match="unknown area"):
        warm.warm("no-such-area", n=2)


def test_cohort_rows_are_the_same_with_and_without_warming(
    sim_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from planner.cohort import run as run_mod

    frames = []
    for warm in (0, 10):
        # a fresh process's state: no planner loaded, none warmed
        monkeypatch.setattr(run_mod, "_PLANNERS", {})
        monkeypatch.setattr(run_mod, "_WARMED", set())
        run_cohort(sim_dir / "fhir", area="t2d", out=tmp_path / f"w{warm}", at="all", batch_size=4, warm=warm)
        planner = run_mod._PLANNERS[(None, None)]
        assert (_caches(planner, "t2d")[0] > 0) and ((None, None, "t2d") in run_mod._WARMED) == bool(warm)
        frames.append(read_results(tmp_path / f"w{warm}").sort_values(["unit", "point"]).reset_index(drop=True))
    assert len(frames[0]) >= 8
    pd.testing.assert_frame_equal(frames[0], frames[1])
    with pytest.raises(ConfigError, match="warm-up size"):
        run_cohort(sim_dir / "fhir", area="t2d", out=tmp_path / "bad", warm=-1)
