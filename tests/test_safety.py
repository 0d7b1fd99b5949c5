"""Each safety rule kind on hand-built records, phenoconversion, multi-gene keys, data gaps, apply_findings,
rule-file validation, and a hypothesis property (no exception; not tested never reads as normal)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.errors import RuleError
from planner.record import (
    Allergy,
    Condition,
    DrugDose,
    Measurement,
    Medication,
    PatientRecord,
    PgxResult,
    Regimen,
)
from planner.safety import RuleSet, apply_findings

AS_OF = dt.date(2024, 6, 1)
SNOMED = "http://snomed.info/sct"


@pytest.fixture(scope="module")
def rs() -> RuleSet:
    return RuleSet.load()


def rec(*, pgx=(), meds=(), conds=(), allergies=(), egfr=None, birth=dt.date(1970, 1, 1)) -> PatientRecord:
    obs = {}
    if egfr is not None:
        obs["egfr"] = (
            Measurement(date=AS_OF - dt.timedelta(days=30), value=egfr, unit="mL/min/1.73m2", loinc="33914-3"),
        )
    return PatientRecord(
        patient_id="t",
        as_of=AS_OF,
        birth_date=birth,
        pgx=tuple(PgxResult(gene=g, diplotype=d, source="pharmcat-tsv") for g, d in pgx),
        medications=tuple(
            Medication(ingredient=m, rxcui="0", start=dt.date(2023, 1, 1), status="active") for m in meds
        ),
        conditions=tuple(Condition(code=c, system=SNOMED) for c in conds),
        allergies=tuple(allergies),
        observations=obs,
    )


def reg(*drugs: str | tuple[str, float]) -> Regimen:
    out = []
    for d in drugs:
        name, dose = (d, None) if isinstance(d, str) else d
        out.append(DrugDose(ingredient=name, rxcui="0", dose_mg_day=dose))
    return Regimen.of(out)


def kinds(findings, action=None):
    return {(f.kind, f.rule_id) for f in findings if action is None or f.action == action}


# ---- gene-drug ------------------------------------------------------------------------------------------------
def test_clopidogrel_poor_metabolizer_is_excluded(rs):
    fs = rs.screen(rec(pgx=[("CYP2C19", "*2/*2")], conds=["22298006"]), reg(("clopidogrel", 75)))
    gd = [f for f in fs if f.kind == "gene-drug"]
    assert gd[0].action == "exclude" and gd[0].strength == "Strong"
    assert "prasugrel" in gd[0].alternatives and gd[0].source.startswith("https://cpicpgx.org/")
    assert gd[0].rule_version and gd[0].data_version == "CPIC v1.30.0"


def test_normal_metabolizer_gets_info_only(rs):
    fs = rs.screen(rec(pgx=[("CYP2C19", "*1/*1")], conds=["22298006"]), reg(("clopidogrel", 75)))
    assert [f.action for f in fs if f.kind == "gene-drug"] == ["info"]
    assert apply_findings(reg(("clopidogrel", 75)), fs) == reg(("clopidogrel", 75))


def test_multi_gene_key_rosuvastatin(rs):
    r = rec(pgx=[("SLCO1B1", "*5/*5"), ("ABCG2", "rs2231142 variant (T)/rs2231142 variant (T)")])
    fs = rs.screen(r, reg(("rosuvastatin", 40)))
    gd = [f for f in fs if f.kind == "gene-drug"][0]
    assert gd.genes == ("ABCG2", "SLCO1B1") and gd.action == "adjust_dose"
    assert gd.max_dose_mg_day == 10 and gd.adjusted_dose_mg_day == 10
    assert apply_findings(reg(("rosuvastatin", 40)), fs).dose_of("rosuvastatin") == 10


def test_dose_factor_is_applied(rs):
    fs = rs.screen(rec(pgx=[("DPYD", "Reference/c.1905+1G>A (*2A)")]), reg(("capecitabine", 2000)))
    gd = [f for f in fs if f.kind == "gene-drug"][0]
    assert (gd.action, gd.dose_factor, gd.adjusted_dose_mg_day) == ("adjust_dose", 0.5, 1000)


def test_hla_positive_excludes(rs):
    r = PatientRecord(
        patient_id="t",
        as_of=AS_OF,
        pgx=(PgxResult(gene="HLA-B", allele="*57:01", allele_status="positive", source="fhir-hla"),),
    )
    fs = rs.screen(r, reg("abacavir"))
    assert apply_findings(reg("abacavir"), fs) is None


def test_not_tested_gives_data_gap_not_normal(rs):
    fs = rs.screen(rec(), reg(("clopidogrel", 75)))
    gaps = [f for f in fs if f.kind == "data-gap"]
    assert gaps and gaps[0].genes == ("CYP2C19",) and "not tested" in gaps[0].message
    assert not any("normal" in (f.phenotype or "").lower() for f in fs)


def test_indeterminate_gives_data_gap(rs):
    fs = rs.screen(rec(pgx=[("CYP2C19", "*1/*99")]), reg(("citalopram", 20)))
    assert any(f.kind == "data-gap" and "indeterminate" in f.message for f in fs)


def test_conflict_takes_most_severe_and_reports(rs):
    r = PatientRecord(
        patient_id="t",
        as_of=AS_OF,
        pgx=(
            PgxResult(gene="CYP2C19", diplotype="*1/*1", source="pharmcat-tsv"),
            PgxResult(gene="CYP2C19", phenotype="Poor Metabolizer", source="fhir-implication"),
        ),
        conditions=(Condition(code="22298006", system=SNOMED),),
    )
    fs = rs.screen(r, reg(("clopidogrel", 75)))
    assert [f.action for f in fs if f.kind == "gene-drug"] == ["exclude"]
    assert "most severe" in [f for f in fs if f.kind == "gene-drug"][0].phenotype


def test_unknown_population_is_conservative(rs):
    fs = rs.screen(rec(pgx=[("CYP2C19", "*1/*2")]), reg(("clopidogrel", 75)))  # no indication codes
    gd = [f for f in fs if f.kind == "gene-drug"][0]
    assert gd.action == "exclude" and "population not determined" in gd.phenotype


# ---- phenoconversion -----------------------------------------------------------------------------------------
def test_strong_cyp2d6_inhibitor_in_current_meds_phenoconverts(rs):
    r = rec(pgx=[("CYP2D6", "*1/*1")], meds=["paroxetine"])
    fs = rs.screen(r, reg(("codeine", 120)))
    gd = [f for f in fs if f.kind == "gene-drug"][0]
    assert gd.action == "exclude" and "paroxetine" in gd.phenotype and "paroxetine" in gd.message
    assert rs.phenotypes(r)["CYP2D6"].phenoconverted_by == ("paroxetine",)


def test_inhibitor_among_candidates_phenoconverts(rs):
    fs = rs.screen(rec(pgx=[("CYP2D6", "*1/*1")]), reg(("codeine", 120), ("bupropion", 300)))
    assert any(f.kind == "gene-drug" and f.target_drug == "codeine" and f.action == "exclude" for f in fs)


def test_moderate_inhibitor_steps_down_once(rs):
    # omeprazole (moderate CYP2C19 inhibitor) makes a normal metabolizer intermediate for citalopram: CPIC
    # "slower titration and lower maintenance dose" (Moderate), a caution naming both drugs
    r = rec(pgx=[("CYP2C19", "*1/*1")], meds=["omeprazole"])
    fs = rs.screen(r, reg(("citalopram", 20)))
    gd = [f for f in fs if f.kind == "gene-drug" and "CYP2C19" in f.genes][0]
    assert "Intermediate Metabolizer" in gd.phenotype and gd.action == "caution"
    assert gd.drugs == ("citalopram", "omeprazole") and gd.plan_adds == ("citalopram",)


def test_clopidogrel_with_omeprazole_is_excluded_once(rs):
    # the interaction rule (FDA label Plavix 7.1) covers the pair; phenoconversion does not exclude it again
    r = rec(pgx=[("CYP2C19", "*1/*1")], meds=["omeprazole"], conds=["22298006"])
    fs = rs.screen(r, reg(("clopidogrel", 75)))
    ex = [f for f in fs if f.action == "exclude"]
    assert [f.rule_id for f in ex] == ["ddi.clopidogrel-omeprazole"]
    assert ex[0].drugs == ("clopidogrel", "omeprazole") and ex[0].plan_adds == ("clopidogrel",)


def test_drug_does_not_phenoconvert_itself(rs):
    fs = rs.screen(rec(pgx=[("CYP2D6", "*1/*1")]), reg(("paroxetine", 20)))
    assert [f.action for f in fs if f.kind == "gene-drug"] == ["info"]


# ---- drug-drug -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "drugs,current,rule,action",
    [
        ([("simvastatin", 40)], ["clarithromycin"], "ddi.statin-sim-lova-strong-cyp3a4", "exclude"),
        ([("simvastatin", 40)], ["gemfibrozil"], "ddi.statin-gemfibrozil", "exclude"),
        ([("simvastatin", 40), ("amlodipine", 10)], [], "ddi.simvastatin-amlodipine", "adjust_dose"),
        ([("lovastatin", 40)], ["diltiazem"], "ddi.lovastatin-diltiazem", "adjust_dose"),
        ([("clopidogrel", 75)], ["omeprazole"], "ddi.clopidogrel-omeprazole", "exclude"),
        ([("ibuprofen", 1200)], ["warfarin"], "ddi.warfarin-nsaid", "exclude"),
        ([("aspirin", 81)], ["warfarin"], "ddi.warfarin-antiplatelet", "caution"),
        ([("sertraline", 50)], ["phenelzine"], "ddi.maoi-ssri-snri", "exclude"),
        ([("sertraline", 50)], ["linezolid"], "ddi.ssri-linezolid", "exclude"),
        ([("sertraline", 50)], ["tramadol"], "ddi.ssri-tramadol", "caution"),
        ([("citalopram", 20)], ["azithromycin"], "ddi.qt-pair", "caution"),
        ([("lisinopril", 20)], ["spironolactone"], "ddi.raas-k-sparing", "caution"),
        ([("lisinopril", 20), ("losartan", 50)], [], "ddi.dual-raas-acei-arb", "exclude"),
        ([("sildenafil", 50)], ["nitroglycerin"], "ddi.pde5-nitrate", "exclude"),
    ],
)
def test_interactions(rs, drugs, current, rule, action):
    fs = rs.screen(rec(meds=current), reg(*drugs))
    assert ("drug-drug", rule) in kinds(fs, action), [(f.rule_id, f.action) for f in fs]


def test_dose_cap_within_limit_is_info(rs):
    fs = rs.screen(rec(), reg(("simvastatin", 10), ("amlodipine", 5)))
    f = [x for x in fs if x.rule_id == "ddi.simvastatin-amlodipine"][0]
    assert f.action == "info"


def test_pairs_among_other_current_drugs_are_not_blamed_on_regimen(rs):
    fs = rs.screen(rec(meds=["warfarin", "ibuprofen"]), reg(("metformin", 1000)))
    assert not any(f.kind == "drug-drug" for f in fs)
    assert any(f.rule_id == "ddi.warfarin-nsaid" for f in rs.check(rec(meds=["warfarin", "ibuprofen"])))


def test_area_current_drugs_are_replaced(rs):
    """A regimen is an area's complete drug set: current drugs of that area's formulary are being replaced."""
    r = rec(meds=["simvastatin", "warfarin"], egfr=80)
    fs = rs.screen(r, reg(("atorvastatin", 40)))  # a switch simvastatin -> atorvastatin (area inferred: lipids)
    assert ("duplicate-therapy", "duplicate.statin") not in kinds(fs)
    ctx = rs.prepare(r, area="t2d")  # an explicit other area: the statin stays a co-medication
    assert ("duplicate-therapy", "duplicate.statin") in kinds(rs.screen(ctx, reg(("atorvastatin", 40))))
    fs2 = rs.screen(r, reg(("ibuprofen", 400)))  # warfarin is in no area formulary: it always counts
    assert ("drug-drug", "ddi.warfarin-nsaid") in kinds(fs2, "exclude")
    with pytest.raises(RuleError, match="unknown area"):
        rs.prepare(r, area="nope")


def test_factor_is_relative_to_the_usual_dose_and_idempotent(rs):
    r = rec(pgx=[("CYP2C19", "*2/*2")])
    fs = rs.screen(r, reg(("citalopram", 40)))
    gd = [f for f in fs if f.kind == "gene-drug"][0]
    usual = rs.usual_dose["citalopram"]
    assert gd.action == "adjust_dose" and gd.adjusted_dose_mg_day == usual * gd.dose_factor
    adjusted = apply_findings(reg(("citalopram", 40)), fs)
    again = rs.screen(r, adjusted)
    assert apply_findings(adjusted, again) == adjusted
    assert [f.action for f in again if f.kind == "gene-drug"] == ["info"]


# ---- allergy ------------------------------------------------------------------------------------------------
def test_allergy_same_class_and_cross(rs):
    pen = Allergy(code="91936005", system=SNOMED, display="Allergy to penicillin", clinical_status="active")
    r = rec(allergies=[pen])
    assert apply_findings(reg("amoxicillin"), rs.screen(r, reg("amoxicillin"))) is None
    cross = rs.screen(r, reg("cephalexin"))
    assert [f.action for f in cross if f.kind == "drug-allergy"] == ["caution"]
    refuted = rec(allergies=[pen.model_copy(update={"verification_status": "refuted"})])
    assert not any(f.kind == "drug-allergy" for f in rs.screen(refuted, reg("amoxicillin")))


def test_allergy_by_ingredient_and_text(rs):
    r = rec(allergies=[Allergy(ingredient="lisinopril"), Allergy(display="Sulfa drugs")])
    assert ("drug-allergy", "allergy.same") in kinds(rs.screen(r, reg("lisinopril")), "exclude")
    assert ("drug-allergy", "allergy.class.ace_inhibitor") in kinds(rs.screen(r, reg("enalapril")), "exclude")
    assert ("drug-allergy", "allergy.cross.arb") in kinds(rs.screen(r, reg("losartan")), "caution")
    assert any(f.kind == "drug-allergy" for f in rs.screen(r, reg("sulfamethoxazole")))
    assert not any(f.kind == "drug-allergy" for f in rs.screen(r, reg("hydrochlorothiazide")))


# ---- drug-condition / drug-lab --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "drug,conds,rule,action",
    [
        ("pioglitazone", ["88805009"], "cond.tzd-heart-failure", "exclude"),
        ("semaglutide", ["255032005"], "cond.glp1-mtc-men2", "exclude"),
        ("lisinopril", ["77386006"], "cond.raas-pregnancy", "exclude"),
        ("atorvastatin", ["72892002"], "cond.statin-pregnancy", "exclude"),
        ("lisinopril", ["41291007"], "cond.acei-angioedema", "exclude"),
    ],
)
def test_drug_condition(rs, drug, conds, rule, action):
    assert ("drug-condition", rule) in kinds(rs.screen(rec(conds=conds, egfr=80), reg(drug)), action)
    assert ("drug-condition", rule) not in kinds(rs.screen(rec(egfr=80), reg(drug)))


def test_icd10_prefix_and_text_match(rs):
    r = PatientRecord(
        patient_id="t", as_of=AS_OF, conditions=(Condition(code="I50.9", system="http://hl7.org/fhir/sid/icd-10-cm"),)
    )
    assert ("drug-condition", "cond.tzd-heart-failure") in kinds(rs.screen(r, reg("pioglitazone")))
    r2 = PatientRecord(patient_id="t", as_of=AS_OF, conditions=(Condition(display="Congestive heart failure"),))
    assert ("drug-condition", "cond.tzd-heart-failure") in kinds(rs.screen(r2, reg("pioglitazone")))


def test_sulfonylurea_older_adult(rs):
    old = rec(birth=dt.date(1950, 1, 1), egfr=80)
    assert ("drug-condition", "cond.sulfonylurea-older-adult") in kinds(rs.screen(old, reg("glipizide")), "caution")
    assert not kinds(rs.screen(rec(egfr=80), reg("glipizide")))


@pytest.mark.parametrize(
    "egfr,current,action",
    [(25, False, "exclude"), (25, True, "exclude"), (40, False, "exclude"), (40, True, "caution"), (60, False, None)],
)
def test_metformin_by_egfr(rs, egfr, current, action):
    fs = rs.screen(rec(egfr=egfr, meds=["metformin"] if current else []), reg(("metformin", 1000)))
    labs = [f.action for f in fs if f.kind == "drug-lab"]
    assert (labs[0] if labs else None) == action


def test_missing_lab_is_a_data_gap(rs):
    fs = rs.screen(rec(), reg(("metformin", 1000)))
    assert [f.rule_id for f in fs if f.kind == "data-gap"] == ["gap.lab.egfr"]


def test_sglt2_by_egfr(rs):
    assert ("drug-lab", "lab.dapagliflozin-egfr-25") in kinds(rs.screen(rec(egfr=20), reg("dapagliflozin")))
    assert not any(f.action == "exclude" for f in rs.screen(rec(egfr=28), reg("dapagliflozin")))
    assert ("drug-lab", "lab.empagliflozin-egfr-30") in kinds(rs.screen(rec(egfr=28), reg("empagliflozin")))


# ---- duplicates, max dose, apply ---------------------------------------------------------------------------
def test_duplicate_and_max_dose(rs):
    fs = rs.screen(rec(egfr=80), reg(("sitagliptin", 200), ("linagliptin", 5)))
    assert ("duplicate-therapy", "duplicate.dpp4_inhibitor") in kinds(fs, "exclude")
    cap = [f for f in fs if f.kind == "max-dose"][0]
    assert (cap.target_drug, cap.adjusted_dose_mg_day) == ("sitagliptin", 100)


def test_apply_findings_lowest_dose_wins(rs):
    fs = rs.screen(rec(pgx=[("SLCO1B1", "*5/*5")]), reg(("simvastatin", 80), ("amlodipine", 10)))
    out = apply_findings(reg(("simvastatin", 80), ("amlodipine", 10)), [f for f in fs if f.action != "exclude"])
    assert out.dose_of("simvastatin") == 20


def test_findings_sorted_and_deterministic(rs):
    r = rec(meds=["warfarin", "paroxetine"], egfr=40)
    a = rs.screen(r, reg(("ibuprofen", 1200), ("codeine", 60), ("metformin", 1000)))
    b = rs.screen(rs.prepare(r), reg(("metformin", 1000), ("codeine", 60), ("ibuprofen", 1200)))
    assert a == b
    order = {"exclude": 0, "adjust_dose": 1, "caution": 2, "info": 3}
    assert [order[f.action] for f in a] == sorted(order[f.action] for f in a)
    assert all(len(f.message) <= 140 for f in a)


# ---- loading and validation -----------------------------------------------------------------------------------
def test_load_is_cached_and_versioned(rs):
    assert RuleSet.load() is rs
    assert rs.rules_version.count("+") == 1


def _copy_rules(tmp_path: Path) -> Path:
    from planner.rule_files import rules_dir

    dst = tmp_path / "rules"
    shutil.copytree(rules_dir(), dst)
    return dst


def test_invalid_rule_file_names_file_rule_and_field(tmp_path):
    from planner.manifest import main as pin

    root = _copy_rules(tmp_path)
    p = root / "interactions" / "ddi.yaml"
    p.write_text(
        p.read_text().replace(
            'action: exclude, target: a, strength: contraindicated, source: "FDA label Zocor/Mevacor',
            'action: forbid, target: a, strength: contraindicated, source: "FDA label Zocor/Mevacor',
            1,
        )
    )
    pin([str(root)])
    with pytest.raises(RuleError) as err:
        RuleSet.load(root)
    msg = str(err.value)
    assert "ddi.yaml" in msg and "ddi.statin-sim-lova-strong-cyp3a4" in msg and "action" in msg


def test_edited_without_repinning_is_refused(tmp_path):
    root = _copy_rules(tmp_path)
    (root / "drugs" / "max_doses.csv").write_text("# edited\ningredient,rxcui,max_mg_day,source\n")
    with pytest.raises(RuleError, match="manifest"):
        RuleSet.load(root)


# ---- property ---------------------------------------------------------------------------------------------
GENES = ["CYP2C19", "CYP2D6", "CYP2C9", "SLCO1B1", "TPMT", "NUDT15", "DPYD", "HLA-B", "G6PD", "FOO1"]
ALLELES = ["*1", "*2", "*3", "*4", "*17", "*1x2", "*41", "*5", "*99", "Reference", "c.1905+1G>A (*2A)", "*57:01"]
DRUGS = [
    "clopidogrel",
    "codeine",
    "simvastatin",
    "rosuvastatin",
    "metformin",
    "paroxetine",
    "fluoxetine",
    "omeprazole",
    "warfarin",
    "ibuprofen",
    "azathioprine",
    "capecitabine",
    "abacavir",
    "citalopram",
    "lisinopril",
    "losartan",
    "tramadol",
    "phenytoin",
    "carbamazepine",
    "amitriptyline",
    "unknowndrug",
]


@settings(max_examples=int(__import__("os").environ.get("SAFETY_EXAMPLES", "60")), deadline=None)
@given(
    results=st.lists(
        st.tuples(
            st.sampled_from(GENES),
            st.sampled_from(ALLELES),
            st.sampled_from(ALLELES),
            st.sampled_from([None, "Poor Metabolizer", "Normal Metabolizer", "nonsense"]),
        ),
        max_size=4,
    ),
    current=st.lists(st.sampled_from(DRUGS), max_size=3),
    regimen=st.lists(st.tuples(st.sampled_from(DRUGS), st.one_of(st.none(), st.floats(0.1, 5000))), max_size=3),
    egfr=st.one_of(st.none(), st.floats(5, 130)),
    extra=st.lists(
        st.one_of(
            st.builds(
                lambda g, s: PgxResult(gene=g, activity_score=s, source="pharmcat-tsv"),
                st.sampled_from(["CYP2D6", "CYP2C9", "DPYD", "CYP2C19"]),
                st.sampled_from([0.0, 0.5, 1.0, 1.75, 3.5]),
            ),
            st.builds(
                lambda a, pos: PgxResult(gene="HLA-B", allele=a, allele_status=pos, source="fhir-hla"),
                st.sampled_from(["*57:01", "*15:02", "*58:01"]),
                st.sampled_from(["positive", "negative"]),
            ),
        ),
        max_size=3,
    ),
)
def test_random_inputs_never_crash_and_untested_is_never_normal(rs, results, current, regimen, egfr, extra):
    pgx = tuple(PgxResult(gene=g, diplotype=f"{a}/{b}", phenotype=p, source="pharmcat-tsv") for g, a, b, p in results)
    pgx += tuple(extra)
    results = results + [(p.gene, None, None, None) for p in extra]
    r = rec(meds=current, egfr=egfr).model_copy(update={"pgx": pgx})
    seen = {d for d, _ in regimen}
    drugs = [DrugDose(ingredient=d, rxcui="0", dose_mg_day=dose) for d, dose in dict(regimen).items()]
    fs = rs.screen(r, Regimen.of(drugs))
    tested = {g for g, *_ in results}
    normal_keys = {"Normal Metabolizer", "Normal Function", "Normal", "2.0", "1.25", "1.5", "1.75", "2.25"}
    for f in fs:
        assert len(f.message) <= 140
        if f.kind != "gene-drug":
            continue
        for part in (f.phenotype or "").split("; most severe")[0].split("; "):
            locus, _, value = part.partition("=")
            gene = locus.split("*")[0]
            if gene in tested:
                continue
            if "phenoconverted by" in value:  # a strong inhibitor made the untested gene poor, never normal
                assert value.split(" (")[0] not in normal_keys, f
            else:
                assert value == "No Result", f
    out = apply_findings(Regimen.of(drugs), fs)
    assert out is None or set(out.ingredients) == seen


# ---- later additions: several gene sets, score fallback, no-rule gap, caps, populations --------------------------
def test_warfarin_gets_one_finding_per_gene(rs):
    r = rec(pgx=[("CYP2C9", "*1/*3"), ("VKORC1", "rs9923231 reference (C)/rs9923231 variant (T)")])
    gd = [f for f in rs.screen(r, reg(("warfarin", 5))) if f.kind == "gene-drug"]
    assert sorted(f.genes for f in gd) == [("CYP2C9",), ("VKORC1",)]
    assert all(f.action == "caution" for f in gd)
    only = [f for f in rs.screen(rec(pgx=[("CYP2C9", "*1/*1")]), reg(("warfarin", 5)))]
    assert [f.genes for f in only if f.kind == "data-gap"] == [("VKORC1",)]


def test_activity_score_without_cpic_row_uses_its_phenotype(rs):
    r = PatientRecord(
        patient_id="t", as_of=AS_OF, pgx=(PgxResult(gene="CYP2D6", activity_score=3.5, source="pharmcat-tsv"),)
    )
    gd = [f for f in rs.screen(r, reg(("codeine", 60))) if f.kind == "gene-drug"][0]
    assert gd.action == "exclude" and "same phenotype used" in gd.phenotype


def test_tested_gene_without_matching_rule_is_a_data_gap(tmp_path):
    from planner.manifest import main as pin

    root = _copy_rules(tmp_path)
    p = root / "pgx" / "gene_drug.csv"
    p.write_text(
        "".join(
            line
            for line in p.read_text().splitlines(keepends=True)
            if not (line.startswith("cpic.clopidogrel.") and "Poor Metabolizer,CVI ACS PCI" in line)
        )
    )
    pin([str(root)])
    rs2 = RuleSet.load(root)
    fs = rs2.screen(rec(pgx=[("CYP2C19", "*2/*2")], conds=["22298006"]), reg(("clopidogrel", 75)))
    assert [f.rule_id for f in fs] == ["gap.pgx.no-rule"]
    assert fs[0].action == "caution"


def test_citalopram_age_cap(rs):
    old = rec(birth=dt.date(1950, 1, 1))
    f = [x for x in rs.screen(old, reg(("citalopram", 40))) if x.rule_id == "cond.citalopram-age-60"][0]
    assert (f.action, f.adjusted_dose_mg_day) == ("adjust_dose", 20)
    ok = [x for x in rs.screen(old, reg(("citalopram", 20))) if x.rule_id == "cond.citalopram-age-60"][0]
    assert ok.action == "info"
    assert apply_findings(reg(("citalopram", 40)), rs.screen(old, reg(("citalopram", 40)))).dose_of("citalopram") == 20


def test_moderate_cyp2c9_inhibitor_steps_score_on_its_grid(rs):
    r = rec(pgx=[("CYP2C9", "*1/*2")], meds=["fluconazole"])  # 1.5 x 0.5 = 0.75 -> 0.5 on CYP2C9's 0.5 grid
    gd = [f for f in rs.screen(r, reg(("celecoxib", 200))) if f.kind == "gene-drug"][0]
    assert gd.phenotype.startswith("CYP2C9=0.5 (phenoconverted by fluconazole)")
    assert gd.action == "adjust_dose"


def test_phenytoin_naive_vs_established(rs):
    hla_pos = (PgxResult(gene="HLA-B", allele="*15:02", allele_status="positive", source="fhir-hla"),)
    naive = PatientRecord(patient_id="t", as_of=AS_OF, pgx=hla_pos)
    assert [f.action for f in rs.screen(naive, reg("phenytoin")) if f.kind == "gene-drug"] == ["exclude"]
    established = naive.model_copy(
        update={
            "medications": (
                Medication(ingredient="phenytoin", rxcui="0", start=AS_OF - dt.timedelta(days=400), status="active"),
            )
        }
    )
    fs = rs.check(established)
    assert [f.action for f in fs if f.kind == "gene-drug"] == ["caution"]
    recent = naive.model_copy(
        update={
            "medications": (
                Medication(ingredient="phenytoin", rxcui="0", start=AS_OF - dt.timedelta(days=20), status="active"),
            )
        }
    )
    assert [f.action for f in rs.check(recent) if f.kind == "gene-drug"] == ["exclude"]


def test_declared_population(rs):
    r = PatientRecord(
        patient_id="t",
        as_of=AS_OF,
        pgx=(
            PgxResult(gene="HLA-B", allele="*15:02", allele_status="negative", source="fhir-hla"),
            PgxResult(gene="HLA-A", allele="*31:01", allele_status="positive", source="fhir-hla"),
        ),
    )
    assert [f.action for f in rs.screen(r, reg("carbamazepine")) if f.kind == "gene-drug"] == ["exclude"]
    ctx = rs.prepare(r, populations=["CBZ-no alternatives"])
    assert [f.action for f in rs.screen(ctx, reg("carbamazepine")) if f.kind == "gene-drug"] == ["caution"]
    with pytest.raises(RuleError, match="unknown population"):
        rs.prepare(r, populations=["nope"])


def test_age_population(rs):
    pm = [("CYP2C19", "*2/*2")]
    adult = [f for f in rs.screen(rec(pgx=pm), reg("voriconazole")) if f.kind == "gene-drug"][0]
    child = [
        f for f in rs.screen(rec(pgx=pm, birth=dt.date(2015, 1, 1)), reg("voriconazole")) if f.kind == "gene-drug"
    ][0]
    assert "adults" in adult.message and "pediatrics" in child.message


def test_two_serotonergic_antidepressants(rs):
    assert ("drug-drug", "ddi.two-serotonergic-antidepressants") in kinds(
        rs.screen(rec(meds=["amitriptyline"]), reg(("sertraline", 50))), "caution"
    )


def test_allergy_by_rxnorm_code(rs):
    r = rec(
        allergies=[Allergy(code="70618", system="http://www.nlm.nih.gov/research/umls/rxnorm", display="Penicillin")]
    )
    assert apply_findings(reg("amoxicillin"), rs.screen(r, reg("amoxicillin"))) is None
    food = rec(allergies=[Allergy(code="91935009", system=SNOMED, display="Allergy to peanuts", category=("food",))])
    assert not any(f.kind == "drug-allergy" for f in rs.screen(food, reg("amoxicillin")))


def test_invalid_gene_drug_row_names_file_rule_and_field(tmp_path):
    from planner.cli import main
    from planner.manifest import main as pin

    root = _copy_rules(tmp_path)
    p = root / "pgx" / "gene_drug.csv"
    lines = p.read_text().splitlines(keepends=True)
    i = next(k for k, line in enumerate(lines) if line.startswith("cpic.abacavir."))
    rule_id = lines[i].split(",")[0]
    lines[i] = lines[i].replace(",general,exclude,", ",general,forbid,").replace(",general,info,", ",general,forbid,")
    p.write_text("".join(lines))
    pin([str(root)])
    with pytest.raises(RuleError) as err:
        RuleSet.load(root)
    assert "gene_drug.csv" in str(err.value) and rule_id in str(err.value) and "action" in str(err.value)
    assert main(["rules", "validate", str(root)]) == 2


@pytest.mark.parametrize(
    "display,drug,fires",
    [
        ("Pregnancy", "lisinopril", True),
        ("Not pregnant", "lisinopril", False),
        ("History of pregnancy", "lisinopril", False),
        ("Pregnancy with no complications", "lisinopril", True),
        ("History of angioedema", "lisinopril", True),
        ("Family history of medullary thyroid carcinoma", "semaglutide", True),
        ("Heat stroke", "clopidogrel", None),  # not a neurovascular indication: population stays undetermined
    ],
)
def test_condition_text_fallback_is_word_based_and_negation_aware(rs, display, drug, fires):
    r = PatientRecord(patient_id="t", as_of=AS_OF, conditions=(Condition(display=display),))
    ctx = rs.prepare(r)
    if fires is None:
        assert "neurovascular_indication" not in ctx.conditions
        return
    assert any(f.kind == "drug-condition" and f.action == "exclude" for f in rs.screen(ctx, reg(drug))) is fires


def test_allergy_terms_are_whole_words(rs):
    r = rec(allergies=[Allergy(display="Morphine sulfate allergy")])
    assert not any(f.kind == "drug-allergy" for f in rs.screen(r, reg("sulfamethoxazole")))
    r2 = rec(allergies=[Allergy(display="Sulfa allergy")])
    assert any(f.kind == "drug-allergy" for f in rs.screen(r2, reg("sulfamethoxazole")))


def test_bad_message_template_is_refused(tmp_path):
    from planner.manifest import main as pin

    root = _copy_rules(tmp_path)
    p = root / "conditions" / "drug_condition.yaml"
    p.write_text(p.read_text().replace("Do not use {drug} with heart failure", "Do not use {drugs} with heart failure"))
    pin([str(root)])
    with pytest.raises(RuleError, match="cond.tzd-heart-failure"):
        RuleSet.load(root)
