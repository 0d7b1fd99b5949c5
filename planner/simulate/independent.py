"""A second cohort simulator, written apart from the outcome model's assumptions, for every area.

It shares nothing with :mod:`planner.simulate.cohort` or :mod:`planner.model` but the area file (formulary,
class effects at the reference dose, PGx efficacy factors, populations of quantities and conditions) and the
FHIR test writer (:class:`planner.testing.BundleBuilder`). Its parameters are in
``rules/areas/simulation/independent.yaml`` (design choices, not clinical facts).

Generative story (area A, seed s; ``x`` on the outcome's unit, ``z`` on the area scale (log for LDL-C))::

    world:  e_c   = A.effect_c * LogNormal(0, class_effect_spread)      # model scale at the reference dose
            pot_d = A.potency_d * LogNormal(0, drug_potency_spread)
            f_c   = |1 - exp(e_c)| (log scale) or |e_c| / (untreated_mean - floor)   # share of (level - floor)
            hidden modifiers a_c (age), h_c (bmi) ~ N(0, hidden_modifier_sd); clinicians' preference
            pref_c ~ N(0, class_preference_sd) and per-SD-bmi preference b_c = confounder_sd *
            (link * h_c / sd + sqrt(1 - link^2) * N(0, 1))      # confounding through a recorded variable
    patient i: age, sex, quantities q(t) = q0 + per_year t (the area's populations), conditions, genotypes
            sensitivity S_i ~ LogNormal(0, patient_sensitivity_sd), S_ic ~ LogNormal(0, class_sensitivity_sd)
            m_i = untreated_mean + sd (N(0, 1) + level_slope_bmi tanh((bmi - mean)/sd) + level_slope_age u(age))
            z_i(t) = m_i + d_i t + O_i(t);  d_i ~ N(0, drift_sd);  O_i Ornstein-Uhlenbeck (ou_sd, half-life)
    fraction removed by drug d of class c at dose ratio r (features at the regimen's start):
            F = pot_d f_c S_i S_ic H(r) M_c(x) P_d(phenotype),  clipped to [0, max_fraction]
            H(r) = (1 + k^h) r^h / (k^h + r^h)                  # Hill: 1 at the reference dose
            M_c(x) = prod_m exp(cap tanh(per_unit_m (x_m - center_m) / (e_c cap))) * exp(a_c tanh((age-60)/15)
                     + h_c tanh((bmi - 30) / 6))                 # area modifiers, saturating; baseline ones are
                                                                 # not used: the floor makes effects level-bound
    treated level:  y(t) = floor + (level(t) - floor) * prod_{d in R} (1 - F_d)     # sub-multiplicative
    lab:  irregular visits (Gamma(2) gaps, per-patient mean); the outcome lab is drawn more often above target;
          measured value = y(t) (+) noise_sd * t_df / sqrt(df / (df - 2)) (x exp() on a log scale), rounded
    failed courses (areas in rules/areas/simulation/retrial.yaml): a new drug is stopped for an adverse effect
          at a contact 5-40 days in (adverse_stop_probability; a re-trial of a drug not tolerated:
          restop_same_drug); a course of adequate_days whose own F_d < fall_below is one without response;
          afterwards F_d of that drug and its class-mates x the file's factor (the truth also x (1 - restop) for a
          drug not tolerated before); flags in the decisions' hist_nt:<drug> / hist_nr:<drug> columns
    clinician at a lab above target: acts with act_probability (1 - exp(-gap / act_gap)): uptitrate, add a
          class or switch, class chosen by softmax(pref_c + b_c z_bmi); stops; de-escalates below target

Truth: ``expected_outcome(rows, regimens)`` is the expected follow-up at t0 + followup_days under each regimen
given the patient's state at t0 (E over the OU part; on a log scale the geometric mean ``exp(E log y)``, as the
model's ``kind="mean"``); ``p_target(rows, regimens)`` is the probability that the follow-up *measurement*
(latent fluctuation and lab noise) meets the target, by Monte Carlo.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..areas import Area, load_area
from ..errors import ConfigError
from ..record import Regimen
from ..rule_files import read_yaml, rules_dir
from .independent_run import run_patients
from .population import load_pgx_population
from .retrial import load_retrial

__all__ = ["IndependentCohort", "simulate_independent", "PARAMS_FILE"]

PARAMS_FILE = "areas/simulation/independent.yaml"


def _params(rules: str | None) -> dict[str, Any]:
    return dict(read_yaml(rules_dir(rules) / PARAMS_FILE))


@dataclasses.dataclass
class _World:
    effect: np.ndarray  # (C,) model scale
    potency: np.ndarray  # (D,)
    frac: np.ndarray  # (C,) share of (level - floor) at the reference dose, reference patient
    hidden_age: np.ndarray
    hidden_bmi: np.ndarray
    pref: np.ndarray
    pref_bmi: np.ndarray
    floor: float


def _draw_world(area: Area, p: dict[str, Any], seed: int) -> _World:
    w = p["world"]
    rng = np.random.default_rng([seed, 7001])
    C = len(area.classes)
    eff = np.array([c.effect_on_scale() for c in area.classes]) * rng.lognormal(0, w["class_effect_spread"], C)
    pot = np.array([d.relative_potency for d in area.formulary]) * rng.lognormal(
        0, w["drug_potency_spread"], len(area.formulary)
    )
    floor = float(p["areas"][area.id]["floor"])
    if area.outcome.scale == "log":
        frac = np.abs(1.0 - np.exp(eff))
    else:
        frac = np.abs(eff) / max(area.simulation.untreated_mean - floor, 1e-6)
    ha = rng.normal(0, w["hidden_modifier_sd"], C)
    hb = rng.normal(0, w["hidden_modifier_sd"], C)
    c = p["clinic"]
    link = c["confounder_effect_link"]
    pb = c["confounder_sd"] * (
        link * hb / max(w["hidden_modifier_sd"], 1e-9) + math.sqrt(1 - link**2) * rng.normal(0, 1, C)
    )
    return _World(eff, pot, np.clip(frac, 0, 0.9), ha, hb, rng.normal(0, c["class_preference_sd"], C), pb, floor)


class IndependentCohort:
    """Patients of one area simulated by the independent world; FHIR bundles, decisions and truth.

    ``decisions``: one row per change of the area regimen: ``patient_id``, ``t0`` (datetime64), ``day``,
    ``reason``, ``regimen_before`` / ``regimen`` (:class:`~planner.record.Regimen`), ``target``, and the state
    the truth needs (``true_<feature>`` noise-free values at t0, ``state_mean`` / ``state_ou`` / ``state_drift``,
    ``sens`` and ``sens:<class>``). Join planner's episodes on (patient_id, t0).
    """

    def __init__(self, area: Area, seed: int, params: dict[str, Any], world: _World) -> None:
        self.area, self.seed, self.params, self.world = area, seed, params, world
        self.patients: list[dict[str, Any]] = []
        self.builders: list[Any] = []
        self._dec: list[dict[str, Any]] = []
        self.decisions = pd.DataFrame()
        self.retrial = load_retrial(area.id)

    @property
    def n(self) -> int:
        return len(self.patients)

    # ---- outputs -------------------------------------------------------------------------------------------
    def bundles(self) -> list[dict[str, Any]]:
        """One FHIR collection Bundle per patient; resource ids are unique across the cohort (``<patient>-obs-3``),
        as in an EHR export, so that a folder of them reads as one cohort."""
        out = []
        for b in self.builders:
            bundle = b.build()
            for e in bundle["entry"]:
                r = e["resource"]
                if r["resourceType"] != "Patient":
                    r["id"] = f"{b.patient_id}-{r['id']}"
                    e["fullUrl"] = f"{r['resourceType']}/{r['id']}"
            out.append(bundle)
        return out

    def records(self) -> list[Any]:
        """PatientRecords through the real ingest of each patient's FHIR bundle."""
        from ..ingest import read_record

        return [read_record(b) for b in self.bundles()]

    def write_fhir(self, out_dir: str, *, truth_regimens: "list[Regimen] | None" = None) -> dict[str, Any]:
        """``<out>/fhir/<patient_id>.json`` bundles, ``<out>/truth.parquet`` (decisions + ``truth:<key>`` per
        regimen, default: every reference-dose regimen of the area) and ``<out>/simulation.yaml``."""
        from pathlib import Path

        import orjson
        import yaml

        from ..areas import enumerate_regimens

        out = Path(out_dir)
        (out / "fhir").mkdir(parents=True, exist_ok=True)
        for bundle in self.bundles():
            pid = bundle["entry"][0]["resource"]["id"]
            (out / "fhir" / f"{pid}.json").write_bytes(orjson.dumps(bundle))
        regs = enumerate_regimens(self.area, doses="reference") if truth_regimens is None else truth_regimens
        base = self.decisions.drop(columns=["regimen", "regimen_before"]).copy()
        vals = self.expected_outcome(self.decisions, regs)
        extra = pd.DataFrame(vals, columns=[f"truth:{r.key()}" for r in regs], index=base.index)
        pd.concat([base, extra], axis=1).to_parquet(out / "truth.parquet")
        info = {
            "simulator": "independent",
            "area": self.area.id,
            "area_version": self.area.version,
            "seed": self.seed,
            "n": self.n,
            "params_version": self.params.get("version"),
            "decisions": int(len(self.decisions)),
        }
        (out / "simulation.yaml").write_text(yaml.safe_dump(info, sort_keys=True), encoding="utf-8")
        return info

    # ---- truth -----------------------------------------------------------------------------------------------
    def _rows(self, rows: pd.DataFrame) -> pd.DataFrame:
        if "state_mean" in rows.columns:
            return rows
        key = ["patient_id", "t0"]
        missing = [k for k in key if k not in rows.columns]
        if missing:
            raise ConfigError("rows lack the join keys", field="rows", value=missing, expected="patient_id, t0")
        d = self.decisions.drop(columns=["regimen", "regimen_before"])
        r = rows[key].copy()
        r["t0"] = pd.to_datetime(r["t0"]).dt.normalize().astype("datetime64[ns]")
        m = r.merge(d, on=key, how="left")
        if m["state_mean"].isna().any():
            raise ConfigError(
                "rows not among the simulated decisions",
                field="rows",
                value=int(m["state_mean"].isna().sum()),
                expected="(patient_id, t0) of a decision",
            )
        return m

    def _fractions(self, rows: Any, regimens: Sequence[Regimen], *, itt: bool = True) -> np.ndarray:
        """prod over each regimen's drugs of (1 - F_d): (n, R). ``rows``: a DataFrame or a dict of columns.
        With the patient's failed courses (``hist_nt:`` / ``hist_nr:`` columns) F_d is scaled by the re-trial
        factor; ``itt``: counting re-trials of a drug not tolerated that are stopped again (the truth)."""
        area, w, p = self.area, self.world, self.params["world"]

        def col(name: str, dtype: Any = float) -> np.ndarray:
            return np.atleast_1d(np.asarray(rows[name], dtype=dtype))

        retrial = None
        if self.retrial is not None and ("hist_nt:" + area.formulary[0].ingredient) in rows:
            nt = np.stack([col("hist_nt:" + e.ingredient) > 0.5 for e in area.formulary], axis=1)
            nr = np.stack([col("hist_nr:" + e.ingredient) > 0.5 for e in area.formulary], axis=1)
            retrial = self.retrial.factors(area, nt, nr, itt=itt)

        cls_ids = [c.id for c in area.classes]
        age = col("true_age")
        bmi = col("true_bmi") if "true_bmi" in rows else np.full(age.shape, 30.0)
        sens = col("sens")
        out = np.ones((age.shape[0], len(regimens)))
        for j, reg in enumerate(regimens):
            for dd in reg.drugs:
                di = next(k for k, e in enumerate(area.formulary) if e.ingredient == dd.ingredient)
                e = area.formulary[di]
                c = cls_ids.index(e.drug_class)
                klass = area.classes[c]
                r = (dd.dose_mg_day or e.reference_dose) / e.reference_dose
                k = klass.dose_response.ed50 or p["hill_k_default"]
                h = p["hill"]
                hill = (1 + k**h) * r**h / (k**h + r**h)
                mod = np.exp(w.hidden_age[c] * np.tanh((age - 60) / 15) + w.hidden_bmi[c] * np.tanh((bmi - 30) / 6))
                cap = p["modifier_cap"]
                for m in klass.modifiers:
                    if m.feature == "baseline" or ("true_" + m.feature) not in rows:
                        continue
                    v = col("true_" + m.feature)
                    lin = m.per_unit * (np.where(np.isfinite(v), v, m.center) - m.center) / w.effect[c]
                    mod = mod * np.exp(cap * np.tanh(lin / cap))
                pg = np.ones(age.shape[0])
                for pe in area.pgx_effects:
                    if e.ingredient in pe.drugs and ("true_pgx:" + pe.gene) in rows:
                        hit = np.isin(col("true_pgx:" + pe.gene, object), list(pe.phenotypes))
                        pg = np.where(hit, pg * pe.efficacy_factor, pg)
                F = w.potency[di] * w.frac[c] * sens * col("sens:" + klass.id)
                F = np.clip(F * hill * mod * pg, 0.0, p["max_fraction"])
                if retrial is not None:
                    F = F * retrial[:, di]
                out[:, j] *= 1.0 - F
        return out

    def _level(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """E and SD of the latent untreated level z at t0 + followup_days given the state at t0 (area scale)."""
        p = self.params["world"]
        h = self.area.outcome.followup_days
        lam = math.log(2) / p["ou_halflife_days"]
        ou = rows["state_ou"].to_numpy(float) * math.exp(-lam * h)
        mean = (
            rows["state_mean"].to_numpy(float)
            + rows["state_drift"].to_numpy(float) * (rows["day"].to_numpy(float) + h) / 365.25
            + ou
        )
        sd = p["ou_sd"] * self.area.outcome.noise_sd * math.sqrt(1 - math.exp(-2 * lam * h))
        return mean, np.full(len(rows), sd)

    def expected_outcome(self, rows: pd.DataFrame, regimens: Sequence[Regimen]) -> np.ndarray:
        """TRUE expected follow-up (outcome units) of each regimen for each row (n, R); log scale: exp(E log y)."""
        rows = self._rows(rows)
        P = self._fractions(rows, regimens)
        zm, zs = self._level(rows)
        fl = self.world.floor
        if self.area.outcome.scale == "log":
            return np.exp(zm)[:, None] * P
        return fl + (zm - fl)[:, None] * P

    def p_target(
        self, rows: pd.DataFrame, regimens: Sequence[Regimen], *, draws: int = 2000, seed: int = 0
    ) -> np.ndarray:
        """TRUE probability that the follow-up measurement meets the row's target (lower is better), (n, R)."""
        rows = self._rows(rows)
        P = self._fractions(rows, regimens)
        zm, zs = self._level(rows)
        rng = np.random.default_rng([self.seed, seed, 31])
        z = zm[:, None] + zs[:, None] * rng.standard_normal((len(rows), draws))  # (n, S)
        df = self.params["world"]["noise_df"]
        noise = self.area.outcome.noise_sd * rng.standard_t(df, (len(rows), draws)) / math.sqrt(df / (df - 2))
        tgt = rows["target"].to_numpy(float)[:, None]
        out = np.empty(P.shape)
        fl = self.world.floor
        for j in range(P.shape[1]):
            if self.area.outcome.scale == "log":
                y = np.exp(z + np.log(P[:, j : j + 1]) + noise)
            else:
                y = fl + (z - fl) * P[:, j : j + 1] + noise
            out[:, j] = (y <= tgt).mean(1)
        return out


def simulate_independent(area: "Area | str", n: int, *, seed: int, rules: str | None = None) -> IndependentCohort:
    """Simulate ``n`` patients of ``area`` in the independent world (see the module docstring)."""
    if isinstance(area, str):
        area = load_area(area, rules)
    if n < 1:
        raise ConfigError("n must be positive", field="n", value=n, expected=">= 1")
    params = _params(rules)
    if area.id not in params["areas"]:
        raise ConfigError(
            "no independent-simulator parameters for this area",
            field="areas",
            value=area.id,
            expected="an entry in rules/" + PARAMS_FILE,
        )
    world = _draw_world(area, params, seed)
    cohort = IndependentCohort(area, seed, params, world)
    _, pops = load_pgx_population(rules)  # allele frequencies only (the tested share is this simulator's own)
    run_patients(cohort, n, pops)
    return cohort
