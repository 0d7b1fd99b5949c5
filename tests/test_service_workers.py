"""``planner serve --workers 2`` as a real process over real HTTP: a token accepted by one worker process is refused
as a replay by the other, also when both receive it at the same moment; both write to one audit store; the
startup message is logged once."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest

pytest.importorskip("fastapi")  # the service extra; skipped without it

from service_helpers import ISSUER, Keys, draft_order, free_port, hook_body, prefetch_of

from planner.testing import BundleBuilder

ROOT = Path(__file__).resolve().parent.parent
SIGN = "planner-order-sign"
pytestmark = pytest.mark.slow

_LINE = re.compile(r"\[(\d+)\] planner\.service[\w.]*: (.*)")


class _Served:
    def __init__(self, tmp: Path) -> None:
        self.keys = Keys()
        (tmp / "ehr.jwks.json").write_bytes(orjson.dumps(self.keys.jwks()))
        self.port = free_port()
        self.aud = f"http://127.0.0.1:{self.port}/cds-services/{SIGN}"
        (tmp / "service.yaml").write_text(
            f"service_url: http://127.0.0.1:{self.port}/cds-services\n"
            f"trusted_issuers:\n  - issuer: {ISSUER}\n    jwks_file: ehr.jwks.json\n"
            "audit: audit.sqlite\nworkers: 1\n",  # the command line's --workers wins
            encoding="utf-8",
        )
        self.audit = tmp / "audit.sqlite"
        self.err = tmp / "stderr.txt"
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        with open(self.err, "wb") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "planner.cli", "serve", "--port", str(self.port), "--workers", "2"]
                + ["--config", str(tmp / "service.yaml")],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=fh,
            )
        deadline = time.monotonic() + 240
        while self.log().count("Application startup complete") < 2:
            assert self.proc.poll() is None, self.log()[-3000:]
            assert time.monotonic() < deadline, "the two workers did not start"
            time.sleep(0.3)
        b = BundleBuilder(patient_id="pm-1", birth_date="1960-01-01")
        b.genotype("CYP2C19", "*2/*2")
        b.condition("44054006", display="Diabetes mellitus type 2", onset="2019-01-01")
        b.medication("metformin", 1000, start="2022-01-01")
        drafts = [draft_order("clopidogrel", 75, "pm-1", "d-clop")]
        self.body = orjson.dumps(
            hook_body("order-sign", "pm-1", drafts=drafts, prefetch=prefetch_of(b.build(), "pm-1"))
        )

    def log(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")

    def lines(self) -> list[tuple[int, str]]:
        return [(int(m.group(1)), m.group(2)) for m in _LINE.finditer(self.log())]

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def logged(self, n_before: int, pattern: str) -> int:
        """The pid of the first log line after the first ``n_before`` lines that contains ``pattern``."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for pid, msg in self.lines()[n_before:]:
                if pattern in msg:
                    return pid
            time.sleep(0.05)
        raise AssertionError(f"no log line with {pattern!r}")

    def post(self, con: http.client.HTTPConnection, token: str) -> tuple[int, int]:
        """(status, pid of the worker that answered, from its log line)."""
        n = len(self.lines())
        con.request(
            "POST",
            f"/cds-services/{SIGN}",
            body=self.body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        r = con.getresponse()
        r.read()
        return r.status, self.logged(n, f"POST /cds-services/{SIGN} {r.status}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    s = _Served(tmp_path_factory.mktemp("workers"))
    yield s
    s.stop()


def test_two_workers_start_with_one_startup_message(served):
    log = served.log()
    assert log.count("trusting 1 issuer(s)") == 1 and log.count("2 worker processes") == 1
    pids = {pid for pid, msg in served.lines()}
    assert len(pids) >= 1 and "Traceback" not in log


def test_a_token_accepted_by_one_worker_is_a_replay_for_the_other(served):
    crossed = 0
    for _ in range(40):
        token = served.keys.token(served.aud)
        a, b = served.connect(), served.connect()  # two keep-alive connections, each accepted by some worker
        try:
            first, pid_a = served.post(a, token)
            n = len(served.lines())
            again, pid_b = served.post(b, token)
            assert served.logged(n, ": replayed") == pid_b  # refused as a replay, by the worker that answered
        finally:
            a.close()
            b.close()
        assert first == 200 and again == 401
        if pid_a != pid_b:
            crossed += 1
            if crossed == 3:
                break
    assert crossed == 3, "no two requests reached different workers"


def _send(served: _Served, c: http.client.HTTPConnection, token: str, go: threading.Barrier, out: list[int]) -> None:
    go.wait()
    c.request(
        "POST",
        f"/cds-services/{SIGN}",
        body=served.body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    r = c.getresponse()
    r.read()
    out.append(r.status)


def test_a_token_sent_to_both_workers_at_once_is_accepted_once(served):
    for _ in range(8):
        token = served.keys.token(served.aud)
        cons = [served.connect() for _ in range(4)]
        for c in cons:
            c.connect()
        statuses: list[int] = []
        go = threading.Barrier(len(cons))
        threads = [threading.Thread(target=_send, args=(served, c, token, go, statuses)) for c in cons]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for c in cons:
            c.close()
        assert sorted(statuses) == [200, 401, 401, 401]


def test_both_workers_write_one_audit_store(served):
    import sqlite3

    n_ok = sum(1 for _, msg in served.lines() if msg.startswith(f"POST /cds-services/{SIGN} 200"))
    workers = {pid for pid, msg in served.lines() if msg.startswith(f"POST /cds-services/{SIGN} 200")}
    with sqlite3.connect(served.audit) as con:
        (cards,) = con.execute("SELECT COUNT(*) FROM card_audit").fetchone()
    assert len(workers) == 2
    assert cards >= n_ok > 0  # every accepted call's cards (one or more each), from both processes
