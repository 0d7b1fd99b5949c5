"""The service's OpenAPI schema fuzzed with schemathesis: bounded, against uvicorn on 127.0.0.1 only, no 5xx.

Every generated call carries a fresh valid token for the operation's audience, so the fuzzer reaches the
hook code (prefetch parsing, draft orders, cards), not only the 401 of the token check.
"""

from __future__ import annotations

import orjson
import pytest

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
        encoding="utf-8")
    cfg = load_config(d / "service.yaml")
    with LiveServer(create_app(cfg, planner=Planner.load()), port=port) as srv:
        STATE["config"] = cfg
        yield schemathesis.openapi.from_url(f"{srv.url}/openapi.json")


def test_no_server_errors(api_schema):
    """Each operation: up to 30 generated cases (valid and invalid data), each called once."""
    cfg = STATE["config"]
    ops = [r.ok() for r in api_schema.get_all_operations()]
    assert {op.path for op in ops} >= {"/cds-services", "/cds-services/planner-order-select"}
    calls = {"n": 0, "status": set()}
    for op in ops:

        strategy = st.one_of(op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE))

        @given(case=strategy)
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
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
