"""A small driver for headless Chromium over the DevTools protocol (used by tests/test_report_browser.py).

Starts the Debian ``chromium`` binary with a fresh profile and ``--remote-debugging-port=0``, reads the port from
the profile's ``DevToolsActivePort`` file and speaks CDP over one websocket (``websocket-client``), with one
flattened session per page. For each page it records console errors, uncaught exceptions, failed loads and every
request that is not a ``file:`` or ``data:`` URL (the report must need no network), evaluates a check script
and takes a full-page screenshot.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Self

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-allow-origins=*",
)


def find_chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@dataclasses.dataclass
class PageReport:
    url: str
    console_errors: list[str]
    exceptions: list[str]
    failed_loads: list[str]
    network_requests: list[str]
    check: dict[str, Any]
    screenshot: bytes
    pdf: bytes = b""


class Chromium:
    """``with Chromium() as browser: report = browser.open(url, check_js)``."""

    def __init__(self, executable: str | None = None, *, timeout: float = 60.0) -> None:
        exe = executable or find_chromium()
        if exe is None:
            raise FileNotFoundError("chromium not found (Debian package `chromium`; .ci/run installs it)")
        self.executable = exe
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> Self:
        import websocket  # websocket-client

        self._profile = tempfile.mkdtemp(prefix="planner-chromium-")
        self._proc = subprocess.Popen(
            [self.executable, *FLAGS, f"--user-data-dir={self._profile}", "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace")[-2000:] if self._proc.stderr else ""
                raise RuntimeError(f"chromium exited with {self._proc.returncode}: {err}")
            if time.monotonic() > deadline:
                self._stop()
                raise TimeoutError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self._ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}{path}", timeout=self.timeout, suppress_origin=True, enable_multithread=False
        )
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._ws.close()
        finally:
            self._stop()

    def _stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        if self._proc.stderr:
            self._proc.stderr.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    # ---- protocol --------------------------------------------------------------------------------------
    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        msg_id = next(self._ids)
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._ws.send(json.dumps(msg))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            reply = json.loads(self._ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)
        raise TimeoutError(method)

    def wait_for(self, method: str, session: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        seen = 0
        while time.monotonic() < deadline:
            for ev in self._events[seen:]:
                if ev.get("method") == method and ev.get("sessionId") == session:
                    return ev
            seen = len(self._events)
            self._events.append(json.loads(self._ws.recv()))
        raise TimeoutError(method)

    # ---- pages -----------------------------------------------------------------------------------------
    def open(
        self,
        url: str,
        check_js: str,
        *,
        width: int = 1280,
        height: int = 900,
        max_height: int = 20000,
        media: str = "screen",
        pdf: bool = False,
    ) -> PageReport:
        """Open ``url`` at ``width`` CSS px (``media``: "screen" or "print"), run ``check_js``, screenshot it and,
        with ``pdf``, print it (paper size and margins from the page's print stylesheet)."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.send(f"{domain}.enable", {}, session)
            self.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                session,
            )
            self.send("Emulation.setEmulatedMedia", {"media": media}, session)
            start = len(self._events)
            self.send("Page.navigate", {"url": url}, session)
            self.wait_for("Page.loadEventFired", session)
            check = self.send(
                "Runtime.evaluate", {"expression": check_js, "returnByValue": True, "awaitPromise": True}, session
            )
            if "exceptionDetails" in check:
                raise RuntimeError(f"check script failed: {check['exceptionDetails']}")
            size = self.send("Page.getLayoutMetrics", {}, session)["cssContentSize"]
            shot = self.send(
                "Page.captureScreenshot",
                {
                    "format": "png",
                    "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": width, "height": min(size["height"], max_height), "scale": 1},
                },
                session,
            )
            printed = b""
            if pdf:
                printed = base64.b64decode(
                    self.send("Page.printToPDF", {"printBackground": True, "preferCSSPageSize": True}, session)["data"]
                )
            events = [e for e in self._events[start:] if e.get("sessionId") == session]
        finally:
            self.send("Target.closeTarget", {"targetId": target})
        report = _report(url, events, check["result"].get("value") or {}, base64.b64decode(shot["data"]))
        report.pdf = printed
        return report


def _report(url: str, events: list[dict[str, Any]], check: dict[str, Any], shot: bytes) -> PageReport:
    console, exceptions, failed, requests = [], [], [], []
    for ev in events:
        m, p = ev.get("method"), ev.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in {"error", "assert"}:
            console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            console.append(f"{p['entry'].get('source')}: {p['entry'].get('text')}")
        elif m == "Runtime.exceptionThrown":
            exceptions.append(json.dumps(p.get("exceptionDetails", {}))[:500])
        elif m == "Network.loadingFailed":
            failed.append(f"{p.get('errorText')} {p.get('blockedReason', '')}".strip())
        elif m == "Network.requestWillBeSent":
            req = p.get("request", {}).get("url", "")
            if not req.startswith(("file:", "data:")):
                requests.append(req)
    return PageReport(
        url=url,
        console_errors=console,
        exceptions=exceptions,
        failed_loads=failed,
        network_requests=requests,
        check=check,
        screenshot=shot,
    )
