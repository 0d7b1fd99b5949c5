"""``planner cohort evaluate`` and ``report`` on a small simulated cohort; the report opened in headless Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow  # a cohort run, two evaluations (subprocesses) and a browser: about 30 s

CHECK_JS = r"""
(() => ({
  title: document.title, text: document.body.innerText, scripts: document.scripts.length,
  headings: document.querySelectorAll('h1, h2').length,
  tablesWithoutHeader: [...document.querySelectorAll('table')].filter(t => !t.querySelector('thead th')).length,
  images: [...document.images].map(i => ({ok: i.complete && i.naturalWidth > 0, alt: i.alt,
                                          scheme: i.src.slice(0, 5)})),
}))()
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from planner.areas import load_area
    from planner.cohort import run_cohort
    from planner.simulate import simulate_cohort

    tmp = tmp_path_factory.mktemp("cohort")
    simulate_cohort(load_area("t2d"), 16, seed=2).write_fhir(str(tmp / "sim"))
    run_cohort(tmp / "sim" / "fhir", area="t2d", out=tmp / "run", at="all")
    return tmp / "run"


@pytest.fixture(scope="module")
def evaluation(run_dir: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = run_dir.parent / "eval.json"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "planner.cli",
            "cohort",
            "evaluate",
            str(run_dir),
            "--format",
            "json",
            "--bootstrap",
            "200",
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == json.loads(out.read_text())
    return json.loads(p.stdout)


def test_evaluation_has_every_part(evaluation: dict) -> None:
    ev = evaluation
    assert ev["outcome"]["unit"] == "%" and ev["outcome"]["unit_display"] == "%"  # UCUM for machines, and as read
    assert ev["truth"] and ev["counts"]["decision_points_with_follow_up"] > 20
    pol = ev["policy"]
    for name in ("ipw", "snipw", "dr", "dm"):
        est = pol["recommended"][name]
        if est["value"] is None:  # self-normalised IPW is undefined when no decision matches the policy
            assert name == "snipw" and pol["match"]["matched"] == 0
            continue
        assert est["lower"] <= est["upper"]
        assert isinstance(est["covers_truth"], bool)
    dr = pol["recommended"]["dr"]  # the outcome model's posterior error is in the DR interval, and reported
    assert pol["interval"]["model_error"] and pol["interval"]["model_draws"] == 64 and dr["model_sd"] > 0
    assert len(dr["sampling_interval"]) == 2 and pol["recommended"]["ipw"]["model_sd"] is None
    ov = pol["overlap"]
    assert ov["verdict"] in ("good", "limited", "poor") and ov["effective_sample_size"] >= 0 and ov["message"]
    t = pol["truth"]
    assert t["regret_recommended"] >= 0 and t["regret_observed"] >= 0
    cal = ev["calibration"]
    covs = [cal["coverage"][k] for k in ("50", "80", "90", "95")]
    assert covs == sorted(covs) and 0 < covs[0] and covs[-1] <= 1  # nested intervals cover more
    assert sum(cal["pit"]["histogram"]) == cal["n"] and cal["crps"] > 0 and 0 <= cal["p_target"]["ece"] <= 1
    assert set(ev["subgroups"]) >= {"sex", "age band", "eGFR band"}
    assert sum(r["patients"] for r in ev["subgroups"]["sex"]) == ev["counts"]["patients"]
    assert ev["safety"]["patients"] == ev["counts"]["patients"]


def test_evaluate_table_output(run_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), "COLUMNS": "160"}
    p = subprocess.run(
        [sys.executable, "-m", "planner.cli", "cohort", "evaluate", str(run_dir), "--bootstrap", "100"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    for word in (
        "Policy value",
        "snipw",
        "Calibration",
        "By sex",
        "true regret",
        "overlap: ",
        "model sd",
        "intervals: ",
    ):
        assert word in p.stdout


def test_report_renders_in_headless_chromium(run_dir: Path, evaluation: dict, tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from chromium import Chromium, find_chromium

    from planner.cohort.report import write_report

    exe = find_chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run must install the Debian package `chromium`")
        pytest.skip("chromium not installed (apt-get install chromium; .ci/run does it)")
    page = write_report(run_dir, tmp_path / "report.html", evaluation=evaluation)
    text = page.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text and "<script" not in text
    with Chromium(exe) as browser:
        rep = browser.open(page.as_uri(), CHECK_JS)
    assert rep.console_errors == [] and rep.exceptions == [] and rep.failed_loads == []
    assert rep.network_requests == []
    check = rep.check
    assert check["scripts"] == 0 and check["tablesWithoutHeader"] == 0 and check["headings"] >= 5
    assert len(check["images"]) == 3  # policy values, calibration curve, PIT histogram
    for img in check["images"]:
        assert img["ok"] and img["scheme"] == "data:" and len(img["alt"]) > 30, img
    for word in ("Policy value", "Calibration", "PIT", "By sex", "By age band", "Safety", "Overlap: ", "sampling only"):
        assert word in check["text"]
    (tmp_path / "shot.png").write_bytes(rep.screenshot)
