"""Speed of the response model: SVI fit on 100,000 episodes, and cached posterior draws for one patient and
for 10,000 patients (50 regimens x 1,000 draws each). Targets (2 cores): fit <= 60 s, one patient <= 10 ms,
10,000 patients <= 15 s. A baseline measured in the same run: the same draws through Pyro's ``Predictive``
for one patient (what a naive implementation would do). The machine is shared: every figure is printed as
wall time and as this process's CPU time (``time.process_time``, all its threads), so that load from others
shows as the difference.

    .venv/bin/python benchmarks/model_speed.py [--episodes 100000] [--patients 10000] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from planner.areas import enumerate_regimens, load_area  # noqa: E402
from planner.model import ResponseModel  # noqa: E402
from planner.simulate import simulate_cohort  # noqa: E402


def episodes(area_id: str, n: int, seed: int) -> pd.DataFrame:
    pat = max(100, n // 2)
    while True:
        d = simulate_cohort(area_id, pat, seed=seed).decisions
        ep = d[d["episode"]]
        if len(ep) >= n:
            return ep.iloc[:n].reset_index(drop=True)
        pat = int(pat * n / max(len(ep), 1) * 1.08) + 10


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--area", default="t2d")
    ap.add_argument("--episodes", type=int, default=100_000)
    ap.add_argument("--patients", type=int, default=10_000)
    ap.add_argument("--quick", action="store_true", help="10,000 episodes, 1,000 patients")
    a = ap.parse_args(argv)
    if a.quick:
        a.episodes, a.patients = 10_000, 1_000
    area = load_area(a.area)
    t0 = time.perf_counter()
    ep = episodes(a.area, a.episodes, seed=7)
    feats = [f.name for f in area.features if f.name in ep.columns]
    X = ep[feats]
    print(f"simulated {len(ep)} {a.area} episodes in {time.perf_counter() - t0:.1f} s")

    m = ResponseModel.from_area(a.area, seed=0)
    t0, c0 = time.perf_counter(), time.process_time()
    m.fit(X, list(ep["regimen"]), ep["followup"].to_numpy(), current=list(ep["regimen_before"]))
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"SVI fit (full-rank guide, {m.training_summary_['steps']} steps, minibatch {m.batch_size}): "
        f"{m.fit_seconds_:.1f} s optimisation, {total:.1f} s wall / {cpu:.1f} s CPU including setup and draws  "
        "(target <= 60 s)"
    )

    regs = enumerate_regimens(area, doses="reference", max_drugs=2)[:50]
    one = X.iloc[[0]]
    cur = ep["regimen_before"].iloc[0]
    m.sample(one, regs, 1000, current=cur)  # warm the cache
    reps = 50
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(reps):
        d = m.sample(one, regs, 1000, current=cur)
    one_ms = (time.perf_counter() - t0) / reps * 1e3
    one_cpu = (time.process_time() - c0) / reps * 1e3
    assert d.shape == (1000, 1, 50)
    print(f"one patient x 50 regimens x 1,000 draws: {one_ms:.2f} ms wall / {one_cpu:.2f} ms CPU  (target <= 10 ms)")

    import pyro
    from pyro.infer import Predictive

    from planner.model.model import Batch, Priors, response_model

    spec, draws = m._state()
    pr = Priors(spec)
    x, off = m._matrix(spec, pd.concat([one] * 50, ignore_index=True))
    batch = Batch.build(x, off, spec.encode_change(regs, [cur] * 50))
    pred = Predictive(lambda b: response_model(pr, b, None, None), posterior_samples=draws, return_sites=["y"])
    t0, c0 = time.perf_counter(), time.process_time()
    pyro.set_rng_seed(0)
    pred(batch)
    base_ms, base_cpu = (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3
    print(
        f"  baseline, the same through pyro Predictive: {base_ms:.0f} ms wall / {base_cpu:.0f} ms CPU "
        f"({base_ms / one_ms:.0f}x slower)"
    )

    rows = X.sample(a.patients, replace=len(X) < a.patients, random_state=0).reset_index(drop=True)
    curs = list(ep["regimen_before"].sample(a.patients, replace=len(X) < a.patients, random_state=0))
    chunk = 500
    t0, c0 = time.perf_counter(), time.process_time()
    acc = 0.0
    for s in range(0, len(rows), chunk):
        d = m.sample(rows.iloc[s : s + chunk], regs, 1000, current=curs[s : s + chunk])
        acc += float(d[:, :, 0].mean())
    many, many_cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"{a.patients:,} patients x 50 regimens x 1,000 draws (chunks of {chunk}): {many:.1f} s wall / "
        f"{many_cpu:.1f} s CPU  "
        f"(target <= 15 s for 10,000)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
