"""The cohort benchmark scripts run end to end with tiny arguments (their figures come from full runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(script: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout


@pytest.mark.slow
def test_cohort_throughput_benchmark_tiny() -> None:
    out = _run("cohort.py", "--n", "6", "--batch", "3", "--skip-dask", "--warm", "3")
    for line in (
        "warm-up of every planner: 3 simulated t2d patients",
        "one-at-a-time recommend (baseline)",
        "recommend_many, 1 process",
        "cohort run, 2 local processes",
        "1 -> 2 local processes",
        "byte-identical to one-at-a-time recommend: 6 of 6",
    ):
        assert line in out
    assert "peak MiB" in out


@pytest.mark.slow
def test_cohort_ope_benchmark_tiny() -> None:
    out = _run("cohort_ope.py", "--n", "24", "--seeds", "0", "--workers", "1", "--bootstrap", "100")
    assert "DR interval holds the true value in" in out and "of 1 seeds" in out
