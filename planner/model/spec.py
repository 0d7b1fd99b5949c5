"""The model's fixed structure: classes, drugs (arms), features and priors, and the encoding of regimens.

A :class:`ModelSpec` is everything the Pyro model needs besides the data: it is built either from an area file
(:func:`spec_from_area`, literature priors) or from a tabular study (:func:`spec_from_tabular`, weakly
informative priors on standardized scales), and saved with a fitted model as JSON. Nothing here knows about
Pyro; :mod:`planner.model.model` reads the arrays.

Regimens are encoded as padded slot arrays of width ``max_drugs`` (see :class:`Design`): each slot holds a
drug index, its class index, the dose ratio ``r = dose / reference`` and ``log2 r`` (for log-linear
classes), and its rank for sub-additivity. Padding points at a dummy drug and class whose
effects are zero.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from ..areas import Area
from ..errors import ModelError
from ..record import DrugDose, Regimen

__all__ = ["ClassSpec", "DrugSpec", "ModelSpec", "Design", "spec_from_area", "spec_from_tabular", "dose_factor"]


@dataclass(frozen=True)
class ClassSpec:
    """One class of drugs (in a tabular study: one arm) and its priors on the model's (standardized) scale."""

    id: str
    prior_mean: float  # class effect at the reference dose
    prior_sd: float
    within_sd: float  # SD of drug effects around potency x class effect
    dose_kind: str = "none"  # none | log2 | emax | linear
    ed50: float | None = None
    per_doubling: float = 0.0  # log2 kind: prior mean of the effect added per dose doubling
    per_doubling_sd: float = 0.0


@dataclass(frozen=True)
class DrugSpec:
    """One drug (or arm): its class, relative potency, reference dose and RxCUI (area models)."""

    name: str
    class_index: int
    potency: float = 1.0
    reference_dose: float | None = None
    rxcui: str = ""
    doses: tuple[float, ...] = ()
    first_line: bool = False


@dataclass
class ModelSpec:
    """Structure and priors of a :class:`~planner.model.ResponseModel` (JSON-serializable)."""

    classes: list[ClassSpec]
    drugs: list[DrugSpec]
    features: list[str]
    feat_loc: list[float]
    feat_scale: list[float]
    scale: str = "identity"  # outcome scale: identity | log
    area_id: str | None = None
    area_version: str | None = None
    baseline: str | None = None  # feature column used as the offset (follow-up = baseline + change)
    y_loc: float = 0.0  # tabular: standardization of the (transformed) outcome
    y_scale: float = 1.0
    noise_sd: float = 1.0  # prior median of the residual SD (model scale, after standardization)
    noise_sd_log_sd: float = 0.5
    alpha_sd: float = 1.0  # intercept (change at the feature centre, no drug)
    beta_sd: float = 0.5  # prognostic slopes per standardized feature unit
    beta_mask: list[float] = field(default_factory=list)  # 0 drops a prognostic slope (untrained area model)
    mod_mean: list[list[float]] = field(default_factory=list)  # (C, p) prior means of class x feature slopes
    mod_sd: list[list[float]] = field(default_factory=list)  # (C, p) prior SDs where the area gives one
    mod_given: list[list[float]] = field(default_factory=list)  # (C, p) 1 = area prior, 0 = shrinkage prior
    mod_offset: list[list[float]] = field(default_factory=list)  # (C, p) (centre - loc) / scale
    mod_mask: list[list[float]] = field(default_factory=list)  # (C, p) 0 = interaction not in the model
    shrinkage: float = 0.1  # HalfNormal scale of the shared SD of non-area interactions
    rho_mean: float | None = 0.85  # prior mean of the sub-additivity factor; None: additive (rho = 1)
    rho_conc: float = 40.0
    max_drugs: int = 3
    max_per_class: int = 1
    exclusive_classes: list[list[str]] = field(default_factory=list)
    categories: dict[str, list[str]] = field(default_factory=dict)  # column -> levels (one-hot "col=level")
    uses_current: bool = False  # fitted with the current (pre-decision) regimen of each row
    trained: bool = False  # False: an untrained area prior (missing modifier features take their defaults)
    heterogeneity: float | None = None  # prior scale of between-patient response SD, x |class effect|
    meas_sd: float | None = None  # SD of one measurement around a patient's expected level (area noise_sd)
    # variance (model scale) of a follow-up measurement around the patient's expected level at the horizon, and
    # its standard error, measured on the cohort's same-patient lab pairs (planner.model.levels); None: the
    # area's noise SD and its fixed uncertainty stand in
    followup_var: float | None = None
    followup_var_se: float | None = None
    feat_default: list[float] = field(default_factory=list)  # value used for a missing feature value
    basis: list[str] = field(default_factory=list)  # learned-basis columns (the last features; planner.model.basis)

    # ---- derived ------------------------------------------------------------------------------------
    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_drugs(self) -> int:
        return len(self.drugs)

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def is_area(self) -> bool:
        return self.area_id is not None

    def drug_index(self, name: str) -> int:
        idx = self._name_index().get(name)
        if idx is None:
            kind = "drug" if self.is_area else "arm"
            raise ModelError(
                f"unknown {kind}",
                field="regimens",
                value=name,
                expected="one of " + ", ".join(d.name for d in self.drugs),
                hint="area models take formulary ingredients or RxCUIs; tabular models the arms seen in fit",
            )
        return idx

    def _name_index(self) -> dict[str, int]:
        cache = getattr(self, "_names_cache", None)
        if cache is None:
            cache = {}
            for i, d in enumerate(self.drugs):
                cache[d.name] = i
                if d.rxcui:
                    cache[d.rxcui] = i
            object.__setattr__(self, "_names_cache", cache)
        return cache

    def prior_magnitude(self, drug: int) -> float:
        d = self.drugs[drug]
        return abs(d.potency * self.classes[d.class_index].prior_mean)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "ModelSpec":
        raw = dict(raw)
        raw["classes"] = [ClassSpec(**c) for c in raw["classes"]]
        raw["drugs"] = [DrugSpec(**{**d, "doses": tuple(d.get("doses", ()))}) for d in raw["drugs"]]
        return cls(**raw)

    # ---- regimens -----------------------------------------------------------------------------------
    def encode(self, regimens: Sequence[Any], *, field_name: str = "regimens", sign: float = 1.0) -> "Design":
        """Encode regimens (``Regimen``, or a set/list of drug or arm names) as padded slot arrays
        (``mask`` holds ``sign`` on used slots, 0 on padding)."""
        encoded = [self.encoded(regimen_key(reg, field_name, i), field_name, i) for i, reg in enumerate(regimens)]
        return self.design_of(encoded, sign=sign)

    def encoded(self, key: tuple[tuple[str, float | None], ...], field_name: str, row: int) -> list[tuple]:
        """The slots of one regimen given by its :func:`regimen_key` (remembered per spec, bounded)."""
        memo: dict[Any, list[tuple]] | None = getattr(self, "_enc_cache", None)
        if memo is None or len(memo) > 50_000:
            memo = {}
            object.__setattr__(self, "_enc_cache", memo)
        enc = memo.get(key)
        if enc is None:
            enc = memo[key] = self._encode_one(list(key), field_name, row)
        return enc

    def design_of(self, encoded: Sequence[list[tuple]], *, sign: float = 1.0, width: int = 0) -> "Design":
        """Padded slot arrays of encoded regimens, at least ``width`` slots wide."""
        n = len(encoded)
        # observed regimens may exceed the area's combination limit: that is data, the width follows it
        K = max([self.max_drugs, width] + [len(e) for e in encoded])
        D, C = self.n_drugs, self.n_classes
        drug = np.full((n, K), D, dtype=np.int64)
        cls_ = np.full((n, K), C, dtype=np.int64)
        g = np.ones((n, K), dtype=np.float64)
        l2 = np.zeros((n, K), dtype=np.float64)
        rank = np.zeros((n, K), dtype=np.float64)
        mask = np.zeros((n, K), dtype=np.float64)
        for i, enc in enumerate(encoded):
            for j, (di, ci, gi, li) in enumerate(enc):
                # rank 0: the drug with the largest prior effect counts fully; every other one x rho
                drug[i, j], cls_[i, j], g[i, j], l2[i, j], rank[i, j], mask[i, j] = di, ci, gi, li, min(j, 1), sign
        return Design(drug=drug, cls=cls_, g=g, log2r=l2, rank=rank, mask=mask)

    def encode_change(self, regimens: Sequence[Any], current: Sequence[Any] | None) -> "Design":
        """Slots of the new regimen (sign +1) followed by those of the current one (sign -1): the model's
        change from baseline is effect(new) - effect(current)."""
        new = self.encode(regimens)
        if current is None:
            return Design(new.drug, new.cls, new.g, new.log2r, new.rank, new.mask, np.abs(new.mask))
        old = self.encode(current, field_name="current", sign=-1.0)
        # a drug in only one of the two regimens brings the patient's own response to it (heterogeneity)
        hn = (np.abs(new.mask) > 0) & ~(new.drug[:, :, None] == old.drug[:, None, :]).any(2)
        ho = (np.abs(old.mask) > 0) & ~(old.drug[:, :, None] == new.drug[:, None, :]).any(2)
        return Design(
            *(
                np.concatenate([getattr(new, f), getattr(old, f)], axis=1)
                for f in ("drug", "cls", "g", "log2r", "rank", "mask")
            ),
            np.concatenate([hn, ho], axis=1).astype(np.float64),
        )

    def _encode_one(self, items: list[tuple[str, float | None]], field_name: str, row: int) -> list[tuple]:
        out = []
        seen: set[int] = set()
        for name, dose in items:
            di = self.drug_index(name)
            if di in seen:
                raise ModelError("drug listed twice in one regimen", field=f"{field_name}[{row}]", value=name)
            seen.add(di)
            d = self.drugs[di]
            c = self.classes[d.class_index]
            if dose is not None and not (math.isfinite(dose) and dose > 0):
                raise ModelError("dose must be a positive number of mg/day", field=f"{field_name}[{row}]", value=dose)
            r = 1.0 if (dose is None or d.reference_dose is None) else dose / d.reference_dose
            out.append((di, d.class_index, r, math.log2(r) if c.dose_kind == "log2" else 0.0))
        # sub-additivity order: larger prior effect first (fixed, so the model stays smooth in its parameters)
        out.sort(key=lambda t: (-self.prior_magnitude(t[0]), t[0]))
        return out


def dose_factor(c: ClassSpec, ratio: float) -> float:
    """``g(dose / reference)`` multiplying a drug's effect (log2 classes: 1, their slope is added separately)."""
    if c.dose_kind == "emax":
        ed50 = c.ed50 if c.ed50 is not None else 0.5
        return (1.0 + ed50) * ratio / (ed50 + ratio)
    if c.dose_kind == "linear":
        return ratio
    return 1.0


def regimen_key(reg: Any, field_name: str = "regimens", row: int = 0) -> tuple[tuple[str, float | None], ...]:
    """A regimen as its encoding reads it: sorted (drug or arm name, dose or None); a clear ModelError for
    anything that is not a regimen (``field_name[row]``)."""
    return tuple(_regimen_items(reg, field_name, row))


def _regimen_items(reg: Any, field_name: str, row: int) -> list[tuple[str, float | None]]:
    if isinstance(reg, Regimen):
        return sorted((d.ingredient, d.dose_mg_day) for d in reg.drugs)
    if isinstance(reg, DrugDose):
        return [(reg.ingredient, reg.dose_mg_day)]
    if isinstance(reg, str):
        raise ModelError(
            "a regimen must be a set of arm or drug names, not a string",
            field=f"{field_name}[{row}]",
            value=reg,
            expected='e.g. set() or {"treated"}',
        )
    if isinstance(reg, (set, frozenset, list, tuple)):
        items = []
        for x in reg:
            if isinstance(x, DrugDose):
                items.append((x.ingredient, x.dose_mg_day))
            elif isinstance(x, str):
                items.append((x, None))
            else:
                raise ModelError("regimen items must be names", field=f"{field_name}[{row}]", value=x)
        return sorted(items, key=lambda t: (t[0], -1 if t[1] is None else t[1]))
    raise ModelError(
        "not a regimen",
        field=f"{field_name}[{row}]",
        value=reg,
        expected="a planner.record.Regimen or a set of arm names",
    )


@dataclass(frozen=True)
class Design:
    """Padded slot encoding of one regimen per row (shape (n, max_drugs) each)."""

    drug: np.ndarray
    cls: np.ndarray
    g: np.ndarray  # dose ratio r = dose / reference (1 on padding); the model applies the class's curve
    log2r: np.ndarray
    rank: np.ndarray
    mask: np.ndarray
    changed: np.ndarray | None = None  # 1: the drug is in only one of new / current (encode_change)

    def __len__(self) -> int:
        return self.drug.shape[0]


# ---- builders ---------------------------------------------------------------------------------------


def _area_classes(area: Area) -> list[ClassSpec]:
    """The class priors of an area: effect at the reference dose, its SD, within-class SD, dose-response."""
    classes = []
    for c in area.classes:
        dr = c.dose_response
        pd = float(dr.per_doubling or 0.0) if dr.kind == "log2" else 0.0
        classes.append(
            ClassSpec(
                id=c.id,
                prior_mean=c.effect_on_scale(),
                prior_sd=c.sd,
                within_sd=c.within_class_sd,
                dose_kind=dr.kind,
                ed50=dr.ed50,
                per_doubling=pd,
                per_doubling_sd=abs(pd) / 2.0 if pd else 0.0,
            )
        )
    return classes


def _area_drugs(area: Area) -> list[DrugSpec]:
    """The formulary of an area as drug specs (class, relative potency, reference dose, strengths)."""
    class_ids = [c.id for c in area.classes]
    return [
        DrugSpec(
            name=d.ingredient,
            class_index=class_ids.index(d.drug_class),
            potency=d.relative_potency,
            reference_dose=d.reference_dose,
            rxcui=d.rxcui,
            doses=tuple(d.doses),
            first_line=d.first_line,
        )
        for d in area.formulary
    ]


def _prior_features(area: Area, baseline: str | None) -> tuple[list[str], list[float], list[float]]:
    """An untrained model's features: the baseline and every modifier feature, raw units, at their centres."""
    defaults = {f.name: f.default for f in area.features}
    names: list[str] = [baseline] if baseline else []
    centre: dict[str, float] = {}
    for c in area.classes:
        for m in c.modifiers:
            if m.feature not in names:
                names.append(m.feature)
            centre.setdefault(m.feature, m.center)
    return names, [centre.get(f, defaults.get(f) or 0.0) for f in names], [1.0] * len(names)


def _modifier_priors(
    area: Area, features: Sequence[str], feat_loc: Sequence[float], feat_scale: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Class x feature prior mean, SD, given-flag and centre offset of the area's modifiers (standardized)."""
    p, C = len(features), len(area.classes)
    mod_mean, mod_sd, given, offset = (np.zeros((C, p)) for _ in range(4))
    for ci, c in enumerate(area.classes):
        for m in c.modifiers:
            if m.feature not in features:
                continue
            j = list(features).index(m.feature)
            s = float(feat_scale[j])
            mod_mean[ci, j] = m.per_unit * s
            mod_sd[ci, j] = (m.sd if m.sd > 0 else abs(m.per_unit) / 2.0) * s
            given[ci, j] = 1.0
            offset[ci, j] = (m.center - float(feat_loc[j])) / s
    return mod_mean, mod_sd, given, offset


def spec_from_area(
    area: Area,
    *,
    features: Sequence[str] | None = None,
    feat_loc: Sequence[float] | None = None,
    feat_scale: Sequence[float] | None = None,
    trained: bool = False,
    shrinkage: float = 0.1,
) -> ModelSpec:
    """The spec of an area model.

    Untrained (``trained=False``): features are the area's modifier features (plus ``baseline``), on their raw
    units centred at the modifier centres; only the area's modifiers act, and there are no prognostic slopes
    (the literature gives none). Trained: ``features`` with their data ``feat_loc``/``feat_scale``; every
    class x feature interaction is in the model, with the area's prior where it gives one and a shared
    shrinkage prior elsewhere.
    """
    baseline = next((f.name for f in area.features if f.kind == "baseline"), None)
    defaults = {f.name: f.default for f in area.features}
    if not trained:
        features, feat_loc, feat_scale = _prior_features(area, baseline)
    assert features is not None and feat_loc is not None and feat_scale is not None
    p = len(features)
    mod_mean, mod_sd, given, offset = _modifier_priors(area, features, feat_loc, feat_scale)
    mask = np.ones_like(given) if trained else given.copy()
    comb = area.combination
    noise = area.outcome.noise_sd
    return ModelSpec(
        classes=_area_classes(area),
        drugs=_area_drugs(area),
        features=list(features),
        feat_loc=[float(x) for x in feat_loc],
        feat_scale=[float(x) for x in feat_scale],
        scale=area.outcome.scale,
        area_id=area.id,
        area_version=area.version,
        baseline=baseline,
        noise_sd=noise,
        noise_sd_log_sd=0.5,
        alpha_sd=noise,
        beta_sd=noise,
        beta_mask=[1.0 if trained else 0.0] * p,
        mod_mean=mod_mean.tolist(),
        mod_sd=mod_sd.tolist(),
        mod_given=given.tolist(),
        mod_offset=offset.tolist(),
        mod_mask=mask.tolist(),
        shrinkage=shrinkage * noise,
        rho_mean=comb.subadditivity,
        rho_conc=40.0,
        max_drugs=comb.max_drugs,
        max_per_class=comb.max_per_class,
        exclusive_classes=[list(x) for x in comb.exclusive_classes],
        meas_sd=noise,
        trained=trained,
        heterogeneity=0.5,
        feat_default=[
            float(defaults.get(f) if defaults.get(f) is not None else loc) for f, loc in zip(features, feat_loc)
        ],
    )


def spec_from_tabular(
    arms: Iterable[str],
    features: Sequence[str],
    feat_loc: Sequence[float],
    feat_scale: Sequence[float],
    *,
    y_loc: float,
    y_scale: float,
    effect_sd: float,
    shrinkage: float,
    baseline: str | None,
    max_drugs: int,
    subadditivity: float | None,
) -> ModelSpec:
    """A weakly informative spec for any tabular study: one class per arm, standardized outcome and features."""
    arms = list(arms)
    classes = [ClassSpec(id=a, prior_mean=0.0, prior_sd=effect_sd, within_sd=0.0) for a in arms]
    drugs = [DrugSpec(name=a, class_index=i) for i, a in enumerate(arms)]
    p, C = len(features), len(classes)
    zeros = np.zeros((C, p)).tolist()
    return ModelSpec(
        classes=classes,
        drugs=drugs,
        features=list(features),
        feat_loc=[float(x) for x in feat_loc],
        feat_scale=[float(x) for x in feat_scale],
        scale="identity",
        area_id=None,
        baseline=baseline,
        y_loc=float(y_loc),
        y_scale=float(y_scale),
        noise_sd=0.7,
        noise_sd_log_sd=1.0,
        alpha_sd=2.0,
        beta_sd=1.0,
        beta_mask=[1.0] * p,
        mod_mean=zeros,
        mod_sd=zeros,
        mod_given=zeros,
        mod_offset=zeros,
        mod_mask=np.ones((C, p)).tolist(),
        shrinkage=shrinkage,
        rho_mean=subadditivity,
        rho_conc=20.0,
        max_drugs=max(max_drugs, 1),
        max_per_class=max(max_drugs, 1),
        trained=True,
        feat_default=[float(x) for x in feat_loc],
    )
