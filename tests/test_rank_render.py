"""Ranking from joint draws and every renderer, on hand-made draws (no model needed)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from planner.areas import load_area
from planner.audit import AuditConfig, AuditLog
from planner.rank import RankingConfig, describe_changes, rank_plans
from planner.recommendation import OutcomeSummary, Provenance, Recommendation
from planner.record import DrugDose, Finding, Regimen
from planner.render import render


def _dd(area, name, dose):
    e = area.drug(name)
    return DrugDose(ingredient=e.ingredient, rxcui=e.rxcui, dose_mg_day=dose, drug_class=e.drug_class)


@pytest.fixture(scope="module")
def area():
    return load_area("t2d")


def _caution(drug):
    return Finding(
        rule_id="test-caution",
        rule_version="1",
        kind="drug-condition",
        action="caution",
        message="test caution",
        source="https://example.org",
        drugs=(drug,),
        target_drug=drug,
    )


def _make(area, seed=0):
    current = Regimen.of([_dd(area, "metformin", 1000)])
    cands = [
        current,
        Regimen.of([_dd(area, "metformin", 2000)]),
        Regimen.of([_dd(area, "metformin", 1000), _dd(area, "empagliflozin", 10)]),
        Regimen.of([_dd(area, "sitagliptin", 100)]),
    ]
    rng = np.random.default_rng(seed)
    centers = np.array([8.0, 7.6, 7.1, 7.9])
    mean = centers + 0.2 * rng.standard_normal((2000, 4))
    pred = mean + 0.45 * rng.standard_normal((2000, 4))
    findings = [[], [], [], [_caution("sitagliptin")]]
    plans = rank_plans(
        area=area,
        current=current,
        candidates=cands,
        findings=findings,
        mean_draws=mean,
        pred_draws=pred,
        baseline=8.2,
        target=7.0,
        config=RankingConfig.load(),
        features={"baseline": 8.2, "egfr": 40.0},
    )
    return current, cands, plans, mean


def test_rank_orders_by_utility_and_p_best_is_joint(area):
    _, cands, plans, mean = _make(area)
    assert [p.rank for p in plans] == [1, 2, 3, 4]
    assert plans[0].key == cands[2].key()  # the add-on has the best predicted outcome and P(target)
    assert sum(p.p_best for p in plans) == pytest.approx(1.0, abs=1e-6)
    # P(best) is the share of joint draws in which a plan has the highest utility: recompute directly
    cfg = RankingConfig.load()
    w = cfg.weights
    rng = np.random.default_rng(0)
    centers = np.array([8.0, 7.6, 7.1, 7.9])
    m = centers + 0.2 * rng.standard_normal((2000, 4))
    pr = m + 0.45 * rng.standard_normal((2000, 4))
    pen = np.array(
        [
            w["drug"] * 1,
            w["drug"] + w["change"],
            2 * w["drug"] + w["change"],
            w["drug"] + 2 * w["change"] + w["caution"],
        ]
    )
    u = w["p_target"] * (pr < 7.0) - w["improvement"] * np.maximum(m - 7.0, 0) / cfg.scale_for(area) - pen
    wins = np.bincount(np.argmax(u, axis=1), minlength=4) / len(u)
    by_key = {p.key: p.p_best for p in plans}
    for i, c in enumerate(cands):
        assert by_key[c.key()] == pytest.approx(wins[i], abs=0.01)
    assert plans[0].p_best == max(p.p_best for p in plans)
    utilities = [p.utility for p in plans]
    assert utilities == sorted(utilities, reverse=True)
    for p in plans:
        assert p.predicted.lower <= p.predicted.mean <= p.predicted.upper
        assert p.predicted.obs_lower <= p.predicted.lower and p.predicted.obs_upper >= p.predicted.upper
        assert 0 <= p.p_target <= 1


def test_caution_lowers_utility(area):
    current, cands, _, _ = _make(area)
    rng = np.random.default_rng(1)
    mean = np.repeat(rng.normal(7.5, 0.1, (1000, 1)), 2, axis=1)
    pred = mean + 0.3 * rng.standard_normal((1000, 2))
    a = Regimen.of([_dd(area, "sitagliptin", 100)])
    b = Regimen.of([_dd(area, "linagliptin", 5)])
    plans = rank_plans(
        area=area,
        current=current,
        candidates=[a, b],
        findings=[[_caution("sitagliptin")], []],
        mean_draws=mean,
        pred_draws=pred,
        baseline=8.0,
        target=7.0,
        config=RankingConfig.load(),
    )
    assert plans[0].key == b.key()


def test_change_labels(area):
    current = Regimen.of([_dd(area, "metformin", 1000), _dd(area, "glipizide", 10)])
    cand = Regimen.of([_dd(area, "metformin", 2000), _dd(area, "glimepiride", 2), _dd(area, "empagliflozin", 10)])
    drugs, stopped = describe_changes(current, cand, area)
    labels = {d.drug: d.change for d in drugs}
    assert labels == {"metformin": "dose-change", "glimepiride": "switch", "empagliflozin": "add"}
    assert [d.drug for d in stopped] == ["glipizide"]


def test_rank_rejects_bad_shapes(area):
    current = Regimen()
    with pytest.raises(ValueError, match="draws must be"):
        rank_plans(
            area=area,
            current=current,
            candidates=[current],
            findings=[[]],
            mean_draws=np.zeros((10, 2)),
            pred_draws=np.zeros((10, 2)),
            baseline=None,
            target=7.0,
            config=RankingConfig.load(),
        )


def _recommendation(area) -> Recommendation:
    current, _, plans, _ = _make(area)
    excl = Finding(
        rule_id="cpic-x",
        rule_version="1",
        kind="gene-drug",
        action="exclude",
        message="avoid <b>x</b>",
        source="https://cpicpgx.org/guidelines/",
        drugs=("glyburide",),
        genes=("CYP2C9",),
    )
    from planner.recommendation import ExcludedRegimen

    return Recommendation(
        patient_id="p-1",
        area=area.id,
        area_name=area.name,
        outcome=OutcomeSummary(
            quantity="hba1c",
            loinc="4548-4",
            unit="%",
            direction="lower",
            baseline=8.2,
            baseline_date=dt.date(2024, 1, 5),
            target=7.0,
        ),
        current_regimen=describe_changes(current, current, area)[0],
        plans=tuple(plans),
        excluded=(
            ExcludedRegimen(
                key="glyburide@10",
                regimen=describe_changes(current, Regimen.of([_dd(area, "glyburide", 10)]), area)[0],
                findings=(excl,),
            ),
        ),
        current_findings=(),
        provenance=Provenance(
            planner_version="0.1.0",
            rules_version="1.0.0+abc",
            area_version=area.version,
            model="prior",
            seed=0,
            as_of=dt.date(2024, 2, 1),
            num_samples=2000,
            candidates_considered=5,
        ),
    )


def test_json_round_trip(area):
    rec = _recommendation(area)
    again = Recommendation.model_validate_json(rec.to_json())
    assert again == rec
    doc = json.loads(rec.to_json())
    assert {"patient_id", "area", "outcome", "plans", "excluded", "current_findings", "data_gaps", "provenance"} <= set(
        doc
    )
    assert doc["plans"][0]["predicted"]["level"] == 0.9


def test_fhir_bundle_validates_with_r4b(area):
    from fhir.resources.R4B.bundle import Bundle

    rec = _recommendation(area)
    text = render(rec, "fhir")
    assert text == render(rec, "fhir")  # deterministic ids
    bundle = Bundle.model_validate_json(text)
    kinds = [e.resource.__resource_type__ for e in bundle.entry]
    assert kinds.count("CarePlan") == len(rec.plans)
    assert "Provenance" in kinds and "DetectedIssue" in kinds
    mrs = [e.resource for e in bundle.entry if e.resource.__resource_type__ == "MedicationRequest"]
    assert mrs and all(m.intent == "proposal" for m in mrs)
    urls = {e.fullUrl for e in bundle.entry}
    for e in bundle.entry:
        if e.resource.__resource_type__ == "CarePlan":
            refs = [a.reference.reference for a in e.resource.activity if a.reference]
            assert refs and set(refs) <= urls


def test_table_and_html_escape(area):
    rec = _recommendation(area)
    table = render(rec, "table")
    assert "Ranked plans" in table and "empagliflozin" in table and "Excluded regimens" in table
    html = rec._repr_html_()
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    from planner.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown output format"):
        render(rec, "pdf")


def test_plot_draws(area, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    rec = _recommendation(area)
    ax = rec.plot()
    assert len(ax.get_yticks()) == len(rec.plans)
    ax.figure.savefig(tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 1000


def test_audit_log_withholds_identifiers_by_default(area, tmp_path):
    rec = _recommendation(area)
    log = AuditLog(AuditConfig(path=tmp_path / "audit.sqlite"))
    log.write(rec, input_sha256="0" * 64)
    rows = log.rows()
    assert len(rows) == 1 and rows[0]["patient_id"] is None
    assert "p-1" not in json.dumps(rows)
    log2 = AuditLog(AuditConfig(path=tmp_path / "audit.sqlite", include_identifiers=True))
    log2.write(rec, input_sha256="1" * 64)
    assert log2.rows()[1]["patient_id"] == "p-1"


def test_table_baseline_is_rounded_as_measured_values_are(area):
    # HbA1c sent as 53 mmol/mol converts to 7.00044%: the table header read "baseline 7.00044%", the HTML "7"
    rec = _recommendation(area)
    rec = rec.model_copy(update={"outcome": rec.outcome.model_copy(update={"baseline": 7.000440000000001})})
    table = render(rec, "table")
    assert "baseline 7% on" in table and "7.00044" not in table


def test_fhir_care_plan_note_names_the_interval_it_gives(area):
    # the note read "predicted hba1c 7.1% [6.843, 7.412]": which interval, at what level, was not said
    rec = _recommendation(area)
    doc = json.loads(render(rec, "fhir"))
    notes = [n["text"] for e in doc["entry"] for n in e["resource"].get("note", []) if "predicted" in n["text"]]
    p = rec.plans[0].predicted
    assert notes[0].startswith(f"predicted hba1c {p.mean:.1f}% (90% interval {p.lower:.1f}% to {p.upper:.1f}%); ")
