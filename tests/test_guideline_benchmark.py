"""benchmarks/guideline_ranking.py runs with tiny arguments and prints both rankings' true improvement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_guideline_benchmark_tiny(tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "guideline_ranking.py"),
            "--areas",
            "t2d",
            "--n",
            "12",
            "--train",
            "0",
            "--num-samples",
            "100",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "outcome-only" in proc.stdout and "guideline" in proc.stdout
    (r,) = json.loads(out.read_text())
    assert r["area"] == "t2d" and r["patients"] > 0
    for key in (
        "true_improvement_outcome",
        "true_improvement_guideline",
        "toward_target_guideline",
        "indications_met_guideline",
        "patients_with_indication",
    ):
        assert key in r


def test_guideline_tuning_tiny():
    """benchmarks/guideline_tuning.py re-ranks once-predicted patients under weight variants and explains losses."""
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "guideline_tuning.py"),
            "--areas",
            "t2d",
            "--seeds",
            "0",
            "--n",
            "8",
            "--train",
            "0",
            "--num-samples",
            "100",
            "--vary",
            "secondary.hypoglycaemia=0",
            "--explain",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("first")]
    assert [ln.split()[2] for ln in lines[:2]] == ["indications", "shipped"]
    assert any("secondary.hypoglycaemia=0" in ln for ln in lines) and all(" kept " in ln for ln in lines)
