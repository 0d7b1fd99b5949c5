"""Posterior draws for a batch of patients in one sampler call: :func:`sample_batch`.

Each job is one patient: its feature row, its candidate regimens, the regimen its baseline was measured under and
its seed. The result of every job is value for value what
``ResponseModel.sample_kinds(X, regimens, num_samples, seeds=[("mean", seed), ("predictive", seed + 1)],
current=current)`` gives that patient alone, so a batch of one is one-at-a-time ``recommend``.

What is shared. Everything of the expected outcome that depends only on a regimen and the parameter draws (its
effect as columns ``lin0 + sum_j x_j lin_j`` of :func:`~planner.model.model.regimen_columns`, the response
spread of each slot, its drugs) is computed once per *distinct* regimen (patients of one area share most of their
candidates), remembered per model and slot width, and read for each patient; the current regimen's too. Those
parts are elementwise, or reductions within one regimen, so a regimen's columns are the same whichever other
regimens are computed beside it. What depends on the patient (the modifiers at its features, its response
deviations) is computed per patient with the same functions as :func:`~planner.model.draws.prepare` and
:func:`~planner.model.draws.draw`. The random numbers (:func:`~planner.model.draws.random_terms`: the patient's
own generator, seeded by its own seed) depend only on the seed, the parameter draws and the shape: they are
remembered per (seed, kind, shape), so patients planned with one seed and as many regimens draw them once.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..record import Regimen
from . import draws as draws_mod
from . import inputs
from .spec import regimen_key

__all__ = ["DrawJob", "sample_batch"]


@dataclass(frozen=True)
class DrawJob:
    """One patient of a batch: a one-row feature frame (or its ``values``: read without a DataFrame where they
    are plain numbers and labels), its regimens (known doses), the regimen the baseline was measured under
    (None: untreated) and its seed (mean draws use ``seed``, predictive ``seed + 1``)."""

    X: pd.DataFrame | None
    regimens: Sequence[Regimen]
    current: Regimen | None
    seed: int
    values: Mapping[str, Any] | None = None  # the row as column -> value (None missing), in place of X

    def frame(self) -> pd.DataFrame:
        """The feature row as a one-row frame (``X``, or built from ``values``)."""
        if self.X is not None:
            return self.X
        return pd.DataFrame([{k: (np.nan if v is None else v) for k, v in (self.values or {}).items()}])


def sample_batch(model: Any, jobs: Sequence[DrawJob], num_samples: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(mean, predictive) draws, each (num_samples, 1, len(job.regimens)), for every job, in order."""
    if not jobs:
        return []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # per-patient work is small: as ResponseModel.sample, one thread
    try:
        return _sample(model, jobs, num_samples)
    finally:
        torch.set_num_threads(threads)


def _sample(model: Any, jobs: Sequence[DrawJob], num_samples: int) -> list[tuple[np.ndarray, np.ndarray]]:
    spec, draws = model._state()
    par = model._fast(spec, draws)
    pr = model._priors_cache[1]
    S = int(par["alpha"].shape[0])
    for j in jobs:
        Sn = model._check_sample_args(j.regimens, num_samples, S)
    if spec.basis:  # a learned basis (tabular models): its deviations need every slot's dose curve; one by one
        return [_alone(model, j, Sn) for j in jobs]
    p = {k: v[:Sn] for k, v in par.items()}
    wanted = [_Wanted.of(spec, j) for j in jobs]
    by_width: dict[int, list[Key]] = {}  # every regimen of the batch, by slot width: new ones are computed together
    for w in wanted:
        by_width.setdefault(w.width, []).extend(w.keys)
        if w.current is not None:
            by_width.setdefault(w.cwidth, []).append(w.current)
    out: list[tuple[np.ndarray, np.ndarray]] = []
    noise = _noise_for(model, par)
    for job, w in zip(jobs, wanted):
        got = None if job.values is None else inputs.matrix_values(spec, job.values)
        x_np, off_np = got if got is not None else model._matrix_dev(spec, job.frame())[:2]
        parts = _cache_for(model, par, Sn, w.width).take(spec, pr, p, w.keys, by_width[w.width])
        cur = None
        if w.current is not None:
            cur = _cache_for(model, par, Sn, w.cwidth).take(spec, pr, p, [w.current], by_width[w.cwidth])
        prep = _patient_prep(spec, p, Sn, job, parts, cur, (x_np, off_np))
        mean = draws_mod.draw(prep, kind="mean", seed=job.seed, noise=noise.get(prep, "mean", job.seed))
        pred = draws_mod.draw(
            prep, kind="predictive", seed=job.seed + 1, noise=noise.get(prep, "predictive", job.seed + 1)
        )
        out.append((mean.numpy(), pred.numpy()))
    return out


class _Noise:
    """The random terms of draws (:func:`~planner.model.draws.random_terms`) remembered per seed, kind and
    shape for one model's parameter draws: patients planned with the same seed and as many regimens get the
    same random numbers, so they are drawn once (at most ``MAX_BYTES`` held)."""

    MAX_BYTES = 64 << 20

    def __init__(self, par: dict[str, torch.Tensor]) -> None:
        self.par = par
        self.terms: dict[tuple[int, str, tuple[int, ...]], dict[str, Any]] = {}
        self.bytes = 0
        self._lock = threading.Lock()

    def get(self, prep: dict[str, Any], kind: str, seed: int) -> dict[str, Any]:
        key = (int(seed), kind, tuple(prep["mean"].shape))
        with self._lock:
            hit = self.terms.get(key)
        if hit is None:
            hit = draws_mod.random_terms(prep, kind=kind, seed=seed)
            size = sum(v.numel() * v.element_size() for v in hit.values() if isinstance(v, torch.Tensor))
            with self._lock:
                if self.bytes + size > self.MAX_BYTES:  # full: start again
                    self.terms, self.bytes = {}, 0
                self.terms[key] = hit
                self.bytes += size
        return hit


_NOISE: "weakref.WeakKeyDictionary[Any, _Noise]" = weakref.WeakKeyDictionary()


def _noise_for(model: Any, par: dict[str, torch.Tensor]) -> _Noise:
    with _LOCK:
        n = _NOISE.get(model)
        if n is None or n.par is not par:
            n = _NOISE[model] = _Noise(par)
        return n


Key = tuple[tuple[str, float | None], ...]  # a regimen as the model encodes it (spec.regimen_key)


@dataclass(frozen=True)
class _Wanted:
    """A job's regimens and current regimen as keys, with their encodings' slot widths (the width of a
    patient's design is that of its longest regimen, at least ``max_drugs``)."""

    keys: list[Key]
    width: int
    current: Key | None
    cwidth: int

    @classmethod
    def of(cls, spec: Any, job: DrawJob) -> "_Wanted":
        keys = [_key_of(r, "regimens", i) for i, r in enumerate(job.regimens)]
        width = max([spec.max_drugs] + [len(spec.encoded(k, "regimens", i)) for i, k in enumerate(keys)])
        if job.current is None:
            return cls(keys, width, None, 0)
        ck = _key_of(job.current, "current", 0)
        return cls(keys, width, ck, max(spec.max_drugs, len(spec.encoded(ck, "current", 0))))


_KEYS: dict[int, tuple[Any, Key]] = {}  # id -> (regimen, key): the same Regimen objects recur across patients


def _key_of(reg: Any, field_name: str, row: int) -> Key:
    """``regimen_key`` of a regimen, remembered per object (held, so that its id is not reused; bounded)."""
    hit = _KEYS.get(id(reg))
    if hit is not None and hit[0] is reg:
        return hit[1]
    key = regimen_key(reg, field_name, row)
    if isinstance(reg, Regimen):  # immutable; sets and lists of names are not remembered
        if len(_KEYS) > 50_000:
            _KEYS.clear()
        _KEYS[id(reg)] = (reg, key)
    return key


def _alone(model: Any, job: DrawJob, Sn: int) -> tuple[np.ndarray, np.ndarray]:
    m3, p3 = model.sample_kinds(
        job.frame(),
        list(job.regimens),
        Sn,
        seeds=[("mean", job.seed), ("predictive", job.seed + 1)],
        current=job.current,
    )
    return m3, p3


# distinct regimens remembered per model and slot width (about 28 KB each at 1000 draws, t2d: 230 MB when full;
# the memory's capacity is capped at the bound, so its peak is what 4096 regimens with doubling capacity took)
MAX_REGIMENS = 8192
_CACHES: "weakref.WeakKeyDictionary[Any, dict[tuple[int, int], RegimenParts]]" = weakref.WeakKeyDictionary()


_LOCK = threading.Lock()


def _cache_for(model: Any, par: dict[str, torch.Tensor], Sn: int, width: int) -> "RegimenParts":
    """The model's remembered regimen parts for these parameter draws, draw count and slot width."""
    with _LOCK:
        per = _CACHES.get(model)
        if per is None:
            per = _CACHES[model] = {}
        c = per.get((Sn, width))
        if c is None or c.par is not par:
            c = per[(Sn, width)] = RegimenParts(par, width)
        return c


class RegimenParts:
    """The regimen-only parts of a draw (:func:`~planner.model.draws.regimen_parts`), one row per distinct
    regimen seen (bounded), for one slot width: ``lin`` (rows, 1 + p, S), ``gw`` (rows, K, S), ``mask``
    (rows, D + 1) and ``drug`` (rows, K)."""

    def __init__(self, par: dict[str, torch.Tensor], width: int) -> None:
        self.par = par
        self.width = width
        self.rows: dict[Key, int] = {}
        self.t: dict[str, Any] = {}
        self._lock = threading.Lock()  # the service plans concurrent requests in threads

    def take(self, spec: Any, pr: Any, p: dict[str, torch.Tensor], keys: list[Key], batch: list[Key]) -> dict[str, Any]:
        """The parts of ``keys``, gathered in order; missing ones are computed first, with the other regimens of
        the ``batch`` not yet seen, in one call."""
        with self._lock:
            if any(k not in self.rows for k in keys):
                todo = batch
                missing = set(todo) - self.rows.keys()
                if len(self.rows) + len(missing) > MAX_REGIMENS:  # full: keep the batch's rows, drop the rest
                    self._keep(set(batch))
                    if len(self.rows) + len(missing) > MAX_REGIMENS:  # still full: start again with this job's
                        self.rows, self.t = {}, {}
                        todo = keys
                self._add(spec, pr, p, todo)
            idx = np.fromiter((self.rows[k] for k in keys), dtype=np.int64, count=len(keys))
            cols = torch.from_numpy(idx)
            t = self.t
            return {
                "lin": t["lin"],  # the whole memory: read at "rows" (rows < n1 are never written again)
                "rows": cols,
                "gw": None if t["gw"] is None else t["gw"].index_select(0, cols),
                "mask": None if t["mask"] is None else t["mask"][idx],
                "drug": t["drug"][idx],
            }

    def _keep(self, wanted: set[Key]) -> None:
        """Keep only the remembered regimens among ``wanted`` (moved to the first rows, values unchanged): a full
        memory drops the regimens the batch in hand does not use rather than all of them."""
        kept = [k for k in self.rows if k in wanted]
        idx = np.fromiter((self.rows[k] for k in kept), dtype=np.int64, count=len(kept))
        cols = torch.from_numpy(idx)
        self.t = {
            name: None
            if held is None
            else (held.index_select(0, cols) if isinstance(held, torch.Tensor) else held[idx])
            for name, held in self.t.items()
        }
        self.rows = {k: i for i, k in enumerate(kept)}

    def _add(self, spec: Any, pr: Any, p: dict[str, torch.Tensor], keys: list[Key]) -> None:
        new: list[Key] = []
        for k in keys:
            if k not in self.rows:
                self.rows[k] = len(self.rows)
                new.append(k)
        design = spec.design_of([spec.encoded(k, "regimens", 0) for k in new], width=self.width)
        parts = draws_mod.regimen_parts(spec, pr, p, design)
        parts = {"lin": parts["lin"], "gw": parts["gw"], "mask": parts["mask"], "drug": design.drug}
        n1 = len(self.rows)
        n0 = n1 - len(new)
        for name, value in parts.items():
            held = self.t.get(name)
            if value is None:
                self.t[name] = None
                continue
            if held is None or held.shape[0] < n1:  # room for twice as many (amortized appends), at most the bound
                shape = (max(min(2 * n1, MAX_REGIMENS), n1, 64), *value.shape[1:])
                grown = (
                    torch.empty(shape, dtype=value.dtype)
                    if isinstance(value, torch.Tensor)
                    else np.empty(shape, value.dtype)
                )
                if held is not None and n0:
                    grown[:n0] = held[:n0]
                self.t[name] = held = grown
            held[n0:n1] = value


def _patient_prep(
    spec: Any,
    p: dict[str, torch.Tensor],
    Sn: int,
    job: DrawJob,
    parts: dict[str, Any],
    cur: dict[str, Any] | None,
    matrix: tuple[np.ndarray, np.ndarray],
) -> dict[str, Any]:
    """``prepare``'s state for one patient from the remembered parts of its regimens and of its current
    regimen (``cur``), with the same operations as :func:`~planner.model.draws.prepare` on its own."""
    f32 = torch.float32
    x = torch.as_tensor(matrix[0], dtype=f32)
    off = torch.as_tensor(matrix[1], dtype=f32)
    het = spec.heterogeneity is not None
    with torch.no_grad():
        value = draws_mod.cross_value(parts["lin"], x, parts["rows"])  # (R, 1, S)
        old = None if cur is None else draws_mod.paired_value(cur["lin"], x, cur["rows"])
        mean = draws_mod.assemble(spec, p, x, off, value, old)
        Gc = curmask = cdrug = None
        if het and cur is not None:
            Gc = cur["gw"].permute(2, 0, 1).contiguous()
            curmask = torch.from_numpy(cur["mask"])
            cdrug = torch.from_numpy(cur["drug"])
    return dict(
        spec=spec,
        p=p,
        Sn=Sn,
        x=x,
        design=None,
        dev_np=None,
        mean=mean,
        new=None,
        het=het,
        D=spec.n_drugs,
        Gn=parts["gw"],
        drug=torch.from_numpy(np.ascontiguousarray(parts["drug"].T)),
        Gc=Gc,
        cdrug=cdrug,
        newmask=None if parts["mask"] is None else torch.from_numpy(parts["mask"]),
        curmask=curmask,
        current=job.current,
    )
