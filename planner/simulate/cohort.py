"""The cohort simulator: longitudinal patients of one area with a known true world, in memory and fast.

Generative story (per area file ``simulation`` block, seed ``s``; every patient i)::

    truth            = draw_truth(area, s)                               # see planner.simulate.truth
    age_i ~ N(mean, sd) clipped; female_i ~ Bernoulli(female_share); index date ~ U(2014-01-01, +5 y)
    quantity q (bmi, egfr, ...): base ~ N(mean + age_slope (age - 60), sd), drifts per_year, clipped
    comorbidity k ~ Bernoulli(prevalence), onset before index or (incident_share) during follow-up
    untreated level correlates with quantities/age (untreated_slopes); comorbidities with quantities
        (prevalence_below, e.g. CKD more likely when eGFR < 60)
    genotype panel ~ Bernoulli(tested_share), dated; alleles ~ population frequencies (Hardy-Weinberg);
        biology uses every patient's true phenotype, the record only shows tested ones
    drug allergy ~ Bernoulli(drug_allergy_share): one formulary drug (clinicians never prescribe it)
    untreated level u_i(t) = N(untreated_mean, untreated_sd) + drift_i t    (model scale; drift_i ~ N)
    prevalent users (prevalent_share): a first-line drug started 1-24 months before the first visit
    visits every U(visit_interval_days); drop-out per year; follow-up U(followup_years)
    at each visit:
        outcome measured unless missed (missed_lab): y = u_i(t) + E_i + N(0, noise_sd), rounded, clipped
        other quantities measured with their own probability, with noise
        stops for intolerance (stop_probability per drug)
        if y is above the patient's target: act with p = act_probability (1 - exp(-gap / act_gap)):
            uptitrate | add a class | switch a class (action_weights; choice log-weights with feature terms,
            combination limits, exclusions by eGFR, allergies) -> a new regimen, dated this day
        if y is below target by act_gap: step down with deescalate_probability
    a new drug or dose may cause an early adverse stop 10-55 days later (base + PGx stop_probability):
        a change before any follow-up is possible (the "overlapping-change" drop of the episode rules)
    E_i (the regimen's true effect) is fixed when the regimen starts, from the true features at that day.

Decisions frame (``SimCohort.decisions``), one row per change of the area regimen (every candidate t0):

======================  ===========================================================================
column                  meaning
======================  ===========================================================================
patient_id              the Patient.id written to FHIR
decision                0-based number of the change within the patient
t0                      date of the change (datetime64[ns]; a day)
day                     days since the patient's first visit (negative: prevalent start)
reason                  prevalent | start | uptitrate | add | switch | deescalate | stop-adverse | stop
regimen_before          :class:`~planner.record.Regimen` active the day before t0 (object column)
regimen                 :class:`~planner.record.Regimen` active from t0 (object column)
regimen_before_key      ``Regimen.key()`` strings of the two (e.g. ``metformin@1000+sitagliptin@100``)
regimen_key
baseline, baseline_date latest outcome in [t0-180 d, t0] (NaN/NaT when none), outcome units
followup, followup_date closest to t0+180 d in [t0+60 d, t0+365 d] and on or before the next change
episode                 True when both exist (the episode rules keep it)
drop_reason             None | no-baseline | overlapping-change | no-follow-up (first failing rule)
next_t0                 date of the next change (NaT if none)
target                  the patient's target at t0 (area target rules)
<feature>               each area feature as the record shows it at t0 (NaN when not measured in its
                        lookback; pgx features: CPIC phenotype or "not-tested"); equal to what
                        planner.features.features_at gives on the ingested record
cur_<class>, cur_n_drugs  the current regimen (regimen_before): dose / reference dose per class, count
true_<feature>          the noise-free value the truth uses (true_baseline: expected outcome at t0 under
                        regimen_before; true_<pgx>: the true phenotype, tested or not)
latent_untreated        expected outcome at t0+followup_days with no drug (outcome units)
true_expected           TRUE expected follow-up outcome under ``regimen`` (outcome units)
true_expected_before    the same under ``regimen_before`` (continuing unchanged)
======================  ===========================================================================

Evaluate any regimen: ``planner.simulate.expected_outcome(area, cohort.decisions, regimens,
truth_params=cohort.truth)`` (or ``cohort.expected_outcome(regimens)``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from ..areas import Area, combine_effects, enumerate_regimens, load_area
from ..errors import ConfigError
from ..record import Regimen
from .population import load_pgx_population, sample_diplotypes
from .truth import LATENT, TruthParams, draw_truth, drug_effects, expected_outcome

__all__ = ["SimCohort", "simulate_cohort"]

_EPOCH = dt.date(2014, 1, 1)
_DAYS_PER_YEAR = 365.25


@dataclasses.dataclass
class _Logs:
    """Everything the record of each patient holds (columnar), for FHIR writing and PatientRecords."""

    # measurements: quantity -> (pid, day, value)
    obs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    # medication requests: pid, drug index, dose, start day, end day (or nan), status, end written
    meds: pd.DataFrame
    # conditions: pid, code, display, onset day
    conditions: pd.DataFrame
    # genotype results: pid, gene, diplotype, phenotype, day
    pgx: pd.DataFrame
    # drug allergies: pid, drug index, day
    allergies: pd.DataFrame


@dataclasses.dataclass
class SimCohort:
    """A simulated cohort of one area: decisions with truth, patients, and the records' raw material.

    ``decisions``: the frame documented in this module's docstring. ``truth``: the true world.
    ``patients``: one row per patient (patient_id, birth_date, sex, index_date, end_date, allergy,
    tested, true phenotypes). Use :meth:`write_fhir` for FHIR bundles + truth Parquet and :meth:`records` for
    :class:`~planner.record.PatientRecord` objects built directly (no FHIR round trip).
    """

    area: Area
    seed: int
    n: int
    truth: TruthParams
    decisions: pd.DataFrame
    patients: pd.DataFrame
    logs: _Logs
    latent: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)  # per-patient hidden state

    @property
    def episodes(self) -> pd.DataFrame:
        """The decisions the episode rules keep (``decisions[decisions.episode]``)."""
        return self.decisions[self.decisions["episode"]]

    def truth_rows(self, patient_ids: "list[str] | np.ndarray", dates: Any) -> pd.DataFrame:
        """Rows for :func:`expected_outcome` at any (patient, date), e.g. the date a recommendation is made:
        ``patient_id``, ``t0``, every ``true_<feature>``, ``latent_untreated`` (expected untreated outcome at
        date + followup_days) and ``current_key`` (the regimen active that day). At a decision's own t0 the
        values equal that decision's row."""
        area, lat = self.area, self.latent
        ids = np.asarray(patient_ids, dtype=object)
        when = pd.to_datetime(pd.Series(dates)).to_numpy(dtype="datetime64[D]")
        if ids.shape[0] != when.shape[0]:
            raise ConfigError(
                "patient_ids and dates differ in length",
                field="dates",
                value=int(when.shape[0]),
                expected=f"{ids.shape[0]} dates",
            )
        pos = {p: i for i, p in enumerate(self.patients["patient_id"])}
        missing = [p for p in ids if p not in pos]
        if missing:
            raise ConfigError("unknown simulated patient", field="patient_ids", value=missing[0])
        rows = np.array([pos[p] for p in ids], dtype=int)
        index_date = self.patients["index_date"].to_numpy(dtype="datetime64[D]")[rows]
        day = (when - index_date).astype(int)
        log = area.outcome.scale == "log"
        to_model = np.log if log else (lambda x: x)
        # effect of the regimen active on that day: from the latest decision on or before it
        dec = self.decisions
        eff = np.zeros(rows.size)
        keys = np.full(rows.size, "none", dtype=object)
        if len(dec):
            dpid = dec["patient_id"].map(pos).to_numpy()
            dday = dec["day"].to_numpy()
            deff = to_model(dec["true_expected"].to_numpy()) - to_model(dec[LATENT].to_numpy())
            order = np.lexsort((dday, dpid))
            dkey = dpid[order].astype(np.int64) * (1 << 22) + dday[order] + (1 << 20)
            qkey = rows.astype(np.int64) * (1 << 22) + day + (1 << 20)
            j = np.searchsorted(dkey, qkey, side="right") - 1
            ok = (j >= 0) & (dpid[order][np.maximum(j, 0)] == rows)
            eff = np.where(ok, deff[order][np.maximum(j, 0)], 0.0)
            keys = np.where(ok, dec["regimen_key"].to_numpy()[order][np.maximum(j, 0)], "none")
        u = lat["u0"][rows] + lat["drift"][rows] * day / 365.0
        back = np.exp if log else (lambda x: x)
        out: dict[str, Any] = {"patient_id": ids, "t0": when.astype("datetime64[ns]"), "day": day, "current_key": keys}
        qspec = {q.quantity: q for q in area.simulation.quantities}
        for f in area.features:
            if f.kind == "age":
                v = (lat["birth_offset"][rows] + day) / 365.25
            elif f.kind == "sex":
                v = lat["female"][rows].astype(float)
            elif f.kind == "baseline":
                v = back(u + eff)
            elif f.kind == "quantity":
                q = qspec.get(f.quantity or "")
                v = (
                    np.full(rows.size, np.nan)
                    if q is None
                    else np.clip(lat["qbase"][q.quantity][rows] + q.per_year * day / 365.0, q.low, q.high)
                )
            elif f.kind == "condition":
                onset = lat["cond_onset"].get(f.name)
                v = np.zeros(rows.size) if onset is None else (onset[rows] <= day).astype(float)
            else:  # pgx
                ph = lat["phenotype"].get(f.gene or "")
                v = ph[rows] if ph is not None else np.full(rows.size, "Normal", dtype=object)
            out["true_" + f.name] = v
        out[LATENT] = back(lat["u0"][rows] + lat["drift"][rows] * (day + area.outcome.followup_days) / 365.0)
        return pd.DataFrame(out)

    def expected_outcome(self, regimens: "list[Regimen]", rows: pd.DataFrame | None = None) -> np.ndarray:
        """TRUE expected follow-up of each regimen for each decision row (n_rows, n_regimens)."""
        frame = self.decisions if rows is None else rows
        return expected_outcome(self.area, frame, regimens, truth_params=self.truth)

    def truth_table(self, regimens: "list[Regimen] | None" = None) -> pd.DataFrame:
        """Decisions (without object columns) plus one column ``truth:<regimen key>`` per regimen
        (default: every regimen of ``enumerate_regimens(area, doses="reference")``)."""
        regs = enumerate_regimens(self.area, doses="reference") if regimens is None else regimens
        base = self.decisions.drop(columns=["regimen", "regimen_before"])
        vals = self.expected_outcome(regs)
        extra = pd.DataFrame(vals, columns=[f"truth:{r.key()}" for r in regs], index=base.index)
        return pd.concat([base, extra], axis=1)

    def records(self) -> list[Any]:
        """PatientRecords built directly from the simulation (what ingest should produce from the bundles)."""
        from .records import build_records

        return build_records(self)

    def write_fhir(
        self, out_dir: str, *, truth_regimens: "list[Regimen] | None" = None, overwrite: bool = False
    ) -> dict[str, Any]:
        """Write one FHIR R4 transaction bundle per patient (``<out>/fhir/<patient_id>.json``) and the truth
        (``<out>/truth.parquet``, ``<out>/truth_params.yaml``). Byte-identical for the same area, n and seed.
        A folder that already holds bundles is refused unless ``overwrite`` (which removes them first)."""
        from .fhir import write_cohort

        return write_cohort(self, out_dir, truth_regimens=truth_regimens, overwrite=overwrite)


# ---- helpers ------------------------------------------------------------------------------------------


def _to_units(area: Area, y: np.ndarray) -> np.ndarray:
    return np.exp(y) if area.outcome.scale == "log" else y


def _gumbel_choice(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row-wise categorical draw from log-weights (-inf = unavailable); -1 when a row has none available."""
    g = scores + rng.gumbel(size=scores.shape)
    choice = np.argmax(g, axis=1)
    none = ~np.isfinite(scores).any(axis=1)
    choice[none] = -1
    return choice


class _Sim:
    """One simulation run (internal): state arrays over patients, event logs."""

    def __init__(self, area: Area, n: int, seed: int) -> None:
        if area.simulation is None:
            raise ConfigError(
                "area has no simulation block",
                field=f"{area.id}.simulation",
                expected="a 'simulation:' section in the area file",
            )
        if area.combination.max_per_class != 1:
            raise ConfigError(
                "the simulator supports one drug per class",
                field="combination.max_per_class",
                value=area.combination.max_per_class,
                expected="1",
            )
        self.area = area
        self.sim = area.simulation
        self.n = int(n)
        self.seed = int(seed)
        self.rng = np.random.default_rng([self.seed, 104729, self.n])
        self.truth = draw_truth(area, self.seed)
        self.classes = list(area.class_ids)
        self.C = len(self.classes)
        self.D = len(area.formulary)
        self.drug_class = np.array([self.classes.index(d.drug_class) for d in area.formulary])
        self.levels = [np.array(d.doses, dtype=float) for d in area.formulary]
        self.nlev = np.array([len(x) for x in self.levels])
        self.feature_names = [f.name for f in area.features]
        self.end_day = np.zeros(self.n, dtype=int)  # last visit day per patient

    # ---- population ----------------------------------------------------------------------------------
    def population(self) -> None:
        n, rng, sim, area = self.n, self.rng, self.sim, self.area
        a_mean, a_sd, a_min, a_max = sim.age
        self.age0 = np.clip(rng.normal(a_mean, a_sd, n), a_min, a_max)
        self.female = rng.random(n) < sim.female_share
        self.index_day = rng.integers(0, 5 * 365, n)  # days since _EPOCH
        self.birth_offset = np.round(self.age0 * _DAYS_PER_YEAR).astype(int)  # days before index
        self.horizon = np.round(rng.uniform(*sim.followup_years, n) * 365).astype(int)
        self.u0 = rng.normal(sim.untreated_mean, sim.untreated_sd, n)  # correlations added below
        self.drift = (
            rng.normal(sim.drift_per_year, sim.drift_sd, n) if sim.drift_sd > 0 else np.full(n, sim.drift_per_year)
        )
        self.qbase = {}
        for q in sim.quantities:
            self.qbase[q.quantity] = np.clip(
                rng.normal(q.mean + q.age_slope * (self.age0 - 60), q.sd, n), q.low, q.high
            )
        qmean = {q.quantity: q.mean for q in sim.quantities}
        for q, slope in sim.untreated_slopes.items():
            x = self.age0 - a_mean if q == "age" else self.qbase[q] - qmean[q]
            self.u0 = self.u0 + slope * x
        self.cond_onset = {}
        for c in sim.conditions:
            prev = np.full(n, c.prevalence)
            for q, (below, p_below) in c.prevalence_below.items():
                prev = np.where(self.qbase[q] < below, p_below, prev)
            has = rng.random(n) < prev
            incident = rng.random(n) < c.incident_share
            onset = np.where(
                incident, rng.integers(30, np.maximum(self.horizon, 31)), -rng.integers(30, 3650, n)
            ).astype(float)
            self.cond_onset[c.feature] = np.where(has, onset, np.inf)
        self.area_onset = -rng.integers(30, 3 * 365, n)
        tested_share, genes = load_pgx_population()
        self.tested = rng.random(n) < tested_share
        self.test_day = rng.integers(-1000, np.maximum(self.horizon, 1), n)
        self.diplotype: dict[str, np.ndarray] = {}
        self.phenotype: dict[str, np.ndarray] = {}
        for gene in area.pgx_genes:
            if gene in genes:
                self.diplotype[gene], self.phenotype[gene] = sample_diplotypes(genes[gene], n, rng)
        self.gene_pop = genes
        has_allergy = rng.random(n) < sim.drug_allergy_share
        self.allergy = np.where(has_allergy, rng.integers(0, self.D, n), -1)
        self.allergy_day = -rng.integers(100, 4000, n)
        # per-drug stop probability (early adverse stop) by patient: base + PGx
        stop = np.full((n, self.D), sim.stop_probability * 2)
        for e in area.pgx_effects:
            if e.gene not in self.phenotype or e.stop_probability <= 0:
                continue
            hit = np.isin(self.phenotype[e.gene], list(e.phenotypes))
            for dname in e.drugs:
                j = area.drug_names.index(dname)
                stop[hit, j] = 1 - (1 - stop[hit, j]) * (1 - e.stop_probability)
        self.early_stop = stop

    # ---- true features ---------------------------------------------------------------------------------
    def true_values(self, rows: np.ndarray, day: np.ndarray, cur_eff: np.ndarray) -> dict[str, np.ndarray]:
        vals: dict[str, np.ndarray] = {}
        qspec = {q.quantity: q for q in self.sim.quantities}
        for f in self.area.features:
            if f.kind == "age":
                vals[f.name] = (self.birth_offset[rows] + day) / _DAYS_PER_YEAR
            elif f.kind == "sex":
                vals[f.name] = self.female[rows].astype(float)
            elif f.kind == "baseline":
                vals[f.name] = _to_units(self.area, self.u0[rows] + self.drift[rows] * day / 365.0 + cur_eff)
            elif f.kind == "quantity":
                q = qspec.get(f.quantity or "")
                if q is None:
                    vals[f.name] = np.full(rows.size, np.nan)
                else:
                    vals[f.name] = np.clip(self.qbase[q.quantity][rows] + q.per_year * day / 365.0, q.low, q.high)
            elif f.kind == "condition":
                onset = self.cond_onset.get(f.name)
                vals[f.name] = np.zeros(rows.size) if onset is None else (onset[rows] <= day).astype(float)
        return vals

    def phenos(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return {g: p[rows] for g, p in self.phenotype.items()}

    def regimen_effect(
        self, rows: np.ndarray, drug: np.ndarray, lvl: np.ndarray, values: dict[str, np.ndarray]
    ) -> np.ndarray:
        """True effect (model scale) of the slot regimens ``drug``/``lvl`` (rows x C) for ``rows``."""
        ph = self.phenos(rows)
        cols = []
        for c in range(self.C):
            d = drug[:, c]
            dose = np.full(rows.size, np.nan)
            on = d >= 0
            if on.any():
                dose[on] = [self.levels[j][k] for j, k in zip(d[on], lvl[on, c])]
            cols.append(drug_effects(self.area, self.truth, d, dose, values, ph))
        return combine_effects(np.stack(cols, axis=1), self.truth.subadditivity)

    # ---- clinician ---------------------------------------------------------------------------------------
    def class_scores(self, rows: np.ndarray, drug: np.ndarray, values: dict[str, np.ndarray]) -> np.ndarray:
        """Choice log-weights of each class for ``rows`` given current slots ``drug`` (-inf: not allowed)."""
        area = self.area
        scores = np.full((rows.size, self.C), -np.inf)
        spec = {c.id: c for c in self.sim.class_choice}
        on = drug >= 0
        for ci, cid in enumerate(self.classes):
            ch = spec.get(cid)
            s = np.full(rows.size, ch.weight if ch else 0.0)
            if ch:
                for t in ch.terms:
                    v = values.get(t.feature)
                    if v is None:
                        continue
                    hit = np.ones(rows.size, dtype=bool)
                    if t.above is not None:
                        hit &= v > t.above
                    if t.below is not None:
                        hit &= v < t.below
                    s = s + np.where(hit, t.add, 0.0)
                for feat, thr in ch.exclude_below.items():
                    v = values.get(feat)
                    if v is not None:
                        s = np.where(v < thr, -np.inf, s)
            ok = ~on[:, ci]
            for group in area.combination.exclusive_classes:
                if cid in group:
                    for other in group:
                        if other != cid:
                            ok &= ~on[:, self.classes.index(other)]
            drugs_c = np.nonzero(self.drug_class == ci)[0]
            allergic_all = np.isin(self.allergy[rows], drugs_c) & (drugs_c.size == 1)
            ok &= ~allergic_all
            scores[:, ci] = np.where(ok, s, -np.inf)
        n_on = on.sum(axis=1)
        scores[n_on >= area.combination.max_drugs] = -np.inf
        return scores

    def pick_drug(self, rows: np.ndarray, cls: np.ndarray) -> np.ndarray:
        """A drug of class ``cls[i]`` for each row (by prescribing share among the class's non-allergic drugs)."""
        share = np.log(np.array([d.share for d in self.area.formulary]))
        w = np.where(self.drug_class[None, :] == cls[:, None], share[None, :], -np.inf)
        allergic = self.allergy[rows]
        w[np.arange(rows.size)[allergic >= 0], allergic[allergic >= 0]] = -np.inf
        return _gumbel_choice(w, self.rng)

    # ---- run -------------------------------------------------------------------------------------------
    def run(self) -> SimCohort:
        self.population()
        n, rng, sim, area = self.n, self.rng, self.sim, self.area
        C = self.C
        drug = np.full((n, C), -1, dtype=int)
        lvl = np.zeros((n, C), dtype=int)
        cur_eff = np.zeros(n)
        req = np.full((n, C), -1, dtype=int)  # open request index per slot
        self.med_rows: list[list[Any]] = []  # [pid, drug, dose, start, end, status, end_written]
        self.dec: list[dict[str, np.ndarray]] = []
        obs_log: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {area.outcome.quantity: []}
        for q in sim.quantities:
            obs_log.setdefault(q.quantity, [])

        def apply(
            rows: np.ndarray, new_drug: np.ndarray, new_lvl: np.ndarray, day: np.ndarray, reason: np.ndarray
        ) -> None:
            """Record changes for rows whose slots differ; update state, requests, effects, early stops."""
            nonlocal drug, lvl, cur_eff
            changed = ((new_drug != drug[rows]) | ((new_lvl != lvl[rows]) & (new_drug >= 0))).any(axis=1)
            rows, new_drug, new_lvl, day, reason = (
                rows[changed],
                new_drug[changed],
                new_lvl[changed],
                day[changed],
                reason[changed],
            )
            if rows.size == 0:
                return
            vals = self.true_values(rows, day, cur_eff[rows])
            latent = self.u0[rows] + self.drift[rows] * (day + area.outcome.followup_days) / 365.0
            rec = {
                "pid": rows,
                "day": day,
                "reason": reason,
                "drug_before": drug[rows].copy(),
                "lvl_before": lvl[rows].copy(),
                "drug_after": new_drug.copy(),
                "lvl_after": new_lvl.copy(),
                LATENT: _to_units(area, latent),
            }
            for k, v in vals.items():
                rec["true_" + k] = v
            self.dec.append(rec)
            new_eff = self.regimen_effect(rows, new_drug, new_lvl, vals)
            # medication requests
            for r_i, i in enumerate(rows.tolist()):
                d_day = int(day[r_i])
                for c in range(C):
                    od, nd = drug[i, c], new_drug[r_i, c]
                    ol, nl = lvl[i, c], new_lvl[r_i, c]
                    if od == nd and (od < 0 or ol == nl):
                        continue
                    if od >= 0:
                        row = self.med_rows[req[i, c]]
                        row[4] = d_day
                        if od == nd:  # dose change: the later request ends it; end date written half the time
                            row[5] = "completed"
                            row[6] = bool(rng.random() < 0.5)
                        else:
                            row[5] = "stopped"
                            row[6] = True
                        req[i, c] = -1
                    if nd >= 0:
                        req[i, c] = len(self.med_rows)
                        self.med_rows.append([i, int(nd), float(self.levels[nd][nl]), d_day, None, "active", False])
            # early adverse stops for new drugs / doses
            started = (new_drug >= 0) & ((new_drug != drug[rows]) | (new_lvl != lvl[rows]))
            p = np.where(started, self.early_stop[rows[:, None], np.maximum(new_drug, 0)], 0.0)
            hit = rng.random(p.shape) < p
            any_hit = hit.any(axis=1)
            slot = np.argmax(hit, axis=1)
            delay = rng.integers(10, 56, rows.size)
            pend_day[rows] = np.where(any_hit, day + delay, np.inf)
            pend_slot[rows] = np.where(any_hit, slot, -1)
            drug[rows] = new_drug
            lvl[rows] = new_lvl
            cur_eff[rows] = new_eff

        pend_day = np.full(n, np.inf)
        pend_slot = np.full(n, -1, dtype=int)

        def process_pending(rows: np.ndarray) -> None:
            if rows.size == 0:
                return
            nd, nl = drug[rows].copy(), lvl[rows].copy()
            nd[np.arange(rows.size), pend_slot[rows]] = -1
            nl[np.arange(rows.size), pend_slot[rows]] = 0
            d = pend_day[rows].astype(int)
            pend_day[rows] = np.inf
            apply(rows, nd, nl, d, np.full(rows.size, "stop-adverse", dtype=object))

        # prevalent users: a first-line (or preferred) class started before the first visit
        prev = np.nonzero(rng.random(n) < sim.prevalent_share)[0]
        if prev.size:
            # started 1-24 months before the first visit, after the diagnosis
            latest = np.minimum(720, -self.area_onset[prev])
            pday = -(30 + np.floor(rng.random(prev.size) * np.maximum(latest - 30, 1))).astype(int)
            vals = self.true_values(prev, pday, np.zeros(prev.size))
            cls = _gumbel_choice(self.class_scores(prev, drug[prev], vals), rng)
            ok = cls >= 0
            prev, pday, cls = prev[ok], pday[ok], cls[ok]
            dj = self.pick_drug(prev, cls)
            ok = dj >= 0
            prev, pday, cls, dj = prev[ok], pday[ok], cls[ok], dj[ok]
            nd, nl = drug[prev].copy(), lvl[prev].copy()
            nd[np.arange(prev.size), cls] = dj
            ref_lvl = np.array([int(np.argmin(np.abs(self.levels[j] - area.formulary[j].reference_dose))) for j in dj])
            nl[np.arange(prev.size), cls] = np.minimum(ref_lvl, np.maximum(self.nlev[dj] - 1, 0))
            apply(prev, nd, nl, pday, np.full(prev.size, "prevalent", dtype=object))
            late = prev[pend_day[prev] < 0]
            process_pending(late)
            pend_day[prev[pend_day[prev] >= 0]] = np.inf  # a stop after the first visit: not simulated

        day = np.zeros(n, dtype=int)
        alive = np.ones(n, dtype=bool)
        noise = self.truth.noise_sd
        qspec = list(sim.quantities)
        lo, hi = area.outcome.plausible
        direction = 1.0 if area.outcome.direction == "lower" else -1.0
        while alive.any():
            rows = np.nonzero(alive)[0]
            d = day[rows]
            process_pending(rows[pend_day[rows] < d])
            # measurements
            mu = self.u0[rows] + self.drift[rows] * d / 365.0 + cur_eff[rows]
            measured = rng.random(rows.size) >= sim.missed_lab
            y = _to_units(area, mu + rng.normal(0.0, noise, rows.size))
            y = np.clip(np.round(y, sim.outcome_decimals), lo, hi)
            obs_log[area.outcome.quantity].append((rows[measured], d[measured], y[measured]))
            for q in qspec:
                m = rng.random(rows.size) < q.measure_probability
                v = np.clip(self.qbase[q.quantity][rows] + q.per_year * d / 365.0, q.low, q.high)
                v = np.clip(np.round(v + rng.normal(0.0, q.noise_sd, rows.size), q.decimals), q.low, q.high)
                if q.decimals == 0:
                    v = np.round(v)
                obs_log[q.quantity].append((rows[m], d[m], v[m]))
            # the clinician
            vals = self.true_values(rows, d, cur_eff[rows])
            nd, nl = drug[rows].copy(), lvl[rows].copy()
            reason = np.full(rows.size, "", dtype=object)
            on = nd >= 0
            stop = on & (rng.random(nd.shape) < sim.stop_probability)
            if stop.any():
                nd[stop] = -1
                nl[stop] = 0
                reason[stop.any(axis=1)] = "stop"
            target = self.targets(rows, d, vals)
            gap = direction * (y - target)
            p_act = sim.act_probability * (1.0 - np.exp(-np.maximum(gap, 0.0) / sim.act_gap))
            act = measured & (rng.random(rows.size) < p_act)
            self.intensify(rows, act, nd, nl, vals, reason)
            down = measured & ~act & (gap < -sim.act_gap) & (rng.random(rows.size) < sim.deescalate_probability)
            self.deescalate(down, nd, nl, reason)
            apply(rows, nd, nl, d, reason)
            # next visit or the end
            gapd = rng.integers(sim.visit_interval_days[0], sim.visit_interval_days[1] + 1, rows.size)
            p_drop = 1 - (1 - sim.dropout_per_year) ** (gapd / 365.0)
            nxt = d + gapd
            end = (nxt > self.horizon[rows]) | (rng.random(rows.size) < p_drop)
            ended = rows[end]
            self.end_day[ended] = d[end]
            process_pending(ended[pend_day[ended] <= self.end_day[ended] + 30])
            pend_day[ended] = np.inf
            alive[ended] = False
            day[rows[~end]] = nxt[~end]
        return self.finish(obs_log)

    def targets(self, rows: np.ndarray, day: np.ndarray, vals: dict[str, np.ndarray]) -> np.ndarray:
        area = self.area
        target = np.full(rows.size, area.outcome.target)
        age = (self.birth_offset[rows] + day) / _DAYS_PER_YEAR
        from ..areas import code_matches

        for rule in reversed(area.outcome.target_rules):
            if not (rule.when_conditions or rule.when_min_age is not None):
                continue
            ok = np.ones(rows.size, dtype=bool)
            if rule.when_conditions:
                cm = np.zeros(rows.size, dtype=bool)
                if code_matches(self.sim.condition[0], rule.when_conditions):
                    cm[:] = True
                for c in self.sim.conditions:
                    if code_matches(c.code, rule.when_conditions):
                        cm |= vals.get(c.feature, np.zeros(rows.size)) > 0.5
                ok &= cm
            if rule.when_min_age is not None:
                ok &= age >= rule.when_min_age
            target = np.where(ok, rule.value, target)
        return target

    def intensify(
        self,
        rows: np.ndarray,
        act: np.ndarray,
        nd: np.ndarray,
        nl: np.ndarray,
        vals: dict[str, np.ndarray],
        reason: np.ndarray,
    ) -> None:
        rng = self.rng
        idx = np.nonzero(act)[0]
        if idx.size == 0:
            return
        r = rows[idx]
        sub_vals = {k: v[idx] for k, v in vals.items()}
        d_, l_ = nd[idx], nl[idx]
        on = d_ >= 0
        can_up = on & (l_ < (self.nlev[np.maximum(d_, 0)] - 1))
        scores = self.class_scores(r, d_, sub_vals)
        can_add = np.isfinite(scores).any(axis=1)
        can_switch = on.any(axis=1)
        aw = self.sim.action_weights
        w = np.log(np.array([max(aw.get(k, 0.0), 1e-12) for k in ("uptitrate", "add", "switch")]))
        opt = np.stack(
            [
                np.where(can_up.any(axis=1), w[0], -np.inf),
                np.where(can_add, w[1], -np.inf),
                np.where(can_switch, w[2], -np.inf),
            ],
            axis=1,
        )
        action = _gumbel_choice(opt, rng)
        # uptitrate
        up = np.nonzero(action == 0)[0]
        if up.size:
            slot = _gumbel_choice(np.where(can_up[up], 0.0, -np.inf), rng)
            l_[up, slot] += 1
            reason[idx[up]] = "uptitrate"
        # add (or start)
        ad = np.nonzero(action == 1)[0]
        if ad.size:
            cls = _gumbel_choice(scores[ad], rng)
            dj = self.pick_drug(r[ad], cls)
            ok = dj >= 0
            ad, cls, dj = ad[ok], cls[ok], dj[ok]
            reason[idx[ad]] = np.where(on[ad].any(axis=1), "add", "start")
            d_[ad, cls] = dj
            l_[ad, cls] = 0
        # switch: drop one class, add another
        sw = np.nonzero(action == 2)[0]
        if sw.size:
            drop = _gumbel_choice(np.where(on[sw], 0.0, -np.inf), rng)
            d2 = d_[sw].copy()
            d2[np.arange(sw.size), drop] = -1
            sc = self.class_scores(r[sw], d2, {k: v[sw] for k, v in sub_vals.items()})
            sc[np.arange(sw.size), drop] = -np.inf
            cls = _gumbel_choice(sc, rng)
            ok = cls >= 0
            dj = np.full(sw.size, -1)
            if ok.any():
                dj[ok] = self.pick_drug(r[sw][ok], cls[ok])
            ok &= dj >= 0
            sw, drop, cls, dj = sw[ok], drop[ok], cls[ok], dj[ok]
            d_[sw, drop] = -1
            l_[sw, drop] = 0
            d_[sw, cls] = dj
            l_[sw, cls] = 0
            reason[idx[sw]] = "switch"
        nd[idx], nl[idx] = d_, l_

    def deescalate(self, down: np.ndarray, nd: np.ndarray, nl: np.ndarray, reason: np.ndarray) -> None:
        idx = np.nonzero(down & (nd >= 0).any(axis=1))[0]
        if idx.size == 0:
            return
        d_, l_ = nd[idx], nl[idx]
        can_down = (d_ >= 0) & (l_ > 0)
        has_down = can_down.any(axis=1)
        slot = _gumbel_choice(np.where(can_down, 0.0, -np.inf), self.rng)
        slot_any = _gumbel_choice(np.where(d_ >= 0, 0.0, -np.inf), self.rng)
        k = np.arange(idx.size)
        l_[k[has_down], slot[has_down]] -= 1
        d_[k[~has_down], slot_any[~has_down]] = -1
        l_[k[~has_down], slot_any[~has_down]] = 0
        nd[idx], nl[idx] = d_, l_
        reason[idx] = "deescalate"

    # ---- assembling the outputs -------------------------------------------------------------------------
    def finish(self, obs_log: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]) -> SimCohort:
        from .frames import build_outputs

        return build_outputs(self, obs_log)


def simulate_cohort(area: "Area | str", n: int, *, seed: int) -> SimCohort:
    """Simulate ``n`` patients of ``area`` (an :class:`Area` or its id) with the true world of ``seed``.

    Deterministic: the same area file, ``n`` and ``seed`` give identical frames. The true world
    (:class:`TruthParams`) depends on the area and seed only, not on ``n``.
    """
    if isinstance(area, str):
        area = load_area(area)
    if int(n) < 1:
        raise ConfigError("cohort size must be positive", field="n", value=n, expected="an integer >= 1")
    return _Sim(area, int(n), int(seed)).run()
