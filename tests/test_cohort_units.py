"""Pieces of the cohort evaluation checked against first principles."""

from __future__ import annotations

import datetime as dt

import numpy as np

from planner.batch import record_at
from planner.cohort.ope import bootstrap_mean, regimen_from_key
from planner.cohort.rows import _crps
from planner.record import Medication, PatientRecord, PgxResult


def test_record_at_is_the_record_before_the_decision() -> None:
    d = dt.date
    meds = (
        Medication(
            id="a", ingredient="metformin", rxcui="6809", start=d(2020, 1, 1), end=d(2020, 6, 1), status="stopped"
        ),  # stopped on the decision day: still taken the day it was decided
        Medication(id="b", ingredient="sitagliptin", rxcui="593411", start=d(2020, 6, 1)),  # the decision
        Medication(id="c", ingredient="glipizide", rxcui="4821", start=d(2019, 1, 1), end=d(2019, 6, 1)),
    )
    pgx = (PgxResult(gene="CYP2C9", phenotype="Poor Metabolizer", source="fhir-phenotype-stu1", date=d(2021, 1, 1)),)
    rec = PatientRecord(patient_id="p", as_of=d(2022, 1, 1), medications=meds, pgx=pgx)
    view = record_at(rec, d(2020, 6, 1))
    assert view.as_of == d(2020, 6, 1)
    assert [m.id for m in view.medications] == ["a", "c"]
    a = view.medications[0]
    assert a.end is None and a.status == "active" and a.is_active(d(2020, 6, 1))
    assert view.medications[1].end == d(2019, 6, 1)  # an end known before the decision stays
    assert view.pgx == ()  # a genotype reported later was not known then


def test_crps_matches_its_definition() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    y = 0.3
    brute = np.abs(x - y).mean() - 0.5 * np.abs(x[:, None] - x[None, :]).mean()
    assert abs(_crps(x, y) - brute) < 1e-9


def test_cluster_bootstrap_mean_and_ratio() -> None:
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(200), 3)
    y = rng.normal(5.0, 1.0, 200)[groups] + rng.normal(0, 0.5, 600)
    est = bootstrap_mean(y, groups, n_boot=500, level=0.9, seed=0)
    assert abs(est["value"] - y.mean()) < 1e-12 and est["lower"] < est["value"] < est["upper"]
    # patients, not rows, are resampled: the interval is wider than the row bootstrap's would be
    naive_se = y.std() / np.sqrt(len(y))
    assert (est["upper"] - est["lower"]) / (2 * 1.645) > 1.3 * naive_se
    w = rng.uniform(0.5, 2.0, 600)
    ratio = bootstrap_mean(w * y, groups, den=w, n_boot=200, seed=0)
    assert abs(ratio["value"] - (w * y).sum() / w.sum()) < 1e-12


def test_regimen_keys_parse() -> None:
    assert regimen_from_key("insulin glargine@1.456+metformin") == {"insulin glargine": 1.456, "metformin": None}
    assert regimen_from_key("none") == {} and regimen_from_key(None) == {}


def test_batch_gc_tunes_the_collector_only_while_batches_run() -> None:
    import gc
    import threading

    from planner.cohort import run as run_mod

    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    inside = threading.Event()
    release = threading.Event()

    def other_batch() -> None:
        with run_mod._batch_gc():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=other_batch)
    t.start()
    assert inside.wait(10)
    with run_mod._batch_gc():  # a second batch in the same process (Dask worker with two threads)
        assert gc.get_threshold() == run_mod._GC_THRESHOLD
    assert gc.get_threshold() == run_mod._GC_THRESHOLD  # the other batch is still running
    if frozen == 0:
        assert gc.get_freeze_count() > 0
    release.set()
    t.join(10)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen


def test_static_malloc_thresholds_of_a_dask_nanny_are_undone() -> None:
    import os
    import subprocess
    import sys

    code = "from planner.cohort.run import _malloc_for_planning as f; print(f())"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    plain = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    nanny = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "MALLOC_TRIM_THRESHOLD_": "65536"},  # what distributed's nanny gives its workers
        capture_output=True,
        text=True,
        check=True,
    )
    assert plain.stdout.strip() == "False"
    assert nanny.stdout.strip() == ("True" if sys.platform.startswith("linux") else "False")


def test_race_and_ethnicity_come_from_the_us_core_extensions() -> None:
    import orjson

    from planner.cohort.rows import _demographics

    base = "http://hl7.org/fhir/us/core/StructureDefinition/"
    race = {
        "url": base + "us-core-race",
        "extension": [
            {"url": "ombCategory", "valueCoding": {"code": "2106-3", "display": "White"}},
            {"url": "text", "valueString": "White"},
        ],
    }
    eth = {
        "url": base + "us-core-ethnicity",
        "extension": [{"url": "ombCategory", "valueCoding": {"code": "2186-5", "display": "Not Hispanic or Latino"}}],
    }
    with_ext = {"resourceType": "Patient", "id": "a", "extension": [race, eth]}
    plain = {"resourceType": "Patient", "id": "b"}
    bundle = {"resourceType": "Bundle", "entry": [{"resource": with_ext}, {"resource": plain}]}
    got = _demographics(orjson.dumps(bundle))
    assert got["a"] == {"race": "White", "ethnicity": "Not Hispanic or Latino"}
    assert got["b"] == {"race": None, "ethnicity": None}
    assert _demographics(orjson.dumps({"resourceType": "Bundle", "entry": [{"resource": plain}]})) == {}
    # a URL spelled with a JSON \u escape is still found (the fast path only skips input that cannot hold one)
    escaped = orjson.dumps(bundle).replace(b"us-core-race", b"us-core-r\\u0061ce")
    assert _demographics(escaped)["a"]["race"] == "White"
    no_prefix = orjson.dumps(bundle).replace(b"us-core-", b"\\u0075s-core-")  # no literal "us-core-" left
    assert b"us-core-" not in no_prefix
    assert _demographics(no_prefix)["a"] == {"race": "White", "ethnicity": "Not Hispanic or Latino"}
    ndjson = orjson.dumps(with_ext) + b"\n" + orjson.dumps(plain) + b"\n"
    assert _demographics(ndjson)["a"]["race"] == "White"
