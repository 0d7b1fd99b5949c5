"""Helpers for the service tests: keys and tokens, a live uvicorn server on 127.0.0.1, a small FHIR REST server.

Everything here is real: RSA/EC keys from ``cryptography``, tokens signed with PyJWT, servers bound to a free port
on the loopback address and called over HTTP. Nothing reaches the network.
"""

from __future__ import annotations

import copy
import socket
import threading
import time
import uuid
from typing import Any

import jwt
import orjson
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from planner.testing import BundleBuilder

ISSUER = "https://ehr.test.example"


class Keys:
    """An RS384 and an ES384 signing key with their public JWKS."""

    def __init__(self, prefix: str = "ehr") -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP384R1())
        self.kid_rsa, self.kid_ec = f"{prefix}-rsa", f"{prefix}-ec"

    def jwks(self) -> dict[str, Any]:
        r = orjson.loads(RSAAlgorithm.to_jwk(self.rsa.public_key()))
        e = orjson.loads(ECAlgorithm.to_jwk(self.ec.public_key()))
        return {
            "keys": [
                {**r, "kid": self.kid_rsa, "alg": "RS384", "use": "sig"},
                {**e, "kid": self.kid_ec, "alg": "ES384", "use": "sig"},
            ]
        }

    def token(
        self,
        aud: str,
        *,
        alg: str = "RS384",
        iss: str = ISSUER,
        exp_in: int = 240,
        iat_ago: int = 0,
        jti: str | None = None,
        kid: str | None = None,
        headers: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        payload = {
            "iss": iss,
            "sub": "test-client",
            "aud": aud,
            "iat": now - iat_ago,
            "exp": now + exp_in,
            "jti": jti or uuid.uuid4().hex,
            **(claims or {}),
        }
        key = self.rsa if alg.startswith("RS") else self.ec
        hdr = {"kid": kid or (self.kid_rsa if alg.startswith("RS") else self.kid_ec), "typ": "JWT", **(headers or {})}
        return jwt.encode(payload, key, algorithm=alg, headers=hdr)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """uvicorn serving an ASGI app on 127.0.0.1:<free port> in a thread."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


# ---- a small FHIR REST server (read, search, $everything, create) -------------------------------------------------
class FhirStore:
    """Resources by type and id; the app below serves them. ``requests`` logs (method, path) of each call."""

    def __init__(self, token: str = "fhir-access-token", page_size: int = 3) -> None:
        self.token = token
        self.page_size = page_size
        self.everything = True  # False: $everything answers 404 (clients fall back to searches)
        self.data: dict[str, dict[str, dict[str, Any]]] = {}
        self.requests: list[tuple[str, str]] = []
        self.created: list[dict[str, Any]] = []
        self._n = 0

    def load(self, bundle: dict[str, Any]) -> None:
        for e in as_stored(bundle).get("entry", []):
            r = copy.deepcopy(e["resource"])
            self.data.setdefault(r["resourceType"], {})[r["id"]] = r

    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        self._n += 1
        r = {**copy.deepcopy(resource), "id": f"created-{self._n}"}
        self.data.setdefault(r["resourceType"], {})[r["id"]] = r
        self.created.append(r)
        return r

    def for_patient(self, rtype: str, pid: str) -> list[dict[str, Any]]:
        out = []
        for r in self.data.get(rtype, {}).values():
            refs = [(r.get(k) or {}).get("reference") for k in ("subject", "patient")]
            if f"Patient/{pid}" in refs:
                out.append(r)
        return out


def fhir_app(store: FhirStore) -> Any:
    app = FastAPI()

    def ok(request: Request) -> bool:
        store.requests.append(
            (request.method, request.url.path + ("?" + request.url.query if request.url.query else ""))
        )
        return request.headers.get("authorization") == f"Bearer {store.token}"

    def searchset(request: Request, items: list[dict[str, Any]], offset: int) -> dict[str, Any]:
        page = items[offset : offset + store.page_size]
        links = [{"relation": "self", "url": str(request.url)}]
        if offset + store.page_size < len(items):
            q = dict(request.query_params)
            q["_offset"] = str(offset + store.page_size)
            links.append({"relation": "next", "url": str(request.url.replace_query_params(**q))})
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(items),
            "link": links,
            "entry": [
                {"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}} for r in page
            ],
        }

    @app.get("/Patient/{pid}/$everything")
    def everything(pid: str, request: Request) -> Any:
        if not ok(request):
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=401)
        if not store.everything or pid not in store.data.get("Patient", {}):
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=404)
        items = [store.data["Patient"][pid]] + [
            r for t in sorted(store.data) if t != "Patient" for r in store.for_patient(t, pid)
        ]
        return searchset(request, items, int(request.query_params.get("_offset", 0)))

    @app.get("/{rtype}/{rid}")
    def read(rtype: str, rid: str, request: Request) -> Any:
        if not ok(request):
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=401)
        r = store.data.get(rtype, {}).get(rid)
        return r if r is not None else JSONResponse({"resourceType": "OperationOutcome"}, status_code=404)

    @app.get("/{rtype}")
    def search(rtype: str, request: Request) -> Any:
        if not ok(request):
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=401)
        pid = request.query_params.get("patient") or request.query_params.get("subject", "").removeprefix("Patient/")
        items = store.for_patient(rtype, pid) if pid else list(store.data.get(rtype, {}).values())
        return searchset(request, items, int(request.query_params.get("_offset", 0)))

    @app.post("/{rtype}")
    async def create(rtype: str, request: Request) -> Any:
        if not ok(request):
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=401)
        body = await request.json()
        if body.get("resourceType") != rtype:
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=400)
        r = store.create(body)
        return JSONResponse(r, status_code=201, headers={"Location": f"{rtype}/{r['id']}/_history/1"})

    return app


# ---- patients and hook requests ------------------------------------------------------------------------------------
def as_stored(bundle: dict[str, Any]) -> dict[str, Any]:
    """The bundle as a FHIR server stores it after a transaction: urn:uuid references become Type/id."""
    text = orjson.dumps(bundle).decode()
    for e in bundle.get("entry", []):
        full, r = e.get("fullUrl"), e["resource"]
        if isinstance(full, str) and full.startswith("urn:uuid:"):
            text = text.replace(f'"{full}"', f'"{r["resourceType"]}/{r["id"]}"')
    out = orjson.loads(text)
    for e in out.get("entry", []):
        e.pop("fullUrl", None)
    return out


def prefetch_of(bundle: dict[str, Any], pid: str) -> dict[str, Any]:
    """The service's prefetch keys filled from a one-patient bundle (references as a FHIR server gives them)."""
    bundle = as_stored(bundle)
    by_type: dict[str, list[dict[str, Any]]] = {}
    patient = None
    for e in bundle["entry"]:
        r = e["resource"]
        if r["resourceType"] == "Patient":
            patient = r
        else:
            by_type.setdefault(r["resourceType"], []).append(e)

    def ss(t: str) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": "searchset", "entry": by_type.get(t, [])}

    return {
        "patient": patient,
        "conditions": ss("Condition"),
        "medicationRequests": ss("MedicationRequest"),
        "medicationStatements": ss("MedicationStatement"),
        "observations": ss("Observation"),
        "allergies": ss("AllergyIntolerance"),
    }


def draft_order(drug: str, dose_mg_day: float, pid: str, rid: str) -> dict[str, Any]:
    b = BundleBuilder(patient_id=pid)
    b.medication(drug, dose_mg_day, start=None)
    r = b.build()["entry"][-1]["resource"]
    return {**r, "id": rid, "status": "draft"}


def hook_body(
    hook: str,
    pid: str,
    *,
    drafts: list[dict[str, Any]] = (),
    prefetch: dict[str, Any] | None = None,
    fhir_server: str | None = None,
    fhir_token: str | None = None,
    scope: str = "patient/*.read",
    selections: list[str] | None = None,
) -> dict[str, Any]:
    context: dict[str, Any] = {"userId": "Practitioner/pr-1", "patientId": pid}
    if hook != "patient-view":
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": d} for d in drafts],
        }
    if hook == "order-select":
        context["selections"] = (
            selections if selections is not None else [f"MedicationRequest/{d['id']}" for d in drafts]
        )
    body: dict[str, Any] = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context}
    if prefetch is not None:
        body["prefetch"] = prefetch
    if fhir_server is not None:
        body["fhirServer"] = fhir_server
        body["fhirAuthorization"] = {
            "access_token": fhir_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": scope,
            "subject": "planner",
            "patient": pid,
        }
    return body
