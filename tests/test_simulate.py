"""The cohort simulator: determinism, the truth, confounding, PGx tolerability, FHIR output."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planner.areas import enumerate_regimens, is_allowed, load_area, regimen_of
from planner.errors import ConfigError
from planner.simulate import LATENT, TruthParams, draw_truth, expected_outcome, simulate_cohort

DOC_COLUMNS = [
    "patient_id",
    "decision",
    "t0",
    "day",
    "reason",
    "regimen_before",
    "regimen",
    "regimen_before_key",
    "regimen_key",
    "baseline",
    "baseline_date",
    "followup",
    "followup_date",
    "episode",
    "drop_reason",
    "next_t0",
    "target",
    LATENT,
    "true_expected",
    "true_expected_before",
]


@pytest.fixture(scope="module")
def t2d():
    return simulate_cohort("t2d", 800, seed=3)


def test_decisions_frame_has_the_documented_columns(t2d):
    d = t2d.decisions
    for c in DOC_COLUMNS:
        assert c in d.columns, c
    area = t2d.area
    for f in area.features:
        assert f.name in d.columns
        assert "true_" + f.name in d.columns
    assert d["episode"].sum() > 0.6 * len(d)
    assert set(d["drop_reason"].dropna()) <= {"no-baseline", "overlapping-change", "no-follow-up"}
    assert (d["episode"] == d["drop_reason"].isna()).all()
    # changes are real changes and respect the combination limits
    assert (d["regimen_key"] != d["regimen_before_key"]).all()
    assert all(is_allowed(area, r) for r in d["regimen"])
    # windows hold
    e = d[d["episode"]]
    assert ((e["t0"] - e["baseline_date"]).dt.days.between(0, 180)).all()
    assert ((e["followup_date"] - e["t0"]).dt.days.between(60, 365)).all()
    nxt = e["next_t0"].notna()
    assert (e.loc[nxt, "followup_date"] <= e.loc[nxt, "next_t0"]).all()


def test_deterministic_for_a_seed_and_truth_independent_of_n(t2d):
    again = simulate_cohort("t2d", 800, seed=3)
    cols = [c for c in t2d.decisions.columns if c not in ("regimen", "regimen_before")]
    pd.testing.assert_frame_equal(t2d.decisions[cols], again.decisions[cols])
    other = simulate_cohort("t2d", 200, seed=4)
    assert other.truth != t2d.truth
    assert simulate_cohort("t2d", 50, seed=3).truth == t2d.truth


def test_truth_differs_from_prior_by_a_plausible_amount():
    area = load_area("hypertension")
    gaps = []
    for seed in range(40):
        truth = draw_truth(area, seed)
        for d in area.formulary:
            prior = area.class_prior(d.drug_class)
            gaps.append((truth.drug_effect[d.ingredient] - prior.effect_on_scale() * d.relative_potency) / prior.sd)
    gaps = np.array(gaps)
    assert 0.4 < gaps.std() < 1.2 and abs(gaps.mean()) < 0.3
    rt = TruthParams.from_dict(draw_truth(area, 1).to_dict())
    assert rt == draw_truth(area, 1)


def test_followup_is_truth_plus_noise(t2d):
    e = t2d.decisions[t2d.decisions["episode"]]
    resid = e["followup"] - e["true_expected"]
    assert abs(resid.mean()) < 0.05
    assert resid.std() == pytest.approx(t2d.truth.noise_sd, rel=0.2)


def test_expected_outcome_api(t2d):
    area = t2d.area
    regs = enumerate_regimens(area)
    vals = expected_outcome(area, t2d.decisions, regs, truth_params=t2d.truth)
    assert vals.shape == (len(t2d.decisions), len(regs))
    none = vals[:, 0]
    assert np.allclose(none, t2d.decisions[LATENT])
    # chosen regimen column equals true_expected
    k = {r.key(): i for i, r in enumerate(regs)}
    rows = [i for i, key in enumerate(t2d.decisions["regimen_key"]) if key in k]
    assert rows
    got = vals[rows, [k[t2d.decisions["regimen_key"].iloc[i]] for i in rows]]
    assert np.allclose(got, t2d.decisions["true_expected"].iloc[rows])
    # every drug lowers HbA1c; more metformin lowers it more (emax)
    assert (vals[:, 1:] <= none[:, None] + 1e-12).all()
    low, high = (regimen_of(area, {"metformin": 500}), regimen_of(area, {"metformin": 2000}))
    v = t2d.expected_outcome([low, high])
    assert (v[:, 1] <= v[:, 0]).all() and (v[:, 1] < v[:, 0]).mean() > 0.9  # 0 effect where the modifier cancels it
    # sub-additive: the pair does less than the sum of its parts
    met, sita = regimen_of(area, {"metformin": 2000}), regimen_of(area, {"sitagliptin": 100})
    pair = regimen_of(area, {"metformin": 2000, "sitagliptin": 100})
    v = t2d.expected_outcome([regimen_of(area, {}), met, sita, pair])
    drop_sum = (v[:, 0] - v[:, 1]) + (v[:, 0] - v[:, 2])
    pair_drop = v[:, 0] - v[:, 3]
    assert (pair_drop <= drop_sum + 1e-12).all() and (pair_drop < drop_sum).mean() > 0.9
    with pytest.raises(ConfigError, match=LATENT):
        expected_outcome(area, t2d.decisions.drop(columns=[LATENT]), regs[:2], truth_params=t2d.truth)
    with pytest.raises(ConfigError, match="another area"):
        expected_outcome(load_area("lipids"), t2d.decisions, [], truth_params=t2d.truth)


def test_sglt2_effect_falls_with_egfr_in_the_truth(t2d):
    area = t2d.area
    frame = t2d.decisions.head(1).copy()
    frame = pd.concat([frame] * 2, ignore_index=True)
    frame.loc[0, "true_egfr"], frame.loc[1, "true_egfr"] = 100.0, 40.0
    v = expected_outcome(
        area, frame, [regimen_of(area, {}), regimen_of(area, {"empagliflozin": 10})], truth_params=t2d.truth
    )
    drop = v[:, 0] - v[:, 1]
    assert drop[0] > drop[1] > 0


def test_confounding_heart_failure_steers_to_sglt2(t2d):
    d = t2d.decisions
    adds = d[d["reason"].isin(["add", "start", "switch"])]
    new_sglt2 = adds.apply(
        lambda r: (
            any(x.drug_class == "sglt2_inhibitor" for x in r["regimen"].drugs)
            and not any(x.drug_class == "sglt2_inhibitor" for x in r["regimen_before"].drugs)
        ),
        axis=1,
    )
    hf = adds["true_heart_failure"] > 0.5
    assert new_sglt2[hf].mean() > 1.5 * new_sglt2[~hf].mean()


def test_allergies_are_respected(t2d):
    allergic = t2d.patients.set_index("patient_id")["allergy"].dropna()
    d = t2d.decisions[t2d.decisions["patient_id"].isin(allergic.index)]
    for pid, reg in zip(d["patient_id"], d["regimen"]):
        assert allergic[pid] not in reg.ingredients


def _adverse_stop_rate(cohort, gene_col: str, drug: str, phenotypes: list[str]) -> tuple[float, float]:
    d = cohort.decisions
    started = d[
        d["regimen"].apply(lambda r: drug in r.ingredients)
        & ~d["regimen_before"].apply(lambda r: drug in r.ingredients)
    ]
    stopped = []
    for _, row in started.iterrows():
        later = d[(d["patient_id"] == row["patient_id"]) & (d["t0"] > row["t0"])].head(1)
        stopped.append(
            bool(len(later))
            and later["reason"].iloc[0] == "stop-adverse"
            and drug not in later["regimen"].iloc[0].ingredients
        )
    stopped = np.array(stopped)
    carrier = started[gene_col].isin(phenotypes).to_numpy()
    return stopped[carrier].mean(), stopped[~carrier].mean()


def test_pgx_tolerability_slco1b1_simvastatin():
    lip = simulate_cohort("lipids", 2500, seed=8)
    carrier, other = _adverse_stop_rate(lip, "true_slco1b1", "simvastatin", ["Decreased Function", "Poor Function"])
    assert carrier > other + 0.08


def test_pgx_tolerability_cyp2c19_citalopram():
    dep = simulate_cohort("depression", 3000, seed=8)
    poor, other = _adverse_stop_rate(dep, "true_cyp2c19", "citalopram", ["Poor Metabolizer"])
    assert poor > other + 0.1


def test_genotype_frequencies_are_realistic(t2d):
    p = t2d.patients["phenotype_CYP2C9"].value_counts(normalize=True)
    assert 0.55 < p["Normal Metabolizer"] < 0.75 and p.get("Poor Metabolizer", 0) < 0.05
    tested = t2d.patients["pgx_tested"].mean()
    assert 0.2 < tested < 0.4
    # the record shows only tested patients' phenotypes
    d = t2d.decisions
    assert ((d["cyp2c9"] == "not-tested") | (d["cyp2c9"] == d["true_cyp2c9"])).all()


def test_every_area_simulates():
    for name in ("lipids", "hypertension", "depression"):
        c = simulate_cohort(name, 150, seed=1)
        e = c.decisions[c.decisions["episode"]]
        assert len(e) > 100
        assert e["followup"].between(*c.area.outcome.plausible).all()


def test_bad_arguments():
    with pytest.raises(ConfigError, match="n"):
        simulate_cohort("t2d", 0, seed=1)


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_write_fhir_is_byte_identical_and_synthea_shaped(tmp_path):
    a = simulate_cohort("hypertension", 30, seed=2)
    info = a.write_fhir(str(tmp_path / "a"))
    simulate_cohort("hypertension", 30, seed=2).write_fhir(str(tmp_path / "b"))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert info["bundles"] == 30
    import orjson

    files = sorted((tmp_path / "a" / "fhir").glob("*.json"))
    assert len(files) == 30
    kinds: dict[str, int] = {}
    for f in files:
        b = orjson.loads(f.read_bytes())
        assert b["resourceType"] == "Bundle" and b["type"] == "transaction"
        for e in b["entry"]:
            assert e["fullUrl"] == "urn:uuid:" + e["resource"]["id"] and e["request"]["method"] == "POST"
            r = e["resource"]
            kinds[r["resourceType"]] = kinds.get(r["resourceType"], 0) + 1
            if r["resourceType"] == "MedicationRequest":
                assert r["dispenseRequest"]["validityPeriod"]["start"] == r["authoredOn"]
                assert r["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["unit"] == "mg"
            if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "84413-4":
                assert r["valueCodeableConcept"]["text"].startswith("CYP2D6 *")
                assert r["component"][0]["code"]["coding"][0]["code"] == "48018-6"
            if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "85354-9":
                assert {c["code"]["coding"][0]["code"] for c in r["component"]} == {"8480-6", "8462-4"}
    assert {"Patient", "Condition", "MedicationRequest", "Observation"} <= set(kinds)
    truth = pd.read_parquet(tmp_path / "a" / "truth.parquet")
    n_regs = len(enumerate_regimens(a.area))
    assert sum(c.startswith("truth:") for c in truth.columns) == n_regs == info["truth_regimens"]
    assert len(truth) == len(a.decisions)
    assert np.allclose(truth["truth:none"], truth[LATENT])


def test_truth_matches_the_documented_story_by_hand():
    lip = simulate_cohort("lipids", 60, seed=9)
    area, truth = lip.area, lip.truth
    row = lip.decisions.iloc[[0]].copy()
    age = float(row["true_age"].iloc[0])
    reg = regimen_of(area, {"atorvastatin": 40, "ezetimibe": 10})
    got = float(lip.expected_outcome([reg], row)[0, 0])
    pot = area.drug("atorvastatin").relative_potency
    e_statin = truth.drug_effect["atorvastatin"]
    for feat, per_unit, center in truth.modifiers["statin"]:
        assert feat == "age"  # only the hidden age term: the statin prior lists no modifier
        e_statin += pot * per_unit * (age - center)
    e_statin += truth.per_doubling["statin"] * np.log2(40 / 10)
    e_eze = truth.drug_effect["ezetimibe"]
    for _feat, per_unit, center in truth.modifiers["cholesterol_absorption_inhibitor"]:
        e_eze += per_unit * (age - center)
    big, small = sorted([e_statin, e_eze], key=abs, reverse=True)
    want = float(row[LATENT].iloc[0]) * np.exp(big + truth.subadditivity * small)
    assert got == pytest.approx(want, rel=1e-12)


def test_pgx_efficacy_in_the_truth():
    dep = simulate_cohort("depression", 60, seed=9)
    rows = pd.concat([dep.decisions.iloc[[0]]] * 2, ignore_index=True)
    rows["true_cyp2c19"] = ["Normal Metabolizer", "Ultrarapid Metabolizer"]
    area = dep.area
    v = dep.expected_outcome(
        [regimen_of(area, {}), regimen_of(area, {"escitalopram": 10}), regimen_of(area, {"sertraline": 50})], rows
    )
    esc = v[:, 0] - v[:, 1]
    assert esc[1] == pytest.approx(0.6 * esc[0])  # area pgx_effects: efficacy_factor 0.6
    assert v[0, 2] == pytest.approx(v[1, 2])  # sertraline: no CYP2C19 efficacy effect listed


def test_truth_rows_reproduce_decisions_and_work_at_any_date(t2d):
    d = t2d.decisions.iloc[::7]
    rows = t2d.truth_rows(d["patient_id"].tolist(), d["t0"].tolist())
    # at a decision's t0 the regimen active is the new one; the true features are those of the decision
    for f in t2d.area.features:
        a, b = rows["true_" + f.name].to_numpy(), d["true_" + f.name].to_numpy()
        if f.kind == "pgx":
            assert (a == b).all()
        elif f.kind != "baseline":
            assert np.allclose(a, b)
    assert np.allclose(rows[LATENT], d[LATENT])
    assert (rows["current_key"].to_numpy() == d["regimen_key"].to_numpy()).all()
    # the day before, the baseline is the decision's true baseline (regimen before)
    before = t2d.truth_rows(d["patient_id"].tolist(), (d["t0"] - pd.Timedelta(days=1)).tolist())
    assert (before["current_key"].to_numpy() == d["regimen_before_key"].to_numpy()).all()
    assert np.allclose(before["true_baseline"], d["true_baseline"], atol=0.01)  # one day of drift
    vals = expected_outcome(t2d.area, rows, enumerate_regimens(t2d.area)[:5], truth_params=t2d.truth)
    assert vals.shape == (len(rows), 5)
    with pytest.raises(ConfigError, match="unknown simulated patient"):
        t2d.truth_rows(["nobody"], ["2020-01-01"])


def test_population_phenotypes_agree_with_the_safety_layer():
    """The simulator's diplotype table (from CPIC) and planner.safety's derivation (from allele functions) agree."""
    from planner.record import PgxResult
    from planner.safety import RuleSet
    from planner.simulate.population import load_pgx_population

    kn = RuleSet.load().knowledge
    tested_share, genes = load_pgx_population()
    assert 0 < tested_share < 1
    checked = 0
    for gene, pop in genes.items():
        assert abs(sum(pop.freqs) - 1) < 1e-9
        for dip, phen in pop.diplotypes.items():
            res = kn.interpret(gene, [PgxResult(gene=gene, diplotype=dip, source="fhir-genotype")])
            assert res.phenotype == phen, (gene, dip, res.phenotype, phen)
            checked += 1
    assert checked >= 50  # every diplotype of the simulated alleles (4 genes)


@pytest.mark.parametrize("area", ["t2d", "lipids", "depression"])
def test_bundles_pass_strict_fhir_validation_without_warnings(tmp_path, area):
    """Full fhir.resources R4 validation (ingest strict mode) and not one ingest warning."""
    from planner.ingest import read_records

    simulate_cohort(area, 12, seed=6).write_fhir(str(tmp_path))
    records = read_records(str(tmp_path / "fhir"), strict=True)
    assert len(records) == 12
    assert [w.code for r in records for w in r.warnings] == []
