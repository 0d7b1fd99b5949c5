"""Failed courses carried into re-trials in both simulators' truth (rules/areas/simulation/retrial.yaml), and the
planner reading the same failures from the records the simulators write."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest

from planner.areas import load_area, regimen_of
from planner.guidelines import load_guidelines
from planner.guidelines.context import medication_courses
from planner.record import Regimen
from planner.simulate import simulate_cohort
from planner.simulate.independent import simulate_independent
from planner.simulate.retrial import load_retrial
from planner.simulate.truth import RETRIAL

AREA = load_area("depression")
RT = load_retrial("depression")


@pytest.fixture(scope="module")
def first():
    return simulate_cohort("depression", 500, seed=1)


@pytest.fixture(scope="module")
def indep():
    return simulate_independent("depression", 400, seed=1)


def test_retrial_file_and_factors():
    assert load_retrial("t2d") is None  # no carry-over where the file lists none
    assert RT is not None and 0 < RT.restop_same_drug < 1 and RT.same_class_factor < 1
    names = [d.ingredient for d in AREA.formulary]
    nt = np.zeros((1, len(names)), dtype=bool)
    nr = np.zeros((1, len(names)), dtype=bool)
    nt[0, names.index("bupropion")] = True
    nr[0, names.index("citalopram")] = True
    f = RT.factors(AREA, nt, nr, itt=True)[0]
    assert f[names.index("citalopram")] == pytest.approx(RT.same_drug_factor)
    assert f[names.index("sertraline")] == pytest.approx(RT.same_class_factor)  # a class-mate (SSRI)
    assert f[names.index("venlafaxine")] == 1.0  # another class keeps its effect
    assert f[names.index("bupropion")] == pytest.approx(1 - RT.restop_same_drug)  # re-trials stopped again
    assert RT.factors(AREA, nt, nr, itt=False)[0, names.index("bupropion")] == 1.0


def _reg(drug: str) -> Regimen:
    return regimen_of(AREA, {drug: AREA.drug(drug).reference_dose})


def test_first_simulator_restops_and_truth_after_a_failure(first):
    ids = list(first.patients["patient_id"])
    nt = [(p, d, day) for p, d, k, day in first.latent["failures"] if k == "not_tolerated"]
    assert nt and any(k == "no_response" for *_, k, _ in first.latent["failures"])
    # re-trials of a drug stopped for an adverse effect are stopped again far more often than first courses
    meds = first.logs.meds
    again = stopped = 0
    for p, d, day in nt:
        later = meds[(meds["pid"] == p) & (meds["drug"] == d) & (meds["start"] > day)].sort_values("start")
        if len(later):
            again += 1
            stopped += bool(later.iloc[0]["status"] == "stopped" and later.iloc[0]["end"] - later.iloc[0]["start"] < 60)
    if again >= 5:
        assert stopped / again > 0.3
    # the truth: a decision row with a factor under 1 for a drug gets less of that drug's effect
    d = first.decisions
    col = RETRIAL + "citalopram"
    hit = d[d[col] < 1].head(20)
    assert len(hit)
    base = hit.copy()
    base[col] = 1.0
    y_hit = first.expected_outcome([_reg("citalopram")], hit)[:, 0]
    y_base = first.expected_outcome([_reg("citalopram")], base)[:, 0]
    eff_hit, eff_base = hit["latent_untreated"] - y_hit, base["latent_untreated"] - y_base
    assert np.allclose(eff_hit, eff_base * hit[col])
    # truth_rows at a decision's own date carries the decision's factors
    rows = first.truth_rows(list(hit["patient_id"]), list(hit["t0"]))
    assert np.allclose(rows[col], hit[col])
    assert set(hit["patient_id"]) <= set(ids)


def test_independent_simulator_carries_failures_into_its_truth(indep):
    d = indep.decisions
    assert (d["reason"] == "stop-adverse").any()
    nr_col = "hist_nr:citalopram"
    hit = d[d[nr_col] > 0.5].head(20)
    assert len(hit)
    clean = hit.copy()
    for e in AREA.formulary:
        if e.drug_class == "ssri":  # citalopram's class: no failure on record
            clean["hist_nr:" + e.ingredient] = 0.0
            clean["hist_nt:" + e.ingredient] = 0.0
    y_hit = indep.expected_outcome(hit, [_reg("citalopram"), _reg("venlafaxine")])
    y_clean = indep.expected_outcome(clean, [_reg("citalopram"), _reg("venlafaxine")])
    assert np.all(y_hit[:, 0] > y_clean[:, 0])  # citalopram re-tried after no response: less fall in PHQ-9
    assert np.allclose(y_hit[:, 1], y_clean[:, 1])  # an SNRI keeps its effect


def _agreement(flags: dict[str, set[tuple[str, str]]], records) -> dict[str, float]:
    g = load_guidelines(AREA)
    both: collections.Counter[str] = collections.Counter()
    sim: collections.Counter[str] = collections.Counter()
    for r in records:
        read = {(c.ingredient, c.outcome) for c in medication_courses(r, AREA, g.history)}
        for ing, kind in flags.get(r.patient_id, set()):
            sim[kind] += 1
            both[kind] += (ing, kind) in read
    return {k: both[k] / sim[k] for k in sim}


def test_the_planner_reads_the_simulated_failures_from_the_records(first, indep, tmp_path):
    """What the simulators write to FHIR (MedicationRequest dates and status, PHQ-9 Observations) is what the
    planner reads as a prior failure: most courses the truth counts as without response are read so. Adverse
    stops are read as not tolerated only when they fall within the planner's 28 days (no reason is read)."""
    from planner.ingest import read_records

    ids = list(first.patients["patient_id"])
    flags: dict[str, set[tuple[str, str]]] = collections.defaultdict(set)
    for p, dj, kind, _ in first.latent["failures"]:
        flags[ids[p]].add((AREA.formulary[dj].ingredient, kind))
    first.write_fhir(str(tmp_path))  # through FHIR and the real ingest, not the simulator's own records
    reasons = collections.Counter()
    for f in sorted((tmp_path / "fhir").glob("*.json"))[:150]:
        for e in json.loads(f.read_text())["entry"]:
            r = e["resource"]
            if r["resourceType"] == "MedicationRequest" and r["status"] == "stopped":
                reasons[r.get("statusReason", {}).get("text")] += 1
    assert reasons["adverse reaction"] and reasons["not effective"]  # the clinician's reason is written too
    a_first = _agreement(flags, read_records(str(tmp_path / "fhir")))
    d = indep.decisions
    flags = collections.defaultdict(set)
    for e in AREA.formulary:
        for kind, pre in (("not_tolerated", "hist_nt:"), ("no_response", "hist_nr:")):
            for pid in d.loc[d[pre + e.ingredient] > 0.5, "patient_id"].unique():
                flags[pid].add((e.ingredient, kind))
    a_ind = _agreement(flags, indep.records())
    assert a_first["no_response"] > 0.5 and a_ind["no_response"] > 0.5
    assert a_first["not_tolerated"] > 0.1 and a_ind["not_tolerated"] > 0.4
