"""Screening speed: all candidate regimens of one patient (default 200) screened by the safety layer.

Prints screens per second and the median time per batch of N regimens for
* ``prepared``: ``RuleSet.prepare`` once per patient, then ``screen`` for each regimen (what the planner does);
* ``naive``: a fresh ``screen(record, regimen)`` per regimen (no shared patient context), the baseline.

Usage: ``python benchmarks/screen.py [--regimens 200] [--repeats 25] [--seed 0]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import time

from planner.record import (
    Allergy, Condition, DrugDose, Measurement, Medication, PatientRecord, PgxResult, Regimen,
)
from planner.safety import RuleSet, apply_findings

FORMULARY = {  # a mixed formulary across areas, dose levels in mg/day
    "metformin": [500, 1000, 2000], "glipizide": [5, 10], "sitagliptin": [50, 100], "empagliflozin": [10, 25],
    "pioglitazone": [15, 30], "semaglutide": [0.143, 0.286], "atorvastatin": [10, 40, 80],
    "rosuvastatin": [10, 20, 40], "simvastatin": [20, 40], "lisinopril": [10, 20], "losartan": [50, 100],
    "amlodipine": [5, 10], "citalopram": [20, 40], "sertraline": [50, 100], "clopidogrel": [75],
}


def patient() -> PatientRecord:
    d = dt.date(2024, 6, 1)
    return PatientRecord(
        patient_id="bench", as_of=d, birth_date=dt.date(1955, 3, 1),
        conditions=(Condition(code="44054006", system="http://snomed.info/sct"),
                    Condition(code="88805009", system="http://snomed.info/sct")),
        medications=tuple(Medication(ingredient=m, rxcui="0", start=dt.date(2022, 1, 1), status="active")
                          for m in ("omeprazole", "warfarin", "paroxetine")),
        allergies=(Allergy(display="Allergy to penicillin", code="91936005"),),
        observations={"egfr": (Measurement(date=d - dt.timedelta(days=20), value=42, unit="mL/min/1.73m2",
                                           loinc="33914-3"),)},
        pgx=(PgxResult(gene="CYP2C19", diplotype="*1/*2", source="pharmcat-tsv"),
             PgxResult(gene="SLCO1B1", diplotype="*1/*5", source="pharmcat-tsv"),
             PgxResult(gene="CYP2C9", diplotype="*1/*3", source="pharmcat-tsv")),
    )


def regimens(n: int, seed: int) -> list[Regimen]:
    rng = random.Random(seed)
    drugs = list(FORMULARY)
    seen: dict[str, Regimen] = {}
    while len(seen) < n:
        k = rng.randint(1, 3)
        chosen = rng.sample(drugs, k)
        reg = Regimen.of([DrugDose(ingredient=d, rxcui="0", dose_mg_day=rng.choice(FORMULARY[d])) for d in chosen])
        seen[reg.key()] = reg
    return list(seen.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regimens", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    rs = RuleSet.load()
    load_s = time.perf_counter() - t0
    rec = patient()
    regs = regimens(args.regimens, args.seed)

    prepared, cold, cpu = [], [], []
    for _ in range(args.repeats):
        c0 = time.thread_time()
        t = time.perf_counter()
        ctx = rs.prepare(rec)
        cold_first = None
        for i, r in enumerate(regs):
            rs.screen(ctx, r)
            if i == 0:
                cold_first = time.perf_counter() - t
        prepared.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c0)
        cold.append(cold_first)
    # same context, second pass: what repeated ranking calls cost
    ctx = rs.prepare(rec)
    for r in regs:
        rs.screen(ctx, r)
    warm = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        for r in regs:
            rs.screen(ctx, r)
        warm.append(time.perf_counter() - t)
    naive = []
    for _ in range(max(3, args.repeats // 5)):
        t = time.perf_counter()
        for r in regs:
            rs.screen(rec, r)
        naive.append(time.perf_counter() - t)

    fs = [rs.screen(ctx, r) for r in regs]
    kept = sum(apply_findings(r, f) is not None for r, f in zip(regs, fs))
    med_p, med_w, med_n = (statistics.median(x) for x in (prepared, warm, naive))
    print(f"rules loaded and validated once in {load_s * 1000:.0f} ms (rules_version {rs.rules_version})")
    print(f"{len(regs)} regimens, {sum(len(f) for f in fs)} findings, {kept} regimens kept after findings")
    print(f"prepared context (prepare + {len(regs)} screens): median {med_p * 1000:.2f} ms per {len(regs)} "
          f"= {len(regs) / med_p:,.0f} screens/s (fastest run {min(prepared) * 1000:.2f} ms; "
          f"first regimen of a patient {statistics.median(cold) * 1000:.2f} ms)")
    print(f"  same, CPU time of this thread (less sensitive to other load): median "
          f"{statistics.median(cpu) * 1000:.2f} ms per {len(regs)}")
    print(f"re-screen, same context (memoized):            median {med_w * 1000:.3f} ms per {len(regs)} "
          f"= {len(regs) / med_w:,.0f} screens/s")
    print(f"naive baseline (no shared context):            median {med_n * 1000:.2f} ms per {len(regs)} "
          f"= {len(regs) / med_n:,.0f} screens/s")
    print(f"speed-up of prepared over naive: {med_n / med_p:.1f}x; target < 2 ms per 200: "
          f"{'met' if med_p * 200 / len(regs) < 0.002 else 'NOT met'} (prepared, median; timings are wall clock "
          f"and include other load on the machine)")


if __name__ == "__main__":
    main()
