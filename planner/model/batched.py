"""Posterior draws for a batch of patients in one sampler call: :func:`sample_batch`.

Each job is one patient: its feature row, its candidate regimens, the regimen its baseline was measured under and
its seed. The result of every job is value for value what
``ResponseModel.sample_kinds(X, regimens, num_samples, seeds=[("mean", seed), ("predictive", seed + 1)],
current=current)`` gives that patient alone, so a batch of one is one-at-a-time ``recommend``.

What is shared. Everything of the expected outcome that depends only on a regimen and the parameter draws (the
dose curve of every slot, the regimen's main effect, its weights on the effect modifiers, the response-spread of
each drug) is computed once per *distinct* regimen of the batch (patients of one area share most of their
candidates) and gathered for each patient. Those parts are elementwise, or reductions within one regimen, so a
regimen's column is the same whichever other regimens are computed beside it. What depends on the patient (the
modifiers at its features, the current regimen's effect, every random draw) is computed per patient in the
same order as :meth:`ResponseModel._prepare` and :meth:`ResponseModel._draw`; the random draws use the
patient's own generator seeded by its own seed (per-patient streams), through ``_draw`` itself.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..record import Regimen
from .model import Effect, Slots, _take, dose_curve, regimen_effect
from .spec import Design

__all__ = ["DrawJob", "sample_batch"]


@dataclass(frozen=True)
class DrawJob:
    """One patient of a batch: a one-row feature frame, its regimens (known doses), the regimen the baseline
    was measured under (None: untreated) and its seed (mean draws use ``seed``, predictive ``seed + 1``)."""

    X: pd.DataFrame
    regimens: Sequence[Regimen]
    current: Regimen | None
    seed: int


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
    designs = [spec.encode(list(j.regimens)) for j in jobs]
    keys = [_row_keys(d) for d in designs]
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for i, (job, design) in enumerate(zip(jobs, designs)):
        width = int(design.drug.shape[1])
        cache = _cache_for(model, par, Sn, width)
        batch = [(design, keys[i])] + [(d, k) for d, k in zip(designs, keys) if d.drug.shape[1] == width]
        x_np, off_np, dev_np = model._matrix_dev(spec, job.X)
        parts = cache.take(spec, pr, p, batch)
        prep = _patient_prep(model, spec, pr, p, Sn, job, design, parts, (x_np, off_np, dev_np))
        mean = model._draw(prep, kind="mean", seed=job.seed).numpy()
        pred = model._draw(prep, kind="predictive", seed=job.seed + 1).numpy()
        out.append((mean, pred))
    return out


def _alone(model: Any, job: DrawJob, Sn: int) -> tuple[np.ndarray, np.ndarray]:
    m3, p3 = model.sample_kinds(
        job.X, list(job.regimens), Sn, seeds=[("mean", job.seed), ("predictive", job.seed + 1)], current=job.current
    )
    return m3, p3


MAX_REGIMENS = 4096  # distinct regimens remembered per model and slot width (about 45 KB each at 1000 draws)
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
            c = per[(Sn, width)] = RegimenParts(par)
        return c


def _row_keys(d: Design) -> list[bytes]:
    """Each regimen as the model sees it (its encoded slots), as bytes."""
    m = np.concatenate([d.drug.astype(np.float64), d.cls.astype(np.float64), d.g, d.log2r, d.rank, d.mask], axis=1)
    return [row.tobytes() for row in np.ascontiguousarray(m)]


class RegimenParts:
    """The regimen-only parts of the expected outcome, one column per distinct regimen seen (bounded)."""

    def __init__(self, par: dict[str, torch.Tensor]) -> None:
        self.par = par
        self.rows: dict[bytes, int] = {}
        self.t: dict[str, Any] = {}
        self._lock = threading.Lock()  # the service plans concurrent requests in threads

    def take(
        self, spec: Any, pr: Any, p: dict[str, torch.Tensor], batch: list[tuple[Design, list[bytes]]]
    ) -> dict[str, Any]:
        """The parts of the first regimens of ``batch`` (a design with its keys), gathered, regimens first;
        missing ones are computed first, with the other regimens of the ``batch`` not yet seen, in one call."""
        keys = batch[0][1]
        with self._lock:
            if any(k not in self.rows for k in keys):
                todo = batch
                missing = {k for _, ks in todo for k in ks} - self.rows.keys()
                if len(self.rows) + len(missing) > MAX_REGIMENS:  # full: start again (the values do not change)
                    self.rows, self.t = {}, {}
                    todo = batch[:1]
                self._add(spec, pr, p, todo)
            cols = torch.as_tensor(np.asarray([self.rows[k] for k in keys], dtype=np.int64))
            names = [n for n in ("eff", "W", "gw", "drug", "newmask") if self.t.get(n) is not None]
            return {n: self.t[n].index_select(0, cols) for n in names}

    def _add(self, spec: Any, pr: Any, p: dict[str, torch.Tensor], designs: list[tuple[Design, list[bytes]]]) -> None:
        pick: list[tuple[Design, int]] = []
        for d, ks in designs:
            for r, k in enumerate(ks):
                if k not in self.rows:
                    self.rows[k] = len(self.rows)
                    pick.append((d, r))
        fields = ("drug", "cls", "g", "log2r", "rank", "mask")
        new = Design(*(np.stack([getattr(d, f)[r] for d, r in pick]) for f in fields))
        parts = _regimen_parts(spec, pr, p, new)
        n1 = len(self.rows)
        n0 = n1 - len(pick)
        for name, value in parts.items():
            held = self.t.get(name)
            if value is None:
                self.t[name] = None
                continue
            if held is None or held.shape[0] < n1:  # room for twice as many (amortized appends)
                grown = torch.empty((max(2 * n1, 64), *value.shape[1:]), dtype=value.dtype)
                if held is not None and n0:
                    grown[:n0].copy_(held[:n0])
                self.t[name] = held = grown
            held[n0:n1].copy_(value)


def _regimen_parts(spec: Any, pr: Any, p: dict[str, torch.Tensor], design: Design) -> dict[str, Any]:
    """The parts of :func:`~planner.model.model.regimen_effect` (cross) and of ``_prepare``'s spread that
    depend only on the regimens: the same operations, in the same order, on these regimens' columns; every
    value with the regimens on its first dimension."""
    f32 = torch.float32
    d = Slots.of(design, f32)
    dt = f32
    zero = torch.zeros(p["drug_eff"].shape[:-1] + (1,), dtype=dt)
    ed50 = _take(torch.cat([p["ed50"], torch.ones_like(zero)], -1), d.cls)
    g = dose_curve(pr.kind[d.cls], ed50, d.g)  # (S, r, K)
    wg = d.mask * p["rho"][..., None, None] ** d.rank * g
    main = (
        _take(torch.cat([p["drug_eff"], zero], -1), d.drug) + _take(torch.cat([p["slope"], zero], -1), d.cls) * d.log2r
    )
    eff = (wg * main).sum(-1)  # (S, r)
    W = None
    if pr.p:
        pot = torch.cat([pr.potency.to(dt), torch.zeros(1, dtype=dt)])[d.drug]
        wp = wg * pot
        onehot = torch.nn.functional.one_hot(d.cls, pr.C + 1)[..., : pr.C].to(dt)
        W = torch.einsum("...rk,rkc->...cr", wp, onehot)  # (S, C, r)
    gw = newmask = None
    if spec.heterogeneity is not None:
        D = spec.n_drugs
        Sn = g.shape[0]
        omg = torch.cat([p["omega"], torch.zeros(Sn, 1, dtype=f32)], 1)
        gw = g * _take(omg, torch.as_tensor(design.cls)) * torch.as_tensor(np.abs(design.mask), dtype=f32)
        newmask = torch.zeros(len(design), D + 1, dtype=f32)
        newmask.scatter_(1, torch.as_tensor(design.drug), torch.as_tensor(np.abs(design.mask), dtype=f32))
    # regimen-major (each regimen's values contiguous), so a patient's columns are gathered as blocks
    return {
        "eff": eff.T,
        "W": None if W is None else W.permute(2, 0, 1),
        "gw": None if gw is None else gw.permute(1, 2, 0),  # (r, K, S): the layout the deviation reads
        "newmask": newmask,
        "drug": torch.as_tensor(design.drug),
    }


def _spread(omg: torch.Tensor, dsg: Design, g: torch.Tensor) -> torch.Tensor:
    """(S, r, K): g * omega of each slot's drug (0 in empty slots), as ``prepare``'s ``spread``."""
    f32 = torch.float32
    return g * _take(omg, torch.as_tensor(dsg.cls)) * torch.as_tensor(np.abs(dsg.mask), dtype=f32)


def _patient_prep(
    model: Any,
    spec: Any,
    pr: Any,
    p: dict[str, torch.Tensor],
    Sn: int,
    job: DrawJob,
    design: Design,
    parts: dict[str, Any],
    matrix: tuple[np.ndarray, np.ndarray, np.ndarray | None],
) -> dict[str, Any]:
    """``_prepare``'s state for one patient, with the regimen parts gathered from the remembered columns
    (regimens first: each regimen's values contiguous) and the patient's feature ``matrix``."""
    f32 = torch.float32
    x_np, off_np, dev_np = matrix
    x = torch.as_tensor(x_np, dtype=f32)
    off = torch.as_tensor(off_np, dtype=f32)
    het = spec.heterogeneity is not None
    D = spec.n_drugs
    current = job.current
    with torch.no_grad():
        g = torch.zeros((Sn, 0, 0), dtype=f32)  # the slots' dose curves: used only with a learned basis
        eff = parts["eff"].T.contiguous()  # (S, R), laid out as before
        if not pr.p:
            value = eff[..., None, :].expand(eff.shape[:-1] + (x.shape[0], eff.shape[-1]))
        else:
            W = parts["W"].permute(1, 2, 0)  # (S, C, R), laid out as einsum gives it
            M = torch.matmul(x, p["gamma"].transpose(-1, -2)) - p["gamma_off"][..., None, :]  # (S, n, C)
            value = eff[..., None, :] + torch.matmul(M, W)
        new = Effect(value, g)
        mean = (p["alpha"][:, None, None] + off[None, :, None]) + new.value  # (S, n, R)
        if spec.n_features:
            mean = mean + (p["beta"] @ x.T)[:, :, None]
        old = dcur = None
        if current is not None:
            dcur = spec.encode([current] * x.shape[0], field_name="current")
            old = regimen_effect(pr, p, x, Slots.of(dcur, f32), cross=False)
            mean = mean - old.value[:, :, None]
        Gn = newmask = curmask = Gc = cdrug = None
        if het:
            Gn = parts["gw"]  # (R, K, S), as prepare lays it out
            newmask = parts["newmask"]
            if current is not None:
                assert old is not None and dcur is not None
                omg = torch.cat([p["omega"], torch.zeros(Sn, 1, dtype=f32)], 1)
                Gc = _spread(omg, dcur, old.g)
                cdrug = torch.as_tensor(dcur.drug)
                curmask = torch.zeros(x.shape[0], D + 1, dtype=f32)
                curmask.scatter_(1, torch.as_tensor(dcur.drug), torch.as_tensor(np.abs(dcur.mask), dtype=f32))
    return dict(
        spec=spec,
        p=p,
        Sn=Sn,
        x=x,
        design=design,
        dev_np=dev_np,
        mean=mean,
        new=new,
        het=het,
        D=D,
        Gn=Gn,
        drug=None if Gn is None else parts["drug"].T.contiguous(),
        Gc=Gc,
        cdrug=cdrug,
        newmask=newmask,
        curmask=curmask,
        current=current,
    )
