"""The screen's fast paths change no finding.

The prepared path (``RuleSet.prepare`` once, then ``screen_plan`` per candidate, with every memo of the
context: per regimen, per drug block, per pair, per gene-drug match, per adjusted plan) must give exactly what
the naive path gives (a fresh rule set and a fresh patient context for every candidate), for many generated
patients and candidates: same findings (every field, in the same order), same final regimen (doses included),
same ``adjusted_by``. Findings and regimens built without re-validation (``planner.safety.findings.replace``,
the dose-adjusted regimen) must equal what validating their fields gives, field types included.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest

from planner.areas import enumerate_regimens, load_area
from planner.record import (
    Allergy,
    Condition,
    DrugDose,
    Finding,
    Measurement,
    Medication,
    PatientRecord,
    PgxResult,
    Regimen,
)
from planner.safety import RuleSet, screen_plan, sort_findings
from planner.safety.plan import PlanScreen

AS_OF = dt.date(2024, 6, 1)
SNOMED = "http://snomed.info/sct"
AREAS = ("t2d", "lipids", "hypertension", "depression")
CONDITIONS = ("44054006", "55822004", "59621000", "35489007", "84114007", "77386006", "41291007", "46177005")
DIPLOTYPES = {
    "CYP2C19": ["*1/*1", "*1/*2", "*2/*2", "*1/*17", "*17/*17", "*2/*17"],
    "CYP2D6": ["*1/*1", "*1/*4", "*4/*4", "*1/*1x2", "*4/*5", "*10/*10", "*1/*41"],
    "CYP2C9": ["*1/*1", "*1/*2", "*1/*3", "*3/*3"],
    "SLCO1B1": ["*1/*1", "*1/*5", "*5/*5", "*1/*15"],
    "CYP2B6": ["*1/*1", "*6/*6"],
}
ALLERGENS = {"penicillin": "764146007", "sulfonamide": "387406002", "statin": "96302009"}


def generated(rs: RuleSet, rng: random.Random, pid: int) -> PatientRecord:
    """A patient with current drugs from every drug any rule names, random genotypes, eGFR and conditions."""
    named = sorted(rs.named_drugs())
    meds = [
        Medication(
            id=f"m{i}",
            ingredient=d,
            rxcui="0",
            status="active",
            start=dt.date(2023, 1, 1),
            dose_mg_day=rng.choice([None, 5.0, 20.0, 40.0, 100.0]),
        )
        for i, d in enumerate(rng.sample(named, rng.randint(0, 6)))
    ]
    obs = {}
    if rng.random() < 0.8:
        obs["egfr"] = (
            Measurement(
                date=AS_OF - dt.timedelta(days=30),
                value=rng.choice([12, 25, 35, 50, 90]),
                unit="mL/min/1.73m2",
                loinc="33914-3",
            ),
        )
    return PatientRecord(
        patient_id=f"p{pid}",
        as_of=AS_OF,
        birth_date=dt.date(rng.randint(1935, 2004), 6, 1),
        sex=rng.choice(["male", "female"]),
        medications=tuple(meds),
        observations=obs,
        conditions=tuple(
            Condition(id=f"c{i}", code=c, system=SNOMED, clinical_status="active")
            for i, c in enumerate(rng.sample(CONDITIONS, rng.randint(1, 3)))
        ),
        allergies=tuple(
            Allergy(id=f"a{i}", code=ALLERGENS[n], system=SNOMED, display=n)
            for i, n in enumerate(rng.sample(sorted(ALLERGENS), rng.randint(0, 1)))
        ),
        pgx=tuple(
            PgxResult(gene=g, diplotype=rng.choice(DIPLOTYPES[g]), source="pharmcat-tsv")
            for g in rng.sample(sorted(DIPLOTYPES), rng.randint(0, len(DIPLOTYPES)))
        ),
    )


def candidates(rng: random.Random, n: int) -> list[Regimen]:
    """Candidates of the areas (all dose levels), some listed twice, in random order."""
    pool = [r for area in AREAS for r in enumerate_regimens(load_area(area), doses="all", max_drugs=2)]
    chosen = rng.sample(pool, min(n, len(pool)))
    return chosen + chosen[: n // 10]


def as_data(v: PlanScreen) -> tuple:
    final = None if v.final is None else [d.model_dump() for d in v.final.drugs]
    return final, [f.model_dump() for f in v.findings], v.adjusted_by


def assert_valid(f: Finding) -> None:
    again = Finding.model_validate(f.model_dump())
    assert again == f
    for k, v in f.__dict__.items():
        assert type(v) is type(getattr(again, k)), (k, v)


def compare(rs: RuleSet, seed: int, patients: int, per_patient: int) -> int:
    rng = random.Random(seed)
    fresh = RuleSet(Path(rs.root), rs.rules_version)
    n = 0
    for p in range(patients):
        rec = generated(rs, rng, p)
        ctx = rs.prepare(rec)
        for reg in candidates(rng, per_patient):
            fast = screen_plan(ctx, reg, rules=rs)
            naive = screen_plan(rec, reg, rules=fresh)  # a fresh context: no memo shared with other regimens
            assert as_data(fast) == as_data(naive), (rec.patient_id, reg.key())
            for f in fast.findings:
                assert_valid(f)
            if fast.final is not None and fast.final is not reg:
                assert Regimen.model_validate(fast.final.model_dump()) == fast.final
            n += len(fast.findings)
    return n


def test_fast_and_naive_paths_agree_on_generated_patients():
    rs = RuleSet.load()
    assert compare(rs, seed=10, patients=40, per_patient=40) > 500  # enough findings that a change would show


@pytest.mark.slow
def test_fast_and_naive_paths_agree_on_more_patients():
    rs = RuleSet.load()
    assert compare(rs, seed=11, patients=150, per_patient=80) > 2000


def test_benchmark_patient_prepared_equals_naive():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_screen", Path(__file__).parents[1] / "benchmarks/screen.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rs = RuleSet.load()
    rec, regs = bench.patient(), bench.regimens(200, 0)
    ctx = rs.prepare(rec)
    fresh = RuleSet(Path(rs.root), rs.rules_version)
    for reg in regs:
        assert as_data(screen_plan(ctx, reg, rules=rs)) == as_data(screen_plan(rec, reg, rules=fresh)), reg.key()


def test_adjusted_fast_path_equals_the_general_path():
    """A dose-adjusted regimen of the fast path takes its verdict from its slots (``Screener.adjusted``); with
    that path switched off the verdict is apply_findings + a re-screen + a merge: both must give the same
    verdict (findings in order, final regimen and its fields-set, ``adjusted_by``), with and without
    ``new_start``, and the slot path must have answered for many of them."""
    rs = RuleSet.load()
    general = RuleSet(Path(rs.root), rs.rules_version)
    general._screener.adjusted = lambda *a: None  # type: ignore[method-assign]
    taken = 0
    real = rs._screener.adjusted

    def counted(*a):
        nonlocal taken
        out = real(*a)
        taken += out is not None
        return out

    rs._screener.adjusted = counted  # type: ignore[method-assign]
    rng = random.Random(21)
    adjusted = 0
    for p in range(80):
        rec = generated(rs, rng, p)
        ctx, ctx_g = rs.prepare(rec), general.prepare(rec)
        for i, reg in enumerate(candidates(rng, 40)):
            starts = None if i % 2 else [d.ingredient for d in reg.drugs if d.ingredient not in ctx.current]
            v = screen_plan(ctx, reg, rules=rs, new_start=starts)
            g = screen_plan(ctx_g, reg, rules=general, new_start=starts)
            assert as_data(v) == as_data(g) and v.findings == g.findings, (rec.patient_id, reg.key())
            if v.final is not None:
                assert v.final == g.final and v.final.__pydantic_fields_set__ == g.final.__pydantic_fields_set__
                for a, b in zip(v.final.drugs, g.final.drugs):
                    assert a.__pydantic_fields_set__ == b.__pydantic_fields_set__
            adjusted += bool(v.adjusted_by)
    assert adjusted > 100 and taken > 60, (adjusted, taken)


def test_adjusted_regimen_keeps_every_drug_field():
    rs = RuleSet.load()
    rec = PatientRecord(
        patient_id="x",
        as_of=AS_OF,
        birth_date=dt.date(1950, 1, 1),
        medications=(Medication(ingredient="clarithromycin", rxcui="0", status="active", start=dt.date(2023, 1, 1)),),
    )
    reg = Regimen.of(
        [
            DrugDose(ingredient="simvastatin", rxcui="36567", dose_mg_day=80.0, drug_class="statin"),
            DrugDose(ingredient="metformin", rxcui="6809", dose_mg_day=1000.0),
        ]
    )
    v = screen_plan(rec, reg, rules=rs)
    assert v.final is None or v.final is not reg  # the interaction either excludes or caps simvastatin
    if v.final is not None:
        simva = [d for d in v.final.drugs if d.ingredient == "simvastatin"][0]
        assert (simva.rxcui, simva.drug_class) == ("36567", "statin")
        assert simva.dose_mg_day is not None and simva.dose_mg_day < 80.0


def reference(rs: RuleSet, rec: PatientRecord, reg: Regimen) -> list[Finding]:
    """The findings of ``reg`` from every rule kind's own ``findings(ctx, plan)`` (the protocol, every kind
    asked, nothing skipped), on a fresh context: what the screen loop's shortcuts (per-drug kinds only where a
    rule can name the drug, pairs gathered per drug, list kinds only when something links) must reproduce."""
    ctx = rs.prepare(rec)
    kd = tuple((d.ingredient, d.dose_mg_day) for d in reg.drugs)
    plan = rs._screener.plan_of(ctx, kd, None, ())
    return sort_findings([f for kind in rs.kinds for f in kind.findings(ctx, plan)])


def test_screen_loop_equals_every_kind_asked_directly():
    rs = RuleSet.load()
    fresh = RuleSet(Path(rs.root), rs.rules_version)
    rng = random.Random(12)
    n = 0
    for p in range(40):
        rec = generated(rs, rng, p)
        ctx = rs.prepare(rec)
        for reg in candidates(rng, 30):
            assert len(set(reg.ingredients)) == len(reg.drugs)
            fast = rs.screen(ctx, reg)
            assert [f.model_dump() for f in fast] == [f.model_dump() for f in reference(fresh, rec, reg)], reg.key()
            n += len(fast)
    assert n > 300


def test_verdict_objects_equal_the_dataclass_built_ones():
    """``verdict`` builds its PlanScreen without the dataclass __init__: it must be the same object in every
    way a caller can tell (fields, equality, dataclasses.replace/asdict, frozen)."""
    import dataclasses

    rs = RuleSet.load()
    rng = random.Random(3)
    rec = generated(rs, rng, 0)
    ctx = rs.prepare(rec)
    for reg in candidates(rng, 60):
        v = screen_plan(ctx, reg, rules=rs)
        built = PlanScreen(v.regimen, v.final, v.findings, dict(v.adjusted_by))
        assert v == built and vars(v) == vars(built)
        assert dataclasses.asdict(v) == dataclasses.asdict(built)
        assert dataclasses.replace(v, findings=()) == dataclasses.replace(built, findings=())
        with pytest.raises(dataclasses.FrozenInstanceError):
            v.final = None  # type: ignore[misc]


def _same_model(a, b) -> None:
    """Equal, with the same fields-set and field types, recursively through nested models and tuples."""
    from pydantic import BaseModel

    assert type(a) is type(b) and a == b
    if isinstance(a, BaseModel):
        assert a.model_fields_set == b.model_fields_set, type(a).__name__
        for k in type(a).model_fields:
            _same_model(getattr(a, k), getattr(b, k))
    elif isinstance(a, tuple):
        for x, y in zip(a, b):
            _same_model(x, y)


def test_screening_stage_objects_equal_their_validated_twins():
    """``screen_candidates`` builds its hand-off objects with ``findings.built`` (no re-validation): each must
    equal the object validation gives from the same fields (fields-set and field types included)."""
    from planner import stages
    from planner.handoffs import CandidateSet, ExcludedCandidate, GeneNeed, ScreenedCandidates, ScreenedRegimen
    from planner.safety.findings import built

    rs = RuleSet.load()
    area = load_area("depression")
    rng = random.Random(4)
    regs = enumerate_regimens(area, doses="all", max_drugs=2)
    given = {  # the fields the stage gives each model (the others keep their defaults, unset)
        ScreenedCandidates: ("candidates", "kept", "excluded", "current_findings", "genes", "rules_version"),
        ScreenedRegimen: ("proposed", "regimen", "findings", "adjusted_by"),
        ExcludedCandidate: ("regimen", "findings"),
        GeneNeed: ("gene", "status", "drugs"),
    }
    seen = 0
    for p in range(6):
        rec = generated(rs, rng, p)
        row = stages.feature_row(rec, area, knowledge=rs.knowledge)
        cands = CandidateSet(
            features=row, candidates=tuple(rng.sample(regs, 40)), generator="test", seed=0, requested=40
        )
        sc = stages.screen_candidates(cands, rec, area=area, rules=rs)
        for obj in (sc, *sc.kept, *sc.excluded, *sc.genes):  # each built with the fields the stage passes
            _same_model(obj, type(obj)(**{f: getattr(obj, f) for f in given[type(obj)]}))
        seen += len(sc.kept) + len(sc.excluded)
    assert seen > 100
    with pytest.raises(ValueError, match="unknown"):  # an unknown field goes through the model, which names it
        built(GeneNeed, gene="CYP2D6", status="tested", drugs=(), unknown=1)
    left = built(ScreenedRegimen, proposed=regs[0], regimen=regs[0])  # a mutable default: the model copies it
    assert (
        left.adjusted_by == {}
        and left.adjusted_by is not built(ScreenedRegimen, proposed=regs[0], regimen=regs[0]).adjusted_by
    )


def test_gene_drug_one_lookup_equals_the_general_match():
    """A drug whose CPIC rules are one population keyed on one set of genes is matched by one look-up when the
    patient has one value per gene (``GeneDrugKind.simple``): it must give what the general match gives
    (population choice, value combinations, widening, groups, data gaps), phenoconverted or not."""
    rs = RuleSet.load()
    general = RuleSet(Path(rs.root), rs.rules_version)
    general.gene_drug_kind.simple = {}
    drugs = sorted(rs.gene_drug_kind.simple)
    inhibitors = sorted(rs.inhibitor_drugs)
    rng = random.Random(21)
    n = 0
    for p in range(40):
        rec = generated(rs, rng, p)
        mine, theirs = rs.prepare(rec), general.prepare(rec)
        for d in rng.sample(drugs, 25):
            beside = frozenset(rng.sample(inhibitors, rng.randint(0, 2)))
            is_new = rng.random() < 0.5
            got = rs.gene_drug_kind.match(mine, d, beside, is_new)
            want = general.gene_drug_kind.match(theirs, d, beside, is_new)
            assert [(r.id, f.model_dump()) for r, f in got[0]] == [(r.id, f.model_dump()) for r, f in want[0]], d
            assert [f.model_dump() for f in got[1]] == [f.model_dump() for f in want[1]], d
            n += len(got[0])
    assert n > 200


def test_findings_built_once_per_rule_set_equal_those_built_when_screened():
    """Findings the rule kinds build at load instead of per patient must equal what building them when screened
    gives, fields-set, field order and field types included: duplicate therapy per pair of class members (each
    plan-adds variant), a phenoconverted CPIC finding made from the rule's plain one, allergy cross-reactivity
    looked up per group and drug."""
    from planner.safety.findings import added, sort_key
    from planner.safety.kinds.allergy import AllergyKind
    from planner.safety.kinds.gene_drug import GeneDrugKind

    rs = RuleSet.load()
    dup = rs._screener.duplicates
    for (c, pair, x), variants in dup.pairs.items():
        for current, (key, f) in zip(({}, {pair[1]}, {pair[0]}, set(pair)), variants):
            want = dup._finding(c, pair, x, added(pair, frozenset(current)))
            _same_model(f, want)
            assert list(f.__dict__) == list(want.__dict__) and key == sort_key(want)
    gd = next(k for k in rs._screener.drug_kinds if isinstance(k, GeneDrugKind))
    rng = random.Random(5)
    inhibitors = sorted(rs.inhibitor_drugs)
    rules = [r for rs_ in rs.gene_drug.values() for r in rs_]
    for rule in rng.sample(rules, 300):
        converted = sorted(rng.sample(inhibitors, rng.randint(1, 2)))
        eff = {
            g: gd.effective(rs.prepare(generated(rs, rng, 0)), g, frozenset(converted), rule.drug) for g in rule.genes
        }
        current = frozenset(rng.sample([rule.drug, *converted], rng.randint(0, 1)))
        got = gd._finding(rule, rule.drug, eff, converted, current)
        plain, gd.plain = gd.plain, {}  # the same finding built field by field
        try:
            want = gd._finding(rule, rule.drug, eff, converted, current)
        finally:
            gd.plain = plain
        _same_model(got, want)
        assert list(got.__dict__) == list(want.__dict__)
    allergy = next(k for k in rs._screener.drug_kinds if isinstance(k, AllergyKind))
    for g, cross in rs.allergy_cross.items():
        for d, classes in rs.drug_classes.items():
            scan = next(((act, c) for c, act in cross.items() if c in classes), None)
            assert allergy.cross_of[g].get(d) == scan, (g, d)


def test_screening_stage_equals_screen_plan_per_candidate():
    """The stage takes each verdict from ``RuleSet.verdicts`` (starts left to the screen's default when the
    features' current drugs are the context's) and each gene's status for the needed genes only: it must give
    what ``screen_plan`` with the explicit starts and ``rules.phenotypes`` give, candidate by candidate."""
    from planner import stages
    from planner.handoffs import CandidateSet
    from planner.status import GeneStatus

    rs = RuleSet.load()
    rng = random.Random(8)
    checked = adjusted = 0
    for area_id in ("depression", "t2d"):
        area = load_area(area_id)
        regs = enumerate_regimens(area, doses="all", max_drugs=2)
        for p in range(8):
            rec = generated(rs, rng, p)
            row = stages.feature_row(rec, area, knowledge=rs.knowledge)
            cands = CandidateSet(
                features=row, candidates=tuple(rng.sample(regs, 40)), generator="test", seed=0, requested=40
            )
            sc = stages.screen_candidates(cands, rec, area=area, rules=rs)
            ctx = rs.prepare(rec, area=area_id)
            current = set(row.current.ingredients)
            kept, excluded = {}, {}
            for cand in cands.candidates:
                ps = rs.screen_plan(
                    ctx, cand, new_start=[d.ingredient for d in cand.drugs if d.ingredient not in current]
                )
                if ps.final is None:
                    excluded[cand.key()] = (cand, ps.exclusions)
                else:
                    kept.setdefault(ps.final.key(), (cand, ps.final, ps.findings, ps.adjusted_by))
            assert [(k.proposed, k.regimen, k.findings, k.adjusted_by) for k in sc.kept] == list(kept.values())
            assert [(e.regimen, e.findings) for e in sc.excluded] == [excluded[k] for k in sorted(excluded)]
            phenos = rs.phenotypes(ctx)
            for g in sc.genes:
                want = phenos[g.gene].status if g.gene in phenos else GeneStatus.NOT_TESTED
                assert g.status == GeneStatus(want) and list(g.drugs) == sorted(g.drugs)
                assert set(g.drugs) == {
                    d.ingredient for c in cands.candidates for d in c.drugs if g.gene in rs.genes_for(d.ingredient)
                }
            checked += len(cands.candidates)
            adjusted += sum(1 for k in sc.kept if k.adjusted_by)
    assert checked == 640 and adjusted > 0 and any(sc.genes)
