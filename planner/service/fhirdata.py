"""The patient's data for a hook call: from ``prefetch``, else from the EHR's ``fhirServer``, else 412.

Prefetch keys and templates come from the service definition (``rules/service/cds_services.yaml``). A key
that is absent or ``null`` is fetched from ``fhirServer`` with the ``fhirAuthorization`` access token, when the
token's scopes allow reading that resource type (SMART v1 ``patient/Observation.read``, ``*.read``, or v2
``patient/Observation.rs``) and, for patient-level scopes, when the token's ``patient`` is the hook's patient.
Requests have a timeout, follow no redirects, follow searchset ``next`` links on the same server only (bounded
page count) and are size-limited. What cannot be obtained is reported (key and reason, never patient data).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson

from .config import ServiceConfig

__all__ = ["DataUnavailable", "BadRequest", "gather_resources", "allowed_by_scope", "FHIR_ID"]

FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_TIMED_OUT = "fhirServer timed out"
_UNREACHABLE = "fhirServer unreachable"
_TEMPLATE = re.compile(r"\{\{\s*context\.([A-Za-z]+)\s*\}\}")


class DataUnavailable(Exception):
    """Required data could not be had (412); ``missing`` maps prefetch key -> short reason."""

    def __init__(self, missing: dict[str, str]) -> None:
        super().__init__("required data unavailable")
        self.missing = missing


class BadRequest(Exception):
    """The request itself is wrong (400); ``field`` names where, ``expected`` what (never the value)."""

    def __init__(self, field: str, expected: str) -> None:
        super().__init__(f"{field}: expected {expected}")
        self.field = field
        self.expected = expected


@dataclass(frozen=True)
class _Auth:
    token: str
    scopes: tuple[str, ...]
    patient: str | None


def allowed_by_scope(scopes: tuple[str, ...], resource_type: str, interaction: str) -> bool:
    """Whether SMART scopes allow ``read`` or ``search`` on a resource type (v1 and v2 syntax)."""
    for s in scopes:
        m = re.fullmatch(r"(patient|user|system)/([A-Za-z]+|\*)\.([a-z*]+)(\?.*)?", s)
        if m is None or m.group(2) not in (resource_type, "*"):
            continue
        perm = m.group(3)
        if perm in ("read", "*"):
            return True
        if re.fullmatch(r"c?r?u?d?s?", perm) and ("r" if interaction == "read" else "s") in perm:
            return True
    return False


def _auth(fhir_authorization: Any) -> _Auth | None:
    if not isinstance(fhir_authorization, dict):
        return None
    token = fhir_authorization.get("access_token")
    ttype = fhir_authorization.get("token_type", "Bearer")
    if not isinstance(token, str) or not token or not isinstance(ttype, str) or ttype.lower() != "bearer":
        return None
    scope = fhir_authorization.get("scope")
    patient = fhir_authorization.get("patient")
    return _Auth(
        token=token,
        scopes=tuple(scope.split()) if isinstance(scope, str) else (),
        patient=patient if isinstance(patient, str) else None,
    )


def _expand(template: str, context: dict[str, Any]) -> str:
    def sub(m: re.Match[str]) -> str:
        value = context.get(m.group(1))
        if not isinstance(value, str) or not FHIR_ID.match(value):
            raise BadRequest(f"context.{m.group(1)}", "a FHIR id (letters, digits, '-', '.'; at most 64)")
        return quote(value, safe="")

    return _TEMPLATE.sub(sub, template)


class _Fetcher:
    def __init__(self, base: str, auth: _Auth, config: ServiceConfig, client: httpx.Client) -> None:
        self.base = base.rstrip("/")
        self.auth = auth
        self.config = config
        self.client = client

    def _get(self, url: str) -> dict[str, Any]:
        headers = {"Accept": "application/fhir+json", "Authorization": f"Bearer {self.auth.token}"}
        limit = self.config.max_request_bytes
        try:
            with self.client.stream("GET", url, headers=headers) as resp:
                if resp.status_code != 200:
                    raise DataUnavailable({"_": f"fhirServer answered {resp.status_code}"})
                chunks, size = [], 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise DataUnavailable({"_": "fhirServer response too large"})
                    chunks.append(chunk)
        except httpx.TimeoutException:
            raise DataUnavailable({"_": _TIMED_OUT}) from None
        except httpx.HTTPError:
            raise DataUnavailable({"_": _UNREACHABLE}) from None
        try:
            doc = orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError:
            raise DataUnavailable({"_": "fhirServer answered with something other than JSON"}) from None
        if not isinstance(doc, dict):
            raise DataUnavailable({"_": "fhirServer answered with something other than a resource"})
        return doc

    def fetch(self, query: str) -> dict[str, Any]:
        doc = self._get(self.base + "/" + query.lstrip("/"))
        if doc.get("resourceType") != "Bundle":
            return doc
        entries = list(doc.get("entry") or [])
        for _ in range(self.config.fhir_max_pages - 1):
            nxt = next(
                (
                    link.get("url")
                    for link in doc.get("link") or []
                    if isinstance(link, dict) and link.get("relation") == "next"
                ),
                None,
            )
            if not isinstance(nxt, str):
                break
            if not (nxt.startswith(self.base + "/") or nxt.startswith(self.base + "?")):
                raise DataUnavailable({"_": "searchset next link points away from fhirServer"})
            doc = self._get(nxt)
            entries += list(doc.get("entry") or [])
        else:
            if any(isinstance(link, dict) and link.get("relation") == "next" for link in doc.get("link") or []):
                raise DataUnavailable({"_": f"more than {self.config.fhir_max_pages} pages"})
        return {"resourceType": "Bundle", "type": "searchset", "entry": entries}


def _resource_type_of(query: str) -> tuple[str, str]:
    head = query.split("?", 1)[0]
    parts = [p for p in head.split("/") if p]
    return parts[0], ("read" if len(parts) == 2 and "?" not in query else "search")


def _fetch_missing(
    service: dict[str, Any],
    missing: list[str],
    context: dict[str, Any],
    fhir_server: Any,
    auth: _Auth,
    config: ServiceConfig,
    client: httpx.Client | None,
) -> tuple[dict, dict]:
    got: dict[str, Any] = {}
    failed: dict[str, str] = {}
    own = client or httpx.Client(timeout=config.fhir_timeout_s, follow_redirects=False)
    try:
        fetcher = _Fetcher(fhir_server, auth, config, own)
        down: str | None = None
        for key in missing:
            query = _expand(service["prefetch"][key], context)
            rtype, interaction = _resource_type_of(query)
            if not allowed_by_scope(auth.scopes, rtype, interaction):
                failed[key] = f"fhirAuthorization scope does not allow {interaction} of {rtype}"
                continue
            if (
                auth.patient is not None
                and auth.patient != context.get("patientId")
                and any(s.startswith("patient/") for s in auth.scopes)
            ):
                failed[key] = "fhirAuthorization is for another patient"
                continue
            if down is not None:  # the server timed out or could not be reached: do not wait for it again
                failed[key] = down
                continue
            try:
                got[key] = fetcher.fetch(query)
            except DataUnavailable as exc:
                failed[key] = exc.missing.get("_", "could not be fetched")
                if failed[key] in (_TIMED_OUT, _UNREACHABLE):
                    down = failed[key]
    finally:
        if client is None:
            own.close()
    return got, failed


def gather_resources(
    service: dict[str, Any],
    body: dict[str, Any],
    config: ServiceConfig,
    *,
    optional: frozenset[str],
    client: httpx.Client | None = None,
) -> list[dict[str, Any]]:
    """Every resource of the patient the hook needs, as Bundle entries (prefetch first, then fhirServer)."""
    context = body.get("context") or {}
    if not isinstance(context, dict):
        raise BadRequest("context", "an object")
    pid = context.get("patientId")
    if not isinstance(pid, str) or not FHIR_ID.match(pid):
        raise BadRequest("context.patientId", "a FHIR id (letters, digits, '-', '.'; at most 64)")
    prefetch = body.get("prefetch") or {}
    if not isinstance(prefetch, dict):
        raise BadRequest("prefetch", "an object of prefetch key -> resource or Bundle")
    templates: dict[str, str] = service.get("prefetch") or {}
    values: dict[str, Any] = {}
    missing = []
    for key in templates:
        v = prefetch.get(key)
        if v is None:
            missing.append(key)
        elif not isinstance(v, dict) or not isinstance(v.get("resourceType"), str):
            raise BadRequest(f"prefetch.{key}", "a FHIR resource or Bundle")
        else:
            values[key] = v
    if missing:
        fhir_server = body.get("fhirServer")
        auth = _auth(body.get("fhirAuthorization"))
        parts = urlsplit(fhir_server) if isinstance(fhir_server, str) else None
        usable = parts is not None and parts.scheme in ("http", "https") and bool(parts.netloc)
        if usable and auth is not None and not config.fhir_server_allowed(str(fhir_server)):
            failed = {k: "fhirServer is not on this service's allowed_fhir_servers list" for k in missing}
        elif usable and auth is not None:
            got, failed = _fetch_missing(service, missing, context, str(fhir_server), auth, config, client)
            values.update(got)
        else:
            failed = {k: "not in prefetch, and no fhirServer with fhirAuthorization" for k in missing}
        required = {k: why for k, why in failed.items() if k not in optional}
        if required:
            raise DataUnavailable(required)
    return _flatten(values, pid)


def _flatten(values: dict[str, Any], pid: str) -> list[dict[str, Any]]:
    """Bundle entries (``resource`` and, where given, ``fullUrl``, which urn:uuid references need)."""
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for key in sorted(values):
        v = values[key]
        if v.get("resourceType") == "Bundle":
            items = [e for e in v.get("entry") or [] if isinstance(e, dict)]
        else:
            items = [{"resource": v}]
        for e in items:
            r = e.get("resource")
            if not isinstance(r, dict) or r.get("resourceType") in (None, "OperationOutcome"):
                continue
            rid = (str(r.get("resourceType")), str(r.get("id")))
            if r.get("id") is not None and rid in seen:
                continue
            seen.add(rid)
            full = e.get("fullUrl")
            out.append({"resource": r, **({"fullUrl": full} if isinstance(full, str) else {})})
    patients = [e["resource"] for e in out if e["resource"].get("resourceType") == "Patient"]
    if len(patients) != 1 or patients[0].get("id") != pid:
        raise BadRequest("prefetch.patient", "exactly one Patient, the one named by context.patientId")
    return out
