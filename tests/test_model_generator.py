"""RegimenGenerator: valid moves, proposals, propensities, fitting a preference, save/load, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from planner.areas import load_area
from planner.errors import ModelError
from planner.model import MOVE_KINDS, RegimenGenerator
from planner.record import DrugDose, Regimen


def _reg(area, *pairs) -> Regimen:
    return Regimen.of(
        [
            DrugDose(ingredient=n, rxcui=area.drug(n).rxcui, dose_mg_day=d, drug_class=area.drug(n).drug_class)
            for n, d in pairs
        ]
    )


@pytest.fixture(scope="module")
def t2d():
    return load_area("t2d")


def test_moves_respect_combination_limits(t2d):
    g = RegimenGenerator.from_area(t2d)
    cur = _reg(t2d, ("metformin", 1000.0), ("glipizide", 10.0))
    moves = g.moves(g.key_of(cur))
    assert moves[0].kind == "continue" and moves[0].result == g.key_of(cur)
    kinds = {m.kind for m in moves}
    assert {"add", "switch_within", "switch_between", "dose_up", "dose_down", "stop"} <= kinds
    for m in moves:
        reg = g.regimen_of(m.result)
        classes = [d.drug_class for d in reg.drugs]
        assert len(classes) == len(set(classes)) and len(classes) <= t2d.combination.max_drugs
    full = _reg(t2d, ("metformin", 1000.0), ("glipizide", 10.0), ("sitagliptin", 100.0))
    assert not any(m.kind == "add" for m in g.moves(g.key_of(full)))
    within = [g.regimen_of(m.result) for m in moves if m.kind == "switch_within"]
    assert any("glimepiride" in r.ingredients and "metformin" in r.ingredients for r in within)


def test_propose_lists_current_and_every_single_move(t2d):
    g = RegimenGenerator.from_area(t2d)
    cur = _reg(t2d, ("metformin", 1000.0))
    props = g.propose(None, cur, n=40, seed=0)
    keys = [r.key() for r in props]
    assert keys[0] == cur.key() and len(keys) == len(set(keys))
    singles = {g.regimen_of(m.result).key() for m in g.moves(g.key_of(cur))}
    assert singles <= set(keys)
    assert len(keys) > len(singles)  # plus sampled two-move regimens
    assert g.propose(None, cur, n=40, seed=0) == props  # deterministic for a seed
    # untrained: first-line drugs favoured among additions
    mv, p = g.move_distribution(np.full(len(MOVE_KINDS), 1 / len(MOVE_KINDS)), g.key_of(Regimen()))
    add_p = {g.regimen_of(m.result).drugs[0].ingredient: 0.0 for m in mv if m.kind == "add"}
    for m, pi in zip(mv, p):
        if m.kind == "add":
            add_p[g.regimen_of(m.result).drugs[0].ingredient] += pi
    assert add_p["metformin"] == max(add_p.values())


def test_propensities_sum_to_one_over_single_moves(t2d):
    g = RegimenGenerator.from_area(t2d)
    cur = _reg(t2d, ("metformin", 1000.0))
    key = g.key_of(cur)
    results = list(dict.fromkeys(m.result for m in g.moves(key)))
    regs = [g.regimen_of(r) for r in results]
    p = g.propensity(None, [cur] * len(regs), regs)
    _, probs = g.move_distribution(np.full(len(MOVE_KINDS), 1 / len(MOVE_KINDS)), key)
    assert np.isclose(p.sum() + probs[-1], 1.0)  # single moves + the "other" pseudo-move
    far = _reg(t2d, ("sitagliptin", 100.0), ("pioglitazone", 30.0), ("glipizide", 5.0))
    assert 0 < g.propensity(None, [cur], [far])[0] < p.min()


def test_fit_learns_clinician_preferences(t2d):
    g = RegimenGenerator.from_area(t2d, seed=0)
    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame({"baseline": rng.normal(8.5, 1, n), "cyp2c9": rng.choice(["Normal Metabolizer", "not-tested"], n)})
    met = _reg(t2d, ("metformin", 1000.0))
    cur = [met] * n
    # clinicians add sitagliptin when the baseline is high, else continue
    chosen = [_reg(t2d, ("metformin", 1000.0), ("sitagliptin", 100.0)) if b > 8.5 else met for b in X["baseline"]]
    g.fit(X, cur, chosen)
    assert g.kind_counts_["add"] + g.kind_counts_["continue"] == n
    hi = pd.DataFrame({"baseline": [10.0], "cyp2c9": ["not-tested"]})
    lo = pd.DataFrame({"baseline": [7.0], "cyp2c9": ["not-tested"]})
    add = chosen[int(np.argmax(X["baseline"]))]
    assert g.propensity(hi, [met], [add])[0] > 0.5
    assert g.propensity(lo, [met], [met])[0] > 0.5
    assert g.propensity(lo, [met], [add])[0] < 0.2
    props = g.propose(hi, met, n=10, seed=1)
    assert props[0] == met and add in props[:3]


def test_save_load_roundtrip(t2d, tmp_path):
    g = RegimenGenerator.from_area(t2d)
    met = _reg(t2d, ("metformin", 1000.0))
    X = pd.DataFrame({"baseline": [8.0, 9.0, 10.0, 7.5]})
    chosen = [met, _reg(t2d, ("metformin", 1500.0)), Regimen(), met]
    g.fit(X, [met] * 4, chosen)
    g.save(tmp_path / "gen")
    back = RegimenGenerator.load(tmp_path / "gen")
    assert back.area.id == "t2d"
    np.testing.assert_allclose(back.propensity(X, [met] * 4, chosen), g.propensity(X, [met] * 4, chosen))
    assert back.propose(X.iloc[[0]], met, n=5, seed=2) == g.propose(X.iloc[[0]], met, n=5, seed=2)
    untrained = RegimenGenerator.load(RegimenGenerator.from_area("t2d").save(tmp_path / "g0"))
    assert untrained.propose(None, met, n=0) == RegimenGenerator.from_area("t2d").propose(None, met, n=0)


def test_errors(t2d):
    g = RegimenGenerator.from_area(t2d)
    with pytest.raises(ModelError, match="'aspirin'.*unknown drug"):
        g.propose(None, Regimen.of([DrugDose(ingredient="aspirin", rxcui="1191")]), n=3)
    with pytest.raises(ModelError, match="differ in length"):
        g.fit(pd.DataFrame({"a": [1.0, 2.0]}), [Regimen()], [Regimen(), Regimen()])
    with pytest.raises(ModelError, match="one patient row"):
        g.propose(pd.DataFrame({"a": [1.0, 2.0]}), Regimen(), n=1)
    with pytest.raises(ModelError, match="not a saved generator"):
        RegimenGenerator.load("/nonexistent")


def _naive_distribution(g, kind_p, current):
    """The generative story spelled out move by move: P(kind) over the kinds available, then the kind's drug x
    dose-level weights."""
    mv = g.moves(current)
    dw, lw = g._weights()
    avail = [k for k in MOVE_KINDS if k == "other" or any(m.kind == k for m in mv)]
    kp = {k: kind_p[MOVE_KINDS.index(k)] for k in avail}
    total = sum(kp.values())
    probs = []
    for m in mv:
        if m.kind == "continue":
            probs.append(kp["continue"] / total)
            continue
        ki = MOVE_KINDS.index(m.kind)
        same = [x for x in mv if x.kind == m.kind]
        w = [dw[ki, x.drug] * (lw[ki, x.level] if x.level >= 0 else 1.0) for x in same]
        mine = dw[ki, m.drug] * (lw[ki, m.level] if m.level >= 0 else 1.0)
        probs.append(kp[m.kind] / total * mine / sum(w))
    return mv, np.array(probs + [kp["other"] / total])


def test_move_distribution_is_the_generative_story_and_values_propose_as_a_frame(t2d):
    g = RegimenGenerator.from_area(t2d, seed=0)
    rng = np.random.default_rng(3)
    n = 300
    X = pd.DataFrame({"baseline": rng.normal(8.5, 1, n), "cyp2c9": rng.choice(["Normal Metabolizer", "Poor"], n)})
    met = _reg(t2d, ("metformin", 1000.0))
    two = _reg(t2d, ("metformin", 1000.0), ("glipizide", 5.0))
    chosen = [two if b > 8.5 else _reg(t2d, ("metformin", 2000.0)) if b > 8 else met for b in X["baseline"]]
    g.fit(X, [met] * n, chosen)
    kp = g._kind_probs(X.iloc[[0]], [g.key_of(met)])[0]
    for cur in (Regimen(), met, two):
        mv, p = g.move_distribution(kp, g.key_of(cur))
        ref_mv, ref = _naive_distribution(g, kp, g.key_of(cur))
        assert mv == ref_mv
        np.testing.assert_allclose(p, ref, rtol=1e-12, atol=0)
        assert abs(p.sum() - 1) < 1e-12
    rows = [
        {"baseline": 9.5, "cyp2c9": "Poor"},
        {"baseline": 7.0, "cyp2c9": None},
        {"baseline": None, "cyp2c9": "Normal Metabolizer"},
        {"baseline": 8, "cyp2c9": "unseen label", "other": "ignored"},
    ]
    for values in rows:
        frame = pd.DataFrame([{k: (np.nan if v is None else v) for k, v in values.items()}])
        for cur in (met, two):
            assert g.propose_values(values, cur, n=15, seed=4) == g.propose(frame, cur, n=15, seed=4)
    for bad in ({"cyp2c9": "Poor"}, {"baseline": "high", "cyp2c9": "Poor"}):  # the frame path's errors
        with pytest.raises(ModelError) as got:
            g.propose_values(bad, met, n=3)
        with pytest.raises(ModelError) as want:
            g.propose(pd.DataFrame([bad]), met, n=3)
        assert str(got.value) == str(want.value)


def _moves_by_definition(g: RegimenGenerator, current) -> list[tuple]:
    """Every single move by its definition: each kind's results built as a dict of drug -> level, sorted, kept
    when it is not the current regimen and the combination limits allow it (continue first)."""
    st = g._struct()
    cur = dict(current)
    out = [("continue", -1, -1, current)]

    def put(kind, drug, level, items):
        key = tuple(sorted(items.items()))
        if key != current and g._allowed(key, st):
            out.append((kind, drug, level, key))

    nd = len(st["drugs"])
    if len(cur) < st["max_drugs"]:
        for d in (d for d in range(nd) if d not in cur):
            for li in range(len(st["levels"][d])):
                put("add", d, li, {**cur, d: li})
    cur_cls = {st["cls"][d] for d in cur}
    for d0, l0 in current:
        rest = {k: v for k, v in cur.items() if k != d0}
        for d in (d for d in range(nd) if d not in cur):
            same = st["cls"][d] == st["cls"][d0]
            if same or st["cls"][d] not in cur_cls:
                for li in range(len(st["levels"][d])):
                    put("switch_within" if same else "switch_between", d, li, {**rest, d: li})
        if l0 + 1 < len(st["levels"][d0]):
            put("dose_up", d0, l0 + 1, {**cur, d0: l0 + 1})
        if l0 > 0:
            put("dose_down", d0, l0 - 1, {**cur, d0: l0 - 1})
        put("stop", d0, -1, rest)
    return out


@pytest.mark.parametrize("area_id", ["t2d", "hypertension", "depression"])
def test_moves_are_every_single_move_in_order(area_id):
    """``moves`` (keys built by insertion, limits checked once per drug) gives the definition's list, in its
    order, from the empty regimen, every one-drug regimen, and regimens wider than ``max_drugs``."""
    g = RegimenGenerator.from_area(load_area(area_id))
    st = g._struct()
    nd = len(st["drugs"])
    rng = np.random.default_rng(0)
    starts = [()] + [((d, li),) for d in range(nd) for li in range(len(st["levels"][d]))]
    for _ in range(60):
        ds = sorted(rng.choice(nd, size=int(rng.integers(2, st["max_drugs"] + 2)), replace=False).tolist())
        starts.append(tuple((d, int(rng.integers(len(st["levels"][d])))) for d in ds))
    for cur in starts:
        got = g.moves(cur)
        assert [tuple(m) for m in got] == _moves_by_definition(g, cur), cur
        assert all(type(m.result) is tuple for m in got)


def test_choice_draws_what_numpy_choice_draws():
    """Proposals draw moves through ``_Choice``: the same indices and the same random stream as
    ``rng.choice(len(p), p=p)``; a vector numpy refuses gets numpy's own error."""
    from planner.model.choice import Choice as _Choice

    for seed in range(40):
        for n in (1, 7, 90):
            p = np.random.default_rng(seed + 100).random(n) ** 3
            p /= p.sum()
            a, b = np.random.default_rng(seed), np.random.default_rng(seed)
            c = _Choice(p)
            assert c.cdf is not None
            assert [int(a.choice(n, p=p)) for _ in range(30)] == [c.draw(b) for _ in range(30)]
            assert a.random() == b.random()
    for bad in (np.array([0.5, np.nan]), np.array([0.7, 0.7]), np.array([1.5, -0.5])):
        with pytest.raises(ValueError, match="[Pp]robabilities"):
            _Choice(bad).draw(np.random.default_rng(0))
