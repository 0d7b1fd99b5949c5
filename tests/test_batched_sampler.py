"""``planner.model.batched.sample_batch``: one sampler call for many patients gives, patient by patient, the
same draws (bit for bit) as ``ResponseModel.sample_kinds`` for that patient alone, whatever else is in the batch
and whatever the model remembers of earlier batches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from planner.areas import fill_doses, load_area
from planner.features.row import feature_row
from planner.model import RegimenGenerator, ResponseModel, batched
from planner.safety import RuleSet
from planner.simulate import simulate_cohort


def _jobs(area_id: str, n: int, seed: int) -> tuple[ResponseModel, list[batched.DrawJob]]:
    area = load_area(area_id)
    rules = RuleSet.load()
    gen = RegimenGenerator.from_area(area)
    jobs = []
    for i, rec in enumerate(simulate_cohort(area, n, seed=seed).records()):
        row = feature_row(rec, area, knowledge=rules.knowledge)
        if not row.can_predict:
            continue
        regs = [fill_doses(r, area) for r in gen.propose(row.frame(), fill_doses(row.current, area), n=20, seed=i)]
        jobs.append(batched.DrawJob(X=row.frame(), regimens=regs, current=row.measured_under, seed=7 * i))
    return ResponseModel.from_area(area), jobs


def _alone(model: ResponseModel, job: batched.DrawJob, S: int) -> list[np.ndarray]:
    return model.sample_kinds(
        job.X, list(job.regimens), S, seeds=[("mean", job.seed), ("predictive", job.seed + 1)], current=job.current
    )


@pytest.mark.parametrize("area_id", ["t2d", "lipids"])
def test_batch_equals_one_at_a_time(area_id: str) -> None:
    model, jobs = _jobs(area_id, 8, seed=2)
    assert len(jobs) >= 4
    S = 300
    got = batched.sample_batch(model, jobs, S)
    for job, (mean, pred) in zip(jobs, got):
        m1, p1 = _alone(model, job, S)
        assert mean.shape == (S, 1, len(job.regimens))
        assert np.array_equal(mean, m1) and np.array_equal(pred, p1)
        assert mean.flags.c_contiguous and pred.flags.c_contiguous  # the layout the ranking reduces over


def test_remembered_regimens_and_a_full_cache_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    model, jobs = _jobs("t2d", 6, seed=4)
    S = 200
    first = batched.sample_batch(model, jobs[:3], S)
    again = batched.sample_batch(model, list(reversed(jobs)), S)[::-1]  # most regimens now remembered
    monkeypatch.setattr(batched, "MAX_REGIMENS", 40)  # forces the memory to start again mid-batch
    small = batched.sample_batch(model, jobs, S)
    for k, job in enumerate(jobs):
        m1, p1 = _alone(model, job, S)
        for got in ([first[k]] if k < 3 else []) + [again[k], small[k]]:
            assert np.array_equal(got[0], m1) and np.array_equal(got[1], p1)


def test_concurrent_callers_get_their_own_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    """The service plans requests in threads: remembered regimens (and a memory that starts again) are shared
    safely."""
    from concurrent.futures import ThreadPoolExecutor

    model, jobs = _jobs("t2d", 8, seed=6)
    S = 200
    want = [_alone(model, j, S) for j in jobs]
    monkeypatch.setattr(batched, "MAX_REGIMENS", 150)
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda j: batched.sample_batch(model, [j], S)[0], jobs * 3))
    for k, (mean, pred) in enumerate(got):
        m1, p1 = want[k % len(jobs)]
        assert np.array_equal(mean, m1) and np.array_equal(pred, p1)


def test_regimens_wider_than_the_combination_limit_and_untreated_patients() -> None:
    """Observed regimens may hold more drugs than the area's ``max_drugs`` (their encodings are wider): a patient
    whose current regimen is wider than its candidates, one with a wide candidate, and one untreated at baseline
    each get their one-at-a-time draws."""
    model, jobs = _jobs("t2d", 6, seed=8)
    area = load_area("t2d")
    wide = [r for r in (jobs[0].current, *jobs[0].regimens) if r is not None and len(r.drugs) >= 2][0]
    extra = [d for d in area.formulary if d.ingredient not in wide.ingredients]
    four = fill_doses(
        type(wide).of(
            list(wide.drugs)
            + [
                type(wide.drugs[0])(ingredient=d.ingredient, rxcui=d.rxcui, drug_class=d.drug_class)
                for d in extra[: 4 - len(wide.drugs)]
            ]
        ),
        area,
    )
    assert len(four.drugs) == 4 > area.combination.max_drugs
    odd = [
        batched.DrawJob(X=jobs[1].X, regimens=jobs[1].regimens, current=four, seed=11),
        batched.DrawJob(X=jobs[2].X, regimens=[*jobs[2].regimens[:5], four], current=jobs[2].current, seed=12),
        batched.DrawJob(X=jobs[3].X, regimens=jobs[3].regimens, current=None, seed=13),
    ]
    S = 150
    for got, job in zip(batched.sample_batch(model, odd + jobs, S), odd + jobs):
        m1, p1 = _alone(model, job, S)
        assert np.array_equal(got[0], m1) and np.array_equal(got[1], p1)


def test_patients_with_one_seed_and_as_many_regimens_share_random_numbers_not_draws() -> None:
    """A batch planned with one seed: patients with as many regimens get the same random terms (drawn once and
    remembered), and still each their own one-at-a-time draws."""
    model, jobs = _jobs("t2d", 8, seed=10)
    R = min(len(j.regimens) for j in jobs)
    same = [batched.DrawJob(X=j.X, regimens=list(j.regimens)[-R:], current=j.current, seed=3) for j in jobs]
    S = 120
    got = batched.sample_batch(model, same, S)
    again = batched.sample_batch(model, same[::-1], S)[::-1]  # remembered from the first call
    for job, a, b in zip(same, got, again):
        m1, p1 = _alone(model, job, S)
        assert np.array_equal(a[0], m1) and np.array_equal(a[1], p1)
        assert np.array_equal(b[0], m1) and np.array_equal(b[1], p1)
    assert not np.array_equal(got[0][1], got[1][1])  # different patients: different draws


def test_a_row_given_as_values_is_read_as_its_one_row_frame() -> None:
    """``DrawJob.values`` (the feature row without a DataFrame) gives the frame's numbers, and where the frame
    would need pandas or raise, the frame path itself (same error)."""
    from planner.errors import ModelError
    from planner.model import inputs

    area = load_area("t2d")
    rules = RuleSet.load()
    model = ResponseModel.from_area(area)
    spec, _ = model._state()
    rows = [feature_row(rec, area, knowledge=rules.knowledge) for rec in simulate_cohort(area, 6, seed=3).records()]
    rows = [r for r in rows if r.can_predict]
    base = dict(rows[0].values)
    variants = [dict(r.values) for r in rows] + [
        {**base, next(k for k in base if k != spec.baseline): None},
        {k: v for k, v in base.items() if k == spec.baseline},  # every other feature missing (untrained: lenient)
        {**base, spec.baseline: int(round(float(base[spec.baseline])))},
    ]
    for values in variants:
        frame = pd.DataFrame([{k: (np.nan if v is None else v) for k, v in values.items()}])
        got = inputs.matrix_values(spec, values)
        assert got is not None
        want = inputs.matrix(spec, frame)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    for bad in ({**base, spec.baseline: None}, {**base, spec.baseline: "high"}):
        assert inputs.matrix_values(spec, bad) is None
        job = batched.DrawJob(X=None, values=bad, regimens=[rows[0].current], current=None, seed=0)
        with pytest.raises(ModelError) as got_err:
            batched.sample_batch(model, [job], 50)
        with pytest.raises(ModelError) as want_err:
            model.sample(job.frame(), [rows[0].current], 50)
        assert str(got_err.value) == str(want_err.value)
    gen = RegimenGenerator.from_area(area)
    S = 100
    frames, by_values = [], []
    for i, r in enumerate(rows):
        regs = [fill_doses(x, area) for x in gen.propose(None, fill_doses(r.current, area), n=10, seed=i)]
        frames.append(batched.DrawJob(X=r.frame(), regimens=regs, current=r.measured_under, seed=i))
        by_values.append(batched.DrawJob(X=None, values=r.values, regimens=regs, current=r.measured_under, seed=i))
    for a, b in zip(batched.sample_batch(model, by_values, S), batched.sample_batch(model, frames, S)):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_a_full_memory_keeps_the_batch_regimens(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the remembered regimens would pass the bound, those of the batch in hand are kept (moved, not
    recomputed) and the others dropped; every draw is still the patient's one-at-a-time draw."""
    model, jobs = _jobs("t2d", 8, seed=12)
    S = 100
    want = [_alone(model, j, S) for j in jobs]
    batched.sample_batch(model, jobs[:4], S)
    spec = model._state()[0]
    width = max(batched._Wanted.of(spec, j).width for j in jobs[4:])
    mem = batched._CACHES[model][(S, width)]
    first = set(mem.rows)
    wanted = [batched._Wanted.of(spec, j) for j in jobs[4:]]
    later = {k for w in wanted for k in [*w.keys, w.current] if k is not None and (w.cwidth or width) == width}
    later |= {k for w in wanted for k in w.keys}
    assert first - later and later - first  # some regimens go, some are new
    computed: list = []
    add = batched.RegimenParts._add
    monkeypatch.setattr(
        batched.RegimenParts, "_add", lambda self, *a: (computed.extend(set(a[-1]) - self.rows.keys()), add(self, *a))
    )
    monkeypatch.setattr(batched, "MAX_REGIMENS", len(first | later) - 1)
    got = batched.sample_batch(model, jobs[4:], S)
    assert set(mem.rows) == later  # the batch's own regimens, the earlier ones it does not use dropped
    assert not set(computed) & first  # those it kept were moved, not computed again
    for (mean, pred), (m1, p1) in zip(got, want[4:]):
        assert np.array_equal(mean, m1) and np.array_equal(pred, p1)


def _columns_slot_by_slot(pr, par, d):
    """``regimen_columns`` computed on every (draw, regimen, slot) directly: the reference."""
    import torch

    from planner.model.model import _take, dose_curve

    zero = torch.zeros(par["drug_eff"].shape[:-1] + (1,), dtype=d.g.dtype)
    ed50 = _take(torch.cat([par["ed50"], torch.ones_like(zero)], -1), d.cls)
    g = dose_curve(pr.kind[d.cls], ed50, d.g)
    wg = d.mask * par["rho"][..., None, None] ** d.rank * g
    main = (
        _take(torch.cat([par["drug_eff"], zero], -1), d.drug)
        + _take(torch.cat([par["slope"], zero], -1), d.cls) * d.log2r
    )
    eff = (wg * main).sum(-1)
    wp = wg * torch.cat([pr.potency.to(d.g.dtype), torch.zeros(1)])[d.drug]
    cols = [eff - (wp * _take(torch.cat([par["gamma_off"], zero], -1), d.cls)).sum(-1)]
    for j in range(pr.p):
        cols.append((wp * _take(torch.cat([par["gamma"][..., j], zero], -1), d.cls)).sum(-1))
    return torch.stack(cols, 0).permute(2, 0, 1).contiguous(), g


@pytest.mark.parametrize("width", [3, 4, 6])
def test_regimen_columns_per_distinct_slot_are_the_slot_by_slot_values(width: int) -> None:
    """Slot terms are computed once per distinct slot and summed per regimen: bit for bit the values of the
    computation on every slot, for designs of 3 and 4 slots (sums added in order) and wider (torch's sum)."""
    import torch

    from planner.model.model import Slots, regimen_columns

    model, jobs = _jobs("t2d", 6, seed=14)
    spec, draws = model._state()
    par = {k: v[:150] for k, v in model._fast(spec, draws).items()}
    pr = model._priors_cache[1]
    regs = [r for j in jobs for r in j.regimens] + [j.current for j in jobs if j.current is not None]
    design = spec.design_of([spec.encoded(batched._key_of(r, "regimens", 0), "regimens", 0) for r in regs], width=width)
    d = Slots.of(design, torch.float32)
    lin, g = regimen_columns(pr, par, d)
    ref_lin, ref_g = _columns_slot_by_slot(pr, par, d)
    assert lin.shape == (len(regs), 1 + pr.p, 150) and g.shape == (150, len(regs), max(width, spec.max_drugs))
    assert torch.equal(lin, ref_lin) and torch.equal(g, ref_g)
