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

What ``kind="mean"`` and ``kind="predictive"`` mean, and how the residual variance is split between them:
:mod:`planner.model.draws`.
"""

from __future__ import annotations

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
from . import draws as draws_mod
from . import infer, inputs, persist
from .model import DTYPE, Batch, Priors, derived
from .spec import ModelSpec, spec_from_area, spec_from_tabular

__all__ = ["ResponseModel", "NotFittedError", "FORMAT_VERSION"]

FORMAT_VERSION = persist.FORMAT_VERSION
Kind = Literal["mean", "predictive"]


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
        followup_noise: dict[str, Any] | None = None,
    ) -> "ResponseModel":
        """Fit the posterior on episodes: features ``X`` (one row each), the regimen each row received, and
        the follow-up outcome ``y``. Area models: ``current`` is the regimen each row was on at baseline (the
        baseline carries its effect, so the model's change is effect(new) - effect(current)); None means
        untreated at baseline. ``followup_noise`` (area models, optional): the cohort's measured spread of a
        follow-up around the patient's expected level (``{"var", "se"}`` on the model scale, from
        :func:`planner.model.levels.within_patient_variance`); it sets the split of the residual variance
        between ``kind="mean"`` and ``kind="predictive"`` in place of the area's noise SD.
        ``progress(step, total, loss)`` is called as it goes."""
        X = self._check_frame(X)
        n = len(X)
        yv = self._check_fit_inputs(X, regimens, y)
        area = self._area()
        cols, cats = self._feature_columns(X, area)
        spec, learned, loc = self._build_spec(X, regimens, yv, area, cols, cats)
        cols = list(spec.features)
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
        res = self._infer(pr, batch, yt, progress)
        self.draws_ = res.draws
        if followup_noise is not None and area is not None:
            spec.followup_var = float(followup_noise["var"]) / spec.y_scale**2
            se = followup_noise.get("se")
            spec.followup_var_se = float(se) / spec.y_scale**2 if se is not None and np.isfinite(se) else 0.0
        self.area_ = area
        self.method_ = self.method
        self.loss_ = res.losses
        self.fit_seconds_ = res.seconds
        self.diagnostics_ = res.diagnostics
        user_cols = [c for c in cols if c not in spec.basis]
        self.feature_names_in_ = np.array(user_cols, dtype=object)
        self.n_features_in_ = len(user_cols)
        self.arms_ = [d.name for d in spec.drugs]
        self.training_summary_ = self._training_summary(spec, design, regimens, yv, cols, res)
        return self

    def _check_fit_inputs(self, X: pd.DataFrame, regimens: Sequence[Any], y: Any) -> np.ndarray:
        """The outcome as a float vector, after checking lengths, finiteness and the method/guide options."""
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
        return yv

    def _build_spec(
        self,
        X: pd.DataFrame,
        regimens: Sequence[Any],
        yv: np.ndarray,
        area: Area | None,
        cols: list[str],
        cats: dict[str, list[str]],
    ) -> tuple[ModelSpec, Any, np.ndarray]:
        """The trained spec (area priors, or the tabular study's, with the learned basis when it helps), the
        learned basis and its out-of-fold columns (None without), and every feature's location."""
        probe = ModelSpec(classes=[], drugs=[], features=cols, feat_loc=[], feat_scale=[], categories=cats)
        raw = self._raw_features(probe, X, lenient=False)
        loc = np.array([np.nanmean(raw[:, j]) if np.isfinite(raw[:, j]).any() else 0.0 for j in range(len(cols))])
        sd = np.array([np.nanstd(raw[:, j]) if np.isfinite(raw[:, j]).sum() > 1 else 1.0 for j in range(len(cols))])
        sd = np.where(np.isfinite(sd) & (sd > 1e-12), sd, 1.0)
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
            return spec, None, loc
        arm_sets = self._arm_sets(regimens)
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
            sorted({a for r in arm_sets for a in r}),
            cols,
            loc,
            sd,
            y_loc=y_loc,
            y_scale=y_scale,
            effect_sd=self.effect_sd,
            shrinkage=self.shrinkage,
            baseline=self.baseline,
            max_drugs=max((len(r) for r in arm_sets), default=1),
            subadditivity=self.subadditivity,
        )
        if learned is not None:
            from .basis import basis_priors

            basis_priors(spec, basis_obj)
        return spec, learned, loc

    def _infer(
        self, pr: Priors, batch: Batch, yt: torch.Tensor, progress: Callable[[int, int, float], None] | None
    ) -> Any:
        """Run the chosen inference (NUTS or SVI) with this model's options."""
        if self.method == "nuts":
            return infer.fit_nuts(
                pr, batch, yt, seed=self.seed, num_warmup=self.num_warmup, num_samples=self.num_draws, progress=progress
            )
        return infer.fit_svi(
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

    def _training_summary(
        self, spec: ModelSpec, design: Any, regimens: Sequence[Any], yv: np.ndarray, cols: list[str], res: Any
    ) -> dict[str, Any]:
        """Counts and aggregates of the training data and the run (no identifiers)."""
        counts: dict[str, int] = {}
        for row in range(len(yv)):
            for k in range(design.drug.shape[1]):
                if design.mask[row, k]:
                    nm = spec.drugs[int(design.drug[row, k])].name
                    counts[nm] = counts.get(nm, 0) + 1
        keys = pd.Series([self._regimen_label(r) for r in regimens]).value_counts()
        return {
            "episodes": len(yv),
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
        """The non-random part of a draw (:func:`planner.model.draws.prepare`)."""
        return draws_mod.prepare(self, X, regimens, num_samples, current)

    def _draw(self, prep: dict[str, Any], *, kind: Kind, seed: int | None) -> torch.Tensor:
        """One kind's draws from :meth:`_prepare`'s state (:func:`planner.model.draws.draw`)."""
        return draws_mod.draw(prep, kind=kind, seed=self.seed if seed is None else int(seed))

    def _expected(
        self, spec: ModelSpec, p: dict[str, torch.Tensor], x: torch.Tensor, off: torch.Tensor, design: Any, current: Any
    ) -> tuple[torch.Tensor, Any, Any, Any]:
        """The parameters' expected outcome (:func:`planner.model.draws.expected`)."""
        return draws_mod.expected(spec, self._priors_cache[1], p, x, off, design, current)

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
