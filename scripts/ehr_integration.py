"""EHR integration: read a patient from a FHIR R4 server, recommend, write the proposals back.

1. Reads the patient with ``GET Patient/<id>/$everything`` (all pages); where the server does not support it,
   with a read of the Patient and searches for each resource type the engine reads (Condition, MedicationRequest,
   MedicationStatement, Observation, AllergyIntolerance), plus any Medication a ``medicationReference`` names.
2. Runs ``Planner.recommend`` (one area) or ``recommend_all`` (every area the patient is in).
3. Creates, on the same server, one ``MedicationRequest`` (status draft, intent proposal) per drug of each plan and
   one ``CarePlan`` (status draft, intent proposal) per plan whose activities reference them (created first, so
   the CarePlan points at their server ids). ``--dry-run`` prints what would be created instead.

Usage::

    python scripts/ehr_integration.py --fhir-server https://ehr.example.org/fhir --patient 123 \\
        [--token-env FHIR_TOKEN] [--area t2d] [--as-of 2024-06-01] [--top 3] [--seed 0] [--model DIR] [--dry-run]

The access token is read from the environment variable named by ``--token-env`` (never from the command line,
where other users could see it). Output: one JSON line with counts and the created references; nothing about
the patient. Exit codes: 0 done, 2 bad input or a FHIR server error (the message says which request and status).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from planner.errors import ConfigError, InputError, PlannerError  # noqa: E402

SEARCH_TYPES = ("Condition", "MedicationRequest", "MedicationStatement", "Observation", "AllergyIntolerance")
MAX_PAGES = 50


class FhirServerError(InputError):
    """The FHIR server refused or failed a request."""


class FhirClient:
    """A small FHIR REST client: read, paged search, create. Timeouts; no redirects off the server."""

    def __init__(self, base: str, token: str | None, *, timeout: float = 15.0) -> None:
        self.base = base.rstrip("/")
        headers = {"Accept": "application/fhir+json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(timeout=timeout, headers=headers, follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    def _url(self, path: str) -> str:
        return path if path.startswith(self.base + "/") else f"{self.base}/{path.lstrip('/')}"

    def get(self, path: str, what: str) -> httpx.Response:
        try:
            return self.http.get(self._url(path))
        except httpx.HTTPError as exc:
            raise FhirServerError(f"{what}: the FHIR server could not be reached ({type(exc).__name__})") from None

    def entries(self, path: str, what: str) -> list[dict[str, Any]]:
        """Every entry of a searchset (following ``next`` links on the same server)."""
        out: list[dict[str, Any]] = []
        url: str | None = path
        for _ in range(MAX_PAGES):
            resp = self.get(url or "", what)
            if resp.status_code != 200:
                raise FhirServerError(f"{what}: the FHIR server answered {resp.status_code}", expected="200")
            doc = resp.json()
            out += [e for e in doc.get("entry") or [] if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
            url = next((link.get("url") for link in doc.get("link") or [] if link.get("relation") == "next"), None)
            if url is None:
                return out
            if not url.startswith(self.base + "/"):
                raise FhirServerError(f"{what}: a next link leaves the FHIR server", expected=self.base)
        raise FhirServerError(f"{what}: more than {MAX_PAGES} pages")

    def create(self, resource: dict[str, Any]) -> str:
        """POST a resource; its new reference ``Type/id`` (from the body or the Location header)."""
        rtype = resource["resourceType"]
        try:
            resp = self.http.post(
                f"{self.base}/{rtype}",
                content=orjson.dumps(resource),
                headers={"Content-Type": "application/fhir+json"},
            )
        except httpx.HTTPError as exc:
            raise FhirServerError(
                f"create {rtype}: the FHIR server could not be reached ({type(exc).__name__})"
            ) from None
        if resp.status_code not in (200, 201):
            raise FhirServerError(f"create {rtype}: the FHIR server answered {resp.status_code}", expected="201")
        rid = None
        if resp.content:
            try:
                rid = resp.json().get("id")
            except ValueError:
                rid = None
        if not rid:
            loc = resp.headers.get("location", "")
            parts = loc.split("/_history")[0].rstrip("/").split("/")
            rid = parts[-1] if len(parts) >= 2 and parts[-2] == rtype else None
        if not rid:
            raise FhirServerError(f"create {rtype}: the server gave no id", expected="an id or a Location header")
        return f"{rtype}/{rid}"


def read_patient(client: FhirClient, patient_id: str) -> tuple[dict[str, Any], str]:
    """The patient's resources as a collection Bundle, and how they were read ("$everything" or "search")."""
    pid = quote(patient_id, safe="")
    resp = client.get(f"Patient/{pid}/$everything", "Patient $everything")
    if resp.status_code == 200:
        entries = client.entries(f"Patient/{pid}/$everything", "Patient $everything")
        how = "$everything"
    elif resp.status_code in (400, 404, 405, 501):  # not supported here: read + searches
        patient = client.get(f"Patient/{pid}", "Patient read")
        if patient.status_code != 200:
            raise FhirServerError(f"Patient read: the FHIR server answered {patient.status_code}", expected="200")
        entries = [{"resource": patient.json()}]
        for rtype in SEARCH_TYPES:
            entries += client.entries(f"{rtype}?patient={pid}", f"{rtype} search")
        how = "search"
    else:
        raise FhirServerError(f"Patient $everything: the FHIR server answered {resp.status_code}", expected="200")
    have = {(e["resource"].get("resourceType"), e["resource"].get("id")) for e in entries}
    for e in list(entries):
        ref = (e["resource"].get("medicationReference") or {}).get("reference") or ""
        if ref.startswith("Medication/") and ("Medication", ref.split("/", 1)[1]) not in have:
            med = client.get(ref, "Medication read")
            if med.status_code == 200:
                entries.append({"resource": med.json()})
                have.add(("Medication", ref.split("/", 1)[1]))
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": e["resource"]} for e in entries],
    }, how


def proposals(fhir_bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The CarePlan and MedicationRequest entries of a rendered recommendation (fullUrl + resource)."""
    return [e for e in fhir_bundle["entry"] if e["resource"]["resourceType"] in ("CarePlan", "MedicationRequest")]


def write_back(client: FhirClient, entries: list[dict[str, Any]]) -> list[str]:
    """Create the MedicationRequests, then the CarePlans with their activity references rewritten."""
    created: dict[str, str] = {}
    refs: list[str] = []
    for e in entries:
        if e["resource"]["resourceType"] == "MedicationRequest":
            res = {k: v for k, v in e["resource"].items() if k != "id"}
            created[e["fullUrl"]] = ref = client.create(res)
            refs.append(ref)
    for e in entries:
        if e["resource"]["resourceType"] == "CarePlan":
            res = {k: v for k, v in e["resource"].items() if k != "id"}
            for act in res.get("activity", []):
                inner = act.get("reference")
                if isinstance(inner, dict) and inner.get("reference") in created:
                    inner["reference"] = created[inner["reference"]]
            refs.append(client.create(res))
    return refs


def run(args: argparse.Namespace, token: str | None) -> dict[str, Any]:
    from planner import Planner
    from planner.render import render

    client = FhirClient(args.fhir_server, token, timeout=args.timeout)
    try:
        bundle, how = read_patient(client, args.patient)
        planner = Planner.load(model=args.model)
        if args.area:
            recs = [planner.recommend(bundle, area=args.area, as_of=args.as_of, top=args.top, seed=args.seed)]
        else:
            recs = planner.recommend_all(bundle, as_of=args.as_of, top=args.top, seed=args.seed)
        entries = [e for r in recs for e in proposals(orjson.loads(render(r, "fhir")))]
        summary: dict[str, Any] = {
            "read_with": how,
            "resources_read": len(bundle["entry"]),
            "areas": [r.area for r in recs],
            "plans": sum(len(r.plans) for r in recs),
        }
        if args.dry_run:
            summary["would_create"] = sorted({e["resource"]["resourceType"] for e in entries})
            summary["count"] = len(entries)
        else:
            summary["created"] = write_back(client, entries)
        return summary
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fhir-server", required=True, help="FHIR R4 base URL")
    ap.add_argument("--patient", required=True, help="Patient id on that server")
    ap.add_argument("--token-env", default="FHIR_TOKEN", help="environment variable holding the bearer token")
    ap.add_argument("--area", default=None)
    ap.add_argument("--as-of", default=None)
    ap.add_argument("--top", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=None, help="fitted model folder (default: literature priors)")
    ap.add_argument("--timeout", type=float, default=15.0)
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    try:
        if not args.fhir_server.startswith(("http://", "https://")):
            raise ConfigError("not an http(s) URL", field="--fhir-server", value=args.fhir_server)
        summary = run(args, os.environ.get(args.token_env))
    except PlannerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(orjson.dumps(summary).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
