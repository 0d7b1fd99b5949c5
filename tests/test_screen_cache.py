"""Cache correctness of the safety screen: memoized results (per regimen, per drug block, per pair and duplicate
set, per gene-drug match) equal what a fresh rule set and a fresh patient context give, whatever the order in
which regimens are screened, including regimens that differ only in the dose of a dose-capped drug."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest

from planner.record import DrugDose, Measurement, Medication, PatientRecord, PgxResult, Regimen
from planner.safety import RuleSet

AS_OF = dt.date(2024, 6, 1)
CAP_RULE = "ddi.simvastatin-amlodipine"  # an adjust_dose drug-drug rule: simvastatin capped with amlodipine


@pytest.fixture(scope="module")
def rs() -> RuleSet:
    return RuleSet.load()


def fresh_rules(rs: RuleSet) -> RuleSet:
    """A new rule set read from the same folder (not the per-process cached one): no shared state."""
    return RuleSet(Path(rs.root), rs.rules_version)


def patient() -> PatientRecord:
    return PatientRecord(
        patient_id="t",
        as_of=AS_OF,
        birth_date=dt.date(1955, 3, 1),
        medications=tuple(
            Medication(ingredient=m, rxcui="0", start=dt.date(2022, 1, 1), status="active")
            for m in ("omeprazole", "warfarin", "paroxetine")
        ),
        observations={
            "egfr": (Measurement(date=AS_OF - dt.timedelta(days=20), value=42, unit="mL/min/1.73m2", loinc="33914-3"),)
        },
        pgx=(
            PgxResult(gene="CYP2C19", diplotype="*1/*2", source="pharmcat-tsv"),
            PgxResult(gene="SLCO1B1", diplotype="*1/*5", source="pharmcat-tsv"),
            PgxResult(gene="CYP2C9", diplotype="*1/*3", source="pharmcat-tsv"),
        ),
    )


def reg(*drugs: tuple[str, float | None]) -> Regimen:
    return Regimen.of([DrugDose(ingredient=d, rxcui="0", dose_mg_day=x) for d, x in drugs])


def dump(findings) -> list[dict]:
    return [f.model_dump() for f in findings]


def cap_of(rs: RuleSet) -> float:
    cap = rs.rule(CAP_RULE)["max_dose_mg_day"]
    assert cap is not None
    return float(cap)


def test_same_regimen_twice_and_fresh_context_agree(rs):
    r = reg(("simvastatin", 2 * cap_of(rs)), ("amlodipine", 5), ("clopidogrel", 75))
    ctx = rs.prepare(patient())
    first = rs.screen(ctx, r)
    second = rs.screen(ctx, r)
    assert first and dump(first) == dump(second)
    second.clear()  # the caller owns the returned list: the memo is unaffected
    assert dump(rs.screen(ctx, r)) == dump(first)
    other = fresh_rules(rs)
    assert dump(other.screen(other.prepare(patient()), r)) == dump(first)
    assert dump(rs.screen(patient(), r)) == dump(first)  # no context: prepared for this call


def test_doses_differing_only_in_a_capped_drug_are_not_confused(rs):
    cap = cap_of(rs)
    above = reg(("simvastatin", 2 * cap), ("amlodipine", 5))
    within = reg(("simvastatin", cap), ("amlodipine", 5))
    expected = {}
    for r in (above, within):
        fresh = fresh_rules(rs)
        expected[r.key()] = dump(fresh.screen(fresh.prepare(patient()), r))
    ddi_above = [f for f in expected[above.key()] if f["rule_id"] == CAP_RULE]
    ddi_within = [f for f in expected[within.key()] if f["rule_id"] == CAP_RULE]
    assert ddi_above[0]["action"] == "adjust_dose" and ddi_above[0]["adjusted_dose_mg_day"] == cap
    assert ddi_within[0]["action"] == "info" and ddi_within[0]["adjusted_dose_mg_day"] is None
    for order in ((above, within), (within, above)):  # whichever dose fills the memo first
        ctx = rs.prepare(patient())
        for _ in range(2):
            for r in order:
                assert dump(rs.screen(ctx, r)) == expected[r.key()]


def test_random_regimens_in_any_order_match_fresh_contexts(rs):
    drugs = {
        "simvastatin": [10, 40, 80],
        "amlodipine": [5, 10],
        "atorvastatin": [10, 80],
        "clopidogrel": [75],
        "citalopram": [20, 40],
        "sertraline": [50],
        "metformin": [500, 2000],
        "rosuvastatin": [5, 40],
        "fluoxetine": [20],
        "warfarin": [None, 5],
    }
    rng = random.Random(7)
    regimens = [
        reg(*[(d, rng.choice(drugs[d])) for d in rng.sample(sorted(drugs), rng.randint(1, 3))]) for _ in range(60)
    ]
    regimens.append(reg(("simvastatin", 40), ("simvastatin", 40), ("amlodipine", 5)))  # a drug listed twice
    fresh = fresh_rules(rs)
    expected = [dump(fresh.screen(fresh.prepare(patient()), r)) for r in regimens]
    for seed in (1, 2):
        order = list(range(len(regimens)))
        random.Random(seed).shuffle(order)
        ctx = rs.prepare(patient())
        for i in order + order:
            assert dump(rs.screen(ctx, regimens[i])) == expected[i]


def test_call_options_are_part_of_the_memo(rs):
    r = reg(("clopidogrel", 75), ("simvastatin", 40))
    ctx = rs.prepare(patient())
    fresh = fresh_rules(rs)
    for kwargs in ({}, {"new_start": set()}, {"stopping": ["paroxetine", "omeprazole"]}, {}):
        want = dump(fresh.screen(fresh.prepare(patient()), r, **kwargs))
        assert dump(rs.screen(ctx, r, **kwargs)) == want
    assert dump(rs.screen(ctx, r)) != dump(rs.screen(ctx, r, stopping=["paroxetine", "omeprazole"]))


def test_condition_sets_memo_equals_a_fresh_match():
    """``match_conditions`` remembers, per rule data, the condition sets each condition's codings match: over
    generated patients (conditions, ICD-10 and SNOMED codes, negated displays) it must give what matching every
    coding afresh gives, and a second rule data (the memo is per rule data) the same."""
    import sys

    from planner.safety.context import _CONDITION_MEMO, _condition_sets, match_conditions

    sys.path.insert(0, str(Path(__file__).parent))
    from test_screen_fastpath import generated

    other = fresh_rules(rs := RuleSet.load())
    rng = random.Random(5)
    hit = 0
    for p in range(60):
        rec = generated(rs, rng, p)
        want: set[str] = set()
        for c in rec.active_conditions(rec.as_of):
            want |= _condition_sets(
                rs.data, ((c.system, c.code, c.display), *[(x.system, x.code, x.display) for x in c.codings])
            )
        for data in (rs.data, other.data, rs.data):
            assert match_conditions(data, rec, rec.as_of) == want
        hit += bool(want)
    assert hit > 10 and any(m[0] is other.data for m in _CONDITION_MEMO.values())
    # conditions that differ only in display or system: the memo keys on every field the match reads
    from planner.record import Condition

    def conds(*cs: Condition) -> frozenset[str]:
        rec = PatientRecord(patient_id="c", as_of=AS_OF, birth_date=dt.date(1970, 1, 1), conditions=cs)
        return match_conditions(rs.data, rec, AS_OF)

    text = Condition(code="X1", system="http://example.org/local", display="Chronic heart failure")
    assert conds(text) == {"heart_failure"}
    assert conds(text.model_copy(update={"display": "No heart failure"})) == frozenset()
    assert conds(text.model_copy(update={"display": "Family history of heart failure"})) == frozenset()
    icd = Condition(code="I50.9", system="http://hl7.org/fhir/sid/icd-10-cm")
    assert conds(icd) == {"heart_failure"}
    assert conds(icd.model_copy(update={"system": "http://snomed.info/sct"})) == frozenset()
    assert conds(text.model_copy(update={"display": "No heart failure"}), icd) == {"heart_failure"}
