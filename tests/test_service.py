"""The CDS Hooks service over real HTTP: uvicorn on 127.0.0.1, real JWTs, a real FHIR REST server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import sqlite3

import orjson
import pytest

pytest.importorskip("fastapi")  # the service extra (fastapi, uvicorn, httpx, PyJWT[crypto]); skipped without it

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from service_helpers import (
    ISSUER,
    FhirStore,
    Keys,
    LiveServer,
    draft_order,
    fhir_app,
    free_port,
    hook_body,
    prefetch_of,
)

from planner.ingest import read_record
from planner.record import DrugDose, Regimen
from planner.testing import BundleBuilder

SYNTHEA = "Morris_Lockman_cd9e9826-aea1-4682-adc0-c1d97633bf31.json"
SEL, SIGN, VIEW = "planner-order-select", "planner-order-sign", "planner-patient-view"


@pytest.fixture(scope="module")
def planner():
    from planner import Planner

    return Planner.load()


@pytest.fixture(scope="module")
def keys():
    return Keys()


@pytest.fixture(scope="module")
def service(planner, keys, tmp_path_factory):
    from planner.service import create_app, load_config

    d = tmp_path_factory.mktemp("svc")
    (d / "ehr.jwks.json").write_bytes(orjson.dumps(keys.jwks()))
    port = free_port()  # chosen first: the audience names it
    (d / "service.yaml").write_text(
        f"service_url: http://127.0.0.1:{port}/cds-services\n"
        f"trusted_issuers:\n  - issuer: {ISSUER}\n    jwks_file: ehr.jwks.json\n"
        "audit: audit.sqlite\n",
        encoding="utf-8",
    )
    cfg = load_config(d / "service.yaml")
    with LiveServer(create_app(cfg, planner=planner), port=port) as srv:
        srv.config = cfg
        srv.audit_path = d / "audit.sqlite"
        yield srv


@pytest.fixture(scope="module")
def fhir():
    store = FhirStore()
    with LiveServer(fhir_app(store)) as srv:
        srv.store = store
        yield srv


def _post(service, keys, sid: str, body: dict, **token_kw) -> httpx.Response:
    tok = keys.token(service.config.audience(sid), **token_kw)
    return httpx.post(
        f"{service.url}/cds-services/{sid}", json=body, headers={"Authorization": f"Bearer {tok}"}, timeout=60
    )


def _pm_bundle(pid: str = "pm-1", genotype: str | None = "*2/*2") -> dict:
    b = BundleBuilder(patient_id=pid, birth_date="1958-04-17")
    b.condition("22298006", display="Myocardial infarction", onset="2024-01-01")
    if genotype:
        b.genotype("CYP2C19", genotype)
    return b.build()


def _t2d_bundle(pid: str) -> dict:
    """Type 2 diabetes on metformin, CYP2C19 poor metabolizer, several labs (more than one searchset page)."""
    b = BundleBuilder(patient_id=pid, birth_date="1957-02-03")
    b.condition("44054006", display="Diabetes mellitus type 2", onset="2019-01-01")
    b.medication("metformin", 1000, start="2025-01-01")
    for i, v in enumerate((8.9, 8.6, 8.4)):
        b.observation("hba1c", v, date=f"2026-0{i + 3}-01")
    b.observation("egfr", 72, date="2026-05-01")
    b.genotype("CYP2C19", "*2/*2")
    return b.build()


def _tamoxifen_bundle(pid: str = "tam-1") -> dict:
    b = BundleBuilder(patient_id=pid, birth_date="1966-09-02")
    b.medication("tamoxifen", 20, start="2023-03-01")
    return b.build()


def _check_card_shape(card: dict) -> None:
    assert len(card["summary"]) < 140 and card["indicator"] in {"info", "warning", "critical"}
    assert card["uuid"] and card["source"]["label"]
    for s in card.get("suggestions", []):
        assert s["uuid"] and s["actions"]
        for a in s["actions"]:
            assert a["type"] in {"create", "delete"}
            if a["type"] == "create":
                assert a["resource"]["resourceType"] == "MedicationRequest"
            else:
                assert all(r.startswith("MedicationRequest/") for r in a["resourceId"])
    if card.get("suggestions"):
        assert card["selectionBehavior"] == "at-most-one"


def test_discovery_lists_services_with_prefetch_from_data(service):
    from planner.service import load_definitions

    r = httpx.get(f"{service.url}/cds-services", timeout=10)
    assert r.status_code == 200
    services = r.json()["services"]
    defs = load_definitions()
    assert [s["id"] for s in services] == [s["id"] for s in defs.services]
    assert {s["hook"] for s in services} == {"order-select", "order-sign", "patient-view"}
    for s in services:
        assert "{{context.patientId}}" in s["prefetch"]["patient"] and s["title"] and s["description"]


def test_poor_metabolizer_clopidogrel_gets_critical_card_with_data_alternatives(service, keys, planner):
    bundle = _pm_bundle()
    draft = draft_order("clopidogrel", 75, "pm-1", "draft-clop")
    r = _post(
        service, keys, SEL, hook_body("order-select", "pm-1", drafts=[draft], prefetch=prefetch_of(bundle, "pm-1"))
    )
    assert r.status_code == 200, r.text
    cards = r.json()["cards"]
    for c in cards:
        _check_card_shape(c)
    crit = [c for c in cards if c["indicator"] == "critical"]
    assert len(crit) == 1 and "clopidogrel" in crit[0]["summary"].lower()
    # the alternatives are what the rule data says, not literals of this test

    finding = next(
        f
        for f in planner.ruleset.screen(
            read_record(bundle), Regimen.of([DrugDose(ingredient="clopidogrel", rxcui="32968", dose_mg_day=75)])
        )
        if f.action == "exclude"
    )
    assert finding.alternatives, "the CPIC rule names alternatives"
    created = {
        a["resource"]["medicationCodeableConcept"]["text"]
        for s in crit[0]["suggestions"]
        for a in s["actions"]
        if a["type"] == "create"
    }
    assert created and created <= set(finding.alternatives)
    assert created & {"prasugrel", "ticagrelor"}
    deletes = [a for s in crit[0]["suggestions"] for a in s["actions"] if a["type"] == "delete"]
    assert deletes and all(a["resourceId"] == ["MedicationRequest/draft-clop"] for a in deletes)
    assert crit[0]["source"]["url"].startswith("https://cpicpgx.org/") and crit[0]["overrideReasons"]
    assert crit[0]["links"][0]["url"] == crit[0]["source"]["url"]
    uuids = [c["uuid"] for c in cards] + [s["uuid"] for c in cards for s in c.get("suggestions", [])]
    assert len(uuids) == len(set(uuids))


def test_paroxetine_draft_for_patient_on_tamoxifen_names_both(service, keys):
    bundle = _tamoxifen_bundle()
    draft = draft_order("paroxetine", 20, "tam-1", "draft-parox")
    for sid, hook in ((SEL, "order-select"), (SIGN, "order-sign")):
        r = _post(service, keys, sid, hook_body(hook, "tam-1", drafts=[draft], prefetch=prefetch_of(bundle, "tam-1")))
        assert r.status_code == 200, r.text
        both = [
            c for c in r.json()["cards"] if "paroxetine" in c["summary"].lower() and "tamoxifen" in c["summary"].lower()
        ]
        assert both, [c["summary"] for c in r.json()["cards"]]
        assert both[0]["indicator"] in {"critical", "warning"}


def test_no_genotype_says_not_tested_never_normal(service, keys):
    bundle = _pm_bundle("ng-1", genotype=None)
    draft = draft_order("clopidogrel", 75, "ng-1", "draft-ng")
    r = _post(
        service, keys, SIGN, hook_body("order-sign", "ng-1", drafts=[draft], prefetch=prefetch_of(bundle, "ng-1"))
    )
    assert r.status_code == 200, r.text
    text = json.dumps(r.json()["cards"]).lower()
    assert any("cyp2c19" in c["summary"].lower() and "not tested" in c["summary"].lower() for c in r.json()["cards"])
    assert "normal metabolizer" not in text


def test_patient_view_plans_per_area_and_current_findings(service, keys, fixtures_dir):
    bundle = orjson.loads((fixtures_dir / "synthea" / SYNTHEA).read_bytes())
    pid = next(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    r = _post(service, keys, VIEW, hook_body("patient-view", pid, prefetch=prefetch_of(bundle, pid)))
    assert r.status_code == 200, r.text
    cards = r.json()["cards"]
    plan_cards = [c for c in cards if c["source"].get("topic", {}).get("system", "").endswith("/area")]
    assert {c["source"]["topic"]["code"] for c in plan_cards} >= {"t2d", "hypertension"}
    for c in cards:
        _check_card_shape(c)
    assert all("P(target)" in c["detail"] for c in plan_cards)


@pytest.mark.parametrize("sid,hook", [(SEL, "order-select"), (SIGN, "order-sign"), (VIEW, "patient-view")])
def test_each_hook_from_fhir_server_equals_prefetch_and_412_without_either(service, keys, fhir, sid, hook):
    pid = f"fs-{hook}"
    bundle = _t2d_bundle(pid)
    fhir.store.load(bundle)
    drafts = [draft_order("clopidogrel", 75, pid, "d1")] if hook != "patient-view" else []
    via_prefetch = _post(service, keys, sid, hook_body(hook, pid, drafts=drafts, prefetch=prefetch_of(bundle, pid)))
    via_server = _post(
        service, keys, sid, hook_body(hook, pid, drafts=drafts, fhir_server=fhir.url, fhir_token=fhir.store.token)
    )
    assert via_prefetch.status_code == 200 and via_server.status_code == 200, via_server.text
    summaries = sorted(c["summary"] for c in via_server.json()["cards"])
    assert summaries == sorted(c["summary"] for c in via_prefetch.json()["cards"])
    if hook != "patient-view":
        assert any(c["indicator"] == "critical" for c in via_server.json()["cards"])
    else:
        assert any(c["source"].get("topic", {}).get("code") == "t2d" for c in via_server.json()["cards"])
    obs = [p for _, p in fhir.store.requests if p.startswith("/Observation?patient=" + pid)]
    assert len(obs) >= 2 and any("_offset=" in p for p in obs)  # searchset pages followed
    neither = _post(service, keys, sid, hook_body(hook, pid, drafts=drafts))
    assert neither.status_code == 412
    assert set(neither.json()["missing"]) >= {"patient", "observations"} and pid not in neither.text


def test_fhir_token_scope_is_respected(service, keys, fhir):
    pid = "scope-1"
    fhir.store.load(_pm_bundle(pid))
    before = len(fhir.store.requests)
    body = hook_body(
        "order-sign",
        pid,
        drafts=[draft_order("clopidogrel", 75, pid, "d1")],
        fhir_server=fhir.url,
        fhir_token=fhir.store.token,
        scope="patient/Patient.read patient/MedicationRequest.read",
    )
    r = _post(service, keys, SIGN, body)
    assert r.status_code == 412 and "observations" in r.json()["missing"]
    paths = [p for _, p in fhir.store.requests[before:]]
    assert not any(p.startswith(("/Observation", "/Condition", "/AllergyIntolerance")) for p in paths)
    # a token for another patient is not used for this one
    body = hook_body("order-sign", pid, drafts=[], fhir_server=fhir.url, fhir_token=fhir.store.token)
    body["fhirAuthorization"]["patient"] = "someone-else"
    r = _post(service, keys, SIGN, body)
    assert r.status_code == 412 and "another patient" in r.json()["missing"]["patient"]
    # a wrong access token: the FHIR server refuses, the service answers 412 (never a 5xx)
    body = hook_body("order-sign", pid, drafts=[], fhir_server=fhir.url, fhir_token="wrong")
    assert _post(service, keys, SIGN, body).status_code == 412


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(claims: dict, header: dict) -> str:
    return _b64(orjson.dumps(header)) + "." + _b64(orjson.dumps(claims))


def test_bad_tokens_are_bare_401(service, keys, caplog):
    import time
    import uuid

    aud = service.config.audience(SIGN)
    bundle = _pm_bundle("tok-1")
    body = hook_body("order-sign", "tok-1", drafts=[], prefetch=prefetch_of(bundle, "tok-1"))
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "x", "aud": aud, "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex}
    forger = Keys()  # same kid, unknown key
    public_pem = keys.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = _unsigned(claims, {"alg": "HS384", "kid": keys.kid_rsa, "typ": "JWT"})
    hmac_token = signing_input + "." + _b64(hmac.new(public_pem, signing_input.encode(), hashlib.sha384).digest())
    bad = {
        "forged": forger.token(aud, kid=keys.kid_rsa),
        "expired": keys.token(aud, exp_in=-600, iat_ago=700),
        "wrong-audience": keys.token(service.config.audience(SEL)),
        "wrong-issuer": keys.token(aud, iss="https://evil.example"),
        "alg-none": _unsigned(claims, {"alg": "none", "kid": keys.kid_rsa, "typ": "JWT"}) + ".",
        "hmac-public-key": hmac_token,
        "future-iat": keys.token(aud, iat_ago=-3600, exp_in=3700),
        "too-long-lived": keys.token(aud, exp_in=86400),
        "no-jti": keys.token(aud, claims={"jti": None}),
        "jku-not-allowlisted": keys.token(aud, headers={"jku": "http://127.0.0.1:1/jwks.json"}),
        "rs256": jwt.encode(claims, keys.rsa, algorithm="RS256", headers={"kid": keys.kid_rsa}),
    }
    url = f"{service.url}/cds-services/{SIGN}"
    caplog.set_level(logging.INFO, logger="planner.service")
    for name, tok in bad.items():
        r = httpx.post(url, json=body, headers={"Authorization": f"Bearer {tok}"}, timeout=30)
        assert r.status_code == 401 and r.content == b"", name
    assert httpx.post(url, json=body, timeout=30).status_code == 401
    assert httpx.post(url, content=b"{not json", timeout=30).status_code == 401  # refused before the body is read
    good = keys.token(aud, alg="ES384")
    first = httpx.post(url, json=body, headers={"Authorization": f"Bearer {good}"}, timeout=30)
    assert first.status_code == 200
    replay = httpx.post(url, json=body, headers={"Authorization": f"Bearer {good}"}, timeout=30)
    assert replay.status_code == 401 and replay.content == b""
    for reason in ("alg-refused", "expired", "wrong-audience", "issuer-not-trusted", "bad-signature", "replayed"):
        assert reason in caplog.text  # the reason is logged as a code ...
    assert not any(tok.split(".")[1] in caplog.text for tok in [*bad.values(), good])  # ... never the token


def test_unconfigured_service_trusts_no_issuer(planner, keys):
    from planner.service import create_app, load_config
    from planner.service.server import startup_message

    cfg = load_config(None)
    assert "trusts no" in startup_message(cfg)
    with LiveServer(create_app(cfg, planner=planner)) as srv:
        assert httpx.get(f"{srv.url}/cds-services", timeout=10).status_code == 200
        body = hook_body("order-sign", "u-1", drafts=[], prefetch=prefetch_of(_pm_bundle("u-1"), "u-1"))
        tok = keys.token(cfg.audience(SIGN))
        r = httpx.post(
            f"{srv.url}/cds-services/{SIGN}", json=body, headers={"Authorization": f"Bearer {tok}"}, timeout=30
        )
        assert r.status_code == 401


def _raw_post(service, head: bytes, chunks) -> int:
    """POST over a plain socket: send the head, then body chunks until the server answers; its status code."""
    import socket

    with socket.create_connection(("127.0.0.1", service.port), timeout=30) as sock:
        sock.sendall(head)
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except OSError:  # the server answered and closed: read what it said
                break
        data = b""
        while b"\r\n" not in data:
            part = sock.recv(4096)
            if not part:
                break
            data += part
    return int(data.split(b" ", 2)[1])


def test_request_size_limit_and_error_bodies_carry_no_patient_data(service, keys, caplog):
    limit = service.config.max_request_bytes
    auth = f"Authorization: Bearer {keys.token(service.config.audience(SIGN))}\r\n".encode()
    head = (
        (
            f"POST /cds-services/{SIGN} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {limit + 10}\r\n"
        ).encode()
        + auth
        + b"\r\n"
    )
    assert _raw_post(service, head, []) == 413  # refused from the header, before any body is read
    auth = f"Authorization: Bearer {keys.token(service.config.audience(SIGN))}\r\n".encode()
    head = (
        (
            f"POST /cds-services/{SIGN} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n"
        ).encode()
        + auth
        + b"\r\n"
    )
    piece = b"x" * 65536
    chunked = [b"%x\r\n%s\r\n" % (len(piece), piece)] * (limit // len(piece) + 2) + [b"0\r\n\r\n"]
    assert _raw_post(service, head, chunked) == 413  # no Content-Length: counted as the body streams in
    # a body naming the patient, with a wrong field: the 4xx names the field, never the value
    caplog.set_level(logging.DEBUG)
    bundle = _pm_bundle("Secret-Name-42")
    pre = prefetch_of(bundle, "Secret-Name-42")
    pre["patient"] = {**pre["patient"], "name": [{"family": "Zyxwvut", "given": ["Qwerty"]}]}
    body = hook_body("order-sign", "Secret-Name-42", drafts=[], prefetch=pre)
    body["context"]["draftOrders"] = "Zyxwvut"
    r = _post(service, keys, SIGN, body)
    assert r.status_code == 400 and "draftOrders" in r.text
    httpx.get(f"{service.url}/cds-services/Secret-Name-42?name=Zyxwvut", timeout=10)
    # the service's own loggers (the test client's httpx log and this test server's uvicorn access log are not the
    # service's: `planner serve` turns the access log off, checked in test_service_cli)
    server_log = "\n".join(
        rec.getMessage()
        for rec in caplog.records
        if rec.name.startswith(("planner", "uvicorn", "fastapi", "starlette")) and rec.name != "uvicorn.access"
    )
    for text in (r.text, server_log):
        assert "Zyxwvut" not in text and "Secret-Name-42" not in text and "Traceback" not in text
    assert f"POST /cds-services/{SIGN} 400" in server_log  # each request is logged: route and status only
    assert "(other) 404" in server_log


def test_feedback_is_stored_de_identified(service, keys):
    bundle = _pm_bundle("fb-1")
    draft = draft_order("clopidogrel", 75, "fb-1", "draft-fb")
    cards = _post(
        service, keys, SEL, hook_body("order-select", "fb-1", drafts=[draft], prefetch=prefetch_of(bundle, "fb-1"))
    ).json()["cards"]
    crit = next(c for c in cards if c["indicator"] == "critical")
    fb = {
        "feedback": [
            {
                "card": crit["uuid"],
                "outcome": "overridden",
                "outcomeTimestamp": "2026-03-04T10:11:12Z",
                "overrideReason": {"reason": crit["overrideReasons"][0], "userComment": "pt Zyxwvut says ok"},
            },
            {
                "card": crit["uuid"],
                "outcome": "accepted",
                "outcomeTimestamp": "2026-03-04T10:11:13Z",
                "acceptedSuggestions": [{"id": crit["suggestions"][0]["uuid"]}],
            },
        ]
    }
    tok = keys.token(service.config.audience(SEL))
    r = httpx.post(
        f"{service.url}/cds-services/{SEL}/feedback", json=fb, headers={"Authorization": f"Bearer {tok}"}, timeout=30
    )
    assert r.status_code == 200 and r.json()["stored"] == 2
    with sqlite3.connect(service.audit_path) as con:
        rows = con.execute(
            "SELECT known_card, outcome, override_code, outcome_time, user_comment, accepted_json"
            " FROM feedback_audit WHERE card_uuid = ?",
            (crit["uuid"],),
        ).fetchall()
        cards_rows = con.execute("SELECT rule_id FROM card_audit WHERE card_uuid = ?", (crit["uuid"],)).fetchall()
    assert [r[1] for r in rows] == ["overridden", "accepted"] and all(r[0] == 1 for r in rows)
    assert rows[0][2] == crit["overrideReasons"][0]["code"] and rows[0][3] == "2026" and rows[0][4] is None
    assert json.loads(rows[1][5]) == [crit["suggestions"][0]["uuid"]]
    assert cards_rows and cards_rows[0][0].startswith("cpic.clopidogrel")


def test_audit_rows_are_de_identified(service, keys, fixtures_dir):
    bundle = orjson.loads((fixtures_dir / "synthea" / SYNTHEA).read_bytes())
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    pid = patient["id"]
    r = _post(service, keys, VIEW, hook_body("patient-view", pid, prefetch=prefetch_of(bundle, pid)))
    assert r.status_code == 200
    with sqlite3.connect(service.audit_path) as con:
        con.row_factory = sqlite3.Row
        rows = [dict(x) for x in con.execute("SELECT * FROM recommendation_audit")]
    assert rows
    text = json.dumps(rows)
    family = patient["name"][0]["family"]
    assert pid not in text and family not in text and patient["birthDate"] not in text
    for row in rows:
        assert row["patient_id"] is None and len(row["recorded_at"]) == 4 and len(row["as_of"]) == 4
        for plan in json.loads(row["plans_json"]):
            assert set(plan) == {"rank", "key", "regimen", "stopped", "findings"}
            assert all("message" not in f and "phenotype" not in f for f in plan["findings"])


def test_order_select_alternatives_are_screened_from_data(service, keys):
    """The paroxetine card offers antidepressants that are no CYP2D6 inhibitor per the rules data."""
    from planner.rule_files import read_yaml, rules_dir

    inhibitors = read_yaml(rules_dir() / "drugs" / "cyp_inhibitors.yaml")["inhibitors"]["CYP2D6"]
    bad = set(inhibitors.get("strong", [])) | set(inhibitors.get("moderate", []))
    bundle = _tamoxifen_bundle("alt-1")
    r = _post(
        service,
        keys,
        SEL,
        hook_body(
            "order-select",
            "alt-1",
            drafts=[draft_order("paroxetine", 20, "alt-1", "dp")],
            prefetch=prefetch_of(bundle, "alt-1"),
        ),
    )
    card = next(c for c in r.json()["cards"] if "tamoxifen" in c["summary"].lower())
    created = [a["resource"] for s in card["suggestions"] for a in s["actions"] if a["type"] == "create"]
    names = {m["medicationCodeableConcept"]["text"] for m in created}
    assert names and not names & bad and "paroxetine" not in names
    assert all(m["dosageInstruction"][0]["text"] for m in created)  # doses written by planner.dosing
    assert sum(s["isRecommended"] for s in card["suggestions"]) == 1


def test_jku_from_allowlist_is_fetched_and_other_jku_refused(planner, tmp_path):
    from fastapi import FastAPI

    from planner.service import create_app, load_config

    other = Keys("other")
    jwks_app = FastAPI()
    jwks_app.get("/jwks.json")(lambda: other.jwks())
    with LiveServer(jwks_app) as jw:
        port = free_port()
        (tmp_path / "svc.yaml").write_text(
            f"service_url: http://127.0.0.1:{port}/cds-services\ntrusted_issuers:\n"
            f"  - issuer: https://other.test.example\n    jku: [{jw.url}/jwks.json]\n",
            encoding="utf-8",
        )
        cfg = load_config(tmp_path / "svc.yaml")
        with LiveServer(create_app(cfg, planner=planner), port=port) as srv:
            body = hook_body("order-sign", "j-1", drafts=[], prefetch=prefetch_of(_pm_bundle("j-1"), "j-1"))
            url = f"{srv.url}/cds-services/{SIGN}"

            def call(**kw):
                tok = other.token(cfg.audience(SIGN), iss="https://other.test.example", alg="ES384", **kw)
                return httpx.post(url, json=body, headers={"Authorization": f"Bearer {tok}"}, timeout=30).status_code

            assert call(headers={"jku": f"{jw.url}/jwks.json"}) == 200
            assert call() == 200  # no jku header: the allowlisted sets
            assert call(headers={"jku": f"{jw.url}/other.json"}) == 401


def test_audit_keeps_no_value_the_baseline_can_be_recomputed_from(planner, tmp_path):
    from planner.audit import AuditConfig, AuditLog

    b = BundleBuilder(patient_id="aud-1", birth_date="1961-05-06")
    b.condition("44054006", display="Diabetes mellitus type 2", onset="2019-01-01")
    b.medication("metformin", 1000, start="2022-01-01")
    b.observation("hba1c", 8.37, date="2024-05-02")
    rec = planner.recommend(b.record(), area="t2d", as_of="2024-06-01", top=3)
    assert rec.plans and rec.plans[0].predicted.change_from_baseline is not None
    log = AuditLog(AuditConfig(path=tmp_path / "a.sqlite"))
    log.write(rec, input_sha256="0" * 64)
    row = log.rows()[0]
    text = json.dumps(row)
    assert "8.37" not in text and "2024-05-02" not in text and "1961" not in text and "aud-1" not in text
    assert row["as_of"] == "2024" and len(row["recorded_at"]) == 4
    for p, stored in zip(rec.plans, json.loads(row["plans_json"])):
        assert f"{p.predicted.mean}" not in text and "predicted" not in stored and "p_target" not in stored
    full = AuditLog(AuditConfig(path=tmp_path / "b.sqlite", include_identifiers=True))
    full.write(rec, input_sha256="1" * 64)
    assert full.rows()[0]["patient_id"] == "aud-1" and "predicted" in full.rows()[0]["plans_json"]


def test_order_select_selections_other_drafts_and_unreadable_orders(service, keys):
    pid = "sel-1"
    b = BundleBuilder(patient_id=pid)
    b.genotype("CYP2C19", "*1/*1")
    unknown = {
        **draft_order("clopidogrel", 75, pid, "d3"),
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "99999999"}],
            "text": "Zorblatamab 5 mg",
        },
    }
    drafts = [draft_order("clopidogrel", 75, pid, "d1"), draft_order("fluvoxamine", 100, pid, "d2"), unknown]
    body = hook_body(
        "order-select",
        pid,
        drafts=drafts,
        prefetch=prefetch_of(b.build(), pid),
        selections=["MedicationRequest/d1", "MedicationRequest/d3"],
    )
    cards = _post(service, keys, SEL, body).json()["cards"]
    # the unselected fluvoxamine draft still counts beside the selected clopidogrel
    both = [c for c in cards if "clopidogrel" in c["summary"] and "fluvoxamine" in c["summary"]]
    assert both and both[0]["indicator"] == "critical"
    assert all(
        a["resourceId"] == ["MedicationRequest/d1"]
        for s in both[0].get("suggestions", [])
        for a in s["actions"]
        if a["type"] == "delete"
    )
    assert any("could not be screened" in c["summary"] and c["indicator"] == "warning" for c in cards)
    assert all(c["indicator"] != "info" for c in cards)


def test_adjust_dose_suggestion_orders_the_dose_after_every_rule(service, keys):
    pid = "adj-1"
    b = BundleBuilder(patient_id=pid, birth_date="1950-01-01")
    b.genotype("CYP2C19", "*2/*2")
    body = hook_body(
        "order-sign", pid, drafts=[draft_order("citalopram", 40, pid, "d1")], prefetch=prefetch_of(b.build(), pid)
    )
    cards = _post(service, keys, SIGN, body).json()["cards"]
    adjusted = [c for c in cards if c.get("suggestions")]
    assert adjusted and all(c["indicator"] == "warning" for c in adjusted)
    doses = {
        a["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"]
        for c in adjusted
        for s in c["suggestions"]
        for a in s["actions"]
        if a["type"] == "create"
    }
    assert len(doses) == 1 and doses.pop() < 40  # one dose, below the draft's, whichever rule the card is
    assert len({c["summary"] for c in cards}) == len(cards)  # one card per rule


def test_fhir_server_timeout_and_allowlist_give_412(planner, keys, tmp_path):
    import asyncio

    from fastapi import FastAPI

    from planner.service import create_app, load_config

    slow = FastAPI()

    @slow.get("/{path:path}")
    async def _slow(path: str) -> dict:
        await asyncio.sleep(2)
        return {"resourceType": "Patient", "id": "t-1"}

    with LiveServer(slow) as fs:
        port = free_port()
        (tmp_path / "ehr.jwks.json").write_bytes(orjson.dumps(keys.jwks()))
        (tmp_path / "svc.yaml").write_text(
            f"service_url: http://127.0.0.1:{port}/cds-services\ntrusted_issuers:\n  - issuer: {ISSUER}\n"
            f"    jwks_file: ehr.jwks.json\nfhir_timeout_s: 0.3\nallowed_fhir_servers: [{fs.url}/fhir]\n",
            encoding="utf-8",
        )
        cfg = load_config(tmp_path / "svc.yaml")
        with LiveServer(create_app(cfg, planner=planner), port=port) as srv:

            def call(server: str) -> httpx.Response:
                body = hook_body("order-sign", "t-1", drafts=[], fhir_server=server, fhir_token="tok")
                tok = keys.token(cfg.audience(SIGN))
                return httpx.post(
                    f"{srv.url}/cds-services/{SIGN}", json=body, headers={"Authorization": f"Bearer {tok}"}, timeout=30
                )

            t0 = __import__("time").monotonic()
            r = call(f"{fs.url}/fhir")
            assert r.status_code == 412 and "timed out" in r.json()["missing"]["patient"]
            assert __import__("time").monotonic() - t0 < 10
            r = call(f"{fs.url}/elsewhere")
            assert r.status_code == 412 and "allowed_fhir_servers" in r.json()["missing"]["patient"]


def test_concurrent_cold_patient_view_is_deterministic(planner, keys, tmp_path):
    """Simultaneous uncached patient-view calls (threads of one server) give the same plans as one call."""
    from concurrent.futures import ThreadPoolExecutor

    from planner.service import create_app, load_config

    port = free_port()
    (tmp_path / "ehr.jwks.json").write_bytes(orjson.dumps(keys.jwks()))
    (tmp_path / "svc.yaml").write_text(
        f"service_url: http://127.0.0.1:{port}/cds-services\ntrusted_issuers:\n"
        f"  - issuer: {ISSUER}\n    jwks_file: ehr.jwks.json\n",
        encoding="utf-8",
    )
    cfg = load_config(tmp_path / "svc.yaml")
    with LiveServer(create_app(cfg, planner=planner), port=port) as srv:

        def view(pid: str) -> list:
            body = hook_body("patient-view", pid, prefetch=prefetch_of(_t2d_bundle(pid), pid))
            tok = keys.token(cfg.audience(VIEW))
            r = httpx.post(
                f"{srv.url}/cds-services/{VIEW}", json=body, headers={"Authorization": f"Bearer {tok}"}, timeout=60
            )
            assert r.status_code == 200
            return [(c["summary"], c["detail"]) for c in r.json()["cards"]]

        pids = ["cc-1", "cc-2", "cc-1", "cc-2", "cc-1", "cc-2"]
        with ThreadPoolExecutor(6) as ex:
            together = list(ex.map(view, pids))
    alone = {}
    with LiveServer(create_app(cfg, planner=planner), port=free_port()) as srv2:
        for pid in ("cc-1", "cc-2"):
            body = hook_body("patient-view", pid, prefetch=prefetch_of(_t2d_bundle(pid), pid))
            aud = cfg.audience(VIEW)
            r = httpx.post(
                f"{srv2.url}/cds-services/{VIEW}",
                json=body,
                headers={"Authorization": f"Bearer {keys.token(aud)}"},
                timeout=60,
            )
            alone[pid] = [(c["summary"], c["detail"]) for c in r.json()["cards"]]
    assert alone["cc-1"] and any("t2d" in d or "diabetes" in s.lower() for s, d in alone["cc-1"])
    for pid, cards in zip(pids, together):
        assert cards == alone[pid]


def test_indicator_follows_action_and_strength_from_data():
    from planner.rule_files import read_yaml, rules_dir
    from planner.service import load_definitions

    defs = load_definitions()
    rows = read_yaml(rules_dir() / "service" / "cds_services.yaml")["indicators"]
    for row in rows:  # each row is reachable: what it says is what a finding of that action and strength gets
        strength = None if row["strength"] == "*" else row["strength"]
        first = next(r for r in rows if r["action"] == row["action"] and r["strength"] in ("*", strength))
        assert defs.indicator(row["action"], strength) == first["indicator"]
    assert defs.indicator("exclude", "Strong") == "critical" and defs.indicator("exclude", "Optional") == "warning"
    assert defs.indicator("exclude", None) == "critical" and defs.indicator("info", "Strong") == "info"


def test_patient_view_plan_card_lists_the_records_data_quality_warnings(service, keys):
    """A stopped order whose statusReason is a string (not a CodeableConcept): the plan card says the record holds
    a data-quality warning naming the resource and the field; the same record without it gets no such lines."""
    details = {}
    for bad in (True, False):
        pid = f"sr-{bad}"
        doc = _t2d_bundle(pid)
        if bad:
            b = BundleBuilder(patient_id=pid)
            b.medication("glipizide", 5, start="2025-02-01", end="2025-04-01", status="stopped")
            order = next(e for e in b.build()["entry"] if e["resource"]["resourceType"] == "MedicationRequest")
            order["resource"] |= {"id": "mr-sr", "statusReason": "hypoglycaemia"}
            doc["entry"].append(order)
        r = _post(service, keys, VIEW, hook_body("patient-view", pid, prefetch=prefetch_of(doc, pid)))
        assert r.status_code == 200, r.text
        plan = next(c for c in r.json()["cards"] if c["source"].get("topic", {}).get("code") == "t2d")
        details[bad] = plan["detail"]
    assert "Data-quality warnings in the record (1):" in details[True]
    assert (
        "- status-reason-unreadable: statusReason is not a CodeableConcept; not read (MedicationRequest/mr-sr "
        "statusReason)" in details[True]
    )
    assert "hypoglycaemia" not in details[True]  # the value stays on the record
    assert "Data-quality warnings" not in details[False]
