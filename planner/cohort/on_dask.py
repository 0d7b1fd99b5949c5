"""``planner cohort run --scheduler``: the batches of a run on a dask.distributed cluster.

Every worker loads (and warms) the planner once, before the first batch; at most two batches a worker are in
flight; each finished batch is stored by this process as it comes (``store``: :func:`planner.cohort.run._store`),
so a resumed run sees the same parts as a local one. ``plan`` and ``load`` are what each worker runs
(:func:`planner.cohort.run.plan_batch`, ``_load_planner``), given by the caller (no import cycle).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple

from ..errors import ConfigError
from .sources import Unit

if TYPE_CHECKING:  # pragma: no cover
    from .run import _Counter

__all__ = ["run_dask", "Fns"]


class Fns(NamedTuple):
    """What the run's workers and this process call: plan a batch, load the planner, store a batch's rows."""

    plan: Callable[..., list[dict]]
    load: Callable[..., None]
    store: Callable[[Path, list[Unit], list[dict]], tuple[int, int, int]]


def run_dask(
    scheduler: Any,
    batches: Iterator[list[Unit]],
    opts: dict,
    model: str | None,
    rules: str | None,
    parts: Path,
    counter: "_Counter",
    on_batch: Callable[[int], None] | None,
    warm: int,
    fns: "Fns",
) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:  # pragma: no cover - the dask extra is part of dev
        raise ConfigError(
            "dask.distributed is not installed", field="--scheduler", expected="pip install 'planner[dask]'"
        ) from None
    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    try:
        addresses = list(client.scheduler_info().get("workers", {}))
        # every worker loads (and warms) the planner now, all at once (one that joins later: on its first batch)
        ready = (opts["area"], warm, opts["seed"])
        client.gather([client.submit(fns.load, model, rules, ready, workers=[a], pure=False) for a in addresses])
        paused = client.run(_pause_profiler, workers=addresses) if addresses else {}
        try:
            _submit_all(
                client, as_completed(), batches, opts, model, rules, parts, counter, on_batch, warm, addresses, fns
            )
        finally:
            resume = [a for a, was in paused.items() if was]
            if resume:  # a worker that left, or a lost client, must not hide how the run ended
                with contextlib.suppress(Exception):
                    client.run(_resume_profiler, workers=resume)
    finally:
        if client is not scheduler:
            client.close()


# Dask's statistical profiler (distributed.worker.profile: every 10 ms on each worker's event loop) walks the
# stack of the thread planning a batch while holding the GIL: 1.8 ms CPU per patient and about half the steady
# rate of a 2-worker LocalCluster on 2 cores (t2d, batches of 32). A run pauses it on each worker it starts
# with and restarts it when the run ends (the worker's dashboard profile then goes on as before).
_PROFILER_CALLBACKS = ("profile", "profile-cycle")


def _pause_profiler(dask_worker: Any) -> bool:
    """Stop the worker's profiler callbacks; True when they were running (to restart them after the run)."""
    was = False
    for name in _PROFILER_CALLBACKS:
        pc = dask_worker.periodic_callbacks.get(name)
        if pc is not None and pc.is_running():
            pc.stop()
            was = True
    return was


def _resume_profiler(dask_worker: Any) -> None:
    for name in _PROFILER_CALLBACKS:
        pc = dask_worker.periodic_callbacks.get(name)
        if pc is not None and not pc.is_running():
            pc.start()


def _submit_all(
    client: Any,
    ac: Any,
    batches: Iterator[list[Unit]],
    opts: dict,
    model: str | None,
    rules: str | None,
    parts: Path,
    counter: "_Counter",
    on_batch: Callable[[int], None] | None,
    warm: int,
    addresses: list[str],
    fns: "Fns",
) -> None:
    """Every batch to the cluster, at most two in flight a worker, results stored as they come."""
    inflight: dict[Any, list[Unit]] = {}
    limit = 2 * max(1, len(addresses))
    for batch in batches:
        fut = client.submit(fns.plan, batch, opts, model, rules, warm, pure=False)
        inflight[fut] = batch
        ac.add(fut)
        while len(inflight) >= limit:
            _collect(next(ac), inflight, parts, counter, on_batch, fns)
    for fut in ac:
        _collect(fut, inflight, parts, counter, on_batch, fns)


def _collect(
    fut: Any, inflight: dict, parts: Path, counter: "_Counter", on_batch: Callable[[int], None] | None, fns: "Fns"
) -> None:
    batch = inflight.pop(fut)
    counter.add(fns.store(parts, batch, fut.result()))
    fut.release()
    if on_batch:
        on_batch(counter.planned)
