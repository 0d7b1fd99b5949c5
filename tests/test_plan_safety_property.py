"""Safety as a property, over many generated patients (issue 6 acceptance).

For >= 1,000 generated patients (random area, genotypes and phenotypes, allergies, labs, conditions and
current medications, including CYP inhibitors that phenoconvert), every recommendation must satisfy:

* no plan contains a drug or dose that a finding for that patient excludes or caps (checked by screening the
  plan's final regimen again, and by independent oracles that do not use the rule engine: eGFR < 30 and
  metformin, SLCO1B1 poor function and simvastatin, pregnancy and ACEi/ARB/statins, heart failure and
  pioglitazone, an MAOI and serotonergic antidepressants, an allergy and its drug);
* every excluded regimen carries at least one ``exclude`` finding that says why;
* a gene with no result is "not tested" and never yields a normal-metabolizer finding.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner import Planner
from planner.areas import load_area
from planner.record import Allergy, Condition, Measurement, Medication, PatientRecord, PgxResult

AS_OF = dt.date(2024, 6, 1)
SNOMED = "http://snomed.info/sct"

AREA_CONDITION = {"t2d": "44054006", "lipids": "55822004", "hypertension": "59621000", "depression": "35489007"}
OUTCOME = {"t2d": ("hba1c", "%", "4548-4", 6.0, 12.0), "lipids": ("ldl", "mg/dL", "18262-6", 70, 240),
           "hypertension": ("sbp", "mm[Hg]", "8480-6", 120, 190), "depression": ("phq9", "{score}", "44261-6", 3, 26)}
EXTRA_CONDITIONS = {
    "heart_failure": "84114007", "pregnancy": "77386006", "angioedema": "41291007", "mtc": "255032005",
    "esrd": "46177005",
}
DIPLOTYPES = {
    "CYP2C19": ["*1/*1", "*1/*2", "*2/*2", "*2/*3", "*1/*17", "*17/*17", "*2/*17", "*99/*98"],
    "CYP2D6": ["*1/*1", "*1/*4", "*4/*4", "*1/*1x2", "*4/*5", "*10/*10", "*1/*41"],
    "CYP2C9": ["*1/*1", "*1/*2", "*1/*3", "*3/*3", "*2/*3"],
    "SLCO1B1": ["*1/*1", "*1/*5", "*5/*5", "*15/*15", "*1/*15"],
    "ABCG2": ["rs2231142 reference (G)/rs2231142 reference (G)", "rs2231142 variant (T)/rs2231142 variant (T)"],
    "CYP2B6": ["*1/*1", "*6/*6", "*1/*6"],
}
PHENOTYPES = ["Poor Metabolizer", "Intermediate Metabolizer", "Normal Metabolizer", "Ultrarapid Metabolizer"]
COMEDS = ["fluoxetine", "paroxetine", "bupropion", "omeprazole", "clarithromycin", "amlodipine", "gemfibrozil",
          "warfarin", "ibuprofen", "tramadol", "linezolid", "phenelzine", "spironolactone", "clopidogrel",
          "fluconazole", "diltiazem"]
ALLERGENS = {"penicillin": "764146007", "sulfonamide": "387406002", "statin": "96302009"}
MAOIS = {"phenelzine", "linezolid", "selegiline", "tranylcypromine", "isocarboxazid"}
SEROTONERGIC_CLASSES = {"ssri", "snri"}


@st.composite
def patients(draw):
    area = draw(st.sampled_from(sorted(AREA_CONDITION)))
    a = load_area(area)
    pid = f"gen-{draw(st.integers(0, 10**9))}"
    conds = [Condition(id="c0", code=AREA_CONDITION[area], system=SNOMED, onset=dt.date(2018, 1, 1),
                       clinical_status="active")]
    for i, name in enumerate(draw(st.sets(st.sampled_from(sorted(EXTRA_CONDITIONS)), max_size=2))):
        conds.append(Condition(id=f"c{i + 1}", code=EXTRA_CONDITIONS[name], system=SNOMED,
                               onset=dt.date(2020, 1, 1), clinical_status="active"))
    q, unit, loinc, lo, hi = OUTCOME[area]
    obs: dict[str, tuple[Measurement, ...]] = {}
    if draw(st.booleans()) or True:
        days = draw(st.integers(1, 900))
        obs[q] = (Measurement(date=AS_OF - dt.timedelta(days=days), value=draw(st.floats(lo, hi)), unit=unit,
                              loinc=loinc),)
    if draw(st.booleans()):
        obs["egfr"] = (Measurement(date=AS_OF - dt.timedelta(days=draw(st.integers(1, 500))),
                                   value=draw(st.floats(8, 120)), unit="mL/min/1.73m2", loinc="33914-3"),)
    meds = []
    area_drugs = draw(st.lists(st.sampled_from(a.formulary), max_size=3, unique_by=lambda d: d.drug_class))
    for i, d in enumerate(area_drugs):
        dose = draw(st.one_of(st.none(), st.sampled_from(d.doses)))
        meds.append(Medication(id=f"m{i}", rxcui=d.rxcui, ingredient=d.ingredient, dose_mg_day=dose,
                               status="active", start=dt.date(2022, 1, 1)))
    for j, name in enumerate(draw(st.sets(st.sampled_from(COMEDS), max_size=3))):
        meds.append(Medication(id=f"x{j}", ingredient=name, status="active", start=dt.date(2023, 1, 1)))
    pgx = []
    for gene in draw(st.sets(st.sampled_from(sorted(DIPLOTYPES)), max_size=4)):
        if draw(st.integers(0, 4)) == 0 and gene.startswith("CYP"):
            pgx.append(PgxResult(gene=gene, phenotype=draw(st.sampled_from(PHENOTYPES)), source="fhir-phenotype-stu1"))
        else:
            pgx.append(PgxResult(gene=gene, diplotype=draw(st.sampled_from(DIPLOTYPES[gene])), source="fhir-genotype"))
    allergies = [Allergy(id=f"a{k}", code=ALLERGENS[n], system=SNOMED, display=n, category=("medication",))
                 for k, n in enumerate(draw(st.sets(st.sampled_from(sorted(ALLERGENS)), max_size=2)))]
    record = PatientRecord(
        patient_id=pid, birth_date=dt.date(draw(st.integers(1935, 2004)), 6, 1),
        sex=draw(st.sampled_from(["male", "female"])), as_of=AS_OF, conditions=tuple(conds),
        medications=tuple(meds), allergies=tuple(allergies), observations=obs, pgx=tuple(pgx),
    )
    return area, record


@pytest.fixture(scope="module")
def planner() -> Planner:
    return Planner.load(num_samples=200)


def _check(planner: Planner, area: str, record: PatientRecord) -> None:
    rec = planner.recommend(record, area=area, top=50)
    rs = planner.ruleset
    ctx = rs.prepare(record, on=record.as_of, area=area)
    current = {m.ingredient for m in record.active_medications() if m.ingredient}
    phen = rs.phenotypes(ctx)
    egfr = record.latest("egfr", within_days=365)
    active_codes = {c.code for c in record.active_conditions()}
    allergens = {a.display for a in record.allergies}
    a = load_area(area)
    for plan in rec.plans:
        from planner.record import DrugDose, Regimen

        reg = Regimen.of([DrugDose(ingredient=d.drug, rxcui=d.rxnorm, dose_mg_day=d.dose_mg_day,
                                   drug_class=d.drug_class) for d in plan.regimen])
        again = rs.screen(ctx, reg, new_start=set(reg.ingredients) - current)
        assert not [f for f in again if f.action == "exclude"], (plan.key, again)
        for f in again:
            if f.action == "adjust_dose" and f.target_drug:
                cap = f.adjusted_dose_mg_day if f.adjusted_dose_mg_day is not None else f.max_dose_mg_day
                dose = reg.dose_of(f.target_drug)
                assert cap is None or dose is None or dose <= cap + 1e-6, (plan.key, f)
        names = set(reg.ingredients)
        classes = {d.drug_class for d in plan.regimen}
        # independent oracles
        if egfr is not None and egfr.value < 30:
            assert "metformin" not in names
        slco = phen.get("SLCO1B1")
        if slco is not None and getattr(slco, "phenotype", None) == "Poor Function":
            assert "simvastatin" not in names
        if "77386006" in active_codes:
            assert not classes & {"ace_inhibitor", "arb", "statin"}
        if "84114007" in active_codes:
            assert "pioglitazone" not in names
        if current & MAOIS:
            assert not classes & SEROTONERGIC_CLASSES
        if "statin" in allergens:
            assert "statin" not in classes
        for d in plan.regimen:
            assert d.dose_mg_day is None or d.dose_mg_day <= a.drug(d.drug).max_dose + 1e-6
    for ex in rec.excluded:
        assert any(f.action == "exclude" for f in ex.findings), ex
        assert all(f.message and f.rule_id and f.source for f in ex.findings)
    tested = {p.gene for p in record.pgx}
    for gene, res in phen.items():
        if gene not in tested:
            assert res.status == "not-tested", (gene, res)
    for f in [*rec.current_findings, *(f for p in rec.plans for f in p.findings),
              *(f for e in rec.excluded for f in e.findings)]:
        if f.kind == "gene-drug" and f.genes and not set(f.genes) & tested:
            assert "normal" not in (f.phenotype or "").lower(), f


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(patients())
def test_no_plan_ever_contains_what_a_rule_excludes(planner, case):
    area, record = case
    _check(planner, area, record)
