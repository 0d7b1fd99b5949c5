"""Episode rules (DESIGN.md) on hand-built records, on the real Synthea fixtures, and the acceptance check:
episodes from simulated bundles, ingested by planner.ingest, equal the simulator's own decisions."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pandas as pd
import pytest
from pydantic import ValidationError

from planner.areas import load_area
from planner.cli import main as cli_main
from planner.episodes import (
    Episode,
    episodes_frame,
    extract_episodes,
    medication_intervals,
    regimen_changes,
    regimen_on,
)
from planner.ingest import read_records
from planner.record import Measurement, Medication, PatientRecord
from planner.simulate import simulate_cohort
from planner.simulate.check import compare_episodes, feature_columns
from planner.status import GeneStatus
from planner.testing import BundleBuilder

D = dt.date
T2D = load_area("t2d")


def _rec(meds, hba1c, **kw) -> PatientRecord:
    obs = {"hba1c": tuple(Measurement(date=d, value=v, unit="%", loinc="4548-4") for d, v in sorted(hba1c))}
    return PatientRecord(
        patient_id="p",
        birth_date=D(1960, 1, 1),
        sex="female",
        as_of=D(2030, 1, 1),
        medications=tuple(meds),
        observations=obs,
        **kw,
    )


def _med(ing, dose, start, end=None, status="active", rxcui=None, kind="MedicationRequest", mid=None):
    rx = rxcui or T2D.drug(ing).rxcui
    return Medication(
        id=mid, resource_type=kind, rxcui=rx, ingredient=ing, dose_mg_day=dose, status=status, start=start, end=end
    )


def test_intervals_dose_change_stop_cancel_and_error():
    meds = [
        _med("metformin", 500, D(2020, 1, 1)),  # ended by the later request (dose change)
        _med("metformin", 1000, D(2020, 6, 1), end=D(2021, 1, 1), status="completed"),
        _med("sitagliptin", 100, D(2020, 3, 1), status="stopped"),  # stopped, no end: never active
        _med("glipizide", 5, D(2020, 4, 1), end=D(2020, 9, 1), status="stopped"),  # stopped with end: active
        _med("pioglitazone", 30, D(2020, 2, 1), end=D(2021, 1, 1), status="entered-in-error"),  # void
        _med("empagliflozin", 10, D(2020, 5, 1), status="cancelled"),  # never active
        Medication(rxcui="29046", ingredient="lisinopril", dose_mg_day=10, start=D(2020, 1, 1)),  # not an area drug
    ]
    rec = _rec(meds, [])
    ivs = medication_intervals(rec, T2D)
    got = [(iv.ingredient, iv.dose_mg_day, iv.start, iv.end) for iv in ivs]
    assert got == [
        ("metformin", 500, D(2020, 1, 1), D(2020, 6, 1)),
        ("glipizide", 5, D(2020, 4, 1), D(2020, 9, 1)),
        ("metformin", 1000, D(2020, 6, 1), D(2021, 1, 1)),
    ]
    changes = regimen_changes(ivs)
    assert [(c.t0, c.before.key(), c.after.key()) for c in changes] == [
        (D(2020, 1, 1), "none", "metformin@500"),
        (D(2020, 4, 1), "metformin@500", "glipizide@5+metformin@500"),
        (D(2020, 6, 1), "glipizide@5+metformin@500", "glipizide@5+metformin@1000"),
        (D(2020, 9, 1), "glipizide@5+metformin@1000", "metformin@1000"),
        (D(2021, 1, 1), "metformin@1000", "none"),
    ]
    assert regimen_on(rec, T2D, D(2020, 5, 31)).key() == "glipizide@5+metformin@500"
    assert regimen_on(rec, T2D, D(2021, 1, 1)).key() == "none"  # end day is not active


def test_same_day_requests_later_one_wins_and_statements_count():
    meds = [
        _med("metformin", 500, D(2020, 1, 1)),
        _med("metformin", 1000, D(2020, 1, 1)),
        _med("sitagliptin", 50, D(2020, 2, 1), end=D(2020, 12, 1), kind="MedicationStatement"),
    ]
    ivs = medication_intervals(_rec(meds, []), T2D)
    assert [(iv.ingredient, iv.dose_mg_day) for iv in ivs] == [("metformin", 1000), ("sitagliptin", 50)]


def test_undated_medication_is_noted_not_guessed():
    res = extract_episodes(_rec([_med("metformin", 500, None)], []), T2D)
    assert res.candidates == 0 and res.notes["undated-medication"] == 1


def test_baseline_window_edges():
    t0 = D(2020, 7, 1)
    meds = [_med("metformin", 500, t0)]
    fu = (t0 + dt.timedelta(days=180), 7.0)
    inside = _rec(meds, [(t0 - dt.timedelta(days=180), 8.5), fu])
    outside = _rec(meds, [(t0 - dt.timedelta(days=181), 8.5), fu])
    on_t0 = _rec(meds, [(t0 - dt.timedelta(days=30), 9.0), (t0, 8.1), fu])
    after = _rec(meds, [(t0 + dt.timedelta(days=1), 8.1), fu])
    assert extract_episodes(inside, T2D).episodes[0].baseline == 8.5
    assert extract_episodes(outside, T2D).dropped == Counter({"no-baseline": 1})
    assert extract_episodes(on_t0, T2D).episodes[0].baseline == 8.1  # the latest, t0 included
    assert extract_episodes(after, T2D).dropped == Counter({"no-baseline": 1})


def test_followup_closest_to_180_days_in_window_and_ties_go_earlier():
    t0 = D(2020, 1, 1)
    meds = [_med("metformin", 500, t0)]
    base = (t0, 8.0)

    def fu(*offsets_values):
        rec = _rec(meds, [base] + [(t0 + dt.timedelta(days=o), v) for o, v in offsets_values])
        res = extract_episodes(rec, T2D)
        return (res.episodes[0].followup, (res.episodes[0].followup_date - t0).days) if res.episodes else res.dropped

    assert fu((100, 7.5), (200, 7.2), (300, 7.0)) == (7.2, 200)
    assert fu((170, 7.5), (190, 7.2)) == (7.5, 170)  # equally close: the earlier
    assert fu((59, 7.5)) == Counter({"no-follow-up": 1})
    assert fu((60, 7.5)) == (7.5, 60)
    assert fu((365, 7.5)) == (7.5, 365)
    assert fu((366, 7.5)) == Counter({"no-follow-up": 1})


def test_next_change_bounds_the_followup_and_overlap_is_reported():
    t0 = D(2020, 1, 1)
    obs = [
        (t0, 8.0),
        (t0 + dt.timedelta(days=100), 7.6),
        (t0 + dt.timedelta(days=150), 7.4),
        (t0 + dt.timedelta(days=200), 7.0),
        (t0 + dt.timedelta(days=400), 6.9),
    ]
    # a change at day 150: the follow-up of the first episode is the value on day 150 (on the change day), not 200
    meds = [_med("metformin", 500, t0), _med("metformin", 1000, t0 + dt.timedelta(days=150))]
    res = extract_episodes(_rec(meds, obs), T2D)
    first = res.episodes[0]
    assert (first.followup, (first.followup_date - t0).days) == (7.4, 150)
    assert first.regimen.key() == "metformin@500" and first.regimen_before.key() == "none"
    second = res.episodes[1]
    assert second.baseline == 7.4 and second.followup == 6.9 - 0 or second.followup == 7.0
    # a change 30 days after t0: overlapping-change
    meds = [_med("metformin", 500, t0), _med("metformin", 1000, t0 + dt.timedelta(days=30))]
    res = extract_episodes(_rec(meds, obs), T2D)
    assert res.dropped["overlapping-change"] == 1 and res.candidates == 2


def test_episode_features_and_json_round_trip():
    t0 = D(2020, 7, 1)
    rec = _rec(
        [_med("metformin", 1000, D(2020, 1, 1)), _med("sitagliptin", 100, t0)],
        [(D(2020, 1, 1), 9.0), (t0, 8.0), (D(2021, 1, 1), 7.1)],
    )
    res = extract_episodes(rec, T2D)
    ep = [e for e in res.episodes if e.t0 == t0][0]
    assert ep.features["baseline"] == ep.baseline == 8.0
    assert ep.features["cur_biguanide"] == pytest.approx(0.5) and ep.features["cur_dpp4_inhibitor"] == 0
    assert ep.features["cyp2c9"] == GeneStatus.NOT_TESTED
    assert ep.features["age"] == pytest.approx(rec.age(t0))
    assert Episode.model_validate_json(ep.model_dump_json()) == ep
    with pytest.raises(ValidationError, match="frozen"):
        ep.baseline = 1.0  # frozen


def test_bundlebuilder_record_through_ingest():
    b = BundleBuilder(patient_id="bb1", as_of="2024-06-01")
    b.condition("44054006", "Diabetes mellitus type 2", onset="2019-01-01")
    b.medication("metformin", 1000, start="2022-01-10", times_per_day=2)
    b.medication("metformin", 2000, start="2022-07-01", times_per_day=2)
    b.medication("sitagliptin", 100, start="2022-03-01", status="stopped")  # no end: never active
    for day, v in (("2021-12-01", 8.6), ("2022-06-20", 7.8), ("2023-01-05", 7.2)):
        b.observation("hba1c", v, date=day)
    res = extract_episodes(b.record(), T2D)
    got = [(e.t0.isoformat(), e.regimen.key(), e.baseline, e.followup) for e in res.episodes]
    assert got == [("2022-01-10", "metformin@1000", 8.6, 7.8), ("2022-07-01", "metformin@2000", 7.8, 7.2)]


def test_real_synthea_fixtures(fixtures_dir):
    records = read_records(str(fixtures_dir / "synthea"))
    report = {}
    for name in ("t2d", "hypertension", "lipids"):
        frame, counts = episodes_frame(records, name)
        report[name] = counts
        assert counts["candidates"] == counts["episodes"] + sum(
            counts.get(k, 0) for k in ("no-baseline", "overlapping-change", "no-follow-up")
        )
        for _, row in frame.iterrows():
            assert 0 <= (row["t0"] - row["baseline_date"]).days <= 180
            assert 60 <= (row["followup_date"] - row["t0"]).days <= 365
    # the diabetes patients start metformin in the record; Synthea writes no dose strength for it
    assert report["t2d"]["candidates"] >= 3 and report["t2d"]["episodes"] >= 1
    assert report["hypertension"]["candidates"] >= 3


@pytest.mark.parametrize("area", ["t2d", "lipids", "hypertension", "depression"])
def test_acceptance_simulated_bundles_match_the_simulator(tmp_path, area):
    """Acceptance at 150 patients (benchmarks/simulate.py runs it at 2,000 per area)."""
    cohort = simulate_cohort(area, 150, seed=21)
    cohort.write_fhir(str(tmp_path))
    records = read_records(str(tmp_path / "fhir"))
    assert len(records) == 150
    frame, counts = episodes_frame(records, area)
    feats = feature_columns(cohort.area)
    match = compare_episodes(cohort.decisions, frame, counts, features=feats)
    assert set(match.feature_mismatches) == set(feats)
    assert match.ok, match.summary()
    assert match.simulated > 150
    assert not any(match.feature_mismatches.values()), match.feature_mismatches


@pytest.mark.slow  # two simulations written as FHIR and read back through the CLI (~2.5 s CPU)
def test_cli_episodes_writes_parquet_and_reports_drops(tmp_path, capsys):
    assert cli_main(["simulate", "--area", "lipids", "--n", "40", "--seed", "3", "--out", str(tmp_path / "sim")]) == 0
    out = tmp_path / "ep.parquet"
    # the whole simulate output folder reads as a cohort (its metadata is YAML, the truth Parquet)
    assert cli_main(["episodes", str(tmp_path / "sim"), "--area", "lipids", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "candidate episodes" in text and "dropped no-baseline" in text
    frame = pd.read_parquet(out)
    truth = pd.read_parquet(tmp_path / "sim" / "truth.parquet")
    assert len(frame) == int(truth["episode"].sum())
    assert cli_main(["episodes", str(tmp_path / "missing"), "--area", "lipids"]) == 2
    again = ["simulate", "--area", "lipids", "--n", "10", "--seed", "3", "--out", str(tmp_path / "sim")]
    assert cli_main(again) == 2  # would mix with the 40 bundles there
    assert cli_main(again + ["--overwrite"]) == 0
    assert len(list((tmp_path / "sim" / "fhir").glob("*.json"))) == 10
    assert cli_main(["episodes", str(tmp_path / "sim" / "fhir"), "--area", "oncology"]) == 2


def test_frame_notes_and_counts_are_separate():
    rec = _rec([_med("metformin", 500, None), _med("metformin", 500, D(2020, 1, 1))], [(D(2020, 1, 1), 8.0)])
    frame, counts = episodes_frame([rec], T2D)
    assert frame.attrs["notes"] == {"undated-medication": 1}
    assert counts == Counter({"candidates": 1, "no-follow-up": 1})
    assert list(frame.columns)[:4] == ["patient_id", "t0", "regimen", "regimen_before"]


# ---- property test: the interval/change logic against a day-by-day brute force ---------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_DRUGS = ["metformin", "sitagliptin", "glipizide"]
_STATUSES = ["active", "completed", "stopped", "cancelled", "entered-in-error"]


@st.composite
def _histories(draw):
    meds = []
    for _k in range(draw(st.integers(0, 7))):
        ing = draw(st.sampled_from(_DRUGS))
        start = draw(st.integers(0, 300))
        end = draw(st.one_of(st.none(), st.integers(start, 400)))
        dose = draw(st.sampled_from([None, 5.0, 10.0, 500.0]))
        meds.append((ing, dose, start, end, draw(st.sampled_from(_STATUSES))))
    obs = sorted(set(draw(st.lists(st.integers(-200, 800), max_size=12))))
    return meds, obs


def _brute_force(meds, day):
    """Regimen on ``day`` straight from the DESIGN.md sentence, one request at a time."""
    active = {}
    for k, (ing, dose, start, end, status) in enumerate(meds):
        if status == "entered-in-error":
            continue
        stop = end if end is not None else (start if status in ("stopped", "cancelled") else None)
        later = [
            s
            for j, (i2, _, s, _, st2) in enumerate(meds)
            if i2 == ing and st2 != "entered-in-error" and (s > start or (s == start and j > k))
        ]
        if later:
            stop = min([x for x in (stop, min(later)) if x is not None])
        if start <= day and (stop is None or day < stop):
            active[ing] = dose
    return tuple(sorted(active.items()))


@settings(max_examples=150)
@given(_histories())
def test_changes_and_windows_match_a_brute_force(history):
    meds_spec, obs_days = history
    base = D(2020, 1, 1)
    day = lambda k: base + dt.timedelta(days=k)  # noqa: E731
    meds = [_med(i, dose, day(s), end=None if e is None else day(e), status=stt) for i, dose, s, e, stt in meds_spec]
    rec = _rec(meds, [(day(k), 5.0 + k / 100) for k in obs_days])
    res = extract_episodes(rec, T2D, with_features=False)
    changes = regimen_changes(medication_intervals(rec, T2D))
    # brute force over every day
    expected = []
    prev = ()
    for k in range(-1, 402):
        cur = _brute_force(meds_spec, k)
        if cur != prev:
            expected.append((k, cur))
            prev = cur
    got = [((c.t0 - base).days, tuple((d.ingredient, d.dose_mg_day) for d in c.after.drugs)) for c in changes]
    assert got == expected
    assert res.candidates == len(changes) == len(res.episodes) + sum(res.dropped.values())
    for e in res.episodes:
        k = [c.t0 for c in changes].index(e.t0)
        nxt = changes[k + 1].t0 if k + 1 < len(changes) else None
        assert 0 <= (e.t0 - e.baseline_date).days <= 180
        assert not any(e.baseline_date < day(o) <= e.t0 for o in obs_days)  # the latest one
        assert 60 <= (e.followup_date - e.t0).days <= 365
        assert nxt is None or e.followup_date <= nxt
        dist = abs((e.followup_date - e.t0).days - 180)
        hi = min(365, (nxt - e.t0).days if nxt else 365)
        for o in obs_days:
            off = (day(o) - e.t0).days
            if 60 <= off <= hi:
                assert abs(off - 180) > dist or (abs(off - 180) == dist and day(o) >= e.followup_date)
