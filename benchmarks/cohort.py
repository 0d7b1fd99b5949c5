"""Cohort throughput: patients per second end to end from FHIR bundles (read, plan, write Parquet).

Measured in one run, on one simulated cohort (``planner simulate``, one bundle per patient), one decision point
per patient (``--at current``, the record's own date), so that the figure is comparable with one-at-a-time
``Planner.recommend``:

* baseline: ``Planner.recommend(bundle_path, area=...)`` one patient after another in this process;
* ``Planner.recommend_many`` over the same bundles in this process (batches of ``--batch``), with a planner of
  its own (a planner remembers per-regimen parts of its work: the baseline's has seen every regimen by then);
* ``planner cohort run`` with 1 process, 2 local processes, and a 2-worker dask.distributed LocalCluster
  (their steady rate: from the first finished batch to the last, so process start-up and model loading,
  a few seconds a worker, are not counted). The Dask LocalCluster's scheduler runs in this process: its CPU is
  in the "parent" figure.

Every planner, the baseline's included, is warmed the same way before it plans (``Planner.warm``: ``--warm``
simulated patients of a fixed seed of its own, not these patients; what ``planner cohort run`` does in each
process by default), so the comparison is between warm planners. A warmed process still fills the caches for
the regimens the warm-up did not meet over its first batches, hence also the figures over the second half of
the batches. Use ``--n 1000`` (or more) for the README figure: with 200 patients two workers plan only three
batches each and the steady window is a couple of batches.

Each figure is printed with its ratio to the baseline; the 1 -> 2 worker speed-up; the peak resident memory of
the process tree (sampled every 0.1 s). The machine is shared: run it more than once and read the ratios.

    python benchmarks/cohort.py --n 200
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class PeakMemory:
    """Peak RSS (MiB) of this process and all its descendants while the block runs, and their CPU seconds
    (this process: ``time.process_time``; descendants: their last sampled user + system time)."""

    def __enter__(self) -> "PeakMemory":
        import psutil

        self._proc = psutil.Process()
        self.peak = 0.0
        self.cpu = 0.0
        self._cpu0 = time.process_time()
        self._child_cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._watch, daemon=True)
        self._t.start()
        return self

    def _watch(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            try:
                procs = [self._proc, *self._proc.children(recursive=True)]
                for p in procs:
                    try:
                        total += p.memory_info().rss
                        if p.pid != self._proc.pid:
                            t = p.cpu_times()
                            self._child_cpu[p.pid] = t.user + t.system
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            self.peak = max(self.peak, total / 2**20)
            self._stop.wait(0.1)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.cpu = time.process_time() - self._cpu0 + sum(self._child_cpu.values())


class SteadyCpu:
    """CPU seconds of this process (the parent) and of its descendants (the workers) at every finished batch: their
    CPU per patient over the steady window (first finished batch to last), start-up and model loading excluded."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.marks: list[tuple[int, float, float, float]] = []  # (units planned, parent CPU s, workers CPU s, time)

    def __call__(self, planned: int) -> None:
        import psutil

        kids = 0.0
        for p in self._proc.children(recursive=True):
            try:
                t = p.cpu_times()
                kids += t.user + t.system
            except psutil.Error:
                pass
        t = self._proc.cpu_times()
        self.marks.append((planned, t.user + t.system, kids, time.perf_counter()))

    def per_patient(self, start: int = 0) -> tuple[float, float, float]:
        """(parent, workers) CPU ms per patient and patients/s from finished batch ``start`` to the last (0, 0, 0
        without two batches there)."""
        if len(self.marks) - start < 2:
            return 0.0, 0.0, 0.0
        (n0, p0, k0, t0), (n1, p1, k1, t1) = self.marks[start], self.marks[-1]
        return 1000 * (p1 - p0) / (n1 - n0), 1000 * (k1 - k0) / (n1 - n0), (n1 - n0) / (t1 - t0)

    def warm(self) -> tuple[float, float, float]:
        """The same over the second half of the batches: the planner's per-regimen caches (sampler parts,
        candidate moves, burden) fill over the first few batches of each process."""
        return self.per_patient(len(self.marks) // 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--area", default="t2d")
    ap.add_argument("--n", type=int, default=200, help="simulated patients (bundles)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=32, help="units per task / recommend_many batch")
    ap.add_argument("--skip-dask", action="store_true")
    ap.add_argument(
        "--warm",
        type=int,
        default=None,
        help="simulated patients each planner is warmed with (default: planner.warm.WARM_N, as planner cohort run)",
    )
    args = ap.parse_args(argv)

    from planner import Planner
    from planner.areas import load_area
    from planner.cohort import run_cohort
    from planner.simulate import simulate_cohort
    from planner.warm import WARM_N, WARM_SEED

    warm = WARM_N if args.warm is None else args.warm

    results: list[tuple[str, float, float, float]] = []  # path, patients/s, peak MiB, CPU ms per patient
    steady: dict[str, SteadyCpu] = {}  # path: CPU of parent and workers at each finished batch
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        sim = Path(tmp) / "sim"
        simulate_cohort(load_area(args.area), args.n, seed=args.seed).write_fhir(str(sim))
        bundles = sorted((sim / "fhir").glob("*.json"))
        planner = Planner.load()
        w = planner.warm(args.area, n=warm)  # the warm-up every path gets
        planner.recommend(bundles[0], area=args.area)  # first-call caches (model draws, rules) when --warm 0
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            first = [planner.recommend(b, area=args.area) for b in bundles]
            base = len(bundles) / (time.perf_counter() - t0)
        one = [r.to_json() for r in first]
        results.append(("one-at-a-time recommend (baseline)", base, mem.peak, 1000 * mem.cpu / len(bundles)))
        # a fresh planner, warmed as the baseline's: its per-regimen caches start empty, as each cohort worker's
        # do (the baseline's planner has seen every regimen of these patients by now)
        planner = Planner.load()
        planner.warm(args.area, n=warm)
        planner.recommend(bundles[0], area=args.area)
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            many = []
            for i in range(0, len(bundles), args.batch):
                many += planner.recommend_many(bundles[i : i + args.batch], area=args.area, errors="return")
            rate = len(bundles) / (time.perf_counter() - t0)
        same = sum(not isinstance(r, Exception) and r.to_json() == j for r, j in zip(many, one))
        results.append(("recommend_many, 1 process", rate, mem.peak, 1000 * mem.cpu / len(bundles)))
        del planner
        for workers in (1, 2):
            meter = SteadyCpu()
            with PeakMemory() as mem:
                s = run_cohort(
                    sim / "fhir",
                    area=args.area,
                    out=Path(tmp) / f"run{workers}",
                    at="current",
                    workers=workers,
                    batch_size=args.batch,
                    on_batch=meter,
                    warm=warm,
                )
            # steady rate: after the first batch (worker start-up and model loading excluded)
            name = f"cohort run, {workers} local process{'es' if workers > 1 else ''}"
            results.append((name, s.steady_units_per_second, mem.peak, 1000 * mem.cpu / len(bundles)))
            steady[name] = meter
        if not args.skip_dask:
            import distributed

            meter = SteadyCpu()
            with PeakMemory() as mem:
                with distributed.LocalCluster(
                    n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
                ) as cluster:
                    s = run_cohort(
                        sim / "fhir",
                        area=args.area,
                        out=Path(tmp) / "dask",
                        at="current",
                        scheduler=cluster.scheduler_address,
                        batch_size=args.batch,
                        on_batch=meter,
                        warm=warm,
                    )
            name = "cohort run, Dask LocalCluster 2 workers"
            results.append((name, s.steady_units_per_second, mem.peak, 1000 * mem.cpu / len(bundles)))
            steady[name] = meter
    print(
        f"{args.n} simulated {args.area} patients, one bundle each, one decision point each (--at current); "
        "shared 2-core machine: figures are noisy, ratios are from this one run"
    )
    print(
        "load average (1/5/15 min) at start {:.1f}/{:.1f}/{:.1f}, at end {:.1f}/{:.1f}/{:.1f}".format(
            *load0, *os.getloadavg()
        )
    )
    print(
        f"warm-up of every planner: {warm} simulated {args.area} patients (seed {WARM_SEED}, not these patients); "
        f"{w.seconds:.1f} s wall, {w.cpu_seconds:.1f} s CPU in this process"
    )
    print(f"{'path':<44} {'patients/s':>10} {'x baseline':>10} {'peak MiB':>9} {'CPU ms/pt':>9}")
    for name, rate, peak, cpu in results:
        print(f"{name:<44} {rate:>10.1f} {rate / base:>10.2f} {peak:>9.0f} {cpu:>9.1f}")
    print(
        "CPU ms/pt: CPU seconds of every process of the path per patient (worker runs: with their start-up and "
        "model loading, which the steady rate leaves out)"
    )
    print(
        "steady window (first finished batch to last), CPU ms per patient: parent process / worker processes; "
        "and the rate that CPU allows on dedicated cores (1 for one process, 2 otherwise; less noisy than the "
        "wall-clock rate on a shared machine, but only a bound: it assumes the cores are the path's alone)"
    )
    for label, half in (("steady window", False), ("second half of the batches (caches warm)", True)):
        print(f" {label}:")
        for name, meter in steady.items():
            parent, kids, rate = meter.warm() if half else meter.per_patient()
            single = name.endswith("1 local process")
            where = "in the parent" if single else f"parent {parent:.1f} / workers {kids:.1f}"
            cores = 1 if single else 2
            bound = f"{cores * 1000 / (parent + kids):.0f}" if parent + kids > 0 else "-"
            print(
                f"  {name:<42} {parent + kids:>6.1f} ({where}); CPU-bound {bound} patients/s on {cores} core(s); "
                f"measured {rate:.1f} patients/s"
            )
    print(f"recommend_many JSON byte-identical to one-at-a-time recommend: {same} of {len(one)} patients")
    by = {n: r for n, r, _, _ in results}
    one, two = by.get("cohort run, 1 local process"), by.get("cohort run, 2 local processes")
    if one and two:
        print(
            f"1 -> 2 local processes: {two / one:.2f}x (target >= 1.8x); best rate {max(by.values()):.1f} "
            "patients/s (target >= 200)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
