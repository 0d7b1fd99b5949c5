"""Screening speed: the candidate regimens of one patient (default 200) screened as plans by the safety layer.

The patient takes five current medications outside the candidates' areas (tamoxifen, clopidogrel, warfarin,
omeprazole, clarithromycin), and the candidates include CYP2D6/CYP2C19 inhibitors, statins with CYP3A4 and
calcium-channel partners and NSAID-like pairs, so plan-level pairs (a plan drug against a current drug, in both
directions, phenoconversion of a current drug's gene) are part of every screen. Each regimen goes through
``screen_plan`` (screen, apply dose adjustments, screen the adjusted plan again): what the Planner does.

Every repetition screens a *cold* patient: a fresh ``RuleSet.prepare`` context, so nothing the patient
computes is carried over from one repetition to the next (only rule-set data built at load is shared).
Prints the median time per batch of N regimens for
* ``batch``: ``RuleSet.prepare`` once, then ``RuleSet.screen_plans(ctx, regimens)`` (the same verdicts as
  ``screen_plan`` one by one, in one call), the figure the target is about;
* ``prepared``: ``RuleSet.prepare`` once, then ``screen_plan`` for each regimen;
* ``naive``: ``screen_plan(record, regimen)`` per regimen (a fresh patient context each time), the baseline,
  measured in the same run;
and, to judge the machine, the CPU time of a fixed pure-Python loop (10^6 additions) measured in the same run.

Usage: ``python benchmarks/screen.py [--regimens 200] [--repeats 40] [--seed 0]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import time

from planner.record import (
    Allergy,
    Condition,
    DrugDose,
    Measurement,
    Medication,
    PatientRecord,
    PgxResult,
    Regimen,
)
from planner.safety import RuleSet, screen_plan

FORMULARY = {  # a mixed formulary across areas, dose levels in mg/day
    "metformin": [500, 1000, 2000],
    "glipizide": [5, 10],
    "sitagliptin": [50, 100],
    "empagliflozin": [10, 25],
    "pioglitazone": [15, 30],
    "atorvastatin": [10, 40, 80],
    "rosuvastatin": [10, 20, 40],
    "simvastatin": [20, 40],
    "pravastatin": [40, 80],
    "lisinopril": [10, 20],
    "losartan": [50, 100],
    "amlodipine": [5, 10],
    "diltiazem": [180, 240],
    "citalopram": [20, 40],
    "sertraline": [50, 100],
    "paroxetine": [20, 40],
    "fluoxetine": [20, 40],
    "bupropion": [150, 300],
    "duloxetine": [30, 60],
}
CURRENT = ("tamoxifen", "clopidogrel", "warfarin", "omeprazole", "clarithromycin")


def patient() -> PatientRecord:
    d = dt.date(2024, 6, 1)
    return PatientRecord(
        patient_id="bench",
        as_of=d,
        birth_date=dt.date(1955, 3, 1),
        conditions=(
            Condition(code="44054006", system="http://snomed.info/sct"),
            Condition(code="88805009", system="http://snomed.info/sct"),
        ),
        medications=tuple(
            Medication(ingredient=m, rxcui="0", start=dt.date(2022, 1, 1), status="active", dose_mg_day=20.0)
            for m in CURRENT
        ),
        allergies=(Allergy(display="Allergy to penicillin", code="91936005"),),
        observations={
            "egfr": (Measurement(date=d - dt.timedelta(days=20), value=42, unit="mL/min/1.73m2", loinc="33914-3"),)
        },
        pgx=(
            PgxResult(gene="CYP2C19", diplotype="*1/*2", source="pharmcat-tsv"),
            PgxResult(gene="CYP2D6", diplotype="*1/*1", source="pharmcat-tsv"),
            PgxResult(gene="SLCO1B1", diplotype="*1/*5", source="pharmcat-tsv"),
            PgxResult(gene="CYP2C9", diplotype="*1/*3", source="pharmcat-tsv"),
        ),
    )


def regimens(n: int, seed: int) -> list[Regimen]:
    rng = random.Random(seed)
    drugs = list(FORMULARY)
    seen: dict[str, Regimen] = {}
    while len(seen) < n:
        chosen = rng.sample(drugs, rng.randint(1, 3))
        reg = Regimen.of([DrugDose(ingredient=d, rxcui="0", dose_mg_day=rng.choice(FORMULARY[d])) for d in chosen])
        seen[reg.key()] = reg
    return list(seen.values())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regimens", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rs = RuleSet.load()
    load_s = time.perf_counter() - t0
    rec = patient()
    regs = regimens(args.regimens, args.seed)

    batch, batch_cpu = [], []
    prepared, cpu = [], []
    for _ in range(args.repeats):  # the two prepared paths alternate, so load on the machine hits both alike
        c0, t = time.process_time(), time.perf_counter()
        rs.screen_plans(rs.prepare(rec), regs)
        batch.append(time.perf_counter() - t)
        batch_cpu.append(time.process_time() - c0)
        c0, t = time.process_time(), time.perf_counter()
        ctx = rs.prepare(rec)
        for r in regs:
            screen_plan(ctx, r, rules=rs)
        prepared.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c0)
    only = []  # the findings alone (RuleSet.screen): no dose application, no re-screen
    for _ in range(args.repeats):
        c0 = time.process_time()
        ctx = rs.prepare(rec)
        for r in regs:
            rs.screen(ctx, r)
        only.append(time.process_time() - c0)
    naive, naive_cpu = [], []
    for _ in range(max(3, args.repeats // 8)):
        c0, t = time.process_time(), time.perf_counter()
        for r in regs:
            screen_plan(rec, r, rules=rs)
        naive.append(time.perf_counter() - t)
        naive_cpu.append(time.process_time() - c0)
    loop = calibration()

    ctx = rs.prepare(rec)
    results = [screen_plan(ctx, r, rules=rs) for r in regs]
    current = set(CURRENT)
    plan_level = sum(
        1
        for res in results
        for f in res.findings
        if len(f.drugs) > 1 and set(f.drugs) & current and set(f.drugs) - current
    )
    kept = sum(not res.excluded for res in results)
    med_b, cpu_b = statistics.median(batch), statistics.median(batch_cpu)
    med_p, med_n = statistics.median(prepared), statistics.median(naive)
    cpu_p, cpu_n = statistics.median(cpu), statistics.median(naive_cpu)
    per200, cpu200 = med_b * 200 / len(regs), cpu_b * 200 / len(regs)
    ms = 1000
    print(f"rules loaded and validated once in {load_s * ms:.0f} ms (rules_version {rs.rules_version})")
    print(
        f"{len(regs)} regimens, patient with {len(CURRENT)} current medications: "
        f"{sum(len(r.findings) for r in results)} findings, {plan_level} of them plan-level pairs "
        f"(a plan drug with a current drug), {kept} regimens kept; a cold patient context every repetition"
    )
    print(
        f"batch (prepare + screen_plans of {len(regs)}): median {med_b * ms:.2f} ms wall "
        f"(CPU, time.process_time: median {cpu_b * ms:.2f} ms, fastest {min(batch_cpu) * ms:.2f} ms)"
    )
    print(
        f"prepared (prepare + {len(regs)} screen_plan calls): median {med_p * ms:.2f} ms wall "
        f"(CPU median {cpu_p * ms:.2f} ms, fastest {min(cpu) * ms:.2f} ms)"
    )
    print(f"  findings only (prepare + {len(regs)} RuleSet.screen), CPU: median {statistics.median(only) * ms:.2f} ms")
    print(f"naive baseline (fresh context per regimen): median {med_n * ms:.2f} ms wall (CPU {cpu_n * ms:.2f} ms)")
    print(
        f"speed-up of batch over naive: {med_n / med_b:.1f}x wall, {cpu_n / cpu_b:.1f}x CPU; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; a 10^6-addition Python loop took {loop * ms:.0f} ms CPU"
    )
    print(
        f"target median <= 2 ms per 200: wall {'met' if per200 <= 0.002 else 'NOT met'} ({per200 * ms:.2f} ms, "
        f"includes other load on the machine); CPU {'met' if cpu200 <= 0.002 else 'NOT met'} "
        f"({cpu200 * ms:.2f} ms)"
    )


def calibration() -> float:
    """CPU seconds of a fixed pure-Python loop (10^6 additions; median of 3): how fast this machine runs Python
    now, so a figure can be read against the machine it was measured on."""
    times = []
    for _ in range(3):
        c0, x = time.process_time(), 0
        for i in range(1_000_000):
            x += i
        times.append(time.process_time() - c0)
    return statistics.median(times)


if __name__ == "__main__":
    main()
