"""Quality of the response model on simulated cohorts with a known truth (figures for the closing note).

For each area: simulate a cohort (>= 20,000 episodes by default), split by patient (80% train, 20% held
out), fit ``ResponseModel.from_area(area)`` by SVI (full-rank guide) on the training episodes, and on the
held-out decisions compare, for every candidate regimen (the current one and every valid single move, as the
planner proposes them):

* RMSE of the TRUE expected follow-up outcome (``planner.simulate.expected_outcome``) vs the posterior mean;
* the model is told the regimen active on each baseline's date (``current``), whose effect the baseline
  carries (after a recent change it is not the regimen of the day before t0);
* coverage of the 90% interval of ``kind="mean"`` draws of the true expected outcome (target 0.85-0.95), and
  of the true change vs continuing the current regimen (the part of the truth the regimen controls);
* policy value (mean true expected outcome of the regimen picked) and regret vs the oracle of: the fitted
  model, an xgboost S-learner on the same data (features + regimen design + current regimen), the untrained
  literature-prior model, and the clinicians' observed choice; plus a mean-field (diagonal) SVI guide, to
  show the under-coverage the full-rank guide fixes.

Lower outcome is better in every shipped area (direction ``lower``); regret = chosen - best.

    .venv/bin/python benchmarks/model_quality.py [--quick] [--areas t2d,lipids] [--episodes 20000] [--out F]
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

from planner.areas import list_areas, load_area  # noqa: E402
from planner.model import RegimenGenerator, ResponseModel  # noqa: E402
from planner.simulate import expected_outcome, simulate_cohort  # noqa: E402


def simulate(area_id: str, episodes: int, seed: int):
    n = max(200, episodes // 2)
    while True:
        cohort = simulate_cohort(area_id, n, seed=seed)
        got = int(cohort.decisions["episode"].sum())
        if got >= episodes:
            return cohort
        n = int(n * episodes / max(got, 1) * 1.08) + 10


def regimen_at_baseline(d: pd.DataFrame) -> pd.Series:
    """The regimen active on each decision's baseline date (the one whose effect the baseline carries): the
    regimen of the patient's latest change strictly before that date (none before the first change)."""
    out = pd.Series([None] * len(d), index=d.index, dtype=object)
    for _, g in d.sort_values(["patient_id", "t0"]).groupby("patient_id", sort=False):
        t0s = g["t0"].to_numpy()
        regs = list(g["regimen"])
        for i, bd in zip(g.index, g["baseline_date"].to_numpy()):
            if pd.isna(bd):
                out[i] = d.at[i, "regimen_before"]
                continue
            k = np.searchsorted(t0s, bd, side="left") - 1  # a value on a change day predates it
            out[i] = regs[k] if k >= 0 else type(d.at[i, "regimen"])()
    return out


def feature_frame(area, d: pd.DataFrame) -> pd.DataFrame:
    names = [f.name for f in area.features if f.name in d.columns]
    return d[names].copy()


def s_learner_design(area, X: pd.DataFrame, regs, cur, levels: dict) -> np.ndarray:
    """xgboost S-learner inputs: numeric features, pgx one-hot, drug dose ratios of new and current regimen."""
    names = [d.ingredient for d in area.formulary]
    ref = {d.ingredient: d.reference_dose for d in area.formulary}
    cols = []
    for c in X.columns:
        s = X[c]
        if pd.api.types.is_numeric_dtype(s):
            cols.append(s.to_numpy(dtype=float, na_value=np.nan))
        else:
            for lv in levels[c]:
                cols.append((s == lv).to_numpy(dtype=float))
    base = np.stack(cols, 1)
    new = np.zeros((len(X), len(names)))
    old = np.zeros((len(X), len(names)))
    for i, (r, c) in enumerate(zip(regs, cur)):
        for dd in r.drugs:
            new[i, names.index(dd.ingredient)] = (dd.dose_mg_day or ref[dd.ingredient]) / ref[dd.ingredient]
        for dd in c.drugs:
            old[i, names.index(dd.ingredient)] = (dd.dose_mg_day or ref[dd.ingredient]) / ref[dd.ingredient]
    return np.hstack([base, new, old, (new > 0).sum(1, keepdims=True)])


def evaluate_area(area_id: str, *, episodes: int, seed: int, quick: bool, max_eval_rows: int) -> dict:
    import xgboost as xgb

    area = load_area(area_id)
    t0 = time.perf_counter()
    cohort = simulate(area_id, episodes, seed)
    d = cohort.decisions.copy()
    d["regimen_at_baseline"] = regimen_at_baseline(d)
    ep = d[d["episode"]].reset_index(drop=True)
    sim_s = time.perf_counter() - t0
    pids = np.array(sorted(ep["patient_id"].unique()))
    rng = np.random.default_rng(seed)
    test_ids = set(rng.choice(pids, size=len(pids) // 5, replace=False))
    is_test = ep["patient_id"].isin(test_ids).to_numpy()
    tr, te = ep[~is_test].reset_index(drop=True), ep[is_test].reset_index(drop=True)
    Xtr = feature_frame(area, tr)
    res: dict = {
        "area": area_id,
        "episodes": int(len(ep)),
        "train_episodes": int(len(tr)),
        "test_episodes": int(len(te)),
        "test_patients": len(test_ids),
        "simulate_s": round(sim_s, 1),
    }

    steps = 800 if quick else None
    fitted = {}
    for name, guide in (("svi_mvn", "mvn"), ("svi_diag", "diag")):
        m = ResponseModel.from_area(area_id, seed=seed, guide=guide, num_steps=steps)
        t1 = time.perf_counter()
        m.fit(Xtr, list(tr["regimen"]), tr["followup"].to_numpy(), current=list(tr["regimen_at_baseline"]))
        res[f"{name}_fit_s"] = round(time.perf_counter() - t1, 1)
        fitted[name] = m
    prior = ResponseModel.from_area(area_id, seed=seed)

    t1 = time.perf_counter()
    levels = {c: sorted(set(Xtr[c].dropna())) for c in Xtr.columns if not pd.api.types.is_numeric_dtype(Xtr[c])}
    Ztr = s_learner_design(area, Xtr, list(tr["regimen"]), list(tr["regimen_before"]), levels)
    booster = xgb.XGBRegressor(
        n_estimators=300 if quick else 600,
        max_depth=6,
        learning_rate=0.05,
        subsample=0.8,
        colsample_bytree=0.8,
        n_jobs=2,
        random_state=seed,
    )
    log_scale = area.outcome.scale == "log"  # fit the baseline on the area's scale too (fair to it)
    ytr = tr["followup"].to_numpy()
    booster.fit(Ztr, np.log(ytr) if log_scale else ytr)
    res["xgb_fit_s"] = round(time.perf_counter() - t1, 1)

    gen = RegimenGenerator.from_area(area_id)
    if len(te) > max_eval_rows:
        te = te.iloc[np.sort(rng.choice(len(te), max_eval_rows, replace=False))].reset_index(drop=True)
    Xte = feature_frame(area, te)
    groups = te.groupby("regimen_before_key", sort=True).indices
    acc = {
        k: []
        for k in (
            "err_mvn",
            "err_diag",
            "err_prior",
            "err_xgb",
            "cov_mvn",
            "cov_diag",
            "cov_prior",
            "dcov_mvn",
            "dcov_diag",
            "width_mvn",
        )
    }
    pol = {k: [] for k in ("oracle", "mvn", "diag", "prior", "xgb", "continue", "clinician", "random")}
    for _key, idx in groups.items():
        idx = np.asarray(idx)
        cur = te["regimen_before"].iloc[idx[0]]
        cands = [gen.regimen_of(m.result) for m in gen.moves(gen.key_of(cur))]
        cands[0] = cur  # "continue" exactly as recorded
        rows = te.iloc[idx]
        truth = expected_outcome(area, rows, cands, truth_params=cohort.truth)  # (n, R)
        Xg = Xte.iloc[idx]
        tcont = truth[:, :1]
        preds = {}
        for name, m in (("mvn", fitted["svi_mvn"]), ("diag", fitted["svi_diag"]), ("prior", prior)):
            draws = m.sample(Xg, cands, kind="mean", current=list(rows["regimen_at_baseline"]))
            mean = draws.mean(0)
            lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
            acc[f"err_{name}"].append((mean - truth).ravel())
            acc[f"cov_{name}"].append(((truth >= lo) & (truth <= hi)).ravel())
            if name in ("mvn", "diag"):
                dd = draws - draws[:, :, :1]
                dlo, dhi = np.quantile(dd[:, :, 1:], [0.05, 0.95], axis=0)
                tt = (truth - tcont)[:, 1:]
                acc[f"dcov_{name}"].append(((tt >= dlo) & (tt <= dhi)).ravel())
            if name == "mvn":
                acc["width_mvn"].append((hi - lo).ravel())
            preds[name] = mean
        n, R = truth.shape
        Z = s_learner_design(
            area, pd.concat([Xg] * R, ignore_index=True), [c for c in cands for _ in range(n)], [cur] * (n * R), levels
        )
        px = booster.predict(Z).reshape(R, n).T
        px = np.exp(px) if log_scale else px
        acc["err_xgb"].append((px - truth).ravel())
        preds["xgb"] = px
        best = truth.min(1)
        pol["oracle"].append(best)
        for name, p in preds.items():
            pol[name].append(truth[np.arange(n), p.argmin(1)])
        pol["continue"].append(truth[:, 0])
        pol["clinician"].append(rows["true_expected"].to_numpy())
        pol["random"].append(truth.mean(1))
    cat = {k: np.concatenate(v) for k, v in acc.items()}
    for name in ("mvn", "diag", "prior", "xgb"):
        res[f"rmse_{name}"] = float(np.sqrt(np.mean(cat[f"err_{name}"] ** 2)))
    for name in ("mvn", "diag", "prior"):
        res[f"coverage90_{name}"] = float(np.mean(cat[f"cov_{name}"]))
    for name in ("mvn", "diag"):
        res[f"coverage90_change_{name}"] = float(np.mean(cat[f"dcov_{name}"]))
    res["interval_width_mvn"] = float(np.mean(cat["width_mvn"]))
    res["pairs_evaluated"] = int(cat["err_mvn"].size)
    P = {k: np.concatenate(v) for k, v in pol.items()}
    for k in P:
        res[f"value_{k}"] = float(P[k].mean())
        if k != "oracle":
            res[f"regret_{k}"] = float((P[k] - P["oracle"]).mean())
    res["unit"] = area.outcome.unit
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small cohorts and short fits (a smoke run)")
    ap.add_argument("--areas", default=",".join(list_areas()))
    ap.add_argument("--episodes", type=int, default=None, help="episodes per area (default 20000, quick 3000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--eval-rows", type=int, default=None, help="held-out decisions evaluated (default 3000)")
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    a = ap.parse_args(argv)
    episodes = a.episodes or (3000 if a.quick else 20000)
    eval_rows = a.eval_rows or (600 if a.quick else 3000)
    out = []
    for area_id in a.areas.split(","):
        t0 = time.perf_counter()
        try:
            r = evaluate_area(area_id, episodes=episodes, seed=a.seed, quick=a.quick, max_eval_rows=eval_rows)
        except Exception as exc:  # noqa: BLE001 - report and go on with the other areas
            print(f"\n== {area_id}: FAILED {type(exc).__name__}: {exc}")
            out.append({"area": area_id, "error": str(exc)})
            continue
        r["total_s"] = round(time.perf_counter() - t0, 1)
        out.append(r)
        print(
            f"\n== {area_id} ({r['unit']}): {r['episodes']} episodes, {r['train_episodes']} train, "
            f"{r['test_patients']} held-out patients, {r['pairs_evaluated']} (decision, candidate) pairs"
        )
        print(
            f"  fit: SVI full-rank {r['svi_mvn_fit_s']} s, mean-field {r['svi_diag_fit_s']} s, "
            f"xgboost {r['xgb_fit_s']} s"
        )
        print(
            f"  RMSE true vs estimated expected outcome: model {r['rmse_mvn']:.3f}  mean-field "
            f"{r['rmse_diag']:.3f}  xgboost {r['rmse_xgb']:.3f}  untrained prior {r['rmse_prior']:.3f}"
        )
        print(
            f"  90% coverage of true expected outcome: model {r['coverage90_mvn']:.3f}  mean-field "
            f"{r['coverage90_diag']:.3f}  prior {r['coverage90_prior']:.3f}  (mean width "
            f"{r['interval_width_mvn']:.3f})"
        )
        print(
            f"  90% coverage of true change vs continuing: model {r['coverage90_change_mvn']:.3f}  "
            f"mean-field {r['coverage90_change_diag']:.3f}"
        )
        print("  policy value (mean true outcome; regret vs oracle):")
        for k in ("oracle", "mvn", "diag", "xgb", "prior", "clinician", "continue", "random"):
            reg = "" if k == "oracle" else f"  regret {r['regret_' + k]:+.4f}"
            print(f"    {k:10s} {r['value_' + k]:.4f}{reg}")
    if a.out:
        a.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
