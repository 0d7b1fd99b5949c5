"""Held-out calibration and decisions of the fitted area model on BOTH simulators, every area (the issue's
acceptance figures), each against an xgboost S-learner trained on the same episodes in the same run.

Simulators: ``first`` (planner.simulate, the project's own: its structure is the model's) and ``independent``
(planner.simulate.independent: multiplicative per-patient response, floor-saturating combinations, Hill dose
curves, mean-reverting drifting levels, heavy-tailed irregular labs, confounding through recorded bmi). The
independent cohort goes the way of ``planner fit``: FHIR bundles -> ingest -> episodes (planner.episodes) ->
the regimen active at each baseline; its truth is joined on (patient, t0).

Per area and simulator: split patients 80/20; fit ``ResponseModel.from_area`` (SVI) and the S-learner on the
training episodes; on held-out decisions, for every candidate (continue and each valid single move):

* coverage of the 90% interval of ``kind="mean"`` draws of the TRUE expected outcome (target [0.85, 0.95]);
  the model splits its residual variance by the follow-up's own spread around the patient's expected level
  (``fu sd``), measured on the training patients' same-regimen lab pairs (:mod:`planner.model.levels`);
  beside it (``area sd``), the same-run baseline: the same posterior split by the area's noise SD (with its
  fixed +-10% and the regression-to-the-mean blend), as before that measurement;
* P(target) = share of ``kind="predictive"`` draws meeting the row's target, against the TRUE probability that
  the follow-up measurement meets it (first: Normal(true expected, noise sd) on the area scale; independent:
  its Monte Carlo of latent fluctuation and heavy-tailed lab noise); expected calibration error over 10 equal-
  width bins (target <= 0.05);
* the top plan (lowest posterior mean) vs the S-learner's pick, in TRUE expected outcome (mean over decisions);
  share of the usual-care -> oracle gap each closes.

    .venv/bin/python benchmarks/model_calibration.py [--areas t2d,...] [--sims first,independent]
        [--patients N] [--eval-rows N] [--steps S] [--out F]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from model_quality import regimen_at_baseline, s_learner_design  # noqa: E402

from planner.areas import list_areas, load_area  # noqa: E402
from planner.model import RegimenGenerator, ResponseModel  # noqa: E402
from planner.model.levels import within_patient_variance  # noqa: E402


def ece(p: np.ndarray, truth: np.ndarray, bins: int = 10) -> float:
    idx = np.minimum((p * bins).astype(int), bins - 1)
    tot = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            tot += m.mean() * abs(p[m].mean() - truth[m].mean())
    return float(tot)


def first_episodes(area, patients: int, seed: int):
    from planner.simulate import simulate_cohort

    cohort = simulate_cohort(area.id, patients, seed=seed)
    d = cohort.decisions.copy()
    d["regimen_at_baseline"] = regimen_at_baseline(d)
    ep = d[d["episode"]].reset_index(drop=True)
    noise = cohort.truth.noise_sd
    log = area.outcome.scale == "log"
    T = np.log if log else (lambda v: v)

    def truth(rows, regs):
        return cohort.expected_outcome(regs, rows)

    def p_true(rows, regs):
        from scipy.stats import norm

        mu = T(truth(rows, regs))
        return norm.cdf((T(rows["target"].to_numpy(float))[:, None] - mu) / noise)

    return ep, truth, p_true, cohort.records()


def independent_episodes(area, patients: int, seed: int):
    from planner.episodes import episodes_frame
    from planner.model.cli import _regimens_at_baseline
    from planner.record import Regimen
    from planner.simulate.independent import simulate_independent

    cohort = simulate_independent(area, patients, seed=seed)
    records = cohort.records()
    fr, _ = episodes_frame(records, area)
    fr["t0"] = pd.to_datetime(fr["t0"]).dt.normalize().astype("datetime64[ns]")
    dec = cohort.decisions.drop(columns=["regimen", "regimen_before", "regimen_key", "regimen_before_key"])
    ep = fr.merge(dec, on=["patient_id", "t0"], how="inner", suffixes=("", "_sim")).reset_index(drop=True)
    ep["regimen"] = [Regimen.model_validate_json(s) for s in ep["regimen_json"]]
    ep["regimen_before"] = [Regimen.model_validate_json(s) for s in ep["regimen_before_json"]]
    ep["regimen_before_key"] = [r.key() for r in ep["regimen_before"]]
    ep["regimen_at_baseline"] = _regimens_at_baseline(records, area, ep)
    return ep, cohort.expected_outcome, cohort.p_target, records


def evaluate(
    area_id: str,
    sim: str,
    *,
    patients: int,
    seed: int,
    eval_rows: int,
    steps: int | None,
    keep: bool = False,
) -> dict:
    """The figures of one (area, simulator); ``keep`` also returns the per-pair ``p`` and ``p_true``."""
    import xgboost as xgb

    area = load_area(area_id)
    t0 = time.perf_counter()
    ep, truth_fn, ptrue_fn, records = (first_episodes if sim == "first" else independent_episodes)(area, patients, seed)
    res: dict = {
        "area": area_id,
        "sim": sim,
        "episodes": int(len(ep)),
        "simulate_s": round(time.perf_counter() - t0, 1),
    }
    pids = np.array(sorted(ep["patient_id"].unique()))
    rng = np.random.default_rng(seed)
    test_ids = set(rng.choice(pids, size=len(pids) // 5, replace=False))
    is_test = ep["patient_id"].isin(test_ids).to_numpy()
    tr, te = ep[~is_test].reset_index(drop=True), ep[is_test].reset_index(drop=True)
    feats = [f.name for f in area.features if f.name in ep.columns]
    Xtr = tr[feats].copy()
    t1 = time.perf_counter()
    m = ResponseModel.from_area(area_id, seed=seed, num_steps=steps)
    # the follow-up's own spread, measured on the TRAINING patients' same-regimen lab pairs (planner.model.levels)
    noise = within_patient_variance([r for r in records if r.patient_id not in test_ids], area, seed=seed)
    m.fit(
        Xtr,
        list(tr["regimen"]),
        tr["followup"].to_numpy(float),
        current=list(tr["regimen_at_baseline"]),
        followup_noise=noise,
    )
    res["followup_sd"] = float(np.sqrt(noise["var"])) if noise else float("nan")
    res["followup_pairs"] = int(noise["pairs"]) if noise else 0
    res["fit_s"] = round(time.perf_counter() - t1, 1)
    levels = {c: sorted(set(Xtr[c].dropna())) for c in Xtr.columns if not pd.api.types.is_numeric_dtype(Xtr[c])}
    log = area.outcome.scale == "log"
    Ztr = s_learner_design(area, Xtr, list(tr["regimen"]), list(tr["regimen_before"]), levels)
    ytr = tr["followup"].to_numpy(float)
    booster = xgb.XGBRegressor(
        n_estimators=400,
        max_depth=6,
        learning_rate=0.05,
        subsample=0.8,
        colsample_bytree=0.8,
        n_jobs=1,
        random_state=seed,
    ).fit(Ztr, np.log(ytr) if log else ytr)
    if len(te) > eval_rows:
        te = te.iloc[np.sort(rng.choice(len(te), eval_rows, replace=False))].reset_index(drop=True)
    gen = RegimenGenerator.from_area(area_id)
    acc: dict[str, list] = {k: [] for k in ("cov", "cov0", "p", "pt", "oracle", "model", "xgb", "continue")}
    for _, idx in te.groupby("regimen_before_key", sort=True).indices.items():
        idx = np.asarray(idx)
        rows = te.iloc[idx]
        cur = rows["regimen_before"].iloc[0]
        cands = [gen.regimen_of(mv.result) for mv in gen.moves(gen.key_of(cur))]
        cands[0] = cur
        truth = truth_fn(rows, cands)
        Xg = rows[feats]
        base = list(rows["regimen_at_baseline"])
        mean = m.sample(Xg, cands, kind="mean", current=base)
        pred = m.sample(Xg, cands, kind="predictive", current=base, seed=seed + 1)
        lo, hi = np.quantile(mean, [0.05, 0.95], axis=0)
        acc["cov"].append(((truth >= lo) & (truth <= hi)).ravel())
        # same-run baseline: the same posterior split by the area's noise SD (the split before it was measured)
        kept, m.spec_.followup_var = m.spec_.followup_var, None
        lo0, hi0 = np.quantile(m.sample(Xg, cands, kind="mean", current=base), [0.05, 0.95], axis=0)
        m.spec_.followup_var = kept
        acc["cov0"].append(((truth >= lo0) & (truth <= hi0)).ravel())
        acc["p"].append((pred <= rows["target"].to_numpy(float)[None, :, None]).mean(0).ravel())
        acc["pt"].append(ptrue_fn(rows, cands).ravel())
        n, R = truth.shape
        Z = s_learner_design(
            area, pd.concat([Xg] * R, ignore_index=True), [c for c in cands for _ in range(n)], [cur] * (n * R), levels
        )
        px = booster.predict(Z).reshape(R, n).T
        acc["oracle"].append(truth.min(1))
        acc["model"].append(truth[np.arange(n), mean.mean(0).argmin(1)])
        acc["xgb"].append(truth[np.arange(n), px.argmin(1)])
        acc["continue"].append(truth[:, 0])
    c = {k: np.concatenate(v) for k, v in acc.items()}
    gap = c["continue"].mean() - c["oracle"].mean()
    res.update(
        {
            "test_decisions": int(len(te)),
            "pairs": int(c["cov"].size),
            "coverage90": float(c["cov"].mean()),
            "coverage90_unsplit": float(c["cov0"].mean()),
            "ece_p_target": ece(c["p"], c["pt"]),
            "mean_p": float(c["p"].mean()),
            "mean_p_true": float(c["pt"].mean()),
        }
    )
    for k in ("oracle", "model", "xgb", "continue"):
        res[f"value_{k}"] = float(c[k].mean())
    for k in ("model", "xgb"):
        res[f"gap_closed_{k}"] = float((c["continue"].mean() - c[k].mean()) / gap) if gap > 0 else float("nan")
    res["unit"] = area.outcome.unit
    if keep:
        res["p"], res["p_true"] = c["p"].tolist(), c["pt"].tolist()
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--areas", default=",".join(list_areas()))
    ap.add_argument("--sims", default="first,independent")
    ap.add_argument("--patients", type=int, default=3000, help="simulated patients per area and simulator")
    ap.add_argument("--eval-rows", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    out = []
    print(
        f"{'area':13s} {'sim':11s} {'episodes':>8s} {'cov90':>6s} {'area sd':>7s} {'fu sd':>6s} {'ECE':>6s} "
        f"{'top plan':>9s} {'xgb S':>9s} "
        f"{'oracle':>9s} {'continue':>9s} {'gap closed: model / xgb':>24s}  checks"
    )
    for area_id in a.areas.split(","):
        for sim in a.sims.split(","):
            r = evaluate(area_id, sim, patients=a.patients, seed=a.seed, eval_rows=a.eval_rows, steps=a.steps)
            ok = [0.85 <= r["coverage90"] <= 0.95, r["ece_p_target"] <= 0.05, r["value_model"] <= r["value_xgb"]]
            r["checks"] = ok
            out.append(r)
            marks = " ".join(("ok" if v else "NO") + ":" + k for v, k in zip(ok, ("cov", "ece", "plan")))
            print(
                f"{area_id:13s} {sim:11s} {r['episodes']:8d} {r['coverage90']:6.3f} {r['coverage90_unsplit']:7.3f} "
                f"{r['followup_sd']:6.2f} {r['ece_p_target']:6.3f} "
                f"{r['value_model']:9.3f} {r['value_xgb']:9.3f} {r['value_oracle']:9.3f} {r['value_continue']:9.3f} "
                f"{r['gap_closed_model']:11.2f} / {r['gap_closed_xgb']:.2f}  {marks}",
                flush=True,
            )
    met = sum(all(r["checks"]) for r in out)
    print(
        f"{met} of {len(out)} (area, simulator) pairs meet all three checks "
        "(coverage in [0.85, 0.95], P(target) ECE <= 0.05, top plan <= S-learner's true outcome)"
    )
    if a.out:
        a.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
