"""Load on the CDS Hooks service: p50 / p99 latency and errors at 1, 5 and 20 concurrent clients per hook.

Starts ``planner serve`` as a separate process on 127.0.0.1 (a free port; nothing else is contacted), with a
throw-away trusted issuer whose RS384 key signs one fresh token per request (minted before timing). Each hook is
called with prefetch for a small pool of test patients (a CYP2C19 poor metabolizer ordering clopidogrel, a
patient on tamoxifen ordering paroxetine, a genotype-less patient, a type 2 diabetes patient with labs for
patient-view). Baseline, measured in the same run: ``GET /cds-services`` (discovery: the HTTP floor, no work).
patient-view results are cached per record content after the first call for that patient; uncached calls are
reported separately: ``patient-view (cold)`` at 1 client (the pool's first calls) and ``patient-view (new
patients)`` at each concurrency, every request for a patient never seen before (no patient twice in a run).

Each setup of ``--setups`` (default ``1x0,2x0,1x2``: ``planner serve --workers W --planners P``; W uvicorn worker
processes, P patient-view planner processes each) is a fresh service, measured in turn. The top-concurrency
new-patient level is run again on a service like the first setup with micro-batching off (``batch_window_ms:
0``), warmed the same way: the baseline of the batching (``--no-compare`` skips it).

Bounded: ``--requests`` per (hook, concurrency) and ``--max-seconds`` per level. Floor: p99 <= 200 ms at 20
clients with 0 errors. The clients are lean asyncio keep-alive connections in this process (requests and tokens
built before timing); they still share the CPU with the server (and, on a shared machine, with everything else),
so the latencies are upper bounds of the service's own; ``cpu ms/req`` (the CPU time per request of the server's
processes, parent, workers and planners, from /proc) is the figure least moved by other load, and ``client cpu`` is this
load generator's own CPU per request (what it takes from the service's cores). The load average is printed.

Usage: ``python benchmarks/service_load.py [--requests 200] [--levels 1,5,20] [--setups 1x0,2x0,1x2] [--max-seconds 30]
[--json]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import jwt  # noqa: E402
import orjson  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from jwt.algorithms import RSAAlgorithm  # noqa: E402

from planner.testing import BundleBuilder  # noqa: E402

ISSUER = "https://load-test.invalid"
FLOOR_MS = 200.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prefetch(bundle: dict[str, Any]) -> dict[str, Any]:
    by: dict[str, list[dict[str, Any]]] = {}
    patient = None
    for e in bundle["entry"]:
        r = e["resource"]
        if r["resourceType"] == "Patient":
            patient = r
        else:
            by.setdefault(r["resourceType"], []).append({"resource": r})
    keys = {
        "conditions": "Condition",
        "medicationRequests": "MedicationRequest",
        "medicationStatements": "MedicationStatement",
        "observations": "Observation",
        "allergies": "AllergyIntolerance",
    }
    out: dict[str, Any] = {"patient": patient}
    for k, t in keys.items():
        out[k] = {"resourceType": "Bundle", "type": "searchset", "entry": by.get(t, [])}
    return out


def _draft(drug: str, dose: float, pid: str) -> dict[str, Any]:
    b = BundleBuilder(patient_id=pid)
    b.medication(drug, dose, start=None)
    return {**b.build()["entry"][-1]["resource"], "id": f"draft-{drug}", "status": "draft"}


def patients() -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """(patient id, bundle, draft orders): the pool every hook cycles through."""
    out = []
    for i in range(4):
        b = BundleBuilder(patient_id=f"pm-{i}", birth_date=f"19{50 + i}-03-01")
        b.genotype("CYP2C19", "*2/*2")
        b.condition("44054006", display="Diabetes mellitus type 2", onset="2019-01-01")
        b.medication("metformin", 1000, start="2022-01-01")
        b.observation("hba1c", 8.1 + 0.2 * i, date="2024-05-01")
        b.observation("egfr", 75, date="2024-05-01")
        out.append((f"pm-{i}", b.build(), [_draft("clopidogrel", 75, f"pm-{i}")]))
        t = BundleBuilder(patient_id=f"tam-{i}", birth_date=f"19{60 + i}-07-01")
        t.medication("tamoxifen", 20, start="2023-01-01")
        t.condition("44054006", display="Diabetes mellitus type 2", onset="2020-01-01")
        t.observation("hba1c", 7.6 + 0.3 * i, date="2024-05-01")
        out.append((f"tam-{i}", t.build(), [_draft("paroxetine", 20, f"tam-{i}")]))
    return out


def new_patients(n: int, start: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """n distinct type 2 diabetes patients, numbered from ``start`` (no two records alike, so none is served from
    the cache)."""
    out = []
    for i in range(start, start + n):
        b = BundleBuilder(patient_id=f"new-{i}", birth_date=f"19{40 + i % 40}-0{1 + i % 9}-01")
        b.condition("44054006", display="Diabetes mellitus type 2", onset="2019-01-01")
        b.medication("metformin", 1000, start="2022-01-01")
        b.observation("hba1c", round(7.2 + 0.01 * (i % 300), 2), date="2024-05-01")
        out.append((f"new-{i}", b.build()))
    return out


class Service:
    """``planner serve`` in a subprocess with a temporary key, JWKS and configuration."""

    def __init__(self, workdir: Path, extra_config: str = "", workers: int = 1, planners: int = 0) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workers = workers
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = orjson.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        (workdir / "jwks.json").write_bytes(orjson.dumps({"keys": [{**jwk, "kid": "load", "alg": "RS384"}]}))
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}/cds-services"
        (workdir / "service.yaml").write_text(
            f"service_url: {self.base}\ntrusted_issuers:\n  - issuer: {ISSUER}\n    jwks_file: jwks.json\n{extra_config}",
            encoding="utf-8",
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.log = workdir / "serve.log"
        with open(self.log, "wb") as err:  # the service's log (no patient data): workers' startup lines
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "planner.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
                + ["--workers", str(workers), "--planners", str(planners), "--config", str(workdir / "service.yaml")],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    def wait(self, timeout: float = 180.0) -> None:
        """Until every worker has started (its startup line is in the log) and discovery answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"planner serve exited with {self.proc.returncode}")
            started = self.log.read_text(errors="replace").count("Application startup complete")
            if started >= self.workers:
                try:
                    if httpx.get(self.base, timeout=2).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        raise RuntimeError("planner serve did not answer in time")

    def token(self, sid: str) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": "load",
            "aud": f"{self.base}/{sid}",
            "iat": now,
            "exp": now + 280,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.key, algorithm="RS384", headers={"kid": "load"})

    def cpu_s(self) -> float:
        """CPU time so far (user + system) of the server process and its live descendants (the workers), from
        /proc; NaN where unavailable."""
        try:
            stats: dict[int, list[str]] = {}
            for d in Path("/proc").iterdir():
                if d.name.isdigit():
                    try:
                        stats[int(d.name)] = (d / "stat").read_text().rsplit(")", 1)[1].split()
                    except OSError:
                        continue  # gone meanwhile
            mine, grew = {self.proc.pid}, True
            while grew:
                more = {pid for pid, f in stats.items() if int(f[1]) in mine} - mine
                grew, mine = bool(more), mine | more
            ticks = sum(int(stats[p][11]) + int(stats[p][12]) for p in mine if p in stats)
            return ticks / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _body(hook: str, pid: str, bundle: dict[str, Any], drafts: list[dict[str, Any]]) -> bytes:
    ctx: dict[str, Any] = {"userId": "Practitioner/load", "patientId": pid}
    if hook != "patient-view":
        ctx["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": d} for d in drafts],
        }
    if hook == "order-select":
        ctx["selections"] = [f"MedicationRequest/{d['id']}" for d in drafts]
    return orjson.dumps(
        {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": ctx, "prefetch": _prefetch(bundle)}
    )


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """Send one HTTP/1.1 request on a keep-alive connection and read the whole response; its status code."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


def _request(svc: Service, sid: str | None, body: bytes, token: str) -> bytes:
    host = f"127.0.0.1:{svc.port}"
    if sid is None:
        return f"GET /cds-services HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    return (
        f"POST /cds-services/{sid} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def run_level(
    svc: Service, sid: str | None, bodies: list[bytes], n: int, clients: int, max_seconds: float
) -> dict[str, Any]:
    """n requests by ``clients`` concurrent keep-alive connections (asyncio, requests built before timing, so
    the client's own CPU use stays small); latencies in ms, errors, and the server's CPU per request."""
    requests = [
        _request(svc, sid, bodies[i % len(bodies)] if bodies else b"", svc.token(sid) if sid else "") for i in range(n)
    ]
    lat: list[float] = []
    errors = [0]
    next_i = [0]

    async def worker(stop_at: float) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
        try:
            while time.monotonic() < stop_at and next_i[0] < n:
                i = next_i[0]
                next_i[0] += 1
                t0 = time.perf_counter()
                try:
                    ok = await asyncio.wait_for(_exchange(reader, writer, requests[i]), 30) == 200
                except (
                    OSError,
                    asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError,
                    asyncio.TimeoutError,
                    ValueError,
                ):
                    ok = False
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", svc.port)
                lat.append(1000 * (time.perf_counter() - t0))
                errors[0] += 0 if ok else 1
        finally:
            writer.close()

    async def level() -> None:
        stop_at = time.monotonic() + max_seconds
        await asyncio.gather(*(worker(stop_at) for _ in range(clients)))

    cpu0, mine0 = svc.cpu_s(), time.process_time()
    asyncio.run(level())
    cpu_ms = 1000 * (svc.cpu_s() - cpu0) / max(1, len(lat))
    client_ms = 1000 * (time.process_time() - mine0) / max(1, len(lat))
    lat.sort()

    def q(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")

    return {
        "clients": clients,
        "requests": len(lat),
        "p50_ms": round(q(0.5), 1),
        "p99_ms": round(q(0.99), 1),
        "errors": errors[0],
        "server_cpu_ms": round(cpu_ms, 2),
        "client_cpu_ms": round(client_ms, 2),
    }


HOOKS = {
    "order-select": "planner-order-select",
    "order-sign": "planner-order-sign",
    "patient-view": "planner-patient-view",
}


def measure(
    workdir: Path, workers: int, planners: int, levels: list[int], args: argparse.Namespace, *, compare: bool
) -> list[dict[str, Any]]:
    """Every row for one ``planner serve --workers W --planners P``: cold, discovery, each hook, new patients per
    level (``compare``: also the top level on a service without micro-batching)."""
    pool = patients()
    rows: list[dict[str, Any]] = []
    svc = Service(workdir, workers=workers, planners=planners)
    try:
        svc.wait()
        view = [_body("patient-view", pid, b, d) for pid, b, d in pool]
        rows.append({"hook": "patient-view (cold)", **run_level(svc, HOOKS["patient-view"], view, len(view), 1, 30)})
        for _ in range(3):  # every worker has planned the pool (and loaded what a first request loads)
            run_level(svc, HOOKS["patient-view"], view, len(view), min(4, len(view)), 30)
        for c in levels:
            rows.append(
                {"hook": "discovery (baseline)", **run_level(svc, None, [], args.requests, c, args.max_seconds)}
            )
        for hook, sid in HOOKS.items():
            bodies = [_body(hook, pid, b, d) for pid, b, d in pool]
            for c in levels:
                rows.append({"hook": hook, **run_level(svc, sid, bodies, args.requests, c, args.max_seconds)})
        for k, c in enumerate(levels):
            fresh = [_body("patient-view", pid, b, []) for pid, b in new_patients(args.requests, k * args.requests)]
            row = run_level(svc, HOOKS["patient-view"], fresh, len(fresh), c, args.max_seconds)
            rows.append({"hook": "patient-view (new patients)", **row})
    finally:
        svc.stop()
    if compare:  # the same, planning each request alone
        alone = Service(workdir / "alone", "batch_window_ms: 0\n", workers=workers)
        try:
            alone.wait()
            for _ in range(3):
                run_level(alone, HOOKS["patient-view"], view, len(view), min(4, len(view)), 30)
            fresh = [_body("patient-view", pid, b, []) for pid, b in new_patients(args.requests)]
            row = run_level(alone, HOOKS["patient-view"], fresh, len(fresh), max(levels), args.max_seconds)
            rows.append({"hook": "patient-view (new, no batching)", **row})
        finally:
            alone.stop()
    base = {r["clients"]: r for r in rows if r["hook"].startswith("discovery")}
    cores = os.cpu_count() or 1
    for r in rows:
        r["setup"] = f"{workers}x{planners}"
        # the least mean latency this CPU cost allows with every core the service's alone (closed loop)
        r["cpu_bound_ms"] = round(max(r["server_cpu_ms"], r["clients"] * r["server_cpu_ms"] / cores), 1)
        b = base.get(r["clients"])
        r["p99_vs_discovery"] = round(r["p99_ms"] / b["p99_ms"], 1) if b and b["p99_ms"] > 0 else None
        if r["clients"] == max(levels) and (r["hook"] in HOOKS or r["hook"] == "patient-view (new patients)"):
            r["floor_met"] = r["p99_ms"] <= FLOOR_MS and r["errors"] == 0
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200, help="requests per hook and concurrency level")
    ap.add_argument("--levels", default="1,5,20", help="concurrent clients, comma-separated")
    ap.add_argument(
        "--setups",
        default="1x0,2x0,1x2",
        help="service setups WxP, comma-separated: W worker processes (--workers), P planner processes each"
        " (--planners; 0: planned in the worker's threads)",
    )
    ap.add_argument("--max-seconds", type=float, default=30.0, help="time cap per level")
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    ap.add_argument(
        "--no-compare", action="store_true", help="skip the new-patient level on a service without micro-batching"
    )
    args = ap.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    if args.requests < 1 or not levels or min(levels) < 1 or max(levels) > 64:
        ap.error("--requests >= 1 and levels between 1 and 64")
    try:
        setups = [tuple(int(v) for v in x.split("x")) for x in args.setups.split(",") if x.strip()]
    except ValueError:
        ap.error("--setups: WxP pairs such as 1x0,2x0,1x2")
    if not setups or not all(len(t) == 2 and 1 <= t[0] <= 16 and 0 <= t[1] <= 16 for t in setups):
        ap.error("--setups: WxP pairs with 1 <= W <= 16 and 0 <= P <= 16")
    load0 = os.getloadavg()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (w, p) in enumerate(setups):
            results += measure(Path(tmp) / f"s{k}", w, p, levels, args, compare=k == 0 and not args.no_compare)
    load = {"before": [round(x, 2) for x in load0], "after": [round(x, 2) for x in os.getloadavg()]}
    top = max(levels)
    if args.json:
        print(orjson.dumps({"results": results, "floor_ms": FLOOR_MS, "pool": len(patients()), "load": load}).decode())
    else:
        print(
            f"{'hook':31} {'setup':>5} {'clients':>7} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} "
            f"{'p99/disc':>8} {'cpu ms/req':>10} {'client cpu':>10} {'cpu-bound':>9}  floor (p99<={FLOOR_MS:g} ms @ {top}, 0 errors)"
        )
        for r in results:
            floor = "" if "floor_met" not in r else ("met" if r["floor_met"] else "NOT met")
            print(
                f"{r['hook']:31} {r['setup']:>5} {r['clients']:>7} {r['requests']:>8} {r['p50_ms']:>8} "
                f"{r['p99_ms']:>8} {r['errors']:>6} {str(r['p99_vs_discovery']):>8} {r['server_cpu_ms']:>10} "
                f"{r['client_cpu_ms']:>10} {r['cpu_bound_ms']:>9}  {floor}"
            )
        print(
            f"pool: {len(patients())} patients; load average before {load['before']}, after {load['after']}; "
            f"{os.cpu_count()} CPUs shared by the server, these clients and anything else running (numbers are "
            "noisy); cpu ms/req: CPU time per request of the server's processes; client cpu: this load generator's; "
            "cpu-bound: the least mean latency that CPU cost allows (clients x cpu ms/req / CPUs) with the CPUs the "
            "service's alone."
        )
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
