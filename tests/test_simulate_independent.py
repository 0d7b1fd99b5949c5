"""The independent simulator: every area, FHIR through the real ingest, truth consistent with its own data,
deterministic, and written apart from the model (it never imports planner.model)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from planner.areas import list_areas
from planner.episodes import episodes_frame
from planner.record import Regimen
from planner.simulate.independent import simulate_independent


@pytest.fixture(scope="module", params=list_areas())
def cohort_and_episodes(request):
    c = simulate_independent(request.param, 80, seed=5)
    fr, counts = episodes_frame(c.records(), request.param)
    fr["t0"] = pd.to_datetime(fr["t0"]).dt.normalize().astype("datetime64[ns]")
    return c, fr, counts


def test_every_area_gives_episodes_that_join_the_truth(cohort_and_episodes):
    c, fr, counts = cohort_and_episodes
    assert len(fr) > 50 and counts["episodes"] == len(fr)
    m = fr.merge(c.decisions[["patient_id", "t0", "regimen_key"]], on=["patient_id", "t0"], how="left")
    assert m["regimen_key"].notna().all()  # every episode planner extracts is a simulated decision
    assert (m["regimen"] == m["regimen_key"]).mean() > 0.97  # and ingest reads the regimen the simulator wrote
    regs = [Regimen.model_validate_json(s) for s in fr["regimen_json"]]
    e = c.expected_outcome(fr, regs[:1] + [Regimen()])
    lo, hi = c.area.outcome.plausible
    assert np.isfinite(e).all() and (e > lo * 0.5).all() and (e < hi * 1.5).all()
    if c.area.outcome.direction == "lower":
        assert (e[:, 0] <= e[:, 1] + 1e-9).all()  # a drug never worsens the outcome in this world
    p = c.p_target(fr.iloc[:20], regs[:3])
    assert p.shape == (20, 3) and ((p >= 0) & (p <= 1)).all()


def test_truth_agrees_with_the_simulated_follow_ups(cohort_and_episodes):
    """Where the follow-up is near t0 + followup_days, the observed follow-up scatters around the truth of the
    regimen given (no bias beyond noise)."""
    c, fr, _ = cohort_and_episodes
    regs = [Regimen.model_validate_json(s) for s in fr["regimen_json"]]
    truth = np.array([c.expected_outcome(fr.iloc[[i]], [r])[0, 0] for i, r in enumerate(regs)])
    days = (pd.to_datetime(fr["followup_date"]) - fr["t0"]).dt.days.to_numpy()
    near = np.abs(days - c.area.outcome.followup_days) < 60
    y = fr["followup"].to_numpy(float)[near]
    t = truth[near]
    resid = np.log(y / t) if c.area.outcome.scale == "log" else y - t
    sd = c.area.outcome.noise_sd * 2.0  # lab noise plus latent fluctuation, generously
    assert near.sum() > 10
    assert abs(resid.mean()) < 3 * sd / np.sqrt(near.sum()) + 0.1 * sd


def test_deterministic_and_fhir_written(tmp_path):
    a = simulate_independent("t2d", 30, seed=2)
    b = simulate_independent("t2d", 30, seed=2)
    assert a.bundles() == b.bundles()
    pd.testing.assert_frame_equal(
        a.decisions.drop(columns=["regimen", "regimen_before"]), b.decisions.drop(columns=["regimen", "regimen_before"])
    )
    info = a.write_fhir(str(tmp_path / "c"))
    assert info["simulator"] == "independent" and len(list((tmp_path / "c" / "fhir").glob("*.json"))) == 30
    t = pd.read_parquet(tmp_path / "c" / "truth.parquet")
    assert any(col.startswith("truth:") for col in t.columns) and len(t) == len(a.decisions)
    assert simulate_independent("t2d", 30, seed=3).bundles() != a.bundles()
    # the folder reads as one cohort (ids unique across patients), with the episodes of the in-memory records
    from planner.ingest import read_records

    from_files, _ = episodes_frame(read_records(str(tmp_path / "c" / "fhir")), "t2d")
    in_memory, _ = episodes_frame(a.records(), "t2d")
    assert len(from_files) == len(in_memory) > 0


def test_does_not_import_the_model():
    code = (
        "import sys; from planner.simulate.independent import simulate_independent; "
        "simulate_independent('lipids', 5, seed=0); "
        "print(any(m.startswith('planner.model') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
