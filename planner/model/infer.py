"""Inference for the response model: SVI (full-rank or low-rank Gaussian guide, own minibatch indices) and
NUTS, and turning either into a fixed set of posterior draws.

Determinism: every function seeds Pyro/torch from the ``seed`` it is given and draws minibatch indices from
its own :class:`torch.Generator`, so the same data and seed give the same draws on the same machine.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import pyro
import pyro.optim
import torch
from pyro.infer import MCMC, NUTS, SVI, JitTrace_ELBO, Trace_ELBO
from pyro.infer.autoguide import (
    AutoDiagonalNormal,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    init_to_median,
)
from torch.distributions import biject_to

from ..errors import ConfigError
from .model import Batch, Priors, response_model

__all__ = ["FitResult", "fit_svi", "fit_nuts", "prior_draws", "effective_sample_size", "GUIDES"]

GUIDES = ("mvn", "lowrank", "diag")
Progress = Callable[[int, int, float], None]  # (step, total, loss per episode)


@dataclass
class FitResult:
    draws: dict[str, torch.Tensor]  # latent site -> (S, ...) constrained values
    losses: list[float] = field(default_factory=list)  # ELBO loss per episode, per step (SVI)
    seconds: float = 0.0
    steps: int = 0
    diagnostics: dict[str, float] = field(default_factory=dict)


def _model_fn(pr: Priors):
    def model(batch: Batch, y: torch.Tensor | None = None, subsample: torch.Tensor | None = None):
        return response_model(pr, batch, y, subsample)

    return model


def _make_guide(kind: str, model, rank: int | None):
    init = init_to_median(num_samples=15)
    if kind == "mvn":
        return AutoMultivariateNormal(model, init_loc_fn=init, init_scale=0.02)
    if kind == "lowrank":
        return AutoLowRankMultivariateNormal(model, init_loc_fn=init, init_scale=0.02, rank=rank)
    if kind == "diag":
        return AutoDiagonalNormal(model, init_loc_fn=init, init_scale=0.02)
    raise ConfigError("unknown guide", field="guide", value=kind, expected="one of " + ", ".join(GUIDES))


def default_steps(n: int, batch_size: int) -> int:
    """Steps for SVI: enough for full-batch convergence on small data, ~10 epochs-equivalent capped for big."""
    if n <= batch_size:
        return 2000
    return int(min(4000, max(2000, 3 * n // batch_size)))


def fit_svi(
    pr: Priors,
    batch: Batch,
    y: torch.Tensor,
    *,
    seed: int,
    guide: str = "mvn",
    rank: int | None = None,
    num_steps: int | None = None,
    batch_size: int = 2048,
    learning_rate: float = 0.03,
    num_draws: int = 1000,
    progress: Progress | None = None,
    jit: bool = True,
    num_threads: int = 1,
) -> FitResult:
    """Fit by SVI and return ``num_draws`` draws from the fitted guide.

    Minibatches (when the data has more than ``batch_size`` rows) are indices drawn with replacement from a
    seeded generator and passed to the model's plate as ``subsample`` (Pyro scales the likelihood by N/B).
    The learning rate decays geometrically to 1% over the run, so the final guide is not a noisy iterate.
    """
    n = batch.n
    steps = int(num_steps or default_steps(n, batch_size))
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = _model_fn(pr)
    g = _make_guide(guide, model, rank)
    optim = pyro.optim.ClippedAdam({"lr": learning_rate, "lrd": 0.01 ** (1.0 / steps), "clip_norm": 10.0})
    svi = SVI(model, g, optim, loss=JitTrace_ELBO(ignore_jit_warnings=True) if jit else Trace_ELBO())
    minibatch = n > batch_size
    full = torch.arange(n)
    losses: list[float] = []
    t0 = time.perf_counter()
    every = max(1, steps // 100)
    threads = torch.get_num_threads()
    torch.set_num_threads(num_threads)  # the steps are small: intra-op threads cost more than they give
    try:
        for step in range(steps):
            idx = torch.randint(0, n, (batch_size,), generator=gen) if minibatch else full
            loss = svi.step(batch, y, idx) / n
            losses.append(float(loss))
            if progress is not None and (step % every == 0 or step == steps - 1):
                progress(step + 1, steps, float(loss))
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        pyro.set_rng_seed(seed + 1)
        draws = guide_draws(g, num_draws)
    tail = losses[-max(1, steps // 10) :]
    diag = {"final_loss": float(sum(tail) / len(tail))}
    pyro.clear_param_store()
    return FitResult(draws=draws, losses=losses, seconds=seconds, steps=steps, diagnostics=diag)


def guide_draws(g, num_draws: int) -> dict[str, torch.Tensor]:
    """Draws of every latent site (constrained) from a fitted AutoContinuous guide, in one vectorized pass."""
    post = g.get_posterior()
    latent = post.sample((num_draws,))
    out: dict[str, torch.Tensor] = {}
    for site, unconstrained in g._unpack_latent(latent):
        out[site["name"]] = biject_to(site["fn"].support)(unconstrained).detach()
    return out


def fit_nuts(
    pr: Priors,
    batch: Batch,
    y: torch.Tensor,
    *,
    seed: int,
    num_warmup: int = 500,
    num_samples: int = 1000,
    progress: Progress | None = None,
    max_tree_depth: int = 7,
) -> FitResult:
    """Fit by NUTS on the full data (small cohorts, and the reference for checking SVI)."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    model = _model_fn(pr)
    total = num_warmup + num_samples
    counter = {"i": 0}

    def hook(kernel, samples, stage, i):  # noqa: ANN001
        counter["i"] += 1
        if progress is not None and (counter["i"] % 10 == 0 or counter["i"] == total):
            progress(counter["i"], total, math.nan)

    kernel = NUTS(
        model,
        target_accept_prob=0.85,
        max_tree_depth=max_tree_depth,
        init_strategy=init_to_median(num_samples=15),
        jit_compile=True,
        ignore_jit_warnings=True,
    )
    mcmc = MCMC(
        kernel, num_samples=num_samples, warmup_steps=num_warmup, num_chains=1, disable_progbar=True, hook_fn=hook
    )
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        mcmc.run(batch, y, None)
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - t0
    draws = {k: v.detach() for k, v in mcmc.get_samples().items()}
    diag: dict[str, float] = {}
    try:
        summ = mcmc.diagnostics()
        rhat = [float(v["r_hat"].max()) for k, v in summ.items() if isinstance(v, dict) and "r_hat" in v]
        ess = [effective_sample_size(col.numpy()) for v in draws.values() for col in v.reshape(v.shape[0], -1).T]
        ess = [e for e in ess if math.isfinite(e)]
        if ess:
            diag["min_ess"] = min(ess)
        rh = [r for r in rhat if math.isfinite(r)]
        if rh:
            diag["max_rhat"] = max(rh)
        if "divergences" in summ:
            diag["divergences"] = float(sum(len(v) for v in summ["divergences"].values()))
    except Exception:  # diagnostics are informative only  # noqa: BLE001
        pass
    pyro.clear_param_store()
    return FitResult(draws=draws, seconds=seconds, steps=total, diagnostics=diag)


def effective_sample_size(x) -> float:  # noqa: ANN001 - a 1-d array of one chain's draws
    """ESS of one chain by Geyer's initial positive sequence (sums of autocorrelation pairs while positive), so
    that short chains give a positive, bounded figure (Pyro's estimator can turn negative on 50 draws)."""
    import numpy as np

    x = np.asarray(x, dtype=float)
    n = x.shape[0]
    x = x - x.mean()
    f = np.fft.rfft(x, 2 * n)
    acov = np.fft.irfft(f * np.conj(f))[:n] / n
    if n < 4 or acov[0] <= 0:
        return float("nan")
    rho = acov / acov[0]
    tau, k = -1.0, 0
    while k + 1 < n and rho[k] + rho[k + 1] > 0:
        tau += 2.0 * (rho[k] + rho[k + 1])
        k += 2
    return float(n / max(tau, 1.0 / n))


def prior_draws(pr: Priors, *, seed: int, num_draws: int) -> dict[str, torch.Tensor]:
    """Draws of every latent site from its prior (the untrained literature-prior model)."""
    pyro.set_rng_seed(seed)
    return {name: d.sample((num_draws,)) for name, d in pr.distributions().items()}
