"""CPU per patient of the two recommend stages around the model: candidate generation
(``stages.propose_candidates``) and the batched posterior sampler (``model.batched.sample_batch``, mean and
predictive draws of every kept regimen), on simulated patients of one area through ``Planner.recommend_many``'s own
stages; ``recommend_many`` itself for context. Same-run baselines: the generator's one-row-frame ``propose``
per patient without the stage's memory, and ``ResponseModel.sample_kinds`` one patient at a time (the draws
the batch equals bit for bit). Each pass is over patients whose proposals and random terms are not remembered
(the memories of regimens, encodings and move tables stay warm, as in a running process). The machine is shared:
CPU (``time.process_time``) is the code, wall the load; the load average is printed.

    .venv/bin/python benchmarks/sampler_speed.py [--area t2d] [--patients 128] [--batch 32] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from planner import Planner, stages  # noqa: E402
from planner.areas import fill_doses, load_area  # noqa: E402
from planner.batch import Job, _screen  # noqa: E402
from planner.model import batched  # noqa: E402
from planner.simulate import simulate_cohort  # noqa: E402
from planner.stages import candidates as cand_stage  # noqa: E402


def best(fn: Callable[[], Any], reps: int, n: int, before: Callable[[], None] = lambda: None) -> tuple[float, float]:
    """Fastest of ``reps`` passes: (CPU ms, wall ms) per patient."""
    cpu, wall = [], []
    for _ in range(reps):
        before()
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return 1e3 * min(cpu) / n, 1e3 * min(wall) / n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--area", default="t2d")
    ap.add_argument("--patients", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp())
    simulate_cohort(load_area(a.area), a.patients, seed=0).write_fhir(str(tmp))
    bundles = sorted((tmp / "fhir").glob("*.json"))[: a.patients]
    planner = Planner.load()
    area = load_area(a.area, planner.rules_path)
    jobs = [Job(rec, a.area, digest) for rec, digest in (planner.read(b) for b in bundles)]
    screened = [_screen(planner, j, 0) for j in jobs]
    rows = [s.candidates.features for s in screened]
    model, gen, NS = planner.models[a.area], planner.generators[a.area], planner.ranking.num_samples
    todo = [(s.candidates.features, [fill_doses(k.regimen, area) for k in s.kept]) for s in screened]
    todo = [(f, r) for f, r in todo if r and f.can_predict]
    n, m = len(rows), len(todo)
    print(
        f"{n} simulated {a.area} patients ({m} with draws, {np.mean([len(r) for _, r in todo]):.0f} kept regimens "
        f"each on average), {NS} draws, batches of {a.batch}"
    )

    def candidates() -> None:
        for r in rows:
            stages.propose_candidates(r, area=area, generator=gen, n=planner.num_candidates, seed=0)

    def candidates_frame() -> None:
        for r in rows:
            gen.propose(r.frame(), fill_doses(r.current, area), n=planner.num_candidates, seed=0)

    def forget_proposals() -> None:
        cand_stage._MEMO.clear()
        getattr(gen, "_dist_cache", {}).clear()

    def sampler() -> list[Any]:
        dj = [batched.DrawJob(X=None, values=f.values, regimens=r, current=f.measured_under, seed=0) for f, r in todo]
        out: list[Any] = []
        for i in range(0, m, a.batch):
            out += batched.sample_batch(model, dj[i : i + a.batch], NS)
        return out

    def one_at_a_time() -> list[Any]:
        return [
            model.sample_kinds(f.frame(), r, NS, seeds=[("mean", 0), ("predictive", 1)], current=f.measured_under)
            for f, r in todo
        ]

    def whole() -> None:
        for i in range(0, n, a.batch):
            planner.recommend_many(bundles[i : i + a.batch], area=a.area, errors="return")

    candidates(), sampler(), whole()  # warm: regimen parts, encodings and move tables remembered
    c_new = best(candidates, a.reps, n, forget_proposals)
    c_base = best(candidates_frame, a.reps, n, forget_proposals)
    s_new = best(sampler, a.reps, m, batched._NOISE.clear)
    s_base = best(one_at_a_time, max(1, a.reps - 1), m)
    equal = all(
        np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(sampler()[:8], one_at_a_time()[:8])
    )
    w = best(whole, max(1, a.reps - 1), n)
    print(
        f"candidates (propose_candidates): {c_new[0]:.2f} ms CPU / {c_new[1]:.2f} ms wall per patient; "
        f"baseline one-row-frame propose {c_base[0]:.2f} ms CPU ({c_base[0] / c_new[0]:.1f}x)"
    )
    print(
        f"sampler (sample_batch, mean + predictive): {s_new[0]:.2f} ms CPU / {s_new[1]:.2f} ms wall per patient; "
        f"baseline sample_kinds one at a time {s_base[0]:.2f} ms CPU ({s_base[0] / s_new[0]:.1f}x); "
        f"draws equal to it: {'yes' if equal else 'NO'}"
    )
    print(f"recommend_many (batches of {a.batch}): {w[0]:.2f} ms CPU / {w[1]:.2f} ms wall per patient")
    print(f"load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (2 shared cores)")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
