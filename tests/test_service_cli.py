"""``planner serve`` as a real process, and benchmarks/service_load.py with tiny arguments (localhost only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")  # the service extra; skipped without it

import httpx
from service_helpers import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_serve_without_config_says_it_trusts_no_issuer(tmp_path):
    port = free_port()
    err = tmp_path / "stderr.txt"
    with open(err, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "planner.cli", "serve", "--port", str(port)],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=fh,
        )
    try:
        url = f"http://127.0.0.1:{port}/cds-services"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, err.read_text()
            try:
                r = httpx.get(url, timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert r.status_code == 200 and len(r.json()["services"]) == 3
        body = {"hook": "order-sign", "hookInstance": "x", "context": {"patientId": "p"}}
        hook = httpx.post(f"{url}/planner-order-sign", json=body, headers={"Authorization": "Bearer a.b.c"}, timeout=10)
        assert hook.status_code == 401 and hook.content == b""
        httpx.get(f"{url}/Secret-Name-42?name=Zyxwvut", timeout=10)
        httpx.post(f"{url}/planner-order-sign?name=Zyxwvut", content=b'{"family": "Zyxwvut"}', timeout=10)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    log = err.read_text()
    assert "trusts no" in log and "Traceback" not in log
    assert "Zyxwvut" not in log and "Secret-Name-42" not in log  # no paths, queries or bodies in the log
    assert "POST /cds-services/planner-order-sign 401" in log and "GET (other) 404" in log


def test_serve_refuses_a_bad_config_with_exit_2(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("service_url: not-a-url\n", encoding="utf-8")
    r = subprocess.run(
        [sys.executable, "-m", "planner.cli", "serve", "--config", str(cfg)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "service_url" in r.stderr and "Traceback" not in r.stderr


def test_load_benchmark_runs_with_tiny_arguments():
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "service_load.py"), "--requests", "4", "--levels", "1,2"]
        + ["--setups", "1x1", "--json"],  # one worker with one planner process (and the no-batching comparison)
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout)
    hooks = {x["hook"] for x in doc["results"]}
    assert {"order-select", "order-sign", "patient-view", "discovery (baseline)"} <= hooks
    assert all(x["errors"] == 0 and x["requests"] > 0 and x["p99_ms"] >= x["p50_ms"] for x in doc["results"])
    assert any("floor_met" in x for x in doc["results"])
    assert {x["setup"] for x in doc["results"]} == {"1x1"} and "patient-view (new, no batching)" in hooks
    new = [x for x in doc["results"] if x["hook"].startswith("patient-view (new")]
    assert new and all(x["server_cpu_ms"] > 0 and x["client_cpu_ms"] > 0 for x in new)  # planning takes CPU
