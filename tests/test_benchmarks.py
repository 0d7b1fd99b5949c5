"""Every benchmark script runs end to end with tiny arguments (its figures come from full runs; see README).

``TINY`` names the arguments of the scripts under ``benchmarks/`` that no other test runs; a script that another
test file runs (naming it as ``"script.py"``, as the owners' benchmark tests do) counts as covered there. A new
script that neither lists nor names fails ``test_every_benchmark_has_tiny_arguments``. Inputs are repository
fixtures only, never ``/work/shared``.
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
    "simulate.py": (["--n", "200", "--acceptance-n", "0", "--synthea", "{fixtures}"], "patients", True),
    "recommend.py": (["--repeat", "1", "--fixtures", "{fixtures}"], "cold CLI", True),
    "model_speed.py": (["--episodes", "1000", "--patients", "20"], "draws", True),
    "model_quality.py": (["--quick", "--areas", "t2d", "--episodes", "400", "--eval-rows", "50"], "regret", True),
}
NOT_SCRIPTS = {"acic_data.py"}  # helper modules the scripts import (no __main__)


def _scripts() -> list[str]:
    return sorted(p.name for p in BENCH.glob("*.py"))


def _covered_elsewhere() -> dict[str, str]:
    """script -> the other test file that runs it (names it as a quoted file name)."""
    out = {}
    for test in sorted((ROOT / "tests").glob("test_*.py")):
        if test.name == Path(__file__).name:
            continue
        text = test.read_text(encoding="utf-8")
        for script in _scripts():
            if f'"{script}"' in text and "subprocess" in text:
                out.setdefault(script, test.name)
    return out


def test_every_benchmark_has_tiny_arguments():
    covered = _covered_elsewhere()
    missing = [s for s in _scripts() if s not in TINY and s not in covered and s not in NOT_SCRIPTS]
    assert not missing, f"add tiny arguments for {missing} to TINY in {Path(__file__).name} (or run them in a test)"
    for script in NOT_SCRIPTS:
        assert "__main__" not in (BENCH / script).read_text(encoding="utf-8"), f"{script} is a script: list it in TINY"
    assert not set(TINY) & set(covered), f"run twice: drop from TINY {sorted(set(TINY) & set(covered))}"


@pytest.mark.parametrize(
    "script", [pytest.param(s, marks=[pytest.mark.slow] if TINY[s][2] else []) for s in sorted(TINY)]
)
def test_benchmark_runs_with_tiny_arguments(script, tmp_path):
    args, needle, _slow = TINY[script]
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()
    for src in SYNTHEA[:2]:
        (fixtures / src.name).write_bytes(src.read_bytes())
    argv = [a.replace("{fixtures}", str(fixtures)) for a in args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0"}
    env.pop("PLANNER_RULES_DIR", None)
    p = subprocess.run(
        [sys.executable, str(BENCH / script), *argv], capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert needle in p.stdout, p.stdout[-2000:]
