"""Every benchmark script runs end to end with tiny arguments (its figures come from full runs; see README).

``TINY`` names the arguments of each script under ``benchmarks/``; a new script fails
``test_every_benchmark_has_tiny_arguments`` until it is listed here (or in ``COVERED`` when its owner's tests
already run it with tiny arguments). Inputs are repository fixtures only, never ``/work/shared``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
SYNTHEA = sorted((ROOT / "fixtures" / "synthea").glob("*.json"))

# script -> (arguments, text its output must contain, slow?)
TINY: dict[str, tuple[list[str], str, bool]] = {
    "ingest.py": ([str(SYNTHEA[0]), "--repeat", "1", "--full-repeat", "1"], "planner vs json.loads", False),
    "screen.py": (["--regimens", "10", "--repeats", "2"], "naive baseline", False),
    "simulate.py": (["--n", "200", "--acceptance-n", "0", "--synthea", "{fixtures}"], "patients", True),
    "recommend.py": (["--repeat", "1", "--fixtures", "{fixtures}"], "cold CLI", True),
    "model_speed.py": (["--episodes", "1000", "--patients", "20"], "draws", True),
    "model_quality.py": (["--quick", "--areas", "t2d", "--episodes", "400", "--eval-rows", "50"], "regret", True),
}
# scripts whose owners' tests run them with tiny arguments (test file -> must name the script)
COVERED = {
    "model_acic.py": "tests/test_model_benchmarks.py",
    "service_load.py": "tests/test_service_cli.py",
}
NOT_SCRIPTS = {"acic_data.py"}  # helper modules the scripts import (no __main__)


def _scripts() -> list[str]:
    return sorted(p.name for p in BENCH.glob("*.py"))


def test_every_benchmark_has_tiny_arguments():
    missing = [s for s in _scripts() if s not in TINY and s not in COVERED and s not in NOT_SCRIPTS]
    assert not missing, f"add tiny arguments for {missing} to TINY in {Path(__file__).name}"
    for script in NOT_SCRIPTS:
        assert "__main__" not in (BENCH / script).read_text(encoding="utf-8"), f"{script} is a script: list it in TINY"
    for script, test in COVERED.items():
        assert script in (ROOT / test).read_text(encoding="utf-8"), f"{test} no longer runs {script}"


@pytest.mark.parametrize("script", [pytest.param(s, marks=[pytest.mark.slow] if TINY[s][2] else [])
                                    for s in sorted(TINY)])
def test_benchmark_runs_with_tiny_arguments(script, tmp_path):
    args, needle, _slow = TINY[script]
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()
    for src in SYNTHEA[:2]:
        (fixtures / src.name).write_bytes(src.read_bytes())
    argv = [a.replace("{fixtures}", str(fixtures)) for a in args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0"}
    env.pop("PLANNER_RULES_DIR", None)
    p = subprocess.run([sys.executable, str(BENCH / script), *argv], capture_output=True, text=True, timeout=600,
                       env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert needle in p.stdout, p.stdout[-2000:]
