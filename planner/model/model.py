"""The Pyro model of the follow-up outcome given features and regimen.

Generative story (one episode i; ``x_i`` the standardized features, ``b_i`` the baseline outcome on the model
scale (``log`` for LDL-C), regimen ``R_i`` = drugs k with class c(k), dose ratio r_k = dose / reference; "the largest" drug is the one
with the largest prior effect, fixed so that the model stays smooth in its parameters)::

    alpha      ~ Normal(0, alpha_sd)                              # change with no drug, at the feature centre
    beta_j     = mask_j * beta_sd * z_j,  z_j ~ Normal(0, 1)      # prognostic slopes (regression to the mean...)
    mu_c       = m_c + s_c * u_c,         u_c ~ Normal(0, 1)      # class effect at the reference dose (area prior)
    eff_d      = potency_d * mu_c(d) + w_c(d) * v_d,  v_d ~ N(0,1)   # drug within class (hierarchical)
    slope_c    = pd_c + pd_sd_c * q_c,    q_c ~ Normal(0, 1)      # log2 dose-response classes only
    tau        ~ HalfNormal(shrinkage)                            # shared scale of unknown interactions
    gamma_cj   = given_cj ? (gm_cj + gs_cj * t_cj) : tau * t_cj,  t_cj ~ Normal(0, 1)   # class x feature
    rho        ~ Beta(rho_mean * conc, (1 - rho_mean) * conc)     # sub-additivity of added drugs
    omega_c    = h_c * |m_c| * o_c,  o_c ~ HalfNormal(1)          # between-patient SD of the response to c
    sigma      ~ LogNormal(log noise_sd, noise_sd_log_sd)         # residual SD
    nu         ~ Gamma(2, 0.1)                                    # Student-t degrees of freedom (robust)
    ed50_c     = exp(log ed50_prior_c + 0.3 * e_c),  e_c ~ Normal(0, 1)   # emax classes
    E(R, x) = sum_{k in R} rho**[k not the largest] * g_c(k)(r_k) * ( eff_d(k) + slope_c(k) * log2 r_k
                                              + potency_d(k) * sum_j gamma_c(k)j * (x_j - offset_c(k)j) )
    for each episode i (new regimen R_i, regimen before the decision P_i; none in tabular studies):
        mu_i = b_i + alpha + beta . x_i + E(R_i, x_i) - E(P_i, x_i)   # b_i already carries E(P_i)
        s_i  = sqrt(sigma^2 + sum_{k in R_i xor P_i} (g_k * omega_c(k))^2)  # started/stopped drugs: own response
        y_i  ~ StudentT(nu, mu_i, s_i)                                  # (tabular: standardized outcome)

``g`` is the area's dose-response (emax, linear, none); ``offset`` puts each area modifier at its published
centre. Tabular studies with enough data (:mod:`planner.model.basis`) add learned columns to ``x``: cross-fitted
tree-ensemble estimates of the untreated outcome, of each arm's effect and of its propensity; the likelihood takes
them as known covariates (arm ``a`` x its own effect column has a prior slope of 1), and prediction adds their
cross-fitting sampling error through each draw's coefficients. :func:`regimen_effect` is ``E(R, x)`` for both
the likelihood and prediction. All latent sites are non-centred vectors (one site each), so that the same code serves SVI with an
:class:`~pyro.infer.autoguide.AutoMultivariateNormal` guide, NUTS, and fast vectorized posterior draws
(:func:`derived` works on any leading batch of draws). The model and guide share the signature
``(batch: Batch, y: Tensor | None, subsample: Tensor | None)``.
"""

from __future__ import annotations

import math
from typing import Mapping, NamedTuple

import numpy as np
import pyro
import pyro.distributions as dist
import torch

from .spec import Design, ModelSpec

__all__ = [
    "SITE_ALPHA",
    "SITE_BETA",
    "SITE_CLASS",
    "SITE_DRUG",
    "SITE_SLOPE",
    "SITE_ED50",
    "SITE_HET",
    "SITE_TAU",
    "SITE_MOD",
    "SITE_RHO",
    "SITE_SIGMA",
    "SITE_NU",
    "SITE_OBS",
    "PLATE_OBS",
    "LATENT_SITES",
    "Batch",
    "Priors",
    "response_model",
    "derived",
    "priors_for",
    "regimen_effect",
    "regimen_columns",
    "batch_mean",
    "Slots",
    "Effect",
]

SITE_ALPHA = "alpha"
SITE_BETA = "beta_z"
SITE_CLASS = "class_z"
SITE_DRUG = "drug_z"
SITE_SLOPE = "slope_z"
SITE_ED50 = "ed50_z"
SITE_TAU = "interaction_scale"
SITE_HET = "heterogeneity_z"
SITE_MOD = "interaction_z"
SITE_RHO = "subadditivity"
SITE_SIGMA = "sigma"
SITE_NU = "nu"
SITE_OBS = "y"
PLATE_OBS = "episodes"
LATENT_SITES = (
    SITE_ALPHA,
    SITE_BETA,
    SITE_CLASS,
    SITE_DRUG,
    SITE_SLOPE,
    SITE_ED50,
    SITE_HET,
    SITE_TAU,
    SITE_MOD,
    SITE_RHO,
    SITE_SIGMA,
    SITE_NU,
)

DTYPE = torch.float64
ED50_LOG_SD = 0.3  # prior SD of log ed50 around the area's value (emax classes)


class Batch(NamedTuple):
    """Tensors of a data set: standardized features, offset, and the padded regimen design (a tuple of
    tensors, so that the traced (JIT) ELBO can take it as an argument)."""

    x: torch.Tensor  # (n, p)
    offset: torch.Tensor  # (n,) baseline on the model scale (0 without a baseline), standardized
    drug: torch.Tensor  # (n, K) long
    cls: torch.Tensor  # (n, K) long
    g: torch.Tensor  # (n, K) dose ratio r = dose / reference
    log2r: torch.Tensor  # (n, K)
    rank: torch.Tensor  # (n, K) 0 for the largest drug of a regimen, 1 for added ones
    mask: torch.Tensor  # (n, K) +1 new regimen, -1 current regimen (subtracted), 0 padding
    changed: torch.Tensor  # (n, K) 1 where the drug is in only one of the two regimens

    @classmethod
    def build(cls, x: np.ndarray, offset: np.ndarray, design: Design) -> "Batch":
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=DTYPE)  # noqa: E731
        return cls(
            x=t(x),
            offset=t(offset),
            drug=torch.as_tensor(design.drug),
            cls=torch.as_tensor(design.cls),
            g=t(design.g),
            log2r=t(design.log2r),
            rank=t(design.rank),
            mask=t(design.mask),
            changed=t(design.changed if design.changed is not None else np.abs(design.mask)),
        )

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def take(self, idx: torch.Tensor) -> "Batch":
        return Batch(*(t[idx] for t in self))


class Priors:
    """Prior tensors of a spec (built once per model)."""

    def __init__(self, spec: ModelSpec) -> None:
        t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=DTYPE)  # noqa: E731
        C, D, p = spec.n_classes, spec.n_drugs, spec.n_features
        self.C, self.D, self.p = C, D, p
        self.class_mean = t([c.prior_mean for c in spec.classes])
        self.class_sd = t([c.prior_sd for c in spec.classes])
        self.within_sd = t([spec.classes[d.class_index].within_sd for d in spec.drugs])
        self.potency = t([d.potency for d in spec.drugs])
        self.drug_class = torch.as_tensor([d.class_index for d in spec.drugs], dtype=torch.long)
        kinds = {"none": 0, "log2": 0, "emax": 1, "linear": 2}
        self.kind = torch.as_tensor([kinds[c.dose_kind] for c in spec.classes] + [0], dtype=torch.long)
        self.ed50_log = t([math.log(c.ed50 if c.ed50 else 0.5) for c in spec.classes])
        self.ed50_sd = ED50_LOG_SD
        self.slope_mean = t([c.per_doubling for c in spec.classes])
        self.slope_sd = t([c.per_doubling_sd for c in spec.classes])
        shape = (C, p)
        self.mod_mean = t(spec.mod_mean).reshape(shape) if p else torch.zeros(shape, dtype=DTYPE)
        self.mod_sd = t(spec.mod_sd).reshape(shape) if p else torch.zeros(shape, dtype=DTYPE)
        self.mod_given = t(spec.mod_given).reshape(shape) if p else torch.zeros(shape, dtype=DTYPE)
        self.mod_offset = t(spec.mod_offset).reshape(shape) if p else torch.zeros(shape, dtype=DTYPE)
        self.mod_mask = t(spec.mod_mask).reshape(shape) if p else torch.zeros(shape, dtype=DTYPE)
        self.beta_mask = t(spec.beta_mask) if p else torch.zeros(0, dtype=DTYPE)
        self.alpha_sd = float(spec.alpha_sd)
        self.beta_sd = float(spec.beta_sd)
        self.shrinkage = float(spec.shrinkage)
        self.rho_fixed = spec.rho_mean is None
        rm = spec.rho_mean if spec.rho_mean is not None else 1.0
        self.rho_a = float(max(rm * spec.rho_conc, 1e-3))
        self.rho_b = float(max((1.0 - rm) * spec.rho_conc, 1e-3))
        self.noise_loc = math.log(spec.noise_sd)
        self.noise_scale = float(spec.noise_sd_log_sd)
        self.het = spec.heterogeneity is not None
        self.het_scale = float(spec.heterogeneity or 0.0) * torch.abs(self.class_mean) + 0.05 * float(spec.noise_sd)
        self.any_unknown_mod = bool(((1 - self.mod_given) * self.mod_mask).sum() > 0)

    def distributions(self) -> dict[str, dist.Distribution]:
        """The prior of every latent site (vectors as one event)."""
        one = torch.ones((), dtype=DTYPE)
        std = lambda k: dist.Normal(torch.zeros(k, dtype=DTYPE), 1.0).to_event(1)  # noqa: E731
        out: dict[str, dist.Distribution] = {
            SITE_ALPHA: dist.Normal(0 * one, self.alpha_sd * one),
            SITE_BETA: std(self.p),
            SITE_CLASS: std(self.C),
            SITE_DRUG: std(self.D),
            SITE_SLOPE: std(self.C),
            SITE_ED50: std(self.C),
            SITE_MOD: std(self.C * self.p),
            SITE_SIGMA: dist.LogNormal(self.noise_loc * one, self.noise_scale * one),
            SITE_NU: dist.Gamma(2.0 * one, 0.1 * one),
        }
        if self.het:
            out[SITE_HET] = dist.HalfNormal(torch.ones(self.C, dtype=DTYPE)).to_event(1)
        if self.any_unknown_mod:
            out[SITE_TAU] = dist.HalfNormal(self.shrinkage * one)
        if not self.rho_fixed:
            out[SITE_RHO] = dist.Beta(self.rho_a * one, self.rho_b * one)
        return out


def priors_for(spec: ModelSpec) -> Priors:
    return Priors(spec)


def derived(pr: Priors, v: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Interpretable parameters from latent site values; works on any leading batch shape of draws.

    Returns ``alpha`` (...), ``beta`` (..., p), ``drug_eff`` (..., D), ``class_eff`` (..., C), ``slope`` (..., C),
    ``gamma`` (..., C, p), ``gamma_off`` (..., C) = sum_j gamma_cj * offset_cj, ``rho``, ``sigma``, ``nu``.
    """
    alpha = v[SITE_ALPHA]
    batch = alpha.shape
    beta = pr.beta_mask * pr.beta_sd * v[SITE_BETA]
    class_eff = pr.class_mean + pr.class_sd * v[SITE_CLASS]
    drug_eff = pr.potency * class_eff[..., pr.drug_class] + pr.within_sd * v[SITE_DRUG]
    slope = pr.slope_mean + pr.slope_sd * v[SITE_SLOPE]
    ed50 = torch.exp(pr.ed50_log + pr.ed50_sd * v[SITE_ED50])
    t = v[SITE_MOD].reshape(batch + (pr.C, pr.p))
    tau = v[SITE_TAU][..., None, None] if SITE_TAU in v else torch.zeros((), dtype=DTYPE)
    gamma = pr.mod_mask * (pr.mod_given * (pr.mod_mean + pr.mod_sd * t) + (1 - pr.mod_given) * tau * t)
    gamma_off = (gamma * pr.mod_offset).sum(-1)
    rho = v[SITE_RHO] if SITE_RHO in v else torch.ones(batch, dtype=DTYPE)
    omega = pr.het_scale * v[SITE_HET] if SITE_HET in v else torch.zeros(batch + (pr.C,), dtype=DTYPE)
    return {
        "omega": omega,
        "alpha": alpha,
        "beta": beta,
        "class_eff": class_eff,
        "drug_eff": drug_eff,
        "slope": slope,
        "ed50": ed50,
        "gamma": gamma,
        "gamma_off": gamma_off,
        "rho": rho,
        "sigma": v[SITE_SIGMA],
        "nu": v[SITE_NU],
    }


def dose_curve(kind: torch.Tensor, ed50: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """g(r) by class kind: 0 none/log2 (1), 1 emax ((1 + ed50) r / (ed50 + r)), 2 linear (r)."""
    emax = (1.0 + ed50) * r / (ed50 + r)
    return torch.where(kind == 1, emax, torch.where(kind == 2, r, torch.ones_like(r)))


class Slots(NamedTuple):
    """The regimen slots of a design as tensors (the fields :class:`Batch` has under the same names)."""

    drug: torch.Tensor  # (r, K) long
    cls: torch.Tensor  # (r, K) long
    g: torch.Tensor  # (r, K) dose ratio
    log2r: torch.Tensor
    rank: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def of(cls, design: Design, dtype: torch.dtype = DTYPE) -> "Slots":
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)  # noqa: E731
        return cls(
            torch.as_tensor(design.drug),
            torch.as_tensor(design.cls),
            t(design.g),
            t(design.log2r),
            t(design.rank),
            t(design.mask),
        )


class Effect(NamedTuple):
    value: torch.Tensor  # E(R, x): (..., n) paired, (..., n, r) cross
    g: torch.Tensor  # (..., r, K) the dose curve of every slot


def _take(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``t[..., idx]``, the same values; without gradients through ``index_select`` (about 3x faster on the
    prediction path's (draws, regimens, slots) gathers; training keeps plain indexing and its backward)."""
    if t.requires_grad:
        return t[..., idx]
    return t.index_select(-1, idx.reshape(-1)).reshape(t.shape[:-1] + idx.shape)


def regimen_effect(
    pr: Priors, par: Mapping[str, torch.Tensor], x: torch.Tensor, d: "Slots | Batch", *, cross: bool
) -> Effect:
    """``E(R, x)`` of the generative story (module docstring): the one function behind the model's likelihood
    (:func:`batch_mean`) and every prediction (:meth:`ResponseModel.sample`).

    ``par``: :func:`derived` parameters for one draw or a leading batch of draws (``...``); ``x`` (n, p);
    ``d``: regimen slots (r, K) with ``mask`` +1 (added), -1 (subtracted: the current regimen) or 0. ``cross``
    False: row i under regimen row i (r = n) -> (..., n); True: every row under every regimen -> (..., n, r).
    """
    dt = x.dtype
    zero = torch.zeros(par["drug_eff"].shape[:-1] + (1,), dtype=dt)
    ed50 = _take(torch.cat([par["ed50"], torch.ones_like(zero)], -1), d.cls)
    g = dose_curve(pr.kind[d.cls], ed50, d.g)  # (..., r, K)
    wg = d.mask * par["rho"][..., None, None] ** d.rank * g
    main = (
        _take(torch.cat([par["drug_eff"], zero], -1), d.drug)
        + _take(torch.cat([par["slope"], zero], -1), d.cls) * d.log2r
    )
    eff = (wg * main).sum(-1)  # (..., r)
    n = x.shape[0]
    if not pr.p:
        return Effect(eff[..., None, :].expand(eff.shape[:-1] + (n, eff.shape[-1])) if cross else eff, g)
    pot = torch.cat([pr.potency.to(dt), torch.zeros(1, dtype=dt)])[d.drug]  # (r, K)
    wp = wg * pot
    M = torch.matmul(x, par["gamma"].transpose(-1, -2)) - par["gamma_off"][..., None, :]  # (..., n, C)
    if cross:
        onehot = torch.nn.functional.one_hot(d.cls, pr.C + 1)[..., : pr.C].to(dt)  # (r, K, C)
        W = torch.einsum("...rk,rkc->...cr", wp, onehot)  # (..., C, r)
        return Effect(eff[..., None, :] + torch.matmul(M, W), g)
    Mp = torch.cat([M, torch.zeros(M.shape[:-1] + (1,), dtype=dt)], -1)
    return Effect(eff + (wp * torch.gather(Mp, -1, d.cls.expand(Mp.shape[:-2] + d.cls.shape))).sum(-1), g)


def regimen_columns(pr: Priors, par: Mapping[str, torch.Tensor], d: "Slots") -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`regimen_effect` factored for prediction, for a leading batch of draws ``S``: ``lin`` (r, 1 + p, S)
    such that ``E(R, x) = lin[:, 0] + sum_j x_j lin[:, 1 + j]`` (the modifier terms summed over the regimen's
    slots first: the same sum as ``regimen_effect``'s, in another order), and the slots' dose curves ``g``
    (S, r, K). Every value is elementwise or a sum within one regimen, so a regimen's columns are the same
    whichever regimens are computed beside it (the batched sampler remembers them per regimen).

    The elementwise terms of a slot depend only on the slot (drug, class, dose ratio, rank, sign): they are
    computed once per distinct slot (regimens share most of theirs), gathered into their (S, r, K) places and
    summed over each regimen's slots as before, so every value is the one the slot-by-slot computation gives."""
    flat = [t.reshape(-1) for t in d]
    rows = np.stack([t.numpy().astype(np.float64) for t in flat], 1)
    _, first, inv = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    at = torch.from_numpy(first)
    u = Slots(*(t.index_select(0, at)[:, None] for t in flat))  # (u, 1): one regimen per distinct slot
    dt = d.g.dtype
    zero = torch.zeros(par["drug_eff"].shape[:-1] + (1,), dtype=dt)
    ed50 = _take(torch.cat([par["ed50"], torch.ones_like(zero)], -1), u.cls)
    g = dose_curve(pr.kind[u.cls], ed50, u.g)  # (S, u, 1)
    wg = u.mask * par["rho"][..., None, None] ** u.rank * g
    main = (
        _take(torch.cat([par["drug_eff"], zero], -1), u.drug)
        + _take(torch.cat([par["slope"], zero], -1), u.cls) * u.log2r
    )
    idx = torch.from_numpy(inv.reshape(-1))
    shape = d.g.shape

    def placed(t: torch.Tensor) -> torch.Tensor:  # (S, u, 1) per slot -> (S, r, K) at every slot of a regimen
        return t[..., 0].index_select(-1, idx).reshape(t.shape[:-2] + shape)

    eff = _slot_sum(placed(wg * main))  # (S, r)
    cols = [eff]
    if pr.p:
        wp = wg * torch.cat([pr.potency.to(dt), torch.zeros(1, dtype=dt)])[u.drug]  # (S, u, 1)
        cols = [eff - _slot_sum(placed(wp * _take(torch.cat([par["gamma_off"], zero], -1), u.cls)))]
        for j in range(pr.p):
            cols.append(_slot_sum(placed(wp * _take(torch.cat([par["gamma"][..., j], zero], -1), u.cls))))
    return torch.stack(cols, 0).permute(2, 0, 1).contiguous(), placed(g)


def _slot_sum(t: torch.Tensor) -> torch.Tensor:
    """``t.sum(-1)`` over a regimen's slots. Up to 4 slots torch's CPU sum adds them one after another, so the
    same additions in order give the same values (tests/test_batched_sampler.py checks it) in a third of the
    time; wider designs use ``sum`` itself."""
    K = t.shape[-1]
    if K > 4:
        return t.sum(-1)
    out = t[..., 0]
    for k in range(1, K):
        out = out + t[..., k]
    return out


def batch_mean(pr: Priors, par: Mapping[str, torch.Tensor], b: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Expected outcome (model scale, standardized) of each row under its own regimen (minus its current one),
    and the response-heterogeneity variance of the drugs started or stopped; one draw or a batch of draws."""
    e = regimen_effect(pr, par, b.x, b, cross=False)
    prog = b.x @ par["beta"][..., :, None] if pr.p else torch.zeros((b.n, 1), dtype=b.x.dtype)
    mean = b.offset + par["alpha"][..., None] + prog[..., 0] + e.value
    zero = torch.zeros(par["omega"].shape[:-1] + (1,), dtype=b.x.dtype)
    het = (b.changed * (e.g * torch.cat([par["omega"], zero], -1)[..., b.cls]) ** 2).sum(-1)  # (..., n)
    return mean, het


def response_model(
    pr: Priors, batch: Batch, y: torch.Tensor | None = None, subsample: torch.Tensor | None = None
) -> torch.Tensor:
    """The Pyro model (see the module docstring). ``subsample``: row indices of a minibatch (drawn by the
    caller with its own generator, so a step costs O(batch) not O(N))."""
    batch = Batch(*batch)  # the traced ELBO passes a plain tuple
    priors = pr.distributions()
    values = {name: pyro.sample(name, d) for name, d in priors.items()}
    par = derived(pr, values)
    n = batch.n
    with pyro.plate(PLATE_OBS, n, subsample=subsample) as idx:
        b = batch if subsample is None else batch.take(idx)
        mean, het = batch_mean(pr, par, b)
        obs = None if y is None else (y if subsample is None else y[idx])
        scale = torch.sqrt(par["sigma"] ** 2 + het)
        pyro.sample(SITE_OBS, dist.StudentT(par["nu"], mean, scale), obs=obs)
    return mean
