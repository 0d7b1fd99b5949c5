"""The service's OpenAPI schema fuzzed with schemathesis: bounded, against uvicorn on 127.0.0.1 only, no 5xx.

Every generated call carries a fresh valid token for the operation's audience, so the fuzzer reaches the
hook code (prefetch parsing, draft orders, cards), not only the 401 of the token check.
"""

from __future__ import annotations

import orjson
import pytest

pytest.importorskip("fastapi")  # the service extra; skipped without it
pytest.importorskip("jwt")
schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from service_helpers import ISSUER, Keys, LiveServer, free_port  # noqa: E402

pytestmark = pytest.mark.slow

KEYS = Keys()
STATE: dict = {}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    from planner import Planner
    from planner.service import create_app, load_config

    d = tmp_path_factory.mktemp("fuzz")
    (d / "ehr.jwks.json").write_bytes(orjson.dumps(KEYS.jwks()))
    port = free_port()
    (d / "service.yaml").write_text(
        f"service_url: http://127.0.0.1:{port}/cds-services\n"
        f"trusted_issuers:\n  - issuer: {ISSUER}\n    jwks_file: ehr.jwks.json\naudit: audit.sqlite\n",
        encoding="utf-8",
    )
    cfg = load_config(d / "service.yaml")
    with LiveServer(create_app(cfg, planner=Planner.load()), port=port) as srv:
        STATE["config"] = cfg
        yield schemathesis.openapi.from_url(f"{srv.url}/openapi.json")


def test_no_server_errors(api_schema):
    """Each operation: up to 20 generated cases (valid and invalid data), each called once."""
    cfg = STATE["config"]
    ops = [r.ok() for r in api_schema.get_all_operations()]
    assert {op.path for op in ops} >= {"/cds-services", "/cds-services/planner-order-select"}
    calls = {"n": 0, "status": set()}
    for op in ops:
        strategy = st.one_of(op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE))

        @given(case=strategy)
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case):
            headers = {}
            if case.method.upper() == "POST":
                sid = case.path.removeprefix("/cds-services/").removesuffix("/feedback")
                headers["Authorization"] = f"Bearer {KEYS.token(cfg.audience(sid))}"
            resp = case.call_and_validate(headers=headers, checks=[not_a_server_error], timeout=30)
            calls["n"] += 1
            calls["status"].add(resp.status_code)

        run()
    assert calls["n"] >= len(ops) and all(s < 500 for s in calls["status"])


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**9), 10**9)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=8,
)


@st.composite
def _draft(draw):
    """A draft MedicationRequest whose fields are sometimes right, sometimes any JSON."""
    code = draw(st.sampled_from(["32968", "32937", "6809", "309362", "99999999", "", "abc"]))
    dose = draw(
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e9),
            st.integers(-5, 10**7),
            st.text(max_size=5),
            st.none(),
        )
    )
    res = {
        "resourceType": "MedicationRequest",
        "id": draw(st.from_regex(r"[A-Za-z0-9.\-]{1,10}", fullmatch=True)),
        "status": draw(st.sampled_from(["draft", "active", "weird"])),
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code}],
            "text": draw(st.text(max_size=20)),
        },
        "dosageInstruction": [
            {
                "timing": {
                    "repeat": {
                        "frequency": draw(st.one_of(st.integers(-2, 6), _JSON)),
                        "period": 1,
                        "periodUnit": draw(st.sampled_from(["d", "wk", "x"])),
                    }
                },
                "doseAndRate": [
                    {
                        "doseQuantity": {
                            "value": dose,
                            "unit": draw(st.sampled_from(["mg", "g", "mL", "tablet", "", "bogus"])),
                        }
                    }
                ],
            }
        ],
    }
    for key in draw(
        st.lists(st.sampled_from(["dosageInstruction", "medicationCodeableConcept", "subject", "id"]), max_size=2)
    ):
        res[key] = draw(_JSON)
    return res


def test_draft_orders_of_any_shape_never_give_5xx(api_schema):
    """Structured fuzzing deeper than the schema: a real patient, draft orders with odd or broken fields."""
    import httpx
    from service_helpers import hook_body, prefetch_of

    from planner.testing import BundleBuilder

    cfg = STATE["config"]
    b = BundleBuilder(patient_id="fz-1")
    b.genotype("CYP2C19", "*2/*2")
    b.medication("tamoxifen", 20, start="2023-01-01")
    prefetch = prefetch_of(b.build(), "fz-1")
    base = cfg.service_url
    seen: set[int] = set()

    @given(drafts=st.lists(_draft(), min_size=1, max_size=3), hook=st.sampled_from(["order-select", "order-sign"]))
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(drafts, hook):
        sid = f"planner-{hook}"
        body = hook_body(hook, "fz-1", drafts=drafts, prefetch=prefetch)
        r = httpx.post(
            f"{base}/{sid}", json=body, timeout=30, headers={"Authorization": f"Bearer {KEYS.token(cfg.audience(sid))}"}
        )
        seen.add(r.status_code)
        assert r.status_code < 500, r.text
        if r.status_code == 200:
            for c in r.json()["cards"]:
                assert len(c["summary"]) < 140 and c["uuid"]

    run()
    assert 200 in seen
