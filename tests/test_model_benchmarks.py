"""The model's benchmark scripts run end to end with tiny arguments (their figures come from full runs)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(script: str, *args: str, timeout: int = 300) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("causallib") is None,
    reason="causallib (ships the ACIC 2016 data) not installed: .ci/run installs it",
)
def test_acic_benchmark_tiny(tmp_path):
    out = _run(
        "model_acic.py", "--instances", "2", "--rows", "700", "--steps", "150", "--out", str(tmp_path / "a.json")
    )
    assert "T-learner xgboost" in out and "coverage" in out
    import json

    res = json.loads((tmp_path / "a.json").read_text())
    r = res["rows"][0]
    assert r["instance"] == 2 and r["n_test"] == 70
    assert 0 <= r["planner_cov"] <= 1 and r["planner_pehe"] > 0 and r["tlearner_pehe"] > 0


@pytest.mark.slow
def test_calibration_benchmark_tiny(tmp_path):
    out = _run(
        "model_calibration.py",
        "--areas",
        "lipids",
        "--sims",
        "first,independent",
        "--patients",
        "150",
        "--eval-rows",
        "60",
        "--steps",
        "100",
        "--out",
        str(tmp_path / "c.json"),
    )
    assert "pairs meet all three checks" in out
    import json

    res = json.loads((tmp_path / "c.json").read_text())
    assert [r["sim"] for r in res] == ["first", "independent"]
    for r in res:
        assert 0 <= r["coverage90"] <= 1 and 0 <= r["ece_p_target"] <= 1 and r["pairs"] > 0
        assert r["value_oracle"] <= r["value_model"] + 1e-9 and r["value_oracle"] <= r["value_xgb"] + 1e-9


@pytest.mark.slow
def test_sampler_speed_benchmark_tiny():
    out = _run("sampler_speed.py", "--patients", "8", "--batch", "4", "--reps", "1")
    assert "sampler (sample_batch" in out and "draws equal to it: yes" in out and "candidates" in out
