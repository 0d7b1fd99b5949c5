"""benchmarks/ingest.py runs with tiny arguments and prints its figures (the numbers themselves are in README)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ingest_benchmark_tiny() -> None:
    one = sorted((ROOT / "fixtures" / "synthea").glob("*.json"))[0]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "ingest.py"),
            str(one),
            "--repeat",
            "1",
            "--bulk",
            str(ROOT / "fixtures" / "realworld" / "bulk-smart10"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=True,
    ).stdout
    assert "planner vs json.loads:" in out and "planner vs full R4B validation:" in out
    assert "Bulk export bulk-smart10: 4 NDJSON files" in out and "3 patients" in out and "patients/s" in out
