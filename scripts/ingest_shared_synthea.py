"""Ingest all 26 shared Synthea bundles (``../shared/reference/synthea``) and print a one-line summary per bundle.

Not a test (tests must not read ../shared): an acceptance check that every shared bundle ingests without error.
Exit code 0 when all ingest, 1 otherwise. Prints counts only (no identifiers or values).

Usage: ``python scripts/ingest_shared_synthea.py [FOLDER] [--strict]``
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from planner.errors import PlannerError  # noqa: E402
from planner.ingest import IngestStats, read_record  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", type=Path, default=ROOT.parent / "shared" / "reference" / "synthea")
    ap.add_argument("--strict", action="store_true", help="also validate whole resources (fhir.resources R4B)")
    args = ap.parse_args(argv)
    files = sorted(args.folder.glob("*.json"))
    if not files:
        print(f"no bundles in {args.folder}", file=sys.stderr)
        return 1
    failed = 0
    warn_codes: Counter[str] = Counter()
    t0 = time.perf_counter()
    for i, f in enumerate(files, start=1):
        stats = IngestStats()
        try:
            r = read_record(f, strict=args.strict, stats=stats)
        except PlannerError as exc:
            failed += 1
            print(f"bundle {i:2d}: FAILED {type(exc).__name__}: {exc}")
            continue
        warn_codes.update(w.code for w in r.warnings)
        n_obs = sum(len(v) for v in r.observations.values())
        active = sum(1 for m in r.active_medications() if m.rxcui)
        print(
            f"bundle {i:2d}: {stats.resources:5d} resources, {stats.decoded:4d} read; "
            f"{len(r.conditions):2d} conditions, {len(r.medications):2d} medications ({active} active resolved), "
            f"{n_obs:4d} measurements in {len(r.observations):2d} quantities, {len(r.warnings):3d} warnings, "
            f"{stats.unknown_loinc:3d} unknown LOINC skipped"
        )
    dt = time.perf_counter() - t0
    print(
        f"{len(files) - failed}/{len(files)} bundles ingested in {dt:.2f} s; warnings: "
        + ", ".join(f"{k} {v}" for k, v in sorted(warn_codes.items()))
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
