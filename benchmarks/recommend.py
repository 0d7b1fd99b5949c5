"""Benchmark the main job: warm ``Planner.recommend`` latency per patient and the cold CLI.

Prints p50/p95 per patient over the Synthea fixtures (every area each patient is in), and the wall time of
one cold ``planner recommend`` process on one fixture, against the targets of issue 6
(p50 <= 50 ms, p95 <= 150 ms, cold CLI <= 4 s). A baseline measured in the same run: the time to only ingest
the same bundles (so the ratio shows what the engine adds on top of reading the file).

    python benchmarks/recommend.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--fixtures", type=Path, default=ROOT / "fixtures" / "synthea")
    args = ap.parse_args()

    from planner import Planner
    from planner.ingest import read_record

    files = sorted(args.fixtures.glob("*.json"))
    if not files:
        print(f"no bundles in {args.fixtures}")
        return 1
    t0 = time.perf_counter()
    planner = Planner.load()
    load_s = time.perf_counter() - t0
    records = [read_record(f) for f in files]
    jobs = [(r, a) for r in records for a in planner.areas_for(r)]
    for r, a in jobs:  # warm-up
        planner.recommend(r, area=a)
    times, ingest_times = [], []
    for _ in range(args.repeat):
        for f in files:
            t = time.perf_counter()
            read_record(f)
            ingest_times.append(time.perf_counter() - t)
        for r, a in jobs:
            t = time.perf_counter()
            planner.recommend(r, area=a)
            times.append(time.perf_counter() - t)
    if not times:
        print("no fixture patient is in a therapeutic area")
        return 1
    q = statistics.quantiles(times, n=100)
    p50, p95 = statistics.median(times), q[94]
    ing = statistics.median(ingest_times)
    print(f"Planner.load (rules + {len(planner.models)} prior models): {load_s * 1000:.0f} ms")
    print(
        f"warm recommend over {len(jobs)} patient-areas x {args.repeat}: p50 {p50 * 1000:.1f} ms "
        f"(target <= 50), p95 {p95 * 1000:.1f} ms (target <= 150)"
    )
    print(f"baseline, ingest only (median per bundle): {ing * 1000:.1f} ms; recommend/ingest ratio {p50 / ing:.1f}x")
    fixture = files[0]
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "planner.cli", "recommend", str(fixture), "--format", "json"],
        capture_output=True,
        text=True,
    )
    cold = time.perf_counter() - t
    print(f"cold CLI `planner recommend {fixture.name}`: {cold:.2f} s wall (target <= 4), exit {out.returncode}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
