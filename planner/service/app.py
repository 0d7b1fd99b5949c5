"""The FastAPI application: CDS Hooks 2.0 discovery, hooks and feedback.

Routes (service ids from ``rules/service/cds_services.yaml``)::

    GET  /cds-services                      discovery (no token needed)
    POST /cds-services/{id}                 a hook call (Bearer JWT, see planner.service.auth)
    POST /cds-services/{id}/feedback        card outcomes, stored in the audit store

Responses never carry patient data or stack traces: a refused token is a bare 401, a body over the size limit
413, a malformed request 400/422 naming only the field, missing data 412 naming only the prefetch keys, and an
unexpected error a plain 500 with a request id (the log gets the exception type and the same id, no values).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any, Literal

import anyio.to_thread
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import PlannerError
from .auth import AuthError, TokenVerifier
from .cards import CardFactory
from .config import ServiceConfig, ServiceDefinitions
from .fhirdata import BadRequest, DataUnavailable, gather_resources
from .hooks import HookEngine

__all__ = ["create_app"]

log = logging.getLogger("planner.service")


# ---- request and response models (the OpenAPI schema) ---------------------------------------------------------
class FhirAuthorization(BaseModel):
    model_config = ConfigDict(extra="allow")
    access_token: str = Field(max_length=16384)
    token_type: str = "Bearer"
    expires_in: int | None = None
    scope: str = Field(max_length=8192)
    subject: str | None = None
    patient: str | None = None


class HookRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    hook: str = Field(max_length=100)
    hookInstance: str = Field(min_length=1, max_length=100)
    fhirServer: str | None = Field(default=None, max_length=2048)
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None  # key -> resource or Bundle (or null); checked per key by the hook


class Coding(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: str = Field(max_length=200)
    system: str | None = Field(default=None, max_length=500)
    display: str | None = Field(default=None, max_length=500)


class OverrideReason(BaseModel):
    model_config = ConfigDict(extra="allow")
    reason: Coding | None = None
    userComment: str | None = Field(default=None, max_length=5000)


class AcceptedSuggestion(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(max_length=100)


class FeedbackItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    card: str = Field(max_length=100)
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] = Field(default_factory=list, max_length=50)
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: str = Field(max_length=40)


class FeedbackRequest(BaseModel):
    feedback: list[FeedbackItem] = Field(min_length=1, max_length=100)


class Card(BaseModel):
    model_config = ConfigDict(extra="allow")
    uuid: str
    summary: str = Field(max_length=139)
    indicator: Literal["info", "warning", "critical"]
    source: dict[str, Any]
    detail: str | None = None
    suggestions: list[dict[str, Any]] | None = None
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: list[dict[str, Any]] | None = None
    links: list[dict[str, Any]] | None = None


class CardsResponse(BaseModel):
    cards: list[Card]
    systemActions: list[dict[str, Any]] = Field(default_factory=list)


class Problem(BaseModel):
    error: str
    fields: list[str] | None = None
    missing: dict[str, str] | None = None
    request_id: str | None = None


# ---- middleware -----------------------------------------------------------------------------------------------
class _Guard:
    """Outermost ASGI layer: request size limit (413) and a plain 500 for anything unexpected (no traceback)."""

    def __init__(self, app: ASGIApp, max_bytes: int, known_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.known_paths = known_paths  # logged by name; any other path is logged as "(other)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_bytes:
                    await _plain(
                        send,
                        413 if value.isdigit() else 400,
                        b'{"error":"request too large"}' if value.isdigit() else b'{"error":"bad content-length"}',
                    )
                    log.info(
                        "%s (request over the size limit) %s",
                        str(scope.get("method", ""))[:10],
                        413 if value.isdigit() else 400,
                    )
                    return
        seen = 0
        started = False
        too_big = False
        status = 0

        async def limited() -> Message:
            nonlocal seen, too_big
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    too_big = True
                    raise _TooLarge()
            return msg

        async def tracked(msg: Message) -> None:
            nonlocal started, status
            if too_big:  # the app answered a body cut short (e.g. FastAPI's 400): the answer is 413
                if msg["type"] == "http.response.start" and not started:
                    started, status = True, 413
                    await _plain(send, 413, b'{"error":"request too large"}')
                return
            if msg["type"] == "http.response.start":
                started, status = True, int(msg["status"])
            await send(msg)

        t0 = time.perf_counter()
        try:
            await self.app(scope, limited, tracked)
        except Exception as exc:  # noqa: BLE001 - any failure becomes a plain 500, never a traceback
            rid = uuid.uuid4().hex[:12]
            if too_big or isinstance(exc, _TooLarge):
                if not started:
                    status = 413
                    await _plain(send, 413, b'{"error":"request too large"}')
                return
            log.error("internal error %s (request %s)", type(exc).__name__, rid)
            if not started:
                status = 500
                await _plain(send, 500, b'{"error":"internal error","request_id":"' + rid.encode() + b'"}')
        finally:  # method, known route, status and time: never a body, query string or unknown path
            path = scope.get("path", "")
            log.info(
                "%s %s %s %.1f ms",
                str(scope.get("method", ""))[:10],
                path if path in self.known_paths else "(other)",
                status,
                1000 * (time.perf_counter() - t0),
            )


class _TooLarge(Exception):
    pass


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _Authenticate:
    """Every POST to a service (hook or feedback) needs a verified bearer token, checked before the body is read;
    a refusal is a bare 401 (empty body), its reason only in the log."""

    def __init__(self, app: ASGIApp, verifier: TokenVerifier, audiences: dict[str, tuple[str, ...]]) -> None:
        self.app = app
        self.verifier = verifier
        self.audiences = audiences

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        aud = self.audiences.get(scope.get("path", "")) if scope["type"] == "http" else None
        if aud is not None and scope.get("method") == "POST":
            header = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), None)
            token = header.decode("latin-1") if header is not None else None
            try:
                if self.verifier.may_block:  # a jku fetch or the shared replay file: not on the event loop
                    await anyio.to_thread.run_sync(self.verifier.verify, token, aud)
                else:  # keys in memory, replay cache in memory: a fraction of a millisecond, no thread hop
                    self.verifier.verify(token, aud)
            except AuthError as exc:
                log.info("token refused for %s: %s", scope.get("path"), exc.reason)
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"www-authenticate", b"Bearer"), (b"content-length", b"0")],
                    }
                )
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)


# ---- the app --------------------------------------------------------------------------------------------------
def create_app(
    config: ServiceConfig, *, planner: Any = None, defs: ServiceDefinitions | None = None, audit: Any = None
) -> ASGIApp:
    """The ASGI app (wrapped in the size/500 guard). ``planner``: a loaded Planner (default: Planner.load)."""
    from ..api import Planner
    from .config import load_definitions

    defs = defs or load_definitions(config.rules)
    if planner is None:
        planner = Planner.load(
            model=config.model, rules=config.rules, audit=audit_config(config), num_samples=config.num_samples
        )
    if audit is None and config.audit is not None:
        from ..audit import AuditLog

        audit = planner.audit or AuditLog(audit_config(config))  # type: ignore[arg-type]
    engine = HookEngine(planner, defs, config, audit)
    verifier = TokenVerifier(config)
    app = FastAPI(
        title="planner CDS Hooks service",
        version=defs.version,
        description="CDS Hooks 2.0: pharmacogenomic and medication-safety cards, ranked plans.",
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = sorted({".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body" for e in exc.errors()})
        return JSONResponse({"error": "invalid request", "fields": fields[:20]}, status_code=422)

    @app.get("/cds-services", summary="CDS Hooks discovery")
    def discovery() -> dict[str, Any]:
        keep = ("hook", "id", "title", "description", "prefetch", "usageRequirements")
        return {"services": [{k: s[k] for k in keep if k in s} for s in defs.services]}

    for service in defs.services:
        _add_service_routes(app, service, engine=engine, defs=defs, audit=audit)
    audiences: dict[str, tuple[str, ...]] = {}
    for s in defs.services:
        aud = config.audience(s["id"])
        audiences[f"/cds-services/{s['id']}"] = (aud,)
        audiences[f"/cds-services/{s['id']}/feedback"] = (aud, aud + "/feedback")
    known = frozenset(audiences) | {"/cds-services", "/openapi.json", "/docs"}
    return _Guard(_Authenticate(app, verifier, audiences), config.max_request_bytes, known)


def audit_config(config: ServiceConfig) -> Any:
    if config.audit is None:
        return None
    from ..audit import AuditConfig

    return AuditConfig(path=config.audit, include_identifiers=config.include_identifiers)


def _add_service_routes(
    app: FastAPI, service: dict[str, Any], *, engine: HookEngine, defs: ServiceDefinitions, audit: Any
) -> None:
    sid = service["id"]
    responses: dict[int | str, dict[str, Any]] = {
        400: {"model": Problem},
        401: {"description": "token refused"},
        412: {"model": Problem},
        413: {"model": Problem},
        422: {"model": Problem},
    }

    def call(body: HookRequest) -> Any:
        if body.hook != service["hook"]:
            return JSONResponse({"error": "hook does not match the service", "fields": ["hook"]}, status_code=400)
        try:
            cards, issued = _run_hook(engine, service, _as_dict(body), defs)
        except BadRequest as exc:
            return JSONResponse(
                {"error": f"invalid {exc.field}: expected {exc.expected}", "fields": [exc.field]}, status_code=400
            )
        except DataUnavailable as exc:
            return JSONResponse({"error": "required data unavailable", "missing": exc.missing}, status_code=412)
        except PlannerError as exc:  # bad clinical input: where and what was expected, never the value
            where = " ".join(p for p in (exc.resource, exc.field) if p)
            return JSONResponse(
                {
                    "error": f"unreadable input{(' at ' + where) if where else ''}"
                    + (f": expected {exc.expected}" if exc.expected else "")
                },
                status_code=400,
            )
        if audit is not None:
            audit.write_cards(service=sid, hook=service["hook"], issued=issued)
        # the cards are built to the CardsResponse schema; serialized directly (no second validation pass)
        return Response(orjson.dumps({"cards": cards, "systemActions": []}), media_type="application/json")

    def feedback(body: FeedbackRequest) -> Any:
        if audit is not None:
            audit.write_feedback(service=sid, items=[i.model_dump(mode="json") for i in body.feedback])
        return {"stored": len(body.feedback) if audit is not None else 0}

    app.add_api_route(
        f"/cds-services/{sid}",
        call,
        methods=["POST"],
        response_model=CardsResponse,
        response_model_exclude_none=True,
        summary=f"{service['hook']} hook",
        responses=responses,
    )
    app.add_api_route(
        f"/cds-services/{sid}/feedback",
        feedback,
        methods=["POST"],
        summary=f"feedback on {sid} cards",
        responses=responses,
    )


def _as_dict(body: HookRequest) -> dict[str, Any]:
    """The request as plain data, without re-serializing the (possibly large) prefetch and context."""
    auth = body.fhirAuthorization
    return {
        "hook": body.hook,
        "hookInstance": body.hookInstance,
        "fhirServer": body.fhirServer,
        "fhirAuthorization": None if auth is None else auth.model_dump(),
        "context": body.context,
        "prefetch": body.prefetch,
    }


def _run_hook(
    engine: HookEngine, service: dict[str, Any], body: dict[str, Any], defs: ServiceDefinitions
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    resources = gather_resources(service, body, engine.config, optional=defs.optional_prefetch)
    record = engine.record(resources)
    cf = CardFactory(defs, body["hookInstance"], rules_version=engine.rules.rules_version)
    hook = service["hook"]
    if hook == "patient-view":
        return engine.patient_view_cards(record, cf), cf.issued
    context = body.get("context") or {}
    patient = next(e["resource"] for e in resources if e["resource"].get("resourceType") == "Patient")
    drafts, others = engine.drafts(context, patient, selected_only=hook == "order-select")
    return engine.order_cards(record, drafts, others, cf, suggest=hook == "order-select"), cf.issued
