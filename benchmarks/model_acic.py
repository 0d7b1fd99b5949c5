"""ACIC 2016 (semi-synthetic, real covariates, true potential outcomes): out-of-sample CATE error and 90% CATE
interval coverage of the tabular ``ResponseModel`` against a T-learner with xgboost, in the same run.

Per instance i (1..10, the instances causallib ships; see benchmarks/acic_data.py): a 90/10 split seeded by i;
every method is fitted on the 90% and scored on the 10%:

* sqrt(PEHE) = sqrt(mean((tau_hat(x) - tau(x))^2)) with tau = mu1 - mu0 the true conditional effect;
* coverage: share of held-out rows whose true tau(x) lies in the method's central 90% interval.

Methods: ``planner`` (``ResponseModel(seed=i)``, the default: learned basis when data allow), ``linear``
(``basis="none"``, the model as it was: linear prognostic part and effect modification), ``tlearner`` (two
``XGBRegressor``s, one per arm, 300 trees of depth 4, learning rate 0.05: no intervals), and with ``--bcf`` a
Bayesian causal forest (stochtree ``BCFModel``, 10 GFR + 200 MCMC sweeps) as a reference candidate.

    .venv/bin/python benchmarks/model_acic.py [--instances 1-10] [--rows N] [--steps S] [--bcf] [--out F]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from acic_data import load  # noqa: E402

from planner.model import ResponseModel  # noqa: E402

TREE = {"n_estimators": 300, "max_depth": 4, "learning_rate": 0.05}


def split(n: int, i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    te = np.zeros(n, dtype=bool)
    te[rng.choice(n, n // 10, replace=False)] = True
    return te


def score(tau_hat: np.ndarray, lo: np.ndarray | None, hi: np.ndarray | None, tau: np.ndarray) -> tuple[float, float]:
    pehe = float(np.sqrt(np.mean((tau_hat - tau) ** 2)))
    cov = float("nan") if lo is None else float(np.mean((tau >= lo) & (tau <= hi)))
    return pehe, cov


def run_planner(X, a, y, Xte, i: int, steps: int | None, basis: str):
    regs = [{"treated"} if v else set() for v in a]
    m = ResponseModel(seed=i, num_steps=steps, basis=basis).fit(X, regs, y)
    d = m.sample(Xte, [set(), {"treated"}])
    td = d[:, :, 1] - d[:, :, 0]
    lo, hi = np.quantile(td, [0.05, 0.95], axis=0)
    return td.mean(0), lo, hi


def run_tlearner(X, a, y, Xte, i: int):
    import xgboost as xgb

    p = [xgb.XGBRegressor(**TREE, n_jobs=1, random_state=i).fit(X[a == k], y[a == k]).predict(Xte) for k in (0, 1)]
    return p[1] - p[0], None, None


def run_bcf(X, a, y, Xte, i: int):
    try:
        from stochtree import BCFModel
    except ImportError:
        raise SystemExit("--bcf needs stochtree (pip install stochtree; not a planner dependency)") from None

    b = BCFModel()
    b.sample(
        X_train=X.to_numpy(),
        Z_train=a.astype(float),
        y_train=y,
        X_test=Xte.to_numpy(),
        Z_test=np.zeros(len(Xte)),
        num_gfr=10,
        num_burnin=0,
        num_mcmc=200,
        general_params={"random_seed": i, "num_threads": 1},
    )
    td = b.tau_hat_test
    lo, hi = np.quantile(td, [0.05, 0.95], axis=1)
    return td.mean(1), lo, hi


def instances(spec: str) -> list[int]:
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instances", default="1-10")
    ap.add_argument("--rows", type=int, default=None, help="subsample this many rows per instance (smoke runs)")
    ap.add_argument("--steps", type=int, default=None, help="SVI steps (default: the model's)")
    ap.add_argument("--bcf", action="store_true", help="also run stochtree's BCF (if installed)")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    methods = ["planner", "linear", "tlearner"] + (["bcf"] if a.bcf else [])
    rows = []
    print(f"{'inst':>4} {'sd(tau)':>7} " + " ".join(f"{m + ' pehe':>14} {'cov':>5}" for m in methods) + "  seconds")
    for i in instances(a.instances):
        d = load(i)
        X, tau = d.X, d.tau
        keep = np.arange(len(d.y))
        if a.rows and a.rows < len(keep):
            keep = np.sort(np.random.default_rng(100 + i).choice(len(keep), a.rows, replace=False))
        te = split(len(keep), i)
        tr_i, te_i = keep[~te], keep[te]
        Xtr, Xte = X.iloc[tr_i].reset_index(drop=True), X.iloc[te_i].reset_index(drop=True)
        atr, ytr, tte = d.a[tr_i], d.y[tr_i], tau[te_i]
        r: dict = {"instance": i, "n_train": int(len(tr_i)), "n_test": int(len(te_i)), "sd_tau": float(tte.std())}
        t0 = time.perf_counter()
        for m in methods:
            t1 = time.perf_counter()
            if m == "planner":
                out = run_planner(Xtr, atr, ytr, Xte, i, a.steps, "auto")
            elif m == "linear":
                out = run_planner(Xtr, atr, ytr, Xte, i, a.steps, "none")
            elif m == "tlearner":
                out = run_tlearner(Xtr, atr, ytr, Xte, i)
            else:
                out = run_bcf(Xtr, atr, ytr, Xte, i)
            r[f"{m}_pehe"], r[f"{m}_cov"] = score(*out, tte)
            r[f"{m}_s"] = round(time.perf_counter() - t1, 1)
        rows.append(r)
        cells = " ".join(f"{r[m + '_pehe']:14.3f} {r[m + '_cov']:5.2f}" for m in methods)
        print(f"{i:4d} {r['sd_tau']:7.2f} {cells}  {time.perf_counter() - t0:.0f}", flush=True)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k.endswith(("_pehe", "_cov"))}
    print("mean           " + " ".join(f"{mean[m + '_pehe']:14.3f} {mean[m + '_cov']:5.2f}" for m in methods))
    ratio = mean["planner_pehe"] / mean["tlearner_pehe"]
    ok_pehe = mean["planner_pehe"] <= mean["tlearner_pehe"]
    ok_cov = 0.85 <= mean["planner_cov"] <= 0.95
    print(
        f"planner sqrt(PEHE) {mean['planner_pehe']:.3f} vs T-learner xgboost {mean['tlearner_pehe']:.3f}: "
        f"{ratio:.2f}x ({'met' if ok_pehe else 'NOT met'}: <= 1.00x); mean 90% CATE coverage "
        f"{mean['planner_cov']:.3f} ({'met' if ok_cov else 'NOT met'}: in [0.85, 0.95]); "
        f"before (linear) {mean['linear_pehe']:.3f}, coverage {mean['linear_cov']:.3f}"
    )
    if a.out:
        a.out.write_text(json.dumps({"rows": rows, "mean": mean}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
