"""Does the doubly robust estimate's bootstrap interval hold the TRUE value of the recommended policy?

For each seed: simulate a cohort (``planner simulate``: FHIR bundles + truth), ``planner cohort run`` it at
the episode decision points, ``planner cohort evaluate`` it against the truth file. Prints, per seed, the DR
estimate with its interval, the true value and whether the interval holds it, then the hit rate (acceptance:
at least 4 of 5 seeds at 90%), with the other estimators' hit rates beside it.

    python benchmarks/cohort_ope.py --area t2d --n 200 --seeds 0 1 2 3 4 --workers 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--area", default="t2d")
    ap.add_argument("--n", type=int, default=200, help="patients per simulated cohort")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--level", type=float, default=0.9)
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args(argv)

    from planner.areas import load_area
    from planner.cohort import run_cohort
    from planner.cohort.evaluate import evaluate
    from planner.simulate import simulate_cohort

    hits: dict[str, int] = {}
    print(
        f"area {args.area}, {args.n} simulated patients per seed, {int(args.level * 100)}% patient-bootstrap "
        "intervals (nuisance models cross-fitted once)"
    )
    print(
        f"{'seed':>4} {'decisions':>9} {'match%':>6}  {'DR [interval]':<26} {'true':>7} {'hit':>4}  "
        f"{'observed':>8} {'true obs':>8} {'regret rec/obs':>15} {'s':>5}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            t0 = time.perf_counter()
            sim = Path(tmp) / f"sim{seed}"
            simulate_cohort(load_area(args.area), args.n, seed=seed).write_fhir(str(sim))
            run_cohort(
                sim / "fhir",
                area=args.area,
                out=Path(tmp) / f"run{seed}",
                at="episodes",
                workers=args.workers,
                seed=seed,
            )
            ev = evaluate(
                Path(tmp) / f"run{seed}", truth=sim, n_boot=args.bootstrap, level=args.level, seed=seed, subgroups=False
            )
            pol = ev["policy"]
            truth = pol["truth"]
            for name, est in pol["recommended"].items():
                hits[name] = hits.get(name, 0) + int(bool(est["covers_truth"]))
            dr = pol["recommended"]["dr"]
            print(
                f"{seed:>4} {pol['n']:>9} {100 * pol['match']['rate']:>6.1f}  "
                f"{dr['value']:.3f} [{dr['lower']:.3f}, {dr['upper']:.3f}]{'':<6} {truth['recommended']:>7.3f} "
                f"{'yes' if dr['covers_truth'] else 'no':>4}  {pol['observed']['value']:>8.3f} "
                f"{truth['observed']:>8.3f} {truth['regret_recommended']:>7.3f}/{truth['regret_observed']:<7.3f} "
                f"{time.perf_counter() - t0:>5.1f}"
            )
    k = len(args.seeds)
    print(f"DR interval holds the true value in {hits['dr']} of {k} seeds (acceptance: >= 4 of 5)")
    print("other estimators: " + ", ".join(f"{n} {h}/{k}" for n, h in hits.items() if n != "dr"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
