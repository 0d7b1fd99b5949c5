"""Prediction draws of a :class:`~planner.model.ResponseModel`: the expected outcome of every row under every
regimen from cached parameter draws, and the random parts that ``kind="mean"`` and ``kind="predictive"`` add.

What ``kind="mean"`` means. Tabular models: E[y | x, regimen] (parameter uncertainty only). Area models: the
expected follow-up of *this patient* at the area's horizon given the patient's state at the decision, which is
uncertain beyond the parameters for two reasons the model represents explicitly: (1) the patient's own level is
known only through a noisy baseline: the residual variance above a follow-up measurement's own spread around
the patient's expected level at the horizon is added as a per-row term shared by all regimens. That spread
(one lab's noise plus the level's own change after the decision) is measured on the cohort's same-patient,
same-regimen lab pairs (``ModelSpec.followup_var``, :mod:`planner.model.levels`) when the model was fitted
with it; otherwise the area's measurement ``noise_sd`` (taken as uncertain by +-10%) stands in; (2) patients respond
differently to the same drug: a per-row, per-drug response deviation with the fitted between-patient SD
``omega_c``, added for drugs started and subtracted for drugs stopped (kept drugs cancel), shared by every
regimen of the row, so that differences between regimens and P(best) stay coherent. ``kind="predictive"`` is
one follow-up *measurement*: it adds the level's change after the decision and one measurement's noise.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from ..errors import ModelError
from ..record import Regimen
from .model import Effect, Priors, Slots, _take, regimen_columns
from .spec import ModelSpec

__all__ = ["prepare", "draw", "expected", "MEAS_LOG_SD"]

MEAS_LOG_SD = 0.1  # uncertainty (log scale) of the area's measurement-noise SD when splitting residual variance
F32 = torch.float32


def prepare(model: Any, X: pd.DataFrame, regimens: Sequence[Any], num_samples: int | None, current: Any) -> dict:
    """Everything of a draw that uses no random numbers: parameters, design, expected outcome (S, n, R) and
    the heterogeneity spreads; :func:`draw` adds the random parts for one kind and seed."""
    spec, draws = model._state()
    par = model._fast(spec, draws)
    Sn = model._check_sample_args(regimens, num_samples, int(par["alpha"].shape[0]))
    x_np, off_np, dev_np = model._matrix_dev(spec, X)
    design = spec.encode(list(regimens))
    p = {k: v[:Sn] for k, v in par.items()}
    x = torch.as_tensor(x_np, dtype=F32)
    off = torch.as_tensor(off_np, dtype=F32)
    het = spec.heterogeneity is not None
    with torch.no_grad():
        mean, new, _, dcur, parts, cparts = _expected_parts(spec, model._priors_cache[1], p, x, off, design, current)
        Gn = parts["gw"]  # (R, K, S)
        newmask = curmask = Gc = cdrug = None
        if het:
            newmask = torch.from_numpy(parts["mask"])
            if current is not None:
                assert dcur is not None and cparts is not None
                Gc = cparts["gw"].permute(2, 0, 1).contiguous()  # (S, n, K) of the current regimens
                curmask = torch.from_numpy(cparts["mask"])
                cdrug = torch.as_tensor(dcur.drug)
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
        D=spec.n_drugs,
        Gn=Gn,
        drug=torch.as_tensor(design.drug).T.contiguous(),
        Gc=Gc,
        cdrug=cdrug,
        newmask=newmask,
        curmask=curmask,
        current=current,
    )


def regimen_parts(spec: ModelSpec, pr: Priors, p: dict[str, torch.Tensor], design: Any) -> dict[str, Any]:
    """What of a draw depends only on the regimens and the parameter draws: ``lin`` (r, 1 + p, S) of
    :func:`~planner.model.model.regimen_columns`, the dose curves ``g`` (S, r, K) and, with heterogeneity,
    ``gw`` (r, K, S), each slot's spread g * omega (0 in empty slots), and ``mask`` (r, D + 1), 1 where the
    regimen holds the drug (else None). Elementwise or within one regimen: the same for a regimen whatever is
    beside it."""
    lin, g = regimen_columns(pr, p, Slots.of(design, F32))
    gw = mask = None
    if spec.heterogeneity is not None:
        omg = torch.cat([p["omega"], torch.zeros(g.shape[0], 1, dtype=F32)], 1)
        am = np.abs(design.mask)
        gw = (g * _take(omg, torch.as_tensor(design.cls)) * torch.as_tensor(am, dtype=F32)).permute(1, 2, 0)
        gw = gw.contiguous()
        mask = np.zeros((len(design), spec.n_drugs + 1), dtype=np.float32)
        mask[np.arange(len(design))[:, None], design.drug] = am
    return {"lin": lin, "g": g, "gw": gw, "mask": mask}


def cross_value(lin: torch.Tensor, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """E(R, x) of every row of ``x`` (n, p) under every regimen of ``lin`` (m, 1 + p, S), or only those at
    ``rows`` (r,): (r, n, S). Each value is ``lin0 + sum_j x_j lin_j`` as one weighted sum of ``lin``'s rows
    (``embedding_bag``: gathered and summed in one pass, the same sums whichever table holds the rows)."""
    m, q, S = lin.shape
    n = x.shape[0]
    at = torch.arange(m) if rows is None else rows
    r = at.shape[0]
    if q == 1:
        return lin.index_select(0, at)[:, None, 0, :]
    idx = (at[:, None, None] * q + torch.arange(q)).expand(r, n, q).reshape(r * n, q)
    w = torch.cat([torch.ones(n, 1, dtype=x.dtype), x], 1).expand(r, n, q).reshape(r * n, q)
    out = torch.nn.functional.embedding_bag(idx, lin.view(m * q, S), per_sample_weights=w, mode="sum")
    return out.view(r, n, S)


def paired_value(lin: torch.Tensor, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """E(R_i, x_i) of row i under regimen i of ``lin`` (n, 1 + p, S) (or its ``rows``, n): (n, S), the same
    weighted sums as :func:`cross_value`'s."""
    m, q, S = lin.shape
    n = x.shape[0]
    at = torch.arange(m) if rows is None else rows
    if q == 1:
        return lin.index_select(0, at)[:, 0, :]
    idx = at[:, None] * q + torch.arange(q)
    w = torch.cat([torch.ones(n, 1, dtype=x.dtype), x], 1)
    return torch.nn.functional.embedding_bag(idx, lin.view(m * q, S), per_sample_weights=w, mode="sum")


def assemble(
    spec: ModelSpec,
    p: dict[str, torch.Tensor],
    x: torch.Tensor,
    off: torch.Tensor,
    value: torch.Tensor,
    old: torch.Tensor | None,
) -> torch.Tensor:
    """offset + alpha + beta . x + E(R, x) - E(current, x) from ``value`` (r, n, S) and ``old`` (n, S) (None:
    untreated): (S, n, r), contiguous."""
    mean = (p["alpha"][None, :] + off[:, None])[None] + value
    if spec.n_features:
        mean = mean + (p["beta"] @ x.T).T[None]
    if old is not None:
        mean = mean - old[None]
    return mean.permute(2, 1, 0).contiguous()


def draw(prep: dict[str, Any], *, kind: str, seed: int, noise: dict[str, Any] | None = None) -> torch.Tensor:
    """One kind's draws (S, n, R) in the outcome's unit from :func:`prepare`'s state, generator seeded by
    ``seed``. ``noise``: :func:`random_terms` of this kind, seed and shape, when the caller already has them."""
    spec, mean = prep["spec"], prep["mean"]
    with torch.no_grad():
        nz = random_terms(prep, kind=kind, seed=seed) if noise is None else noise
        if prep["het"]:
            mean = mean + _response_deviation(prep, nz["Z"])
        if prep["dev_np"] is not None:
            mean = mean + _basis_error(prep, nz["wts"])
        if nz["level"] is not None:
            mean = mean + nz["level"][:, :, None]
        if kind == "predictive":
            if nz["change"] is not None:  # the level's own change between the decision and the follow-up
                mean = mean + nz["change"][:, :, None]
            mean = mean + nz["t"]
        out = spec.y_loc + spec.y_scale * mean
        if spec.scale == "log":
            out = torch.exp(out)
    return out


def random_terms(prep: dict[str, Any], *, kind: str, seed: int) -> dict[str, Any]:
    """Every random number of one kind's draws, from a generator seeded by ``seed``, in the order they are
    drawn: the response deviations' standard normals ``Z`` (S, n, D+1), the basis' fold weights ``wts``, the
    patient's own level ``level`` (S, n), and for ``kind="predictive"`` the level's change ``change`` (S, n) and
    one measurement's t noise ``t`` (S, n, R). They depend on the seed, the parameter draws and the shape only,
    never on the patient's features or regimens (the batched sampler remembers them)."""
    spec, p, Sn = prep["spec"], prep["p"], prep["Sn"]
    shape = tuple(prep["mean"].shape)
    n = shape[1]
    out: dict[str, Any] = {"Z": None, "wts": None, "level": None, "change": None, "t": None}
    gen = torch.Generator().manual_seed(int(seed))
    if prep["het"]:
        Z = torch.randn((Sn, n, prep["D"] + 1), generator=gen)
        Z[:, :, prep["D"]] = 0.0
        out["Z"] = Z
    if prep["dev_np"] is not None:
        K = prep["dev_np"].shape[0]
        out["wts"] = torch.randn((Sn, K), generator=gen) / math.sqrt(max(K - 1, 1))
    nu = p["nu"].to(torch.float64)
    if spec.meas_sd is not None:
        tau, change, scale = _level_split(spec, p, nu, gen)
        out["level"] = tau[:, None] * torch.randn((Sn, n), generator=gen)
    else:
        change, scale = None, p["sigma"]
    if kind == "predictive":
        if change is not None:
            out["change"] = change[:, None] * torch.randn((Sn, n), generator=gen)
        z = torch.randn(shape, generator=gen, dtype=F32)
        # a new measurement's noise: at least 2.5 degrees of freedom (finite variance), so that a
        # prior draw of nu near 1 (Cauchy tails) cannot overflow, e.g. through exp on a log scale
        nu_p = torch.clamp(nu, min=2.5)
        chi = _gamma(nu_p / 2.0, torch.Size(shape), gen)  # chi2(nu) / 2
        t = z / torch.sqrt(torch.clamp(chi / (nu_p / 2.0)[:, None, None].to(F32), min=1e-6))
        out["t"] = scale[:, None, None] * t
    return out


def _response_deviation(prep: dict[str, Any], Z: torch.Tensor) -> torch.Tensor:
    """The patient's own response to each drug (between-patient heterogeneity), shared by every regimen of the
    row: + for drugs started, - for drugs stopped (kept drugs cancel). (S, n, R).

    ``Gn`` (R, K, S) and ``Gc`` (S, n, K) hold each slot's spread (g * omega, 0 in empty slots) of the
    candidate and current regimens, ``drug`` (K, R) and ``cdrug`` (n, K) the slots' drugs: the sum over drugs
    of Z times a regimen's spread is a sum over its few slots of Z's row at the slot's drug, drugs first so
    that each gathered row is one contiguous block of draws."""
    Sn, Gn, drug = prep["Sn"], prep["Gn"], prep["drug"]
    Zs = Z if prep["current"] is None else Z * (1 - prep["curmask"])
    Zt = Zs.permute(2, 1, 0).contiguous()  # (D+1, n, S)
    acc = Zt.index_select(0, drug[0]) * Gn[:, 0, None, :]  # (R, n, S)
    for k in range(1, drug.shape[0]):
        acc.addcmul_(Zt.index_select(0, drug[k]), Gn[:, k, None, :])
    out = acc.permute(2, 1, 0)  # (S, n, R)
    if prep["current"] is None:
        return out
    cdrug = prep["cdrug"]  # (n, Kc)
    stop = torch.gather(Z, 2, cdrug[None].expand(Sn, -1, -1)) * prep["Gc"]  # (S, n, Kc)
    keep = (1 - prep["newmask"])[:, cdrug].permute(1, 2, 0)  # (n, Kc, R): 1 where the candidate lacks it
    return out - torch.einsum("sik,ikr->sir", stop, keep)


def _basis_error(prep: dict[str, Any], wts: torch.Tensor) -> torch.Tensor:
    """The learned basis is an estimate: each draw takes it at a Gaussian combination of its fold models'
    deviations (the full-data estimator's sampling SD, :mod:`planner.model.basis`), through this draw's
    coefficients (prognostic slope and every arm's interaction). (S, n, R)."""
    spec, p, design, dev_np, new = (prep[k] for k in ("spec", "p", "design", "dev_np", "new"))
    beta, gamma = p["beta"], p["gamma"]
    q = len(spec.basis)
    delta = torch.einsum("sk,knq->snq", wts, torch.as_tensor(dev_np, dtype=F32))  # (S, n, q)
    prog = delta @ beta[:, -q:, None]  # (S, n, 1): same for every regimen
    Mq = torch.matmul(delta, gamma[:, :, -q:].transpose(1, 2))  # (S, n, C)
    onehot = torch.nn.functional.one_hot(torch.as_tensor(design.cls), spec.n_classes + 1)
    potency = torch.as_tensor(np.append([d.potency for d in spec.drugs], 0.0), dtype=F32)
    wp = (
        new.g
        * torch.as_tensor(design.mask, dtype=F32)
        * p["rho"][:, None, None] ** torch.as_tensor(design.rank, dtype=F32)
        * potency[torch.as_tensor(design.drug)]
    )
    W = torch.einsum("srk,rkc->scr", wp, onehot[..., : spec.n_classes].to(F32))
    return prog + torch.bmm(Mq, W)


def _level_split(
    spec: ModelSpec, p: dict[str, torch.Tensor], nu: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Split each draw's residual variance (standardized model scale) into the patient's own expected level
    (SD ``tau``, in ``kind="mean"``), the level's change after the decision (SD ``change``, predictive only;
    None without a measured follow-up spread) and one measurement's noise (t scale ``scale``, predictive
    only)."""
    sigma = p["sigma"]
    Sn = sigma.shape[0]
    assert spec.meas_sd is not None
    var = sigma.double() ** 2 * torch.where(nu > 2.5, nu / (nu - 2.0), torch.full_like(nu, 5.0))
    shrink = torch.sqrt(torch.clamp((nu - 2.0) / nu, min=0.2)).to(F32)  # t variance is s^2 nu/(nu-2)
    if spec.followup_var is not None:
        # measured on the cohort (planner.model.levels): a follow-up's spread around the expected level at the
        # horizon, uncertain by its bootstrap standard error (log-normal per draw); never more than the
        # residual variance, so that kind="predictive" keeps the likelihood's spread
        rel = float(spec.followup_var_se or 0.0) / float(spec.followup_var)
        w = float(spec.followup_var) * torch.exp(rel * torch.randn(Sn, generator=gen, dtype=torch.float64))
        w = torch.minimum(w, var)
        meas2 = torch.minimum(torch.full_like(w, float(spec.meas_sd) ** 2), w)
        tau = torch.sqrt(var - w).to(F32)
        return tau, torch.sqrt(w - meas2).to(F32), float(spec.meas_sd) * shrink
    beta = p["beta"]
    # the area's measurement SD is a guess: +-10% (log-normal) per draw, so that tau^2, a small difference of
    # two large variances, is not over-confident
    meas = spec.meas_sd * torch.exp(MEAS_LOG_SD * torch.randn(Sn, generator=gen, dtype=torch.float64))
    if spec.trained and spec.baseline in spec.features and spec.scale == "identity":
        # the data's own estimate: regression to the mean of the noisy baseline gives the slope
        # -meas^2 / var(baseline). When it says the noise is smaller than the area's guess, take the log-average
        # of the two (area alone under-covered, data alone over-covered, in benchmarks/model_quality.py): wider,
        # safer intervals, never narrower than the area's
        j = spec.features.index(spec.baseline)
        rtm = torch.clamp(-beta[:, j].double() * spec.feat_scale[j] * spec.y_scale, min=1e-12)
        meas = torch.where(rtm.sqrt() < meas, torch.sqrt(meas * rtm.sqrt()), meas)
    tau = torch.sqrt(torch.clamp(var - meas**2, min=0.0)).to(F32)
    return tau, None, float(spec.meas_sd) * shrink


def expected(
    spec: ModelSpec,
    pr: Priors,
    p: dict[str, torch.Tensor],
    x: torch.Tensor,
    off: torch.Tensor,
    design: Any,
    current: Any,
) -> tuple[torch.Tensor, Any, Any, Any]:
    """The parameters' expected outcome (standardized model scale) of every row under every regimen,
    (S, n, R): offset + alpha + beta . x + E(R, x) - E(current, x), with ``E`` the model likelihood's
    :func:`~planner.model.model.regimen_effect` (through :func:`~planner.model.model.regimen_columns`). Also
    returns the new and current :class:`~planner.model.model.Effect` and the current design (None without)."""
    mean, new, old, dcur, _, _ = _expected_parts(spec, pr, p, x, off, design, current)
    return mean, new, old, dcur


def _expected_parts(
    spec: ModelSpec,
    pr: Priors,
    p: dict[str, torch.Tensor],
    x: torch.Tensor,
    off: torch.Tensor,
    design: Any,
    current: Any,
) -> tuple[torch.Tensor, Effect, Effect | None, Any, dict[str, Any], dict[str, Any] | None]:
    """:func:`expected` and the :func:`regimen_parts` of the regimens and of the current regimens."""
    parts = regimen_parts(spec, pr, p, design)
    value = cross_value(parts["lin"], x)  # (R, n, S)
    new = Effect(value.permute(2, 1, 0), parts["g"])
    if current is None:
        return assemble(spec, p, x, off, value, None), new, None, None, parts, None
    cur = [current] * x.shape[0] if isinstance(current, Regimen) else list(current)
    if len(cur) != x.shape[0]:
        raise ModelError(
            "current and X differ in length",
            field="current",
            value=len(cur),
            expected=f"{x.shape[0]} (one per row) or a single Regimen",
        )
    dcur = spec.encode(cur, field_name="current")
    cparts = regimen_parts(spec, pr, p, dcur)
    old = paired_value(cparts["lin"], x)  # (n, S): each row its own
    mean = assemble(spec, p, x, off, value, old)
    return mean, new, Effect(old.T, cparts["g"]), dcur, parts, cparts


def _gamma(shape_param: torch.Tensor, out_shape: torch.Size, gen: torch.Generator) -> torch.Tensor:
    """Gamma(shape_param[s], 1) draws of ``out_shape`` (S, ...) from a seeded generator (Marsaglia-Tsang via
    numpy, seeded from the generator, to stay deterministic)."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
    rng = np.random.default_rng(seed)
    k = shape_param.numpy().reshape((-1,) + (1,) * (len(out_shape) - 1))
    k = np.ascontiguousarray(np.broadcast_to(k, out_shape))  # the same draws, faster than a broadcast view
    return torch.as_tensor(rng.standard_gamma(k), dtype=torch.float32)
