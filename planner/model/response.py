"""``ResponseModel``: the Bayesian outcome model behind every prediction, with a scikit-learn-style API.

Two ways to use it:

* **Area model** (``ResponseModel.from_area("t2d")``): priors from the area file (published class effects,
  dose-response, modifiers, sub-additivity, noise), regimens as :class:`~planner.record.Regimen` objects (with
  doses) or sets of ingredient names. Untrained it is the literature-prior model; :meth:`fit` updates it on
  local episodes. The outcome is modelled on the area's scale (log for LDL-C); draws are returned in the
  outcome's unit (on a log scale, ``kind="mean"`` is the geometric mean ``exp(E log y)``).
* **Tabular model** (``ResponseModel(seed=0)``): any study given as a DataFrame of numeric features, a
  sequence of sets of arm names (``set()`` vs ``{"treated"}``) and an outcome. Features and outcome are
  standardized internally, and the priors are weakly informative on that scale. With at least
  ``basis.MIN_ROWS`` rows (``basis="auto"``) a cross-fitted learned basis (:mod:`planner.model.basis`) lets the
  data shape the prognostic part and the effect modification, and is kept only when it predicts held-out
  outcomes better than the linear model; its own uncertainty widens the draws.

After :meth:`fit` (or, for an area model, from the prior) the posterior is cached as ``num_draws`` parameter
draws, so :meth:`sample` is a few batched matrix products: draws of the expected outcome (``kind="mean"``) or
of a new observation (``kind="predictive"``) for every row under every listed regimen.

What ``kind="mean"`` means. Tabular models: E[y | x, regimen] (parameter uncertainty only). Area models: the
expected follow-up of *this patient*, which is uncertain beyond the parameters for two reasons the model
represents explicitly: (1) the patient's own level is known only through a noisy baseline (and drifts): the
residual variance above one measurement's variance (the area's ``noise_sd``, itself taken as uncertain by
+-10%) is added as a per-row term shared by all regimens; (2) patients respond differently to the same drug:
a per-row, per-drug response deviation with the fitted between-patient SD ``omega_c``, added for drugs
started and subtracted for drugs stopped (kept drugs cancel), shared by every regimen of the row, so that
differences between regimens and P(best) stay coherent. ``kind="predictive"`` adds one measurement's noise.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError as _SkNotFitted

from ..areas import Area, load_area
from ..errors import ConfigError, ModelError
from ..record import Regimen
from . import infer, inputs, persist
from .model import DTYPE, Batch, Priors, Slots, _take, derived, regimen_effect
from .spec import ModelSpec, spec_from_area, spec_from_tabular

__all__ = ["ResponseModel", "NotFittedError", "FORMAT_VERSION"]

FORMAT_VERSION = persist.FORMAT_VERSION
Kind = Literal["mean", "predictive"]
MEAS_LOG_SD = 0.1  # uncertainty (log scale) of the area's measurement-noise SD when splitting residual variance


class NotFittedError(ModelError, _SkNotFitted):
    """The model has no posterior yet (a tabular model before :meth:`ResponseModel.fit`)."""


class ResponseModel(BaseEstimator):
    """Bayesian model of the follow-up outcome given features and regimen (see :mod:`planner.model.model`).

    Parameters (keyword-only; stored as given, scikit-learn style):
        area: area id or :class:`~planner.areas.Area` (None: a tabular study with weakly informative priors).
        seed: seed of every random choice (initialization, minibatches, posterior draws).
        method: ``"svi"`` (default; minibatches for large data) or ``"nuts"`` (small data, or to check SVI).
        guide: SVI guide: ``"mvn"`` full-rank Gaussian (default), ``"lowrank"``, ``"diag"`` (mean-field).
        rank: rank of the low-rank guide (None: Pyro's default).
        num_steps: SVI steps (None: chosen from the data size).
        batch_size: SVI minibatch size (data with more rows are subsampled).
        learning_rate: initial Adam learning rate (decays to 1% over the run).
        num_draws: posterior (or prior) draws cached for prediction.
        num_warmup: NUTS warm-up iterations; NUTS keeps ``num_draws`` samples.
        effect_sd: tabular prior SD of an arm effect, in outcome SDs.
        shrinkage: HalfNormal scale of the shared SD of feature x arm/class interactions with no area prior
            (per feature SD; area models multiply it by the area's noise SD).
        baseline: tabular only: a column used as the offset (outcome = baseline + change).
        subadditivity: tabular only: prior mean of the factor on each added arm's effect (None: additive).
        rules: rules folder for ``area`` given as an id (None: the packaged rules).
        basis: tabular only: ``"auto"`` adds the cross-fitted learned basis of :mod:`planner.model.basis`
            (untreated outcome, arm effects and propensities from tree ensembles) as covariates when there are
            at least ``basis.MIN_ROWS`` rows; ``"none"`` keeps the model linear in the features.

    Fitted attributes: ``spec_`` (structure and priors), ``draws_`` (latent draws), ``feature_names_in_``,
    ``n_features_in_``, ``arms_``, ``method_``, ``loss_`` (per-step loss per episode, SVI), ``fit_seconds_``,
    ``diagnostics_``, ``training_summary_`` (counts and aggregates only, no identifiers).
    """

    def __init__(
        self,
        *,
        area: str | Area | None = None,
        seed: int = 0,
        method: Literal["svi", "nuts"] = "svi",
        guide: Literal["mvn", "lowrank", "diag"] = "mvn",
        rank: int | None = None,
        num_steps: int | None = None,
        batch_size: int = 2048,
        learning_rate: float = 0.03,
        num_draws: int = 1000,
        num_warmup: int = 500,
        effect_sd: float = 1.0,
        shrinkage: float = 0.1,
        baseline: str | None = None,
        subadditivity: float | None = None,
        rules: str | None = None,
        basis: Literal["auto", "none"] = "auto",
    ) -> None:
        self.area = area
        self.seed = seed
        self.method = method
        self.guide = guide
        self.rank = rank
        self.num_steps = num_steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.num_draws = num_draws
        self.num_warmup = num_warmup
        self.effect_sd = effect_sd
        self.shrinkage = shrinkage
        self.baseline = baseline
        self.subadditivity = subadditivity
        self.rules = rules
        self.basis = basis

    # ---- construction --------------------------------------------------------------------------------
    @classmethod
    def from_area(cls, area: str | Area, **options: Any) -> "ResponseModel":
        """An area model; untrained it predicts from the area's literature priors."""
        return cls(area=area, **options)

    def _area(self) -> Area | None:
        if self.area is None:
            return None
        if isinstance(self.area, Area):
            return self.area
        return load_area(str(self.area), self.rules)

    @property
    def name(self) -> str:
        """A short label for provenance: ``<area>-<method>`` or ``<area>-prior``."""
        area = self._area()
        label = area.id if area is not None else "tabular"
        return f"{label}-{getattr(self, 'method_', 'prior')}"

    # ---- state ---------------------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "draws_")

    def _state(self) -> tuple[ModelSpec, dict[str, torch.Tensor]]:
        """The spec and parameter draws used for prediction: fitted posterior, else the area prior."""
        if self.is_fitted:
            return self.spec_, self.draws_
        area = self._area()
        if area is None:
            raise NotFittedError(
                "this tabular ResponseModel is not fitted yet",
                field="ResponseModel",
                hint="call fit(X, regimens, y) first, or build an area model with ResponseModel.from_area(...)",
            )
        cached = getattr(self, "_prior_state", None)
        key = (area.id, area.version, self.seed, self.num_draws)
        if cached is None or cached[0] != key:
            spec = spec_from_area(area, trained=False)
            pr = Priors(spec)
            draws = infer.prior_draws(pr, seed=self.seed, num_draws=self.num_draws)
            cached = (key, spec, draws)
            self._prior_state = cached
        return cached[1], cached[2]

    def _fast(self, spec: ModelSpec, draws: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cached = getattr(self, "_fast_cache", None)
        if cached is not None and cached[0] is draws:
            return cached[1]
        pr = Priors(spec)
        with torch.no_grad():
            par = derived(pr, draws)
        fast = {k: v.to(torch.float32).contiguous() for k, v in par.items()}
        self._fast_cache = (draws, fast)
        self._priors_cache = (draws, pr)
        return fast

    # ---- inputs (planner.model.inputs) ---------------------------------------------------------------
    _check_frame = staticmethod(inputs.check_frame)
    _raw_features = staticmethod(inputs.raw_features)
    _to_model_scale = staticmethod(inputs.to_model_scale)
    _check_sample_args = staticmethod(inputs.check_sample_args)
    _check_kind = staticmethod(inputs.check_kind)

    def _feature_columns(self, X: pd.DataFrame, area: Area | None) -> tuple[list[str], dict[str, list[str]]]:
        return inputs.feature_columns(X, area)

    def _matrix(
        self, spec: ModelSpec, X: pd.DataFrame, basis_cols: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Standardized feature matrix (n, p) and offset (n,) on the standardized model scale."""
        return inputs.matrix(spec, X, getattr(self, "basis_", None), basis_cols)

    def _matrix_dev(
        self, spec: ModelSpec, X: pd.DataFrame, basis_cols: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """:meth:`_matrix` plus the learned basis' scaled per-fold deviations (None without one)."""
        return inputs.matrix_dev(spec, X, getattr(self, "basis_", None), basis_cols)

    # ---- fitting -------------------------------------------------------------------------------------
    def fit(
        self,
        X: pd.DataFrame,
        regimens: Sequence[Any],
        y: Any,
        *,
        current: Sequence[Any] | None = None,
        progress: Callable[[int, int, float], None] | None = None,
    ) -> "ResponseModel":
        """Fit the posterior on episodes: features ``X`` (one row each), the regimen each row received, and
        the follow-up outcome ``y``. Area models: ``current`` is the regimen each row was on at baseline (the
        baseline carries its effect, so the model's change is effect(new) - effect(current)); None means
        untreated at baseline. ``progress(step, total, loss)`` is called as it goes."""
        X = self._check_frame(X)
        n = len(X)
        if n == 0:
            raise ModelError("no rows to fit", field="X", value=0, expected="at least one episode")
        if len(regimens) != n:
            raise ModelError(
                "regimens and X differ in length",
                field="regimens",
                value=len(regimens),
                expected=f"{n} (one regimen per row of X)",
            )
        yv = (
            np.asarray(y, dtype=np.float64).reshape(-1)
            if not isinstance(y, pd.Series)
            else y.to_numpy(dtype=np.float64, na_value=np.nan)
        )
        if yv.shape[0] != n:
            raise ModelError("y and X differ in length", field="y", value=int(yv.shape[0]), expected=str(n))
        if not np.all(np.isfinite(yv)):
            raise ModelError(
                "outcome missing or not finite",
                field="y",
                value=int((~np.isfinite(yv)).sum()),
                expected="a finite value on every row",
            )
        if self.method not in ("svi", "nuts"):
            raise ConfigError("unknown method", field="method", value=self.method, expected="svi or nuts")
        if self.guide not in infer.GUIDES:
            raise ConfigError("unknown guide", field="guide", value=self.guide, expected=", ".join(infer.GUIDES))
        area = self._area()
        cols, cats = self._feature_columns(X, area)
        probe = ModelSpec(classes=[], drugs=[], features=cols, feat_loc=[], feat_scale=[], categories=cats)
        raw = self._raw_features(probe, X, lenient=False)
        loc = np.array([np.nanmean(raw[:, j]) if np.isfinite(raw[:, j]).any() else 0.0 for j in range(len(cols))])
        sd = np.array([np.nanstd(raw[:, j]) if np.isfinite(raw[:, j]).sum() > 1 else 1.0 for j in range(len(cols))])
        sd = np.where(np.isfinite(sd) & (sd > 1e-12), sd, 1.0)
        learned = None
        if area is not None:
            base = next((f.name for f in area.features if f.kind == "baseline"), None)
            if base is not None and base not in cols:
                raise ModelError(
                    "missing baseline outcome column",
                    field="X",
                    value=base,
                    expected=f"a numeric column {base!r} (area {area.id})",
                )
            spec = spec_from_area(
                area, features=cols, feat_loc=loc, feat_scale=sd, trained=True, shrinkage=self.shrinkage
            )
        else:
            arms = sorted({a for r in self._arm_sets(regimens) for a in r})
            width = max((len(r) for r in self._arm_sets(regimens)), default=1)
            z = yv.copy()
            if self.baseline is not None:
                if self.baseline not in cols:
                    raise ModelError(
                        "baseline column not in X",
                        field="baseline",
                        value=self.baseline,
                        expected="one of " + ", ".join(cols),
                    )
                z = z - X[self.baseline].to_numpy(dtype=np.float64)
            y_loc, y_scale = float(np.mean(z)), float(np.std(z))
            if not y_scale > 1e-12:
                y_scale = 1.0
            learned = self._fit_basis(raw, regimens, z)
            if learned is not None:
                basis_obj, oof = learned
                cols = cols + basis_obj.names
                loc = np.concatenate([loc, oof.mean(0)])
                sd = np.concatenate([sd, np.where(oof.std(0) > 1e-12, oof.std(0), 1.0)])
            spec = spec_from_tabular(
                arms,
                cols,
                loc,
                sd,
                y_loc=y_loc,
                y_scale=y_scale,
                effect_sd=self.effect_sd,
                shrinkage=self.shrinkage,
                baseline=self.baseline,
                max_drugs=width,
                subadditivity=self.subadditivity,
            )
            if learned is not None:
                from .basis import basis_priors

                basis_priors(spec, basis_obj)
        spec.feat_default = [float(v) for v in loc]
        spec.categories = cats
        if current is not None:
            if area is None:
                raise ModelError(
                    "current regimens apply to area models",
                    field="current",
                    value=len(current),
                    expected="None for a tabular study",
                )
            if len(current) != n:
                raise ModelError("current and X differ in length", field="current", value=len(current), expected=str(n))
            spec.uses_current = True
        design = spec.encode_change(list(regimens), None if current is None else list(current))
        for attr in ("draws_", "_fast_cache"):
            if hasattr(self, attr):
                delattr(self, attr)
        self.spec_ = spec
        if learned is not None:
            self.basis_ = learned[0]
        elif hasattr(self, "basis_"):
            delattr(self, "basis_")
        x, off = self._matrix(spec, X, None if learned is None else learned[1])
        target = self._to_model_scale(spec, yv, "y")
        target = (target - spec.y_loc) / spec.y_scale  # the offset T(baseline)/y_scale is in the model
        batch = Batch.build(x, off, design)
        yt = torch.as_tensor(target, dtype=DTYPE)
        pr = Priors(spec)
        if self.method == "nuts":
            res = infer.fit_nuts(
                pr, batch, yt, seed=self.seed, num_warmup=self.num_warmup, num_samples=self.num_draws, progress=progress
            )
        else:
            res = infer.fit_svi(
                pr,
                batch,
                yt,
                seed=self.seed,
                guide=self.guide,
                rank=self.rank,
                num_steps=self.num_steps,
                batch_size=self.batch_size,
                learning_rate=self.learning_rate,
                num_draws=self.num_draws,
                progress=progress,
            )
        self.draws_ = res.draws
        self.area_ = area
        self.method_ = self.method
        self.loss_ = res.losses
        self.fit_seconds_ = res.seconds
        self.diagnostics_ = res.diagnostics
        user_cols = [c for c in cols if c not in spec.basis]
        self.feature_names_in_ = np.array(user_cols, dtype=object)
        self.n_features_in_ = len(user_cols)
        self.arms_ = [d.name for d in spec.drugs]
        counts: dict[str, int] = {}
        for row in range(n):
            for k in range(design.drug.shape[1]):
                if design.mask[row, k]:
                    nm = spec.drugs[int(design.drug[row, k])].name
                    counts[nm] = counts.get(nm, 0) + 1
        keys = pd.Series([self._regimen_label(r) for r in regimens]).value_counts()
        self.training_summary_ = {
            "episodes": n,
            "features": cols,
            "regimens_distinct": int(len(keys)),
            "rows_per_arm": counts,
            "rows_without_drug": int((design.mask.sum(1) == 0).sum()),
            "outcome_mean": float(np.mean(yv)),
            "outcome_sd": float(np.std(yv)),
            "method": self.method,
            "guide": self.guide if self.method == "svi" else None,
            "steps": res.steps,
            "final_loss": res.diagnostics.get("final_loss"),
            "fit_seconds": round(res.seconds, 3),
        }
        return self

    def _fit_basis(self, raw: np.ndarray, regimens: Sequence[Any], z: np.ndarray):  # noqa: ANN202
        """The cross-fitted learned basis of a tabular study, or None (``basis="none"``, or data too few)."""
        if self.basis not in ("auto", "none"):
            raise ConfigError("unknown basis", field="basis", value=self.basis, expected='"auto" or "none"')
        if self.basis == "none":
            return None
        import importlib.util
        import warnings

        from .basis import LearnedBasis

        if importlib.util.find_spec("xgboost") is None:  # an optional extra: say so, fit the linear model
            warnings.warn(
                "basis='auto': xgboost is not installed (pip install 'planner[xgboost]'), so the tabular "
                "model stays linear in the features",
                stacklevel=3,
            )
            return None

        return LearnedBasis.fit(raw, [self._regimen_label(r) for r in regimens], z, seed=self.seed)

    @staticmethod
    def _arm_sets(regimens: Sequence[Any]) -> list[set[str]]:
        out = []
        for i, r in enumerate(regimens):
            if isinstance(r, Regimen):
                out.append(set(r.ingredients))
            elif isinstance(r, (set, frozenset, list, tuple)):
                bad = [a for a in r if not isinstance(a, str)]
                if bad:
                    raise ModelError("arm names must be strings", field=f"regimens[{i}]", value=bad[0])
                out.append(set(r))
            else:
                raise ModelError(
                    "not a regimen",
                    field=f"regimens[{i}]",
                    value=r,
                    expected='a set of arm names, e.g. set() or {"treated"}',
                )
        return out

    @staticmethod
    def _regimen_label(r: Any) -> str:
        if isinstance(r, Regimen):
            return r.key()
        if isinstance(r, (set, frozenset, list, tuple)):
            return "+".join(sorted(str(a) for a in r)) or "none"
        return str(r)

    # ---- prediction ----------------------------------------------------------------------------------
    def sample(
        self,
        X: pd.DataFrame,
        regimens: Sequence[Any],
        num_samples: int | None = None,
        *,
        kind: Kind = "mean",
        seed: int | None = None,
        current: Any = None,
    ) -> np.ndarray:
        """Draws (num_samples, n_rows, n_regimens) of the expected outcome (``kind="mean"``) or of a new
        observation (``"predictive"``), for every row of ``X`` under every regimen in ``regimens``; in the
        outcome's unit. ``num_samples`` at most ``num_draws`` (default: all cached draws). The same draw
        index is one joint posterior draw across rows and regimens (for P(best) and differences).

        Area models: ``current`` is the regimen each row is on at baseline (one ``Regimen``, or one per row);
        its modelled effect is taken out of the baseline before the candidate's is added. None: untreated."""
        n_rows = len(X) if hasattr(X, "__len__") else 1
        work = (num_samples or self.num_draws) * n_rows * max(len(regimens) if hasattr(regimens, "__len__") else 1, 1)
        threads = torch.get_num_threads()
        if work < 20_000_000:  # small batches: thread start-up and sync cost more than they give
            torch.set_num_threads(1)
        try:
            out = self._sample_t(X, regimens, num_samples, kind=kind, seed=seed, current=current)
        finally:
            torch.set_num_threads(threads)
        return out.numpy()

    def sample_kinds(
        self,
        X: pd.DataFrame,
        regimens: Sequence[Any],
        num_samples: int | None = None,
        *,
        seeds: Sequence[tuple[Kind, int | None]],
        current: Any = None,
    ) -> list[np.ndarray]:
        """``[sample(X, regimens, num_samples, kind=k, seed=s, current=current) for k, s in seeds]``, equal to
        those calls value for value, with the parameters' expected outcome (the part that uses no random
        draws) computed once for all of them: the prediction stage asks for mean and predictive draws."""
        for k, _ in seeds:
            self._check_kind(k)
        n_rows = len(X) if hasattr(X, "__len__") else 1
        work = (num_samples or self.num_draws) * n_rows * max(len(regimens) if hasattr(regimens, "__len__") else 1, 1)
        threads = torch.get_num_threads()
        if work < 20_000_000:  # as sample(): small batches run on one thread
            torch.set_num_threads(1)
        try:
            prep = self._prepare(X, regimens, num_samples, current)
            return [self._draw(prep, kind=k, seed=s).numpy() for k, s in seeds]
        finally:
            torch.set_num_threads(threads)

    def _sample_t(
        self,
        X: pd.DataFrame,
        regimens: Sequence[Any],
        num_samples: int | None,
        *,
        kind: Kind,
        seed: int | None,
        current: Any = None,
    ) -> torch.Tensor:
        self._check_kind(kind)
        return self._draw(self._prepare(X, regimens, num_samples, current), kind=kind, seed=seed)

    def _prepare(
        self, X: pd.DataFrame, regimens: Sequence[Any], num_samples: int | None, current: Any
    ) -> dict[str, Any]:
        """Everything of a draw that uses no random numbers: parameters, design, expected outcome (S, n, R) and
        the heterogeneity spreads; :meth:`_draw` adds the random parts for one kind and seed."""
        spec, draws = self._state()
        par = self._fast(spec, draws)
        Sn = self._check_sample_args(regimens, num_samples, int(par["alpha"].shape[0]))
        x_np, off_np, dev_np = self._matrix_dev(spec, X)
        design = spec.encode(list(regimens))
        f32 = torch.float32
        p = {k: v[:Sn] for k, v in par.items()}
        x = torch.as_tensor(x_np, dtype=f32)
        off = torch.as_tensor(off_np, dtype=f32)
        het = spec.heterogeneity is not None
        D = spec.n_drugs
        omg = torch.cat([p["omega"], torch.zeros(Sn, 1, dtype=f32)], 1) if het else None

        def spread(dsg, g):  # (S, r, D+1): g * omega of each drug of each regimen (0 elsewhere)
            dr = torch.as_tensor(dsg.drug)
            gw = g * _take(omg, torch.as_tensor(dsg.cls)) * torch.as_tensor(np.abs(dsg.mask), dtype=f32)
            return torch.zeros(Sn, dr.shape[0], D + 1, dtype=f32).scatter_add_(2, dr[None].expand(Sn, -1, -1), gw)

        with torch.no_grad():
            mean, new, old, dcur = self._expected(spec, p, x, off, design, current)
            Gn = spread(design, new.g) if het else None
            newmask = curmask = Gc = None
            if het:
                newmask = torch.zeros(len(regimens), D + 1, dtype=f32)
                newmask.scatter_(1, torch.as_tensor(design.drug), torch.as_tensor(np.abs(design.mask), dtype=f32))
                if current is not None:
                    assert old is not None and dcur is not None
                    Gc = spread(dcur, old.g)  # (S, n, D+1) of the current regimens
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
            Gc=Gc,
            newmask=newmask,
            curmask=curmask,
            current=current,
        )

    def _draw(self, prep: dict[str, Any], *, kind: Kind, seed: int | None) -> torch.Tensor:
        """One kind's draws from :meth:`_prepare`'s state with the generator seeded by ``seed``."""
        spec, p, Sn, x, design, dev_np, mean, new, D = (
            prep[k] for k in ("spec", "p", "Sn", "x", "design", "dev_np", "mean", "new", "D")
        )
        beta, gamma = p["beta"], p["gamma"]
        f32 = torch.float32
        with torch.no_grad():
            gen = torch.Generator().manual_seed(self.seed if seed is None else int(seed))
            if prep["het"]:
                # the patient's own response to each drug (between-patient heterogeneity), shared by every
                # regimen of the row: + for drugs started, - for drugs stopped (kept drugs cancel)
                Z = torch.randn((Sn, x.shape[0], D + 1), generator=gen)
                Z[:, :, D] = 0.0
                Gn = prep["Gn"]
                if prep["current"] is not None:
                    mean = (
                        mean
                        + torch.bmm(Z * (1 - prep["curmask"]), Gn.transpose(1, 2))
                        - torch.matmul(Z * prep["Gc"], (1 - prep["newmask"]).T)
                    )
                else:
                    mean = mean + torch.bmm(Z, Gn.transpose(1, 2))
            if dev_np is not None:
                # the learned basis is an estimate: each draw takes it at a Gaussian combination of its fold
                # models' deviations (the full-data estimator's sampling SD, planner.model.basis), through
                # this draw's coefficients (prognostic slope and every arm's interaction)
                q, K = len(spec.basis), dev_np.shape[0]
                wts = torch.randn((Sn, K), generator=gen) / math.sqrt(max(K - 1, 1))
                delta = torch.einsum("sk,knq->snq", wts, torch.as_tensor(dev_np, dtype=f32))  # (S, n, q)
                mean = mean + (delta @ beta[:, -q:, None])  # (S, n, 1): same for every regimen
                Mq = torch.matmul(delta, gamma[:, :, -q:].transpose(1, 2))  # (S, n, C)
                onehot = torch.nn.functional.one_hot(torch.as_tensor(design.cls), spec.n_classes + 1)
                wp = (
                    new.g
                    * torch.as_tensor(design.mask, dtype=f32)
                    * p["rho"][:, None, None] ** torch.as_tensor(design.rank, dtype=f32)
                    * torch.as_tensor(np.append([d.potency for d in spec.drugs], 0.0), dtype=f32)[
                        torch.as_tensor(design.drug)
                    ]
                )
                W = torch.einsum("srk,rkc->scr", wp, onehot[..., : spec.n_classes].to(f32))
                mean = mean + torch.bmm(Mq, W)
            nu = p["nu"].to(torch.float64)
            sigma = p["sigma"]
            if spec.meas_sd is not None:
                # the patient's own expected level is uncertain beyond the parameters (a noisy baseline,
                # drift): residual variance above one measurement's variance, shared by all regimens of a row
                var = sigma.double() ** 2 * torch.where(nu > 2.5, nu / (nu - 2.0), torch.full_like(nu, 5.0))
                # the area's measurement SD is a guess: +-10% (log-normal) per draw, so that tau^2, a small
                # difference of two large variances, is not over-confident
                meas = spec.meas_sd * torch.exp(MEAS_LOG_SD * torch.randn(Sn, generator=gen, dtype=torch.float64))
                if spec.trained and spec.baseline in spec.features and spec.scale == "identity":
                    # the data's own estimate: regression to the mean of the noisy baseline gives the slope
                    # -meas^2 / var(baseline). When it says the noise is smaller than the area's guess, take
                    # the log-average of the two (area alone under-covered, data alone over-covered, in
                    # benchmarks/model_quality.py): wider, safer intervals, never narrower than the area's
                    j = spec.features.index(spec.baseline)
                    rtm = torch.clamp(-beta[:, j].double() * spec.feat_scale[j] * spec.y_scale, min=1e-12)
                    meas = torch.where(rtm.sqrt() < meas, torch.sqrt(meas * rtm.sqrt()), meas)
                tau = torch.sqrt(torch.clamp(var - meas**2, min=0.0)).to(f32)
                mean = mean + (tau[:, None] * torch.randn((Sn, mean.shape[1]), generator=gen))[:, :, None]
                shrink = torch.sqrt(torch.clamp((nu - 2.0) / nu, min=0.2)).to(f32)  # t variance is s^2 nu/(nu-2)
                scale = float(spec.meas_sd) * shrink
            else:
                scale = sigma
            if kind == "predictive":
                z = torch.randn(mean.shape, generator=gen, dtype=f32)
                # a new measurement's noise: at least 2.5 degrees of freedom (finite variance), so that a
                # prior draw of nu near 1 (Cauchy tails) cannot overflow, e.g. through exp on a log scale
                nu_p = torch.clamp(nu, min=2.5)
                chi = _gamma(nu_p / 2.0, mean.shape, gen)  # chi2(nu) / 2
                t = z / torch.sqrt(torch.clamp(chi / (nu_p / 2.0)[:, None, None].to(f32), min=1e-6))
                mean = mean + scale[:, None, None] * t
            out = spec.y_loc + spec.y_scale * mean
            if spec.scale == "log":
                out = torch.exp(out)
        return out

    def _expected(
        self, spec: ModelSpec, p: dict[str, torch.Tensor], x: torch.Tensor, off: torch.Tensor, design: Any, current: Any
    ) -> tuple[torch.Tensor, Any, Any, Any]:
        """The parameters' expected outcome (standardized model scale) of every row under every regimen,
        (S, n, R): offset + alpha + beta . x + E(R, x) - E(current, x), through the same
        :func:`~planner.model.model.regimen_effect` as the model's likelihood (``batch_mean``). Also returns
        the new and current :class:`~planner.model.model.Effect` and the current design (None without)."""
        f32 = x.dtype
        pr = self._priors_cache[1]
        new = regimen_effect(pr, p, x, Slots.of(design, f32), cross=True)
        mean = (p["alpha"][:, None, None] + off[None, :, None]) + new.value  # (S, n, R)
        if spec.n_features:
            mean = mean + (p["beta"] @ x.T)[:, :, None]
        if current is None:
            return mean, new, None, None
        cur = [current] * x.shape[0] if isinstance(current, Regimen) else list(current)
        if len(cur) != x.shape[0]:
            raise ModelError(
                "current and X differ in length",
                field="current",
                value=len(cur),
                expected=f"{x.shape[0]} (one per row) or a single Regimen",
            )
        dcur = spec.encode(cur, field_name="current")
        old = regimen_effect(pr, p, x, Slots.of(dcur, f32), cross=False)  # (S, n): each row its own
        return mean - old.value[:, :, None], new, old, dcur

    def predict(
        self, X: pd.DataFrame, regimens: Sequence[Any], *, level: float = 0.9, kind: Kind = "mean", current: Any = None
    ) -> pd.DataFrame:
        """Posterior mean and central ``level`` interval per row and regimen, as a long DataFrame with
        columns ``row`` (position in X), ``regimen`` (label), ``mean``, ``lower``, ``upper``."""
        if not 0 < level < 1:
            raise ConfigError("level must be between 0 and 1", field="level", value=level)
        d = self.sample(X, regimens, kind=kind, current=current)
        lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2], axis=0)
        n, R = d.shape[1], d.shape[2]
        labels = [self._regimen_label(r) for r in regimens]
        return pd.DataFrame(
            {
                "row": np.repeat(np.arange(n), R),
                "regimen": np.tile(np.array(labels, dtype=object), n),
                "mean": d.mean(0).reshape(-1),
                "lower": lo.reshape(-1),
                "upper": hi.reshape(-1),
            }
        )

    def parameter_summary(self) -> pd.DataFrame:
        """Posterior (or prior) mean and 90% interval of the class and drug effects, on the model scale."""
        spec, draws = self._state()
        par = self._fast(spec, draws)
        rows = []
        for i, c in enumerate(spec.classes):
            v = par["class_eff"][:, i].numpy() * spec.y_scale
            rows.append(("class", c.id, v.mean(), *np.quantile(v, [0.05, 0.95])))
        for i, d in enumerate(spec.drugs):
            v = par["drug_eff"][:, i].numpy() * spec.y_scale
            rows.append(("drug", d.name, v.mean(), *np.quantile(v, [0.05, 0.95])))
        return pd.DataFrame(rows, columns=["level", "name", "mean", "lower", "upper"])

    # ---- persistence (planner.model.persist) ---------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``meta.json`` (options, spec, metadata) and ``draws.npz`` (posterior draws) to a folder."""
        return persist.save_model(self, directory)

    @classmethod
    def load(cls, directory: str | Path, *, rules: str | None = None) -> "ResponseModel":
        """Load a model written by :meth:`save`."""
        return persist.load_model(cls, directory, rules=rules)


def _gamma(shape_param: torch.Tensor, out_shape: torch.Size, gen: torch.Generator) -> torch.Tensor:
    """Gamma(shape_param[s], 1) draws of ``out_shape`` (S, ...) from a seeded generator (Marsaglia-Tsang via
    numpy, seeded from the generator, to stay deterministic)."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
    rng = np.random.default_rng(seed)
    k = shape_param.numpy().reshape((-1,) + (1,) * (len(out_shape) - 1))
    return torch.as_tensor(rng.standard_gamma(np.broadcast_to(k, out_shape)), dtype=torch.float32)
