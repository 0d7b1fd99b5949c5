"""Does the doubly robust estimate's interval hold the TRUE value of the recommended policy?

For each seed: simulate a cohort (``planner simulate``: FHIR bundles + truth), ``planner cohort run`` it at
the episode decision points, ``planner cohort evaluate`` it against the truth file. Prints, per seed, the DR
estimate with its interval, the true value, whether the interval holds it, the overlap verdict and how much of
the interval is the outcome model's error; then, per estimator, the hit rate on the first five seeds, the rest
and all of them (acceptance: at least 4 of 5 at 90%) and the mean interval width. ``--cache DIR`` keeps the
simulated cohorts and their runs so that a second run only evaluates.

    python benchmarks/cohort_ope.py --area t2d --n 200 --seeds 0 1 2 3 4 5 6 7 8 9 --workers 2 --cache /tmp/ope
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _cohort(args: argparse.Namespace, tmp: Path, seed: int) -> tuple[Path, Path]:
    from planner.areas import load_area
    from planner.cohort import run_cohort
    from planner.simulate import simulate_cohort

    sim = tmp / f"{args.area}-n{args.n}-sim{seed}"
    if not (sim / "truth.parquet").is_file():
        simulate_cohort(load_area(args.area), args.n, seed=seed).write_fhir(str(sim))
    run = tmp / f"{args.area}-n{args.n}-run{seed}"
    if (run / "results.parquet").is_file():  # a cached, finished run
        return sim, run
    run_cohort(sim / "fhir", area=args.area, out=run, at="episodes", workers=args.workers, seed=seed, progress=False)
    return sim, run


def _row(seed: int, pol: dict[str, Any], seconds: float) -> str:
    dr, truth, ov = pol["recommended"]["dr"], pol["truth"], pol["overlap"]
    lo, hi = dr["sampling_interval"]
    return (
        f"{seed:>4} {pol['n']:>5} {100 * pol['match']['rate']:>5.1f} {ov['effective_sample_size']:>5.1f} "
        f"{ov['verdict']:<8} {dr['value']:.3f} [{dr['lower']:.3f}, {dr['upper']:.3f}] "
        f"[{lo:.3f}, {hi:.3f}] {truth['recommended']:>7.3f} {'yes' if dr['covers_truth'] else 'no':>4} "
        f"{pol['observed']['value']:>8.3f} {truth['observed']:>8.3f} {seconds:>5.1f}"
    )


def _rates(seeds: list[int], table: dict[str, list[tuple[int, bool, float]]]) -> list[str]:
    first, rest = set(seeds[:5]), set(seeds[5:])
    lines = [f"{'estimator':<13} {'hits ' + _span(seeds[:5]):>14} {'hits ' + _span(seeds[5:]):>14} {'all':>7} width"]
    for name, rows in table.items():
        a = sum(h for s, h, _ in rows if s in first)
        b = sum(h for s, h, _ in rows if s in rest)
        width = sum(w for *_, w in rows) / max(len(rows), 1)
        lines.append(
            f"{name:<13} {f'{a}/{len(first)}':>14} {f'{b}/{len(rest)}' if rest else '-':>14} "
            f"{f'{a + b}/{len(rows)}':>7} {width:.3f}"
        )
    return lines


def _iv(est: dict[str, Any]) -> str:
    if est.get("value") is None:
        return "-"
    hit = "+" if est.get("covers_truth") else "-"
    return f"{est['value']:.2f} [{est['lower']:.2f}, {est['upper']:.2f}]{hit}"


def _span(seeds: list[int]) -> str:
    return f"{seeds[0]}-{seeds[-1]}" if seeds else "-"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--area", default="t2d")
    ap.add_argument("--n", type=int, default=200, help="patients per simulated cohort")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--level", type=float, default=0.9)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--splits", type=int, default=3, help="cross-fitting fold assignments (evaluate's default)")
    ap.add_argument("--cache", help="keep the simulated cohorts and their runs here and reuse them")
    args = ap.parse_args(argv)

    from planner.cohort.evaluate import evaluate

    table: dict[str, list[tuple[int, bool, float]]] = {}
    print(
        f"area {args.area}, {args.n} simulated patients per seed, untrained (prior) model, decision points at episodes"
    )
    header_done = False
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(args.cache) if args.cache else Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            t0 = time.perf_counter()
            sim, run = _cohort(args, tmp, seed)
            ev = evaluate(
                run, truth=sim, n_boot=args.bootstrap, level=args.level, seed=seed, subgroups=False, splits=args.splits
            )
            pol = ev["policy"]
            if not header_done:
                print(pol["interval"]["text"])
                print(
                    f"{'seed':>4} {'n':>5} {'match':>5} {'ESS':>5} {'overlap':<8} {'DR [interval]':<22} "
                    f"{'[sampling only]':<16} {'true':>7} {'hit':>4} {'observed':>8} {'true obs':>8} {'s':>5}"
                )
                header_done = True
            for name, est in pol["recommended"].items():
                width = est["upper"] - est["lower"]
                table.setdefault(name, []).append((seed, bool(est["covers_truth"]), width))
            print(_row(seed, pol, time.perf_counter() - t0), flush=True)
            others = [f"{k} {_iv(v)}" for k, v in pol["recommended"].items() if k != "dr"]
            print("      " + "; ".join(others), flush=True)
    print("\n".join(_rates(args.seeds, table)))
    k5 = [h for s, h, _ in table["dr"] if s in set(args.seeds[:5])]
    hits = sum(h for _, h, _ in table["dr"])
    print(
        f"DR interval holds the true value in {sum(k5)} of {len(k5)} seeds (seeds {_span(args.seeds[:5])}; "
        f"acceptance: >= 4 of 5); over all {len(args.seeds)} seeds: {hits}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
