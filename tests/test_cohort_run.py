"""``planner cohort run``: bundle folders with broken files, a Bulk export, kill and resume, DuckDB."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from planner.cohort import read_results, run_cohort
from planner.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
BULK = ROOT / "fixtures" / "bulk" / "smart10-medref"


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from planner.areas import load_area
    from planner.simulate import simulate_cohort

    out = tmp_path_factory.mktemp("sim")
    simulate_cohort(load_area("t2d"), 10, seed=3).write_fhir(str(out))
    return out


def _broken_copy(sim_dir: Path, dest: Path) -> tuple[Path, list[str]]:
    """The simulated bundles plus three broken files: not JSON, a Bundle with no entries, a truncated bundle."""
    shutil.copytree(sim_dir / "fhir", dest)
    good = sorted(p.name for p in dest.glob("*.json"))
    (dest / "zz-not-json.json").write_text("this is not { json", encoding="utf-8")
    (dest / "zz-empty.json").write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": []}))
    data = (dest / good[0]).read_bytes()
    (dest / "zz-truncated.json").write_bytes(data[: len(data) // 2])
    return dest, good


def _key(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["unit", "patient_id", "point"]).reset_index(drop=True)


def test_broken_bundles_keep_every_good_patient(sim_dir: Path, tmp_path: Path) -> None:
    src, good = _broken_copy(sim_dir, tmp_path / "in")
    s = run_cohort(src, area="t2d", out=tmp_path / "out", at="all", batch_size=4)
    df = read_results(tmp_path / "out")
    assert s.units == len(good) + 3
    errors = df[df.status == "error"]
    assert sorted(errors.unit) == ["file:zz-empty.json", "file:zz-not-json.json", "file:zz-truncated.json"]
    assert errors.error_class.isin(["InputError", "FhirError"]).all()
    assert errors.error_message.str.len().gt(0).all()
    ok = df[df.status != "error"]
    assert sorted(set(ok.unit)) == sorted(f"file:{g}" for g in good)  # every good patient has rows
    truth = pd.read_parquet(sim_dir / "truth.parquet")
    episodes = truth[truth.episode]
    ep_rows = ok[ok.kind == "episode"]
    # one row per episode the simulator says the episode rules keep, at its t0, with its observed regimen
    assert len(ep_rows) == len(episodes)
    merged = ep_rows.assign(t0=pd.to_datetime(ep_rows.as_of)).merge(
        episodes, on=["patient_id", "t0"], how="inner", suffixes=("", "_truth")
    )
    assert len(merged) == len(episodes)
    assert (merged.observed_regimen == merged.regimen_key).all()
    assert (merged.current_regimen == merged.regimen_before_key).all()  # the decision is made before the change
    assert (merged.followup == merged.followup_truth).all()
    assert merged.obs_pit.between(0, 1).all() and merged.obs_crps.gt(0).all()
    assert (ok[ok.kind == "current"].groupby("patient_id").size() == 1).all()
    # DuckDB holds the same rows
    import duckdb

    con = duckdb.connect(str(tmp_path / "out" / "results.duckdb"), read_only=True)
    n, errs = con.execute("SELECT COUNT(*), SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) FROM results").fetchone()
    con.close()
    assert (n, errs) == (len(df), 3)


def test_bulk_export_runs_end_to_end(tmp_path: Path) -> None:
    s = run_cohort(BULK, area="hypertension", out=tmp_path / "out")
    df = read_results(tmp_path / "out")
    patients = sum(1 for line in (BULK / "Patient.000.ndjson").read_text().splitlines() if line.strip())
    assert s.units == patients == len(set(df.patient_id))
    assert json.loads((tmp_path / "out" / "run.json").read_text())["input_kind"] == "bulk-export"
    assert df.unit.str.startswith("patient:").all()
    in_area = df[df.kind != "not-in-area"]
    assert len(in_area) >= 1 and in_area.status.isin(["ok", "no-plan"]).all()
    # medications arrive through medicationReference to Medication.000.ndjson: the current regimen is known
    assert in_area.current_regimen.str.contains("lisinopril").any()
    assert df.race.notna().all() and df.ethnicity.notna().all()  # US Core extensions read from Patient


def test_resume_with_other_options_is_refused(sim_dir: Path, tmp_path: Path) -> None:
    run_cohort(sim_dir / "fhir", area="t2d", out=tmp_path / "out", at="current", max_units=2)
    with pytest.raises(ConfigError, match="other options"):
        run_cohort(sim_dir / "fhir", area="t2d", out=tmp_path / "out", at="all")


@pytest.mark.slow
def test_killed_run_resumes_without_loss_or_duplicates(sim_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [
        sys.executable,
        "-m",
        "planner.cli",
        "cohort",
        "run",
        str(sim_dir / "fhir"),
        "--area",
        "t2d",
        "--out",
        str(out),
        "--at",
        "all",
        "--batch-size",
        "1",
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "parts").glob("*.parquet"))) < 3:
        time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "results.parquet").exists()  # really killed midway
    done = len(list((out / "parts").glob("*.parquet")))
    assert 3 <= done < 10
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"({done} done before" in again.stdout
    resumed = _key(read_results(out))
    ref = run_cohort(sim_dir / "fhir", area="t2d", out=tmp_path / "ref", at="all")
    assert ref.units == 10
    fresh = _key(read_results(tmp_path / "ref"))
    assert not resumed.duplicated(["unit", "patient_id", "point"]).any()
    pd.testing.assert_frame_equal(resumed, fresh)
