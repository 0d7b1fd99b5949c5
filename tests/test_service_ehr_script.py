"""scripts/ehr_integration.py against a real FHIR REST server on 127.0.0.1 (read, search, $everything, create)."""

from __future__ import annotations

import importlib.util
import json

import orjson
import pytest

pytest.importorskip("fastapi")  # the service extra; skipped without it
pytest.importorskip("jwt")

from service_helpers import FhirStore, LiveServer, fhir_app

SYNTHEA = "Morris_Lockman_cd9e9826-aea1-4682-adc0-c1d97633bf31.json"


@pytest.fixture(scope="module")
def script(fixtures_dir):
    path = fixtures_dir.parent / "scripts" / "ehr_integration.py"
    spec = importlib.util.spec_from_file_location("ehr_integration", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture()
def fhir(fixtures_dir):
    store = FhirStore(token="s3cret-token", page_size=25)
    store.load(orjson.loads((fixtures_dir / "synthea" / SYNTHEA).read_bytes()))
    with LiveServer(fhir_app(store)) as srv:
        srv.store = store
        yield srv


def _pid(store: FhirStore) -> str:
    return next(iter(store.data["Patient"]))


@pytest.mark.parametrize("everything", [True, False])
def test_reads_recommends_and_writes_careplans_back(script, fhir, everything, monkeypatch, capsys):
    store = fhir.store
    store.everything = everything
    monkeypatch.setenv("FHIR_TOKEN", store.token)
    pid = _pid(store)
    rc = script.main(["--fhir-server", fhir.url, "--patient", pid, "--as-of", "2020-01-01", "--top", "2"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    summary = json.loads(out.out)
    assert summary["read_with"] == ("$everything" if everything else "search")
    paths = [p for _, p in store.requests]
    if everything:
        assert any(p.startswith(f"/Patient/{pid}/$everything") for p in paths)
        assert any("_offset=" in p for p in paths)  # paged
    else:
        assert any(p.startswith("/Observation?patient=") for p in paths)
    assert summary["plans"] >= 1 and set(summary["areas"]) >= {"t2d"}
    plans = [r for r in store.created if r["resourceType"] == "CarePlan"]
    meds = {f"MedicationRequest/{r['id']}": r for r in store.created if r["resourceType"] == "MedicationRequest"}
    assert len(plans) == summary["plans"] and meds
    for cp in plans:
        assert (
            cp["intent"] == "proposal" and cp["status"] == "draft" and cp["subject"] == {"reference": f"Patient/{pid}"}
        )
        for act in cp["activity"]:
            if "reference" in act:
                ref = act["reference"]["reference"]
                assert ref in meds and meds[ref]["intent"] == "proposal"
    assert sorted(summary["created"]) == sorted([*meds, *(f"CarePlan/{p['id']}" for p in plans)])
    assert pid not in out.out and store.token not in out.out + out.err


def test_server_errors_exit_2_without_traceback(script, fhir, monkeypatch, capsys):
    monkeypatch.setenv("FHIR_TOKEN", "wrong")
    rc = script.main(["--fhir-server", fhir.url, "--patient", _pid(fhir.store), "--dry-run"])
    err = capsys.readouterr().err
    assert rc == 2 and "answered 401" in err and "Traceback" not in err
    monkeypatch.setenv("FHIR_TOKEN", fhir.store.token)
    rc = script.main(["--fhir-server", fhir.url, "--patient", "no-such-patient", "--dry-run"])
    assert rc == 2 and "404" in capsys.readouterr().err
