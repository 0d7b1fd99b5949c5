"""The link between the simulators and the depression guideline: a course a simulator stops for an adverse effect
carries a ``statusReason`` in its FHIR output, and the guideline's history rules (``rules/guidelines/
depression.yaml`` ``history.adverse_stop_reasons``) must recognise it, or adverse stops in simulated cohorts read
as ordinary stops. Both simulators (the project one, :func:`planner.simulate.simulate_cohort`, and the
independent one) are run on a small depression cohort, their FHIR bundles read back through the real ingest, and
every adverse stop their own decisions record is checked with the guideline's own matcher
(:func:`planner.guidelines.context._stopped_for`, what :func:`medication_courses` uses)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from planner.areas import load_area
from planner.guidelines import load_guidelines, medication_courses
from planner.guidelines.context import _stopped_for
from planner.ingest import read_record
from planner.simulate import simulate_cohort
from planner.simulate.independent import simulate_independent

N, SEED = 120, 5


def _project(out: Path) -> Any:
    c = simulate_cohort("depression", N, seed=SEED)
    c.write_fhir(str(out))
    return c


def _independent(out: Path) -> Any:
    c = simulate_independent("depression", N, seed=SEED)
    c.write_fhir(str(out))
    return c


def _adverse_stops(decisions: Any) -> set[tuple[str, dt.date, str]]:
    """(patient, day, ingredient) of every drug a simulator's own decisions say it stopped for an adverse effect."""
    out = set()
    for row in decisions[decisions["reason"] == "stop-adverse"].itertuples():
        kept = {d.ingredient for d in row.regimen.drugs}
        for d in row.regimen_before.drugs:
            if d.ingredient not in kept:
                out.add((str(row.patient_id), row.t0.date(), d.ingredient))
    return out


def _reason_texts(bundle: dict[str, Any]) -> dict[str, str]:
    """MedicationRequest id -> its statusReason as written (JSON text of the element)."""
    return {
        e["resource"]["id"]: orjson.dumps(e["resource"]["statusReason"]).decode()
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "MedicationRequest" and "statusReason" in e["resource"]
    }


@pytest.mark.parametrize("simulate", [_project, _independent], ids=["project", "independent"])
def test_every_simulated_adverse_stop_reason_is_recognised_by_the_depression_guideline(
    simulate: Callable[[Path], Any], tmp_path
) -> None:
    area = load_area("depression")
    guidelines = load_guidelines(area)
    assert guidelines is not None and guidelines.history is not None
    history = guidelines.history
    reasons = history.adverse_stop_reasons
    assert reasons, "the depression guideline lists no adverse stop reasons"
    cohort = simulate(tmp_path)
    stops = _adverse_stops(cohort.decisions)
    assert len(stops) >= 10, "the cohort is too small to test the link"

    written: dict[str, set[str]] = {"adverse": set(), "other": set()}
    checked = 0
    for path in sorted((tmp_path / "fhir").glob("*.json")):
        bundle = orjson.loads(path.read_bytes())
        texts = _reason_texts(bundle)
        record = read_record(bundle)
        mine = {(day, drug) for pid, day, drug in stops if pid == record.patient_id}
        ended = {(m.end, m.ingredient): m for m in record.medications if m.end is not None}
        for day, drug in sorted(mine):
            m = ended.get((day, drug))
            assert m is not None, f"{record.patient_id}: no order of {drug} ends on {day}, the adverse stop"
            assert m.id in texts, f"{record.patient_id}: the {drug} order stopped for an adverse effect has no reason"
            written["adverse"].add(texts[m.id])
            assert _stopped_for(record, drug, day, reasons), (
                f"statusReason {texts[m.id]} of an adverse stop is not one of the guideline's {reasons}"
            )
            checked += 1
        for m in record.medications:  # every other stop reason written (a switch for lack of effect)
            if m.id in texts and (m.end, m.ingredient) not in {(d, g) for d, g in mine}:
                written["other"].add(texts[m.id])
                assert not _stopped_for(record, m.ingredient or "", m.end or record.as_of, reasons), (
                    f"statusReason {texts[m.id]} (not an adverse stop) reads as one"
                )
        # through the guideline's own courses: a course ending on an adverse stop is not tolerated, as recorded
        for c in medication_courses(record, area, history):
            if c.end is not None and (c.end, c.ingredient) in mine:
                assert c.outcome == "not_tolerated" and c.recorded_adverse, c
    assert checked == len(stops)
    assert written["adverse"], "no adverse-stop statusReason in the FHIR output"
