"""Features at t0: values, units, the scikit-learn protocol, and no leakage from data dated after t0."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from planner.areas import load_area
from planner.errors import ConfigError
from planner.features import AreaFeaturizer, feature_units, features_at
from planner.record import Condition, Measurement, Medication, PatientRecord, PgxResult
from planner.status import GeneStatus

D = dt.date
HTN = load_area("hypertension")


def _m(q, unit, loinc, day, v):
    return Measurement(date=day, value=v, unit=unit, loinc=loinc)


def rich_record(pid: str = "r1") -> PatientRecord:
    base = D(2020, 1, 1)
    days = [base + dt.timedelta(days=60 * k) for k in range(20)]
    obs = {
        "sbp": tuple(_m("sbp", "mm[Hg]", "8480-6", d, 150 - k) for k, d in enumerate(days)),
        "bmi": tuple(_m("bmi", "kg/m2", "39156-5", d, 31 + 0.1 * k) for k, d in enumerate(days[::3])),
        "egfr": tuple(_m("egfr", "mL/min/1.73m2", "33914-3", d, 80 - k) for k, d in enumerate(days[::4])),
    }
    meds = (
        Medication(
            id="m1", rxcui="29046", ingredient="lisinopril", dose_mg_day=10, status="completed", start=D(2020, 2, 1)
        ),
        Medication(
            id="m2",
            rxcui="29046",
            ingredient="lisinopril",
            dose_mg_day=20,
            status="active",
            start=D(2020, 8, 1),
            end=D(2022, 6, 1),
        ),
        Medication(
            id="m3",
            rxcui="17767",
            ingredient="amlodipine",
            dose_mg_day=5,
            status="stopped",
            start=D(2021, 1, 1),
            end=D(2021, 9, 1),
        ),
    )
    conds = (
        Condition(code="44054006", onset=D(2020, 5, 1)),  # diabetes, onset during follow-up
        Condition(code="431855005", onset=D(2019, 1, 1), abatement=D(2021, 3, 1)),  # ckd, abated
        Condition(code="I50.9", system="http://hl7.org/fhir/sid/icd-10-cm", onset=D(2021, 6, 1)),
    )
    pgx = (PgxResult(gene="CYP2D6", diplotype="*4/*4", source="fhir-genotype", date=D(2020, 9, 1)),)
    return PatientRecord(
        patient_id=pid,
        birth_date=D(1955, 3, 1),
        sex="male",
        as_of=D(2023, 3, 1),
        conditions=conds,
        medications=meds,
        observations=obs,
        pgx=pgx,
    )


def test_features_at_values():
    rec = rich_record()
    f = features_at(rec, HTN, D(2020, 4, 1))
    assert f["age"] == pytest.approx(rec.age(D(2020, 4, 1)))
    assert f["sex_female"] == 0.0
    assert f["baseline"] == 149 and f["baseline_missing"] == 0  # 2020-03-01 value
    assert f["diabetes"] == 0.0 and f["ckd"] == 1.0 and f["heart_failure"] == 0.0
    assert f["cyp2d6"] == GeneStatus.NOT_TESTED  # the genotype is dated 2020-09-01
    assert f["cur_ace_inhibitor"] == pytest.approx(0.5) and f["cur_n_drugs"] == 1
    g = features_at(rec, HTN, D(2021, 7, 1))
    assert g["diabetes"] == 1.0 and g["ckd"] == 0.0 and g["heart_failure"] == 1.0  # ICD-10 prefix I50
    assert g["cyp2d6"] == "Poor Metabolizer"  # derived from the diplotype by planner.safety
    assert g["cur_ace_inhibitor"] == 1.0 and g["cur_dihydropyridine_ccb"] == 1.0 and g["cur_n_drugs"] == 2
    late = features_at(rec, HTN, D(2030, 1, 1))
    assert late["baseline"] is None and late["baseline_missing"] == 1.0
    assert late["egfr"] is None and late["egfr_missing"] == 1.0


def _perturb_after(rec: PatientRecord, t0: dt.date, shift: float, add_days: int) -> PatientRecord:
    """Change every fact dated after t0: values, dates (still after t0), extra facts after t0."""
    later = t0 + dt.timedelta(days=add_days)
    obs = {}
    for q, series in rec.observations.items():
        kept = [m if m.date <= t0 else m.model_copy(update={"value": m.value + shift}) for m in series]
        kept = [m for k, m in enumerate(kept) if m.date <= t0 or k % 2 == 0]  # drop some later ones
        kept.append(Measurement(date=later, value=99.0, unit=series[0].unit, loinc=series[0].loinc))
        obs[q] = tuple(sorted(kept, key=lambda m: m.date))
    meds = []
    for m in rec.medications:
        upd = {}
        if m.end is not None and m.end > t0:
            upd["end"] = max(m.end, later)
        if m.start is not None and m.start > t0:
            upd["dose_mg_day"] = (m.dose_mg_day or 1) * 2
        meds.append(m.model_copy(update=upd))
    meds.append(Medication(rxcui="5487", ingredient="hydrochlorothiazide", dose_mg_day=25, start=later))
    meds.append(Medication(rxcui="29046", ingredient="lisinopril", dose_mg_day=40, start=later))
    conds = [
        c.model_copy(update={"abatement": later}) if c.abatement and c.abatement > t0 else c for c in rec.conditions
    ]
    conds.append(Condition(code="88805009", onset=later))
    pgx = list(rec.pgx) + [PgxResult(gene="CYP2D6", diplotype="*1/*1", source="fhir-genotype", date=later)]
    return rec.model_copy(
        update={"observations": obs, "medications": tuple(meds), "conditions": tuple(conds), "pgx": tuple(pgx)}
    )


@settings(max_examples=40)
@given(day=st.integers(0, 1300), shift=st.floats(-30, 30, allow_nan=False), add=st.integers(1, 400))
def test_no_leakage_changing_data_after_t0_changes_no_feature(day, shift, add):
    rec = rich_record()
    t0 = D(2020, 1, 1) + dt.timedelta(days=day)
    assert features_at(rec, HTN, t0) == features_at(_perturb_after(rec, t0, shift, add), HTN, t0)


def test_leakage_check_would_notice_a_leak():
    """The perturbation does reach the features when t0 is moved past it (the test above can fail)."""
    rec = rich_record()
    t0 = D(2020, 6, 1)
    pert = _perturb_after(rec, t0, 10.0, 30)
    assert features_at(rec, HTN, t0 + dt.timedelta(days=40)) != features_at(pert, HTN, t0 + dt.timedelta(days=40))


def test_featurizer_sklearn_protocol_units_and_fill():
    recs = [rich_record("a"), rich_record("b")]
    X = [(recs[0], D(2020, 4, 1)), (recs[1], D(2021, 7, 1)), (recs[0], D(2030, 1, 1))]
    fz = AreaFeaturizer(HTN)
    out = fz.fit_transform(X)
    assert list(out.columns) == list(fz.get_feature_names_out())
    assert out.attrs["units"]["baseline"] == "mm[Hg]" and out.attrs["units"]["age"] == "years"
    assert fz.units_ == feature_units(HTN)
    assert out["baseline_missing"].tolist() == [0.0, 0.0, 1.0]
    assert not out.drop(columns=["cyp2d6"]).isna().any().any()
    assert out.loc[2, "egfr"] == 85.0  # the area default fills, the flag keeps the fact
    assert out["cyp2d6"].tolist() == [GeneStatus.NOT_TESTED, "Poor Metabolizer", "Poor Metabolizer"]
    assert fz.categories_["cyp2d6"] == sorted({GeneStatus.NOT_TESTED, "Poor Metabolizer"})
    raw = AreaFeaturizer(HTN, fill_missing=False).fit(X).transform(X)
    assert np.isnan(raw.loc[2, "egfr"])
    c = clone(fz)
    assert c.get_params()["area"] == HTN and not hasattr(c, "units_")
    with pytest.raises(Exception, match="not fitted"):
        c.transform(X)
    with pytest.raises(ConfigError, match="pair"):
        fz.transform([recs[0]])
    with pytest.raises(ConfigError, match="date"):
        fz.transform([(recs[0], "not a date")])


def test_featurizer_in_a_pipeline_with_a_model():
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    recs = [rich_record(str(i)) for i in range(3)]
    X = [(r, D(2020, 1, 1) + dt.timedelta(days=90 * k)) for k, r in enumerate(recs * 4)]
    y = np.arange(len(X), dtype=float)
    numeric = FunctionTransformer(lambda f: f.select_dtypes("number"))
    pipe = make_pipeline(AreaFeaturizer(HTN), numeric, LinearRegression())
    pipe.fit(X, y)
    assert pipe.predict(X).shape == (len(X),)


def test_no_leakage_on_simulated_ingested_records():
    """Every candidate t0 of simulated patients (through FHIR and ingest): data after t0 changes nothing."""
    from planner.episodes import medication_intervals, regimen_changes
    from planner.simulate import simulate_cohort

    for area_id in ("lipids", "depression"):
        cohort = simulate_cohort(area_id, 15, seed=5)
        area = cohort.area
        checked = 0
        for rec in cohort.records():
            for ch in regimen_changes(medication_intervals(rec, area)):
                pert = _perturb_after(rec, ch.t0, 7.0, 45)
                assert features_at(rec, area, ch.t0) == features_at(pert, area, ch.t0)
                checked += 1
        assert checked > 20
