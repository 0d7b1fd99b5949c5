"""Optional extras skip cleanly when absent: with every optional package made unimportable, the whole suite
still collects (tests that need an extra are skipped, never an error), and ``import planner`` needs none."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# the import names of the packages of every extra in pyproject.toml (and what the tests use besides)
OPTIONAL = [
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "httptools",
    "uvloop",
    "jwt",
    "cryptography",
    "dask",
    "distributed",
    "duckdb",
    "nbformat",
    "nbclient",
    "ipykernel",
    "websocket",
    "xgboost",
    "schemathesis",
    "causallib",
]

RUNNER = textwrap.dedent("""
    import sys
    for name in {optional!r}:
        sys.modules[name] = None  # import fails, importlib.util.find_spec returns None: as if not installed
    import pytest
    sys.exit(pytest.main(sys.argv[1:]))
""")


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    runner = tmp_path / "without_extras.py"
    runner.write_text(RUNNER.format(optional=OPTIONAL))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, str(runner), *args], capture_output=True, text=True, timeout=600, env=env, cwd=ROOT
    )


def test_the_suite_collects_without_any_extra(tmp_path):
    p = _run(tmp_path, "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "pytest_timeout", "tests")
    tail = (p.stdout + p.stderr)[-4000:]
    assert p.returncode == 0, tail
    assert "error" not in p.stdout.splitlines()[-1].lower(), tail


def test_planner_and_its_cli_import_without_any_extra(tmp_path):
    code = (
        "import planner, planner.api, planner.stages, planner.cli; from planner.cli import main; "
        "sys.exit(main(['--help']))"
    )
    runner = tmp_path / "imports.py"
    runner.write_text(
        RUNNER.format(optional=OPTIONAL).replace("import pytest\nsys.exit(pytest.main(sys.argv[1:]))", code)
    )
    p = subprocess.run(
        [sys.executable, str(runner)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "recommend" in p.stdout


def test_the_cohort_evaluation_says_how_to_get_xgboost(tmp_path):
    code = textwrap.dedent("""
        from planner.cohort.ope import _xgb_reg
        from planner.errors import ConfigError
        try:
            _xgb_reg(0)
        except ConfigError as exc:
            print(exc)
            sys.exit(0)
        sys.exit("no ConfigError")
    """)
    runner = tmp_path / "ope.py"
    runner.write_text(
        RUNNER.format(optional=OPTIONAL).replace("import pytest\nsys.exit(pytest.main(sys.argv[1:]))", code)
    )
    p = subprocess.run(
        [sys.executable, str(runner)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr[-3000:] + p.stdout[-1000:]
    assert "planner[xgboost]" in p.stdout


def test_the_learned_basis_says_how_to_get_xgboost(tmp_path):
    code = textwrap.dedent("""
        import numpy as np
        from planner.errors import ModelError
        from planner.model.basis import LearnedBasis
        rng = np.random.default_rng(0)
        try:
            LearnedBasis.fit(rng.normal(size=(400, 3)), ["none", "a"] * 200, rng.normal(size=400), seed=0)
        except ModelError as exc:
            print(exc)
            sys.exit(0)
        sys.exit("no ModelError")
    """)
    runner = tmp_path / "basis.py"
    runner.write_text(
        RUNNER.format(optional=OPTIONAL).replace("import pytest\nsys.exit(pytest.main(sys.argv[1:]))", code)
    )
    p = subprocess.run(
        [sys.executable, str(runner)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr[-3000:] + p.stdout[-1000:]
    assert "xgboost" in p.stdout and "planner[xgboost]" in p.stdout
