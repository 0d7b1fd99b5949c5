"""The simulator's true world: effect parameters drawn around the area priors, and the pure function that
gives the TRUE expected follow-up outcome of any regimen for any rows of features.

Generative story of the truth (per area and seed)::

    for class c:       beta_c   ~ Normal(prior effect_c, truth_spread * prior sd_c)          # model scale
    for drug d in c:   beta_d   = beta_c * relative_potency_d + Normal(0, within_class_sd_c)
    for modifier m:    gamma_cm ~ Normal(per_unit_m, truth_spread * (sd_m or |per_unit_m| / 2))
    hidden age term:   gamma_c,age ~ Normal(0, hidden_modifier_sd * |beta_c| / 10)         # not in the prior
    dose-response:     per_doubling_c ~ Normal(prior, 0.2 |prior|); ed50_c ~ prior * LogNormal(0, 0.25)
    subadditivity s    ~ clip(Normal(prior, 0.05), 0.5, 1)
    noise sd           = prior noise_sd * Uniform(0.9, 1.1)

    effect of drug d at dose x for a row with features f:
        e = beta_d + potency_d * sum_m gamma_cm (f_m - center_m)      (never of the opposite sign to beta_d)
        e = dose_scaled_effect(e, x / reference_dose_d)               (the area's curve, true parameters)
        e = e * efficacy_factor(d, phenotype)                          (area pgx_effects)
        e = e * retrial factor                     (rules/areas/simulation/retrial.yaml: a failed course of d
                                                    or its class before; true_retrial:<drug> columns)
    regimen effect = combine_effects(drug effects, s)                  (largest full, others x s)
    expected follow-up = latent_untreated (+) regimen effect           (identity: +, log scale: x exp())

``latent_untreated`` is the row's expected outcome at t0 + followup_days with no drug (outcome units).
Feature values are read from ``true_<feature>`` columns when present (the simulator's noise-free values), else
from ``<feature>``; a missing or NaN value counts as the modifier's center (no modification). PGx phenotypes
come from ``true_<pgx feature>`` columns; without them no PGx effect applies.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from ..areas import Area, combine_effects, dose_scaled_effect
from ..errors import AreaError, ConfigError
from ..record import Regimen

__all__ = ["TruthParams", "draw_truth", "expected_outcome", "drug_effects", "LATENT"]

LATENT = "latent_untreated"


@dataclasses.dataclass(frozen=True)
class TruthParams:
    """The true world of one simulated cohort (JSON-serializable with :meth:`to_dict`)."""

    area_id: str
    seed: int
    drug_effect: dict[str, float]  # ingredient -> true effect at reference dose, model scale
    modifiers: dict[str, list[tuple[str, float, float]]]  # class -> [(feature, per_unit, center)]
    per_doubling: dict[str, float | None]  # class -> true per-doubling (log2 curves)
    ed50: dict[str, float | None]  # class -> true ed50 (emax curves)
    subadditivity: float
    noise_sd: float  # model scale
    pgx_efficacy: list[tuple[str, tuple[str, ...], tuple[str, ...], float]]  # (gene, phenotypes, drugs, factor)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TruthParams":
        d = dict(data)
        d["modifiers"] = {k: [tuple(m) for m in v] for k, v in d["modifiers"].items()}
        d["pgx_efficacy"] = [(g, tuple(p), tuple(dr), float(f)) for g, p, dr, f in d["pgx_efficacy"]]
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=1)


def draw_truth(area: Area, seed: int) -> TruthParams:
    """Draw the true world for ``area`` and ``seed`` (independent of the cohort size)."""
    sim = area.simulation
    spread = sim.truth_spread if sim else 0.7
    hidden = sim.hidden_modifier_sd if sim else 0.0
    rng = np.random.default_rng([int(seed), 7919, sum(map(ord, area.id))])
    drug_effect: dict[str, float] = {}
    modifiers: dict[str, list[tuple[str, float, float]]] = {}
    per_doubling: dict[str, float | None] = {}
    ed50: dict[str, float | None] = {}
    for c in area.classes:
        beta_c = float(rng.normal(c.effect_on_scale(), spread * c.sd))
        for d in area.drugs_of_class(c.id):
            drug_effect[d.ingredient] = float(beta_c * d.relative_potency + rng.normal(0.0, c.within_class_sd))
        mods = []
        for m in c.modifiers:
            sd = m.sd if m.sd > 0 else abs(m.per_unit) / 2
            mods.append((m.feature, float(rng.normal(m.per_unit, spread * sd)), float(m.center)))
        if hidden > 0 and any(f.name == "age" for f in area.features):
            mods.append(("age", float(rng.normal(0.0, hidden * abs(beta_c) / 10.0)), 60.0))
        modifiers[c.id] = mods
        dr = c.dose_response
        per_doubling[c.id] = (
            float(rng.normal(dr.per_doubling, 0.2 * abs(dr.per_doubling)))
            if dr.kind == "log2" and dr.per_doubling is not None
            else None
        )
        ed50[c.id] = (
            float(dr.ed50 * math.exp(rng.normal(0.0, 0.25))) if dr.kind == "emax" and dr.ed50 is not None else None
        )
    sub = float(np.clip(rng.normal(area.combination.subadditivity, 0.05), 0.5, 1.0))
    noise = float(area.outcome.noise_sd * rng.uniform(0.9, 1.1))
    pgx = [(e.gene, tuple(e.phenotypes), tuple(e.drugs), float(e.efficacy_factor)) for e in area.pgx_effects]
    return TruthParams(
        area_id=area.id,
        seed=int(seed),
        drug_effect=drug_effect,
        modifiers=modifiers,
        per_doubling=per_doubling,
        ed50=ed50,
        subadditivity=sub,
        noise_sd=noise,
        pgx_efficacy=pgx,
    )


def _pgx_feature_names(area: Area) -> dict[str, str]:
    return {f.gene: f.name for f in area.features if f.kind == "pgx" and f.gene}


def drug_effects(
    area: Area,
    truth: TruthParams,
    drug_idx: np.ndarray,
    dose: np.ndarray,
    values: dict[str, np.ndarray],
    phenotypes: dict[str, np.ndarray],
    retrial: np.ndarray | None = None,
) -> np.ndarray:
    """True effect (model scale) of formulary drug ``drug_idx[i]`` (-1: none -> 0) at ``dose[i]`` mg/day
    (NaN: reference dose) for row i. ``values``: feature -> float array; ``phenotypes``: gene -> str array;
    ``retrial``: (rows x formulary) factor on each drug's effect after a failed course of it or its class
    (:mod:`planner.simulate.retrial`), None: none."""
    drug_idx = np.asarray(drug_idx)
    n = drug_idx.shape[0]
    out = np.zeros(n)
    for j, entry in enumerate(area.formulary):
        rows = np.nonzero(drug_idx == j)[0]
        if rows.size == 0:
            continue
        cprior = area.class_prior(entry.drug_class)
        beta = truth.drug_effect[entry.ingredient]
        shift = np.zeros(rows.size)
        for feat, per_unit, center in truth.modifiers.get(entry.drug_class, []):
            v = values.get(feat)
            if v is None:
                continue
            x = np.asarray(v, dtype=float)[rows]
            shift += per_unit * np.where(np.isnan(x), 0.0, x - center)
        e = beta + entry.relative_potency * shift
        e = np.where(e * beta < 0, 0.0, e)
        d = np.asarray(dose, dtype=float)[rows]
        ratio = np.where(np.isnan(d), 1.0, d / entry.reference_dose)
        e = dose_scaled_effect(
            e,
            ratio,
            cprior.dose_response,
            per_doubling=truth.per_doubling.get(entry.drug_class),
            ed50=truth.ed50.get(entry.drug_class),
        )
        for gene, phenos, drugs, factor in truth.pgx_efficacy:
            if entry.ingredient in drugs and gene in phenotypes:
                ph = np.asarray(phenotypes[gene], dtype=object)[rows]
                e = np.where(np.isin(ph, list(phenos)), e * factor, e)
        if retrial is not None:
            e = e * retrial[rows, j]
        out[rows] = e
    return out


def _feature_values(area: Area, features: pd.DataFrame) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    values: dict[str, np.ndarray] = {}
    for name in (f.name for f in area.features if f.kind != "pgx"):
        col = f"true_{name}" if f"true_{name}" in features.columns else name
        if col in features.columns:
            values[name] = pd.to_numeric(features[col], errors="coerce").to_numpy(dtype=float)
    phen: dict[str, np.ndarray] = {}
    for gene, name in _pgx_feature_names(area).items():
        col = f"true_{name}"
        if col in features.columns:
            phen[gene] = features[col].astype(object).to_numpy()
    return values, phen


RETRIAL = "true_retrial:"  # + ingredient: factor on that drug's effect after a failed course (1: none)


def _retrial_factors(area: Area, features: pd.DataFrame) -> np.ndarray | None:
    cols = [RETRIAL + d.ingredient for d in area.formulary]
    if not any(c in features.columns for c in cols):
        return None
    return np.stack(
        [
            pd.to_numeric(features[c], errors="coerce").fillna(1.0).to_numpy(dtype=float)
            if c in features.columns
            else np.ones(len(features))
            for c in cols
        ],
        axis=1,
    )


def expected_outcome(
    area: Area, features: pd.DataFrame, regimens: "list[Regimen]", *, truth_params: TruthParams
) -> np.ndarray:
    """TRUE expected follow-up outcome (outcome units) of each regimen for each row: shape (n_rows, n_regimens).

    ``features`` needs the column ``latent_untreated`` (the simulator's decisions frame has it, with every
    ``true_*`` column the truth reads). Regimen drugs must be in the area formulary; a drug's dose ``None``
    means its reference dose.
    """
    if truth_params.area_id != area.id:
        raise ConfigError(
            "truth parameters belong to another area",
            field="truth_params.area_id",
            value=truth_params.area_id,
            expected=area.id,
        )
    if LATENT not in features.columns:
        raise ConfigError(
            "features lack the latent untreated level",
            field="features",
            value=list(features.columns)[:8],
            expected=f"a '{LATENT}' column (use SimCohort.decisions)",
        )
    latent = pd.to_numeric(features[LATENT], errors="coerce").to_numpy(dtype=float)
    values, phen = _feature_values(area, features)
    n = len(features)
    retrial = _retrial_factors(area, features)
    index = {d.ingredient: j for j, d in enumerate(area.formulary)}
    cache: dict[tuple[str, float], np.ndarray] = {}
    out = np.empty((n, len(regimens)))
    base = np.log(latent) if area.outcome.scale == "log" else latent
    for k, reg in enumerate(regimens):
        cols = []
        for dd in reg.drugs:
            if dd.ingredient not in index:
                raise AreaError(
                    "regimen drug not in the formulary",
                    field=f"{area.id}.formulary",
                    value=dd.ingredient,
                    expected="one of " + ", ".join(index),
                )
            dose = float("nan") if dd.dose_mg_day is None else float(dd.dose_mg_day)
            key = (dd.ingredient, dose)
            if key not in cache:
                cache[key] = drug_effects(
                    area, truth_params, np.full(n, index[dd.ingredient]), np.full(n, dose), values, phen, retrial
                )
            cols.append(cache[key])
        eff = combine_effects(np.stack(cols, axis=1), truth_params.subadditivity) if cols else np.zeros(n)
        y = base + eff
        out[:, k] = np.exp(y) if area.outcome.scale == "log" else y
    return out
