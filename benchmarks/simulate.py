"""Simulator and episode benchmark + acceptance run.

Prints, in one run:

1. acceptance per area (default 2,000 patients each): simulate -> FHIR bundles -> planner.ingest ->
   planner.episodes, and whether the extracted episodes equal the simulator's decisions exactly
   (t0, regimens, baseline and follow-up values and dates, drop reasons, features);
2. throughput (default 10,000 t2d patients): patients simulated per second, episodes extracted per second, and
   the whole simulate + extract time against the 120 s target; the FHIR round trip (write, ingest) is timed
   too, and ingest is compared with a baseline measured in the same run: plain orjson decoding of the same
   files (ratio = how much slower full ingest is than just parsing the JSON);
3. episodes from real Synthea bundles (fixtures/synthea, or --synthea DIR) with drop reasons.

Run: ``.venv/bin/python benchmarks/simulate.py [--n 10000] [--acceptance-n 2000] [--synthea DIR]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from planner.areas import load_area  # noqa: E402
from planner.episodes import DROP_REASONS, episodes_frame  # noqa: E402
from planner.ingest import read_records  # noqa: E402
from planner.simulate import simulate_cohort  # noqa: E402
from planner.simulate.check import compare_episodes, feature_columns  # noqa: E402

AREAS = ("t2d", "lipids", "hypertension", "depression")


def acceptance(n: int, seed: int) -> bool:
    print(f"== acceptance: {n} patients per area, seed {seed}")
    ok_all = True
    for name in AREAS:
        area = load_area(name)
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            cohort = simulate_cohort(area, n, seed=seed)
            cohort.write_fhir(tmp)
            records = read_records(os.path.join(tmp, "fhir"))
            frame, counts = episodes_frame(records, area)
            m = compare_episodes(cohort.decisions, frame, counts, features=feature_columns(area))
            dt = time.perf_counter() - t
        ok = m.ok and not any(m.feature_mismatches.values())
        ok_all &= ok
        print(
            f"{name:13s} {'MATCH' if ok else 'MISMATCH'}  decisions {len(cohort.decisions)}, episodes "
            f"simulated {m.simulated} / extracted {m.extracted} / matched {m.matched}; drops {m.drops_extracted}; "
            f"field mismatches {sum(m.mismatched.values())}, feature mismatches "
            f"{sum(m.feature_mismatches.values())}  ({dt:.1f} s)"
        )
    return ok_all


def throughput(n: int, seed: int, area_name: str) -> None:
    print(f"== throughput: {n} {area_name} patients, seed {seed}, {os.cpu_count()} CPUs")
    area = load_area(area_name)
    t0 = time.perf_counter()
    cohort = simulate_cohort(area, n, seed=seed)
    t_sim = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t1 = time.perf_counter()
        cohort.write_fhir(tmp)
        t_write = time.perf_counter() - t1
        files = sorted(Path(tmp, "fhir").glob("*.json"))
        t2 = time.perf_counter()
        nbytes = 0
        for f in files:
            data = f.read_bytes()
            nbytes += len(data)
            orjson.loads(data)
        t_parse = time.perf_counter() - t2
        t3 = time.perf_counter()
        records = read_records(os.path.join(tmp, "fhir"), max_bytes=4 * nbytes)
        t_ingest = time.perf_counter() - t3
    t4 = time.perf_counter()
    frame, counts = episodes_frame(records, area)
    t_ep = time.perf_counter() - t4
    n_ep = len(frame)
    print(f"simulate (in memory)  {t_sim:7.2f} s  {n / t_sim:9.0f} patients/s  ({len(cohort.decisions)} decisions)")
    print(f"write FHIR + truth    {t_write:7.2f} s  {n / t_write:9.0f} patients/s  ({nbytes / 1e6:.0f} MB)")
    print(f"baseline orjson parse {t_parse:7.2f} s  {nbytes / 1e6 / t_parse:9.0f} MB/s")
    print(
        f"ingest (planner)      {t_ingest:7.2f} s  {n / t_ingest:9.0f} patients/s  "
        f"ratio to plain parse {t_ingest / t_parse:.1f}x"
    )
    print(
        f"extract episodes      {t_ep:7.2f} s  {n_ep / t_ep:9.0f} episodes/s  ({n_ep} episodes, "
        f"{counts['candidates']} candidates; drops " + ", ".join(f"{r} {counts.get(r, 0)}" for r in DROP_REASONS) + ")"
    )
    total = t_sim + t_ep
    full = t_sim + t_write + t_ingest + t_ep
    print(
        f"simulate + extract    {total:7.2f} s  (target < 120 s: {'met' if total < 120 else 'NOT met'}); "
        f"with the FHIR round trip {full:.1f} s ({'met' if full < 120 else 'NOT met'})"
    )


def synthea(folder: Path) -> None:
    print(f"== real Synthea bundles: {folder}")
    records = read_records(str(folder))
    for name in AREAS:
        frame, counts = episodes_frame(records, name)
        drops = ", ".join(f"{r} {counts.get(r, 0)}" for r in DROP_REASONS)
        print(
            f"{name:13s} {len(records)} patients, {counts['candidates']} candidates, {counts['episodes']} episodes; "
            f"dropped: {drops}"
        )
        for _, row in frame.iterrows():
            print(
                f"    {row['t0'].date()} {row['regimen_before']} -> {row['regimen']}: "
                f"{row['baseline']:.1f} -> {row['followup']:.1f}"
            )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="patients for the throughput run")
    ap.add_argument("--area", default="t2d", help="area of the throughput run")
    ap.add_argument(
        "--acceptance-n", type=int, default=2_000, help="patients per area for the acceptance run (0: skip)"
    )
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--synthea", type=Path, default=ROOT / "fixtures" / "synthea")
    args = ap.parse_args(argv)
    ok = True
    if args.acceptance_n > 0:
        ok = acceptance(args.acceptance_n, args.seed)
    if args.n > 0:
        throughput(args.n, args.seed, args.area)
    if args.synthea and args.synthea.is_dir():
        synthea(args.synthea)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
