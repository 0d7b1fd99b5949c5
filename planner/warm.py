"""Warming a planner: fill its per-regimen caches before the first real patient.

A planner remembers parts of its work that depend only on a regimen (the sampler's regimen parts, candidate
moves, burden, effect indices), never on a patient. A fresh process therefore plans its first patients slower
than later ones (t2d, batches of 32: about 27 ms CPU a patient on the first batches, about 14 after six).
:func:`warm_planner` plans a small simulated cohort (:func:`planner.simulate.simulate_cohort` with a fixed seed:
no patient data, no audit entries, nothing kept but the caches) so that those caches hold the area's common
regimens. The cached parts are pure functions of the regimen, so a warmed planner gives byte-identical output.

Used by ``planner cohort run`` (each local worker process and each Dask worker, as part of loading the planner;
``--no-warm`` to skip) and available to the service (``Planner.warm``).
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Sequence

from .errors import ConfigError

if TYPE_CHECKING:
    from .api import Planner

__all__ = ["WARM_N", "WARM_SEED", "WarmStats", "warm_planner"]

WARM_N = 64  # simulated patients per area (two batches of 32)
WARM_SEED = 7_340_017  # the simulated world and patients of the warm-up; any fixed seed: not the caller's
_BATCH = 32


@dataclasses.dataclass(frozen=True)
class WarmStats:
    """What a warm-up did: areas, simulated patients planned, seconds (wall and this process's CPU)."""

    areas: tuple[str, ...]
    patients: int
    seconds: float
    cpu_seconds: float


def warm_planner(
    planner: "Planner",
    area: str | Sequence[str] | None = None,
    *,
    n: int = WARM_N,
    seed: int = 0,
    sim_seed: int = WARM_SEED,
) -> WarmStats:
    """Plan ``n`` simulated patients (of the world and patients of ``sim_seed``) of ``area`` (an id, several,
    or None: every area of the planner) in batches, discarding the recommendations; the planner's audit log is
    not written. ``seed``: the recommendations' seed, best the one the real patients will be planned with (the
    sampler also remembers random terms per seed)."""
    from .areas import load_area
    from .batch import Job, recommend_jobs
    from .simulate import simulate_cohort

    areas = tuple(sorted(planner.models)) if area is None else ((area,) if isinstance(area, str) else tuple(area))
    for a in areas:
        if a not in planner.models:
            raise ConfigError("unknown area", field="area", value=a, expected="one of " + ", ".join(planner.models))
    if int(n) < 0:
        raise ConfigError("warm-up size must not be negative", field="n", value=n, expected="an integer >= 0")
    t0, c0 = time.perf_counter(), time.process_time()
    planned = 0
    for a in areas if n else ():
        records = simulate_cohort(load_area(a, planner.rules_path), int(n), seed=sim_seed).records()
        for i in range(0, len(records), _BATCH):
            jobs = [Job(r, a, "") for r in records[i : i + _BATCH]]
            recommend_jobs(planner, jobs, top=5, seed=seed, audit=False)
            planned += len(jobs)
    return WarmStats(areas, planned, time.perf_counter() - t0, time.process_time() - c0)
