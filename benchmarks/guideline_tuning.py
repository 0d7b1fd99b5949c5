"""Choosing the guideline-ranking weights on tuning seeds, and saying which term moves which plan.

For each area and simulator, simulated patients (the same draw as benchmarks/guideline_ranking.py: a model fitted
on the other patients, one random decision date each) are predicted ONCE on the guideline-aware candidate set;
the top plan is then re-ranked under each weight variant (only the ranking stage reruns), and its TRUE outcome
(the simulator's truth) is compared with the outcome-only ranking's top plan. Per variant it prints the share of
the outcome-only true improvement kept and the share of patients with an indication whose top plan meets it.

``--explain`` prints, for the patients where the shipped ranking loses improvement against the indications-only
ranking, the two plans and the utility terms that separate them (which term moved which plan).

Use tuning seeds here (the README reports the chosen weights with benchmarks/guideline_ranking.py on other seeds):

    .venv/bin/python benchmarks/guideline_tuning.py --areas t2d --seeds 0,1,2 --n 60 --train 1500 \
        --vary secondary.hypoglycaemia=0,0.1,0.25 [--sim independent] [--explain]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from guideline_ranking import _independent, _regimen, _toward, fit_model  # noqa: E402
from model_quality import feature_frame  # noqa: E402

from planner import Planner, stages  # noqa: E402
from planner.areas import load_area  # noqa: E402
from planner.guidelines import add_indicated, load_guidelines  # noqa: E402
from planner.rank import RankingConfig, rank  # noqa: E402
from planner.simulate import simulate_cohort  # noqa: E402


@dataclasses.dataclass
class Case:
    record: object
    predictions: object
    improve_outcome: float  # true improvement of the outcome-only top plan
    toward_outcome: float  # the same counted only down to the target
    truth: object  # regimen list -> true expected outcomes
    y_current: float
    sign: float
    target: float


def _cases(sim: str, area_id: str, n: int, seed: int, n_train: int, template: Planner) -> list[Case]:
    from planner.model import ResponseModel

    area = load_area(area_id)
    rng = np.random.default_rng(seed)
    if sim == "first":
        cohort = simulate_cohort(area_id, n + n_train, seed=seed)
        eps = cohort.episodes
        pids = np.array(sorted(eps["patient_id"].unique()))
        eval_ids = set(rng.choice(pids, size=min(n, len(pids)), replace=False))
        model = template.models[area_id]  # --train 0: the literature-prior model that ships
        if n_train > 0:
            model = fit_model(area, cohort, set(pids) - eval_ids, seed, None)[0]
        records = {r.patient_id: r for r in cohort.records() if r.patient_id in eval_ids}
        picks = (
            eps[eps["patient_id"].isin(eval_ids)]
            .groupby("patient_id", sort=True)
            .apply(lambda g: g.iloc[rng.integers(len(g))], include_groups=False)
            .reset_index()
        )
    else:
        cohort, records, ep = _independent(area, n + n_train, seed)
        pids = np.array(sorted(ep["patient_id"].unique()))
        eval_ids = set(rng.choice(pids, size=min(n, len(pids)), replace=False))
        tr = ep[~ep["patient_id"].isin(eval_ids)].reset_index(drop=True)
        model = template.models[area_id]
        if n_train > 0:
            model = ResponseModel.from_area(area.id, seed=seed)
            model.fit(
                feature_frame(area, tr),
                list(tr["regimen"]),
                tr["followup"].to_numpy(),
                current=list(tr["regimen_at_baseline"]),
            )
        picks = (
            ep[ep["patient_id"].isin(eval_ids)]
            .groupby("patient_id", sort=True)
            .apply(lambda g: g.iloc[rng.integers(len(g))], include_groups=False)
            .reset_index()
        )
    kw = dict(
        ruleset=template.ruleset,
        rules_path=template.rules_path,
        generators=template.generators,
        num_candidates=template.num_candidates,
        models={**template.models, area_id: model},
    )
    base = Planner(ranking=template.ranking.outcome_only(), **kw)
    sign = 1.0 if area.outcome.direction == "lower" else -1.0
    out = []
    for idx, row in picks.iterrows():
        pid, as_of = row["patient_id"], row["t0"].date()
        rec0 = base.recommend(records[pid], area=area_id, as_of=as_of, top=1, seed=seed)
        if not rec0.plans:
            continue
        record = records[pid].model_copy(update={"as_of": as_of})
        frow = stages.feature_row(record, area, knowledge=template.ruleset.knowledge)
        cands = stages.propose_candidates(
            frow, area=area, generator=template.generators[area_id], n=template.num_candidates, seed=seed
        )
        cands = add_indicated(cands, record, area, rules=template.rules_path)
        screened = stages.screen_candidates(cands, record, area=area, rules=template.ruleset)
        preds = stages.predict(screened, area=area, model=model, num_samples=template.ranking.num_samples, seed=seed)
        if sim == "first":
            tr_rows = cohort.truth_rows([pid], [as_of])
            truth = functools.partial(_truth_first, cohort, tr_rows)
        else:
            sel = picks.loc[[idx]][["patient_id", "t0"]]
            truth = functools.partial(_truth_independent, cohort, sel)
        current = _regimen(area, rec0.current_regimen)
        y = truth([current, _regimen(area, rec0.plans[0].regimen)])
        target = float(screened.features.target)
        out.append(
            Case(
                record, preds, sign * (y[0] - y[1]), _toward(y[0], y[1], target, sign), truth, float(y[0]), sign, target
            )
        )
    return out


def _truth_first(cohort, rows, regs):
    return cohort.expected_outcome(regs, rows)[0]


def _truth_independent(cohort, rows, regs):
    return cohort.expected_outcome(rows, regs)[0]


def _top(case: Case, area, cfg: RankingConfig):
    plans = rank(case.predictions, area=area, config=cfg, record=case.record, top=1)
    return plans[0] if plans else None


def evaluate(cases: list[Case], area, cfg: RankingConfig, goals: set[str]) -> dict:
    imp, base, met, toward = [], [], [], []
    for c in cases:
        p = _top(c, area, cfg)
        y = c.truth([_regimen(area, p.regimen)])[0]
        imp.append(c.sign * (c.y_current - y))
        toward.append(_toward(c.y_current, y, c.target, c.sign))
        base.append(c.improve_outcome)
        ind = [s for s in p.indications if s.id not in goals]
        if ind:
            met.append(all(s.met for s in ind))
    return {
        "kept": float(np.mean(imp) / np.mean(base)) if np.mean(base) > 0 else float("nan"),
        "toward": float(np.mean(toward)),
        "base_toward": float(np.mean([c.toward_outcome for c in cases])),
        "improve": float(np.mean(imp)),
        "base": float(np.mean(base)),
        "met": float(np.mean(met)) if met else float("nan"),
        "n_ind": len(met),
    }


def _variant(cfg: RankingConfig, spec: dict[str, float]) -> RankingConfig:
    sec, gl = dict(cfg.secondary), dict(cfg.guideline)
    for k, v in spec.items():
        part, key = k.split(".", 1)
        {"secondary": sec, "guideline": gl}[part][key] = v
    return dataclasses.replace(cfg, secondary=sec, guideline=gl)


def explain(cases: list[Case], area, cfg: RankingConfig, limit: int = 15) -> None:
    only_ind = dataclasses.replace(cfg, secondary={k: 0.0 for k in cfg.secondary})
    shown = 0
    for c in cases:
        pa, pb = _top(c, area, only_ind), _top(c, area, cfg)
        ya, yb = c.truth([_regimen(area, pa.regimen), _regimen(area, pb.regimen)])
        loss = c.sign * (yb - ya)
        if loss <= 0.05 * abs(c.improve_outcome) + 1e-9 or pa.key == pb.key:
            continue
        # the terms of both plans under the shipped weights (rank all, find both)
        allp = rank(c.predictions, area=area, config=cfg, record=c.record)
        ta = {t.term: t for t in next(p for p in allp if p.key == pa.key).tradeoffs}
        tb = {t.term: t for t in pb.tradeoffs}
        diff = sorted(
            ((tb[k].utility - ta[k].utility, k, ta[k].value, tb[k].value) for k in tb if k in ta),
            key=lambda x: -abs(x[0]),
        )
        print(
            f"  target {c.target:g} current {c.y_current:.2f}: indications-only {pa.key} (true {ya:.2f}) -> "
            f"shipped {pb.key} (true {yb:.2f}); loss {loss:.2f}"
        )
        print("     " + "; ".join(f"{k} {d:+.3f} ({va}->{vb})" for d, k, va, vb in diff[:5]))
        shown += 1
        if shown >= limit:
            break


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--areas", default="t2d")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--train", type=int, default=1500)
    ap.add_argument("--num-samples", type=int, default=400)
    ap.add_argument("--sim", choices=("first", "independent"), default="first")
    ap.add_argument("--vary", action="append", default=[], help="KEY=v1,v2 (KEY secondary.X or guideline.X)")
    ap.add_argument("--scale", default="", help="comma list: multiply every secondary weight by each")
    ap.add_argument("--explain", action="store_true")
    args = ap.parse_args(argv)
    template = Planner.load(num_samples=args.num_samples)
    cfg = template.ranking
    variants: list[tuple[str, RankingConfig]] = [
        ("indications only", dataclasses.replace(cfg, secondary={k: 0.0 for k in cfg.secondary})),
        ("shipped", cfg),
    ]
    for s in [x for x in args.scale.split(",") if x]:
        variants.append(
            (f"secondary x{s}", dataclasses.replace(cfg, secondary={k: v * float(s) for k, v in cfg.secondary.items()}))
        )
    for v in args.vary:
        key, vals = v.split("=", 1)
        for x in vals.split(","):
            variants.append((f"{key}={x}", _variant(cfg, {key: float(x)})))
    for area_id in args.areas.split(","):
        area = load_area(area_id)
        g = load_guidelines(area)
        goals = {i.id for i in g.indications if i.kind == "goal"} if g is not None else set()
        cases_by_seed = {
            s: _cases(args.sim, area_id, args.n, int(s), args.train, template) for s in args.seeds.split(",")
        }
        for name, vc in variants:
            rs = [evaluate(cs, area, vc, goals) for cs in cases_by_seed.values()]
            kept = sum(r["improve"] for r in rs) / sum(r["base"] for r in rs)
            met = np.nanmean([r["met"] for r in rs])
            tw = sum(r["toward"] for r in rs) / sum(r["base_toward"] for r in rs)
            per = " ".join(f"{r['kept']:.2f}" for r in rs)
            print(
                f"{args.sim:<11} {area_id:<12} {name:<32} kept {kept:.3f} (per seed {per}) to target {tw:.3f} met {met:.2f}",
                flush=True,
            )
        if args.explain:
            for s, cs in cases_by_seed.items():
                print(f"-- seed {s}: where the shipped ranking loses against indications only")
                explain(cs, area, cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
