"""Guideline-aware ranking vs outcome-only ranking on simulated cohorts with a known truth.

For each area: simulate a cohort (planner.simulate), take one decision date per patient (a random episode t0),
and recommend with the same Planner, models and candidates twice:

* outcome-only: ``rules/ranking.yaml`` with every guideline-indication and secondary-outcome weight set to 0
  (and no indicated candidates): the ranking before issue 16, on the primary outcome and burden only;
* guideline-aware: the shipped ranking (indications, secondary outcomes and harms).

For the top plan of each, the TRUE expected follow-up outcome (``SimCohort.expected_outcome``, the simulator's
truth, which the model did not shape) gives the true improvement over the current regimen; the script prints
the mean of both, their ratio (target >= 0.90), the same counting improvement only down to the target (the
utility gives nothing for going past it), and the share of patients with an applicable guideline
indication whose top plan meets every one of them. The model is fitted by SVI on the other simulated patients
of the same world (``--train N``; ``--train 0``: the untrained literature priors that ship).

    .venv/bin/python benchmarks/guideline_ranking.py [--areas t2d,hypertension] [--n 150] [--seeds 3,4,5] [--json F]

The weights in rules/ranking.yaml were checked on seeds 0-2 (benchmarks/guideline_tuning.py); report on others.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from planner import Planner  # noqa: E402
from planner.areas import list_areas, load_area, regimen_of  # noqa: E402
from planner.guidelines import load_guidelines  # noqa: E402
from planner.simulate import simulate_cohort  # noqa: E402
from planner.units import unit_display  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from model_quality import feature_frame, regimen_at_baseline  # noqa: E402


def _regimen(area, drugs):
    return regimen_of(
        area,
        {d.drug: (d.dose_mg_day if d.dose_mg_day is not None else area.drug(d.drug).reference_dose) for d in drugs},
    )


def fit_model(area, cohort, train_ids, seed: int, steps: int | None):
    """A ResponseModel fitted by SVI on the training patients' episodes (what a health system does with its own
    cohort); the evaluation patients are held out."""
    from planner.model import ResponseModel

    d = cohort.decisions.copy()
    d["regimen_at_baseline"] = regimen_at_baseline(d)
    ep = d[d["episode"] & d["patient_id"].isin(train_ids)].reset_index(drop=True)
    m = ResponseModel.from_area(area.id, seed=seed, num_steps=steps)
    m.fit(
        feature_frame(area, ep), list(ep["regimen"]), ep["followup"].to_numpy(), current=list(ep["regimen_at_baseline"])
    )
    return m, len(ep)


RANKINGS = ("outcome", "indications", "guideline")  # outcome-only, + indications, + secondary outcomes (shipped)


def _planners(template: Planner, area_id: str, model) -> dict[str, Planner]:
    """Planners sharing rules, model and generator: outcome-only, indications only, and the shipped ranking."""
    models = {**template.models, **({area_id: model} if model is not None else {})}
    kw = dict(
        ruleset=template.ruleset,
        rules_path=template.rules_path,
        models=models,
        generators=template.generators,
        num_candidates=template.num_candidates,
    )
    r = template.ranking
    only_ind = dataclasses.replace(r, secondary={k: 0.0 for k in r.secondary})
    return {
        "outcome": Planner(ranking=r.outcome_only(), **kw),
        "indications": Planner(ranking=only_ind, **kw),
        "guideline": Planner(ranking=r, **kw),
    }


class _Scorer:
    """One benchmark row from the three rankings' results and the true outcomes ``y`` (current regimen first,
    then each ranking's top plan, in RANKINGS order)."""

    def __init__(self, area, template: Planner) -> None:
        g = load_guidelines(area)
        self.sign = 1.0 if area.outcome.direction == "lower" else -1.0
        self.goals = {i.id for i in g.indications if i.kind == "goal"} if g is not None else set()  # not counted
        self.required = {i.id for i in g.indications if i.require} if g is not None else set()
        self.scale = template.ranking.scale_for(area)

    def __call__(self, res: dict, y) -> dict:
        sign, target, top = self.sign, res["guideline"].outcome.target, res["guideline"].plans[0]
        row: dict = {
            "indicated": bool(top.indications),
            "required": any(s.id in self.required for s in top.indications),
        }
        for k, yk in zip(RANKINGS, y[1:]):
            ind = res[k].plans[0].indications
            row[f"improve_{k}"] = sign * (y[0] - yk)
            row[f"toward_{k}"] = _toward(y[0], yk, target, sign)
            row[f"past_{k}"] = sign * (target - yk) > self.scale  # more than one meaningful difference past target
            row[f"met_{k}"] = all(s.met for s in ind if s.id not in self.goals)
            row[f"met_required_{k}"] = all(s.met for s in ind if s.id in self.required)
        return row


def _toward(cur: float, new: float, target: float, sign: float) -> float:
    """Improvement up to the target (none past it)."""
    return max(sign * (cur - (max(new, target) if sign > 0 else min(new, target))), 0.0)


def run_area(
    area_id: str, n: int, seed: int | Sequence[int], template: Planner, *, n_train: int, steps: int | None
) -> dict:
    """planner.simulate: the comparison on ``n`` held-out patients per seed (seeds pooled)."""
    return _pooled(_rows_first, area_id, n, seed, template, n_train=n_train, steps=steps)


def _pooled(rows_fn, area_id: str, n: int, seed, template: Planner, *, n_train: int, steps: int | None, **extra):
    seeds = [seed] if isinstance(seed, int) else list(seed)
    rows: list[dict] = []
    n_ep, kind, secs = 0, "prior", 0.0
    for s in seeds:
        r, n_ep_s, kind, secs_s = rows_fn(area_id, n, s, template, n_train=n_train, steps=steps)
        rows += r
        n_ep += n_ep_s
        secs += secs_s
    return _summary(
        load_area(area_id),
        rows,
        model=kind,
        train_episodes=n_ep,
        seconds=secs,
        seeds=",".join(map(str, seeds)),
        **extra,
    )


def _rows_first(area_id: str, n: int, seed: int, template: Planner, *, n_train: int, steps: int | None):
    area = load_area(area_id)
    cohort = simulate_cohort(area_id, n + n_train, seed=seed)
    eps = cohort.episodes
    rng = np.random.default_rng(seed)
    pids = np.array(sorted(eps["patient_id"].unique()))
    eval_ids = set(rng.choice(pids, size=min(n, len(pids)), replace=False))
    model, n_ep = (None, 0) if n_train <= 0 else fit_model(area, cohort, set(pids) - eval_ids, seed, steps)
    planners = _planners(template, area_id, model)
    records = {r.patient_id: r for r in cohort.records() if r.patient_id in eval_ids}
    picks = (
        eps[eps["patient_id"].isin(eval_ids)]
        .groupby("patient_id", sort=True)
        .apply(lambda g: g.iloc[rng.integers(len(g))], include_groups=False)
    )
    score = _Scorer(area, template)
    rows_out = []
    t = time.perf_counter()
    for pid, row in picks.iterrows():
        as_of = row["t0"].date()
        res = {k: pl.recommend(records[pid], area=area_id, as_of=as_of, top=1, seed=seed) for k, pl in planners.items()}
        if not all(r.plans for r in res.values()):
            continue
        truth = cohort.truth_rows([pid], [as_of])
        current = _regimen(area, res["guideline"].current_regimen)
        chosen = [_regimen(area, res[k].plans[0].regimen) for k in RANKINGS]
        y = cohort.expected_outcome([current, *chosen], truth)[0]
        rows_out.append(score(res, y))
    return rows_out, n_ep, "fitted" if model is not None else "prior", time.perf_counter() - t


def _independent(area, n_total: int, seed: int):
    """The independent simulator's cohort, its records and episodes joined to its decisions (as
    benchmarks/model_calibration.py reads it: FHIR -> ingest -> episodes)."""
    import pandas as pd

    from planner.episodes import episodes_frame
    from planner.model.cli import _regimens_at_baseline
    from planner.record import Regimen
    from planner.simulate.independent import simulate_independent

    cohort = simulate_independent(area, n_total, seed=seed)
    records = cohort.records()
    fr, _ = episodes_frame(records, area)
    fr["t0"] = pd.to_datetime(fr["t0"]).dt.normalize().astype("datetime64[ns]")
    dec = cohort.decisions.drop(columns=["regimen", "regimen_before", "regimen_key", "regimen_before_key"])
    ep = fr.merge(dec, on=["patient_id", "t0"], how="inner", suffixes=("", "_sim")).reset_index(drop=True)
    ep["regimen"] = [Regimen.model_validate_json(x) for x in ep["regimen_json"]]
    ep["regimen_at_baseline"] = _regimens_at_baseline(records, area, ep)
    return cohort, {r.patient_id: r for r in records}, ep


def run_area_independent(
    area_id: str, n: int, seed: int | Sequence[int], template: Planner, *, n_train: int, steps: int | None
) -> dict:
    """The same comparison on planner.simulate.independent (truth only at its decision dates)."""
    return _pooled(_rows_independent, area_id, n, seed, template, n_train=n_train, steps=steps, simulator="independent")


def _rows_independent(area_id: str, n: int, seed: int, template: Planner, *, n_train: int, steps: int | None):
    from planner.model import ResponseModel

    area = load_area(area_id)
    cohort, records, ep = _independent(area, n + n_train, seed)
    rng = np.random.default_rng(seed)
    pids = np.array(sorted(ep["patient_id"].unique()))
    eval_ids = set(rng.choice(pids, size=min(n, len(pids)), replace=False))
    model, n_ep = None, 0
    if n_train > 0:
        tr = ep[~ep["patient_id"].isin(eval_ids)].reset_index(drop=True)
        model = ResponseModel.from_area(area.id, seed=seed, num_steps=steps)
        model.fit(
            feature_frame(area, tr),
            list(tr["regimen"]),
            tr["followup"].to_numpy(),
            current=list(tr["regimen_at_baseline"]),
        )
        n_ep = len(tr)
    planners = _planners(template, area_id, model)
    picks = (
        ep[ep["patient_id"].isin(eval_ids)]
        .groupby("patient_id", sort=True)
        .apply(lambda g: g.iloc[rng.integers(len(g))], include_groups=False)
        .reset_index()
    )
    score = _Scorer(area, template)
    rows_out = []
    t = time.perf_counter()
    for idx, row in picks.iterrows():
        as_of = row["t0"].date()
        res = {
            k: pl.recommend(records[row["patient_id"]], area=area_id, as_of=as_of, top=1, seed=seed)
            for k, pl in planners.items()
        }
        if not all(r.plans for r in res.values()):
            continue
        current = _regimen(area, res["guideline"].current_regimen)
        chosen = [_regimen(area, res[k].plans[0].regimen) for k in RANKINGS]
        y = cohort.expected_outcome(picks.loc[[idx]][["patient_id", "t0"]], [current, *chosen])[0]
        rows_out.append(score(res, y))
    return rows_out, n_ep, "fitted" if model is not None else "prior", time.perf_counter() - t


def _summary(area, rows_out: list[dict], **extra) -> dict:
    if not rows_out:
        return {"area": area.id, "patients": 0, **extra}
    ind = [r for r in rows_out if r["indicated"]]
    out: dict = {
        "area": area.id,
        "patients": len(rows_out),
        "unit": area.outcome.unit,
        "unit_display": unit_display(area.outcome.unit),
        "patients_with_indication": len(ind),
        "patients_with_required": sum(1 for r in rows_out if r["required"]),
    }
    for k in RANKINGS:
        out[f"true_improvement_{k}"] = round(float(np.mean([r[f"improve_{k}"] for r in rows_out])), 4)
        out[f"toward_target_{k}"] = round(float(np.mean([r[f"toward_{k}"] for r in rows_out])), 4)
        out[f"indications_met_{k}"] = round(float(np.mean([r[f"met_{k}"] for r in ind])), 4) if ind else None
        out[f"past_target_{k}"] = round(float(np.mean([r[f"past_{k}"] for r in rows_out])), 4)
        req = [r for r in rows_out if r["required"]]
        out[f"required_met_{k}"] = round(float(np.mean([r[f"met_required_{k}"] for r in req])), 4) if req else None
    for k in RANKINGS[1:]:
        base, base_t = out["true_improvement_outcome"], out["toward_target_outcome"]
        out[f"ratio_{k}"] = round(out[f"true_improvement_{k}"] / base, 4) if base > 0 else None
        out[f"toward_target_ratio_{k}"] = round(out[f"toward_target_{k}"] / base_t, 4) if base_t > 0 else None
        # of the improvement lost against outcome-only, the share that lay past the target (over-treatment)
        lost = out["true_improvement_outcome"] - out[f"true_improvement_{k}"]
        lost_t = base_t - out[f"toward_target_{k}"]
        out[f"loss_past_target_share_{k}"] = round((lost - lost_t) / lost, 4) if lost > 1e-9 else None
        out[f"ratio_ci_{k}"] = _ratio_ci(rows_out, f"improve_{k}", "improve_outcome")
        out[f"toward_target_ratio_ci_{k}"] = _ratio_ci(rows_out, f"toward_{k}", "toward_outcome")
    out.update({k: (round(v, 1) if isinstance(v, float) else v) for k, v in extra.items()})
    return out


def _ratio_ci(rows_out: list[dict], num: str, den: str, *, draws: int = 2000, level: float = 0.95):
    """Percentile bootstrap interval of mean(num) / mean(den) over patients (paired: one resample of patients
    for both), so the printed ratio says how much of it the sample size could move. Fixed seed: same rows,
    same interval."""
    a = np.array([r[num] for r in rows_out], dtype=float)
    b = np.array([r[den] for r in rows_out], dtype=float)
    idx = np.random.default_rng(0).integers(0, len(a), size=(draws, len(a)))
    den_m = b[idx].mean(axis=1)
    ok = den_m > 0
    if not ok.any():
        return None
    ratios = a[idx].mean(axis=1)[ok] / den_m[ok]
    lo, hi = np.quantile(ratios, [(1 - level) / 2, (1 + level) / 2])
    return [round(float(lo), 4), round(float(hi), 4)]


def _fmt_ci(ci) -> str:
    return "" if not ci else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--areas", default=",".join(list_areas()))
    ap.add_argument("--n", type=int, default=150, help="simulated patients per area")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", default=None, help="comma list of seeds, pooled (overrides --seed)")
    ap.add_argument("--num-samples", type=int, default=400, help="posterior draws per candidate")
    ap.add_argument(
        "--train",
        type=int,
        default=3000,
        help="simulated patients to fit the model on (0: the untrained literature-prior model)",
    )
    ap.add_argument("--steps", type=int, default=None, help="SVI steps (default: the model's)")
    ap.add_argument(
        "--sim",
        choices=("first", "independent"),
        default="first",
        help="planner.simulate (first) or planner.simulate.independent",
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    template = Planner.load(num_samples=args.num_samples)
    results = []
    print(
        f"simulator: {args.sim}; model: "
        f"{'fitted on ' + str(args.train) + ' simulated patients' if args.train > 0 else 'literature priors'}"
    )
    print("true improvement of the top plan over the current regimen (mean, outcome units); ratio to outcome-only;")
    print("'to target': improvement counted only down to the target; 'met': share of patients with an indication")
    print("whose top plan meets every one (LDL-C goals excluded: they are reported in the plans, not required);")
    print("'required': the same for the indications marked require (rules/guidelines), among patients who have one")
    print(
        f"{'area':<13} {'n':>4} {'ranking':<12} {'improvement':>11} {'ratio':>6} {'95% CI':>12} {'to target':>9} "
        f"{'ratio':>6} {'95% CI':>12} {'met':>5} {'required':>8}"
    )
    print("(95% CI: bootstrap over the held-out patients, paired; it is the sampling error of the ratio only)")
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [args.seed]
    print(f"seeds {','.join(map(str, seeds))} pooled ({args.n} held-out patients each)")
    for area_id in [a for a in args.areas.split(",") if a]:
        run = run_area if args.sim == "first" else run_area_independent
        r = run(area_id, args.n, seeds, template, n_train=args.train, steps=args.steps)
        results.append(r)
        if not r["patients"]:
            print(f"{area_id:<13} {0:>4}  (no patient with a rankable plan)")
            continue
        for k in RANKINGS:
            label = {"outcome": "outcome-only", "indications": "indications", "guideline": "guideline"}[k]
            print(
                f"{area_id:<13} {r['patients']:>4} {label:<12} {r[f'true_improvement_{k}']:>11.3f} "
                f"{_fmt(r.get(f'ratio_{k}', 1.0)):>6} {_fmt_ci(r.get(f'ratio_ci_{k}')):>12} "
                f"{r[f'toward_target_{k}']:>9.3f} {_fmt(r.get(f'toward_target_ratio_{k}', 1.0)):>6} "
                f"{_fmt_ci(r.get(f'toward_target_ratio_ci_{k}')):>12} {_fmt(r[f'indications_met_{k}']):>5} "
                f"{_fmt(r[f'required_met_{k}']):>8}"
            )
        print(
            f"{'':<13} {'':>4} ({r['patients_with_indication']} with an indication, {r['patients_with_required']} with a required one; unit {r['unit_display']}; "
            f"share of the lost improvement past the target {_fmt(r.get('loss_past_target_share_guideline'))}; "
            f"{r['seconds']:.0f} s)"
        )
        scale = template.ranking.scale_for(load_area(area_id))
        print(
            f"{'':<13} {'':>4} (share of top plans whose true outcome lies more than {scale:g} {r['unit_display']} past "
            "the target, one meaningful difference: "
            + ", ".join(f"{k} {r[f'past_target_{k}']:.2f}" for k in RANKINGS)
            + ")"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
