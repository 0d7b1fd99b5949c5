"""``planner cohort run``: plan every patient of a cohort, locally or on Dask, resumably.

Layout of the results folder::

    RESULTS/run.json          options, input fingerprint, versions (a resumed run must match them)
    RESULTS/parts/*.parquet   one file per finished batch of units, written atomically (tmp + rename)
    RESULTS/index.sqlite      the NDJSON patient index (Bulk exports), reused on resume
    RESULTS/results.parquet   every row, sorted by (unit, patient_id, point), once all units are done
    RESULTS/results.duckdb    the same rows as table ``results`` for SQL

Resume: the units recorded in ``parts/`` are done; a killed run loses at most the batches in flight, which
are planned again, so no patient is lost and none is written twice. The planner (rules, areas, models) is
loaded once per process (local workers) or once per Dask worker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ConfigError
from ..version import __version__
from .rows import AT_CHOICES, RunOptions, plan_units
from .sources import Unit, open_source

__all__ = ["run_cohort", "RunSummary", "SCHEMA", "read_results"]

_B, _S, _F, _I, _D = pa.bool_(), pa.string(), pa.float64(), pa.int64(), pa.date32()
SCHEMA = pa.schema(
    [
        ("unit", _S),
        ("patient_id", _S),
        ("area", _S),
        ("point", _I),
        ("kind", _S),
        ("status", _S),
        ("error_class", _S),
        ("error_message", _S),
        ("as_of", _D),
        ("sex", _S),
        ("race", _S),
        ("ethnicity", _S),
        ("age", _F),
        ("egfr", _F),
        ("features_json", _S),
        ("baseline", _F),
        ("baseline_date", _D),
        ("target", _F),
        ("current_regimen", _S),
        ("n_plans", _I),
        ("n_excluded", _I),
        ("candidates", _I),
        ("plans_json", _S),
        ("data_gaps", _S),
        ("n_current_findings", _I),
        ("current_findings_json", _S),
        ("rec_regimen", _S),
        ("rec_regimen_json", _S),
        ("rec_changes", _S),
        ("rec_mean", _F),
        ("rec_lower", _F),
        ("rec_upper", _F),
        ("rec_obs_lower", _F),
        ("rec_obs_upper", _F),
        ("rec_p_target", _F),
        ("rec_p_best", _F),
        ("rec_findings_json", _S),
        ("observed_regimen", _S),
        ("observed_regimen_json", _S),
        ("followup", _F),
        ("followup_date", _D),
        ("agree_top1", _B),
        ("agree_topk", _B),
        ("agree_drugs", _B),
        ("obs_mean", _F),
        ("obs_pred_mean", _F),
        ("obs_pred_q", pa.list_(_F)),
        ("obs_p_target", _F),
        ("obs_reached", _B),
        ("obs_pit", _F),
        ("obs_crps", _F),
        ("obs_cover50", _B),
        ("obs_cover80", _B),
        ("obs_cover90", _B),
        ("obs_cover95", _B),
        ("obs_mean_draws", pa.list_(pa.float32())),  # the model's draws of the expected follow-up (rows.py)
        ("rec_mean_draws", pa.list_(pa.float32())),
    ]
)
_RUN_KEYS = ("area", "at", "top", "seed", "model", "rules", "input_fingerprint")


@dataclasses.dataclass
class RunSummary:
    units: int
    done_before: int
    planned_now: int
    rows: int
    errors: int
    seconds: float
    out: Path
    notes: dict[str, int]
    steady_units_per_second: float = 0.0  # after the first batch: worker start-up and model loading excluded

    @property
    def units_per_second(self) -> float:
        """Units planned per second of this run, start-up included."""
        return self.planned_now / self.seconds if self.seconds > 0 else 0.0


# ---- the planner, once per process ---------------------------------------------------------------------
_PLANNERS: dict[tuple[str | None, str | None], Any] = {}
_WARMED: set[tuple[str | None, str | None, str]] = set()


def _planner(model: str | None, rules: str | None, warm: tuple[str, int, int] | None = None) -> Any:
    """This process's planner; ``warm`` (area, n, seed): warmed with n simulated patients of the area first
    (recommended with the run's seed), once per process (:mod:`planner.warm`; the output does not depend on it)."""
    key = (model, rules)
    if key not in _PLANNERS:
        from ..api import Planner

        _malloc_for_planning()
        _PLANNERS[key] = Planner.load(model=model, rules=rules)
    if warm is not None and warm[1] > 0 and (model, rules, warm[0]) not in _WARMED:
        from ..warm import warm_planner

        with _batch_gc():
            warm_planner(_PLANNERS[key], warm[0], n=warm[1], seed=warm[2])
        _WARMED.add((model, rules, warm[0]))
    return _PLANNERS[key]


# glibc's own maxima for its dynamic thresholds (malloc(3): M_MMAP_THRESHOLD, M_TRIM_THRESHOLD)
_MMAP_THRESHOLD, _TRIM_THRESHOLD = 32 * 2**20, 64 * 2**20


def _malloc_for_planning() -> bool:
    """Undo a static ``MALLOC_TRIM_THRESHOLD_`` / ``MALLOC_MMAP_THRESHOLD_`` in this process's environment.

    A Dask nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (distributed.yaml, pre-spawn-environ).
    That switches off glibc's dynamic mmap threshold, so every array over 128 KiB the sampler allocates is a fresh
    mmap, page-faulted in and unmapped again: 12.8 ms of system CPU per patient on a Dask worker against 0.7 ms
    without it (t2d, batches of 32). Here the thresholds are set to the values glibc's dynamic adjustment would
    reach. Only where such a variable is set, and only on glibc (elsewhere nothing is done). True: they were set."""
    if not any(k in os.environ for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")):
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    # M_MMAP_THRESHOLD (-3), M_TRIM_THRESHOLD (-1); mallopt returns 1 on success
    return bool(mallopt(-3, _MMAP_THRESHOLD) == 1 and mallopt(-1, _TRIM_THRESHOLD) == 1)


def plan_batch(
    units: list[Unit], opts: dict[str, Any], model: str | None, rules: str | None, warm: int = 0
) -> list[dict]:
    """Rows of a batch of units (runs in a worker: local process or Dask worker); ``warm``: simulated patients
    to warm a fresh process's planner with before its first batch (0: none)."""
    planner = _planner(model, rules, (opts["area"], warm, opts["seed"]))
    ro = RunOptions(**opts)
    with _batch_gc():
        return plan_units(planner, units, ro)


def _load_planner(model: str | None, rules: str | None, warm: tuple[str, int, int] | None = None) -> None:
    _planner(model, rules, warm)


def _init_worker(model: str | None, rules: str | None, warm: tuple[str, int, int] | None = None) -> None:
    import torch

    torch.set_num_threads(1)  # one core per worker process
    _planner(model, rules, warm)


# ---- the garbage collector while a batch is planned -------------------------------------------------------
# Planning a patient allocates some 10^5 short-lived container objects (pydantic models, dicts, tuples), so with
# CPython's default gen-0 threshold (700) the collector runs hundreds of times a batch, and each older-generation
# pass walks the planner's own ~350k long-lived objects (rules, areas, code tables, model structures): 1.5 ms of
# CPU per patient, measured with gc.callbacks (t2d, batches of 32). While a batch runs, those long-lived objects
# are frozen out of the collector (gc.freeze) and gen 0 is collected every 300k allocations; both are put back
# when the last batch running in the process ends. The results do not depend on it: nothing planner computes
# reads the collector's state. 300k rather than 50k: a gen-0 pass inside a batch walks the batch's live
# recommendations; collector CPU 0.18 -> 0.09 ms a patient (t2d, batches of 32, 480 patients, one warmed
# worker), peak memory unchanged (711 / 712 MB).
_GC_THRESHOLD = (300_000, 20, 100)
_gc_lock = threading.Lock()
_gc_state: dict[str, Any] = {"depth": 0, "saved": None}


@contextlib.contextmanager
def _batch_gc() -> Iterator[None]:
    with _gc_lock:
        if _gc_state["depth"] == 0:
            froze = gc.get_freeze_count() == 0  # a caller's own gc.freeze() is left as it was
            _gc_state["saved"] = (gc.get_threshold(), froze)
            if froze:
                gc.freeze()
            gc.set_threshold(*_GC_THRESHOLD)
        _gc_state["depth"] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_state["depth"] -= 1
            if _gc_state["depth"] == 0:
                threshold, froze = _gc_state["saved"]
                gc.set_threshold(*threshold)
                if froze:
                    gc.unfreeze()


# ---- parts on disk -----------------------------------------------------------------------------------
def _write_part(parts: Path, rows: list[dict], units: list[Unit]) -> None:
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    name = f"part-{units[0].id.encode().hex()[:24]}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = parts / (name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, parts / name)


def _done_units(parts: Path) -> tuple[set[str], int, int]:
    done: set[str] = set()
    rows = errors = 0
    for p in sorted(parts.glob("*.parquet")):
        t = pq.read_table(p, columns=["unit", "status"])
        done.update(t.column("unit").to_pylist())
        rows += t.num_rows
        errors += sum(1 for s in t.column("status").to_pylist() if s == "error")
    for p in parts.glob("*.tmp"):  # a batch in flight when the run was killed: planned again
        p.unlink()
    return done, rows, errors


def _check_run(out: Path, meta: dict[str, Any]) -> None:
    path = out / "run.json"
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        diff = [k for k in _RUN_KEYS if old.get(k) != meta.get(k)]
        if diff:
            raise ConfigError(
                "the results folder holds a run with other options or input",
                field="--out",
                value=str(out),
                expected=f"the same {', '.join(diff)} to resume, or a new folder",
            )
    else:
        path.write_text(json.dumps(meta, indent=1, sort_keys=True), encoding="utf-8")


# ---- the run -----------------------------------------------------------------------------------------
def run_cohort(
    source: str | os.PathLike[str],
    *,
    area: str,
    out: str | os.PathLike[str],
    model: str | None = None,
    rules: str | None = None,
    at: str = "all",
    top: int = 5,
    seed: int = 0,
    workers: int = 1,
    scheduler: Any = None,
    batch_size: int = 16,
    progress: bool = False,
    max_units: int | None = None,
    on_batch: Callable[[int], None] | None = None,
    warm: bool | int = True,
) -> RunSummary:
    """Plan every unit of ``source`` into ``out`` (see the module docstring). ``scheduler``: a Dask scheduler
    address or a ``distributed.Client``; else ``workers`` local processes (1: in this process).
    ``max_units``: stop after planning that many units (the rest are left for a resumed run).
    ``warm``: each process warms its planner with simulated patients while loading it (True: ``WARM_N`` of
    :mod:`planner.warm`; an int: that many; False/0: not); the rows do not depend on it."""
    if at not in AT_CHOICES:
        raise ConfigError("unknown decision points", field="--at", value=at, expected=" | ".join(AT_CHOICES))
    if workers < 1 or batch_size < 1:
        raise ConfigError("workers and batch size must be positive", field="--workers", value=workers)
    warm_n = _warm_size(warm)
    from ..areas import list_areas

    if area not in list_areas(rules):
        raise ConfigError("unknown area", field="--area", value=area, expected="one of " + ", ".join(list_areas(rules)))
    out_p = Path(out)
    out_p.mkdir(parents=True, exist_ok=True)
    parts = out_p / "parts"
    parts.mkdir(exist_ok=True)
    src = open_source(source, out_p / "index.sqlite")
    model_s = None if model is None else str(Path(model).resolve())
    meta = {
        "area": area,
        "at": at,
        "top": top,
        "seed": seed,
        "model": model_s,
        "rules": None if rules is None else str(Path(rules).resolve()),
        "input": str(Path(source).resolve()),
        "input_kind": src.kind,
        "input_fingerprint": src.fingerprint(),
        "planner_version": __version__,
    }
    _check_run(out_p, meta)
    done, rows_before, errors_before = _done_units(parts)
    total = src.count()
    opts = dataclasses.asdict(RunOptions(area=area, at=at, top=top, seed=seed))
    todo: Iterator[Unit] = (u for u in src.units() if u.id not in done)
    if max_units is not None:
        todo = _take(todo, max_units)
    batches = _batches(todo, batch_size)
    t0 = time.perf_counter()
    counter = _Counter(total=total, done=len(done), errors=errors_before, progress=progress)
    try:
        _dispatch(scheduler, workers, batches, opts, model_s, rules, parts, counter, on_batch, warm_n)
    finally:
        counter.close()
    seconds = time.perf_counter() - t0
    if counter.done >= total:
        finalize(out_p)
    return RunSummary(
        units=total,
        done_before=len(done),
        planned_now=counter.planned,
        rows=rows_before + counter.rows,
        errors=counter.errors,
        seconds=seconds,
        out=out_p,
        notes=dict(src.notes),
        steady_units_per_second=counter.steady_rate(),
    )


def _warm_size(warm: bool | int) -> int:
    from ..warm import WARM_N

    n = WARM_N if warm is True else int(warm)
    if n < 0:
        raise ConfigError("warm-up size must not be negative", field="warm", value=warm, expected="an integer >= 0")
    return n


def _dispatch(
    scheduler: Any,
    workers: int,
    batches: Iterator[list[Unit]],
    opts: dict[str, Any],
    model: str | None,
    rules: str | None,
    parts: Path,
    counter: "_Counter",
    on_batch: Callable[[int], None] | None,
    warm: int,
) -> None:
    """Plan every batch on the Dask scheduler, in local worker processes, or (one worker) in this process."""
    if scheduler is not None:
        from .on_dask import Fns, run_dask

        fns = Fns(plan_batch, _load_planner, _store)
        run_dask(scheduler, batches, opts, model, rules, parts, counter, on_batch, warm, fns)
    elif workers == 1:
        _planner(model, rules, (opts["area"], warm, opts["seed"]))  # loading (and warming) is not a batch
        for batch in batches:
            counter.add(_store(parts, batch, plan_batch(batch, opts, model, rules, warm)))
            if on_batch:
                on_batch(counter.planned)
    else:
        _run_local(workers, batches, opts, model, rules, parts, counter, on_batch, warm)


def _take(it: Iterator[Unit], n: int) -> Iterator[Unit]:
    for i, u in enumerate(it):
        if i >= n:
            return
        yield u


def _batches(units: Iterable[Unit], size: int) -> Iterator[list[Unit]]:
    batch: list[Unit] = []
    for u in units:
        batch.append(u)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _store(parts: Path, batch: list[Unit], rows: list[dict]) -> tuple[int, int, int]:
    _write_part(parts, rows, batch)
    return len(batch), len(rows), sum(1 for r in rows if r.get("status") == "error")


def _run_local(
    workers: int,
    batches: Iterator[list[Unit]],
    opts: dict,
    model: str | None,
    rules: str | None,
    parts: Path,
    counter: "_Counter",
    on_batch: Callable[[int], None] | None,
    warm: int,
) -> None:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # torch and fork do not mix
    init = (model, rules, (opts["area"], warm, opts["seed"]))  # each worker loads and warms its planner as it starts
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=init) as pool:
        inflight: dict[Future, list[Unit]] = {}
        for batch in batches:
            inflight[pool.submit(plan_batch, batch, opts, model, rules, warm)] = batch
            if len(inflight) >= 2 * workers:  # bounded: at most two batches a worker in memory
                _drain(inflight, parts, counter, on_batch, wait_all=False)
        while inflight:
            _drain(inflight, parts, counter, on_batch, wait_all=False)


def _drain(
    inflight: dict, parts: Path, counter: "_Counter", on_batch: Callable[[int], None] | None, *, wait_all: bool
) -> None:
    finished, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
    for fut in finished:
        batch = inflight.pop(fut)
        counter.add(_store(parts, batch, fut.result()))
        if on_batch:
            on_batch(counter.planned)


class _Counter:
    """Progress: units done, rate, errors, ETA (a rich progress bar when asked for)."""

    def __init__(self, *, total: int, done: int, errors: int, progress: bool) -> None:
        self.total, self.done, self.errors, self.planned, self.rows = total, done, errors, 0, 0
        self._bar = None
        self._first: tuple[float, int] | None = None  # (time, units planned) when the first batch came back
        self._last = 0.0
        if progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("patients"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:.1f}/s  errors {task.fields[errors]}"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task("run", total=total, completed=done, rate=0.0, errors=errors)
            self._t0 = time.perf_counter()

    def add(self, counts: tuple[int, int, int]) -> None:
        units, rows, errors = counts
        self.done += units
        self.planned += units
        self.rows += rows
        self.errors += errors
        now = time.perf_counter()
        if self._first is None:
            self._first = (now, self.planned)
        self._last = now
        if self._bar is not None:
            rate = self.planned / max(time.perf_counter() - self._t0, 1e-9)
            self._bar.update(self._task, completed=self.done, rate=rate, errors=self.errors)

    def steady_rate(self) -> float:
        if self._first is None or self._last <= self._first[0]:
            return 0.0
        return (self.planned - self._first[1]) / (self._last - self._first[0])

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def finalize(out: Path) -> Path:
    """Merge the parts into ``results.parquet`` sorted by (unit, patient_id, point) and ``results.duckdb``
    (table ``results``). DuckDB sorts out of core (bounded memory, spilling to ``out``); without DuckDB the
    parts are merged in memory with pyarrow."""
    parts = sorted((out / "parts").glob("*.parquet"))
    tmp = out / "results.parquet.tmp"
    try:
        import duckdb
    except ImportError:
        tables = [pq.read_table(p) for p in parts]
        table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
        table = table.sort_by([("unit", "ascending"), ("patient_id", "ascending"), ("point", "ascending")])
        pq.write_table(table, tmp)
        os.replace(tmp, out / "results.parquet")
        return out / "results.parquet"
    if not parts:
        pq.write_table(SCHEMA.empty_table(), tmp)
    else:
        con = duckdb.connect()
        try:
            con.execute("SET memory_limit='1GB'")
            con.execute(f"SET temp_directory='{(out / 'duckdb.tmp').as_posix()}'")
            con.execute(
                f"COPY (SELECT * FROM read_parquet({[str(p) for p in parts]!r}, union_by_name = true) "
                "ORDER BY unit, patient_id NULLS LAST, point) TO ? (FORMAT parquet)",
                [str(tmp)],
            )
        finally:
            con.close()
    os.replace(tmp, out / "results.parquet")
    db = out / "results.duckdb"
    if db.exists():
        db.unlink()
    con = duckdb.connect(str(db))
    try:
        con.execute("CREATE TABLE results AS SELECT * FROM read_parquet(?)", [str(out / "results.parquet")])
    finally:
        con.close()
    return out / "results.parquet"


def read_results(out: str | os.PathLike[str], columns: list[str] | None = None) -> Any:
    """The results of a finished run as a pandas DataFrame (``columns``: only those)."""
    p = Path(out)
    f = p / "results.parquet" if p.is_dir() else p
    if not f.is_file():
        raise ConfigError(
            "no results.parquet (is the run finished?)",
            field="RESULTS",
            value=str(p),
            expected="a folder written by `planner cohort run`",
        )
    if columns is not None:  # results of an older planner may lack newer columns: read the ones there
        have = set(pq.read_schema(f).names)
        columns = [c for c in columns if c in have]
    return pq.read_table(f, columns=columns).to_pandas()
