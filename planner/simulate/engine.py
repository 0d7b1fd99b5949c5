"""One simulation run, vectorized over patients: the generative story of :mod:`planner.simulate.cohort`
(population, true features and effects, the clinician, visits); :func:`planner.simulate.frames.build_outputs`
turns its state and logs into a :class:`~planner.simulate.result.SimCohort`."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..areas import Area, code_matches, combine_effects
from ..errors import ConfigError
from .population import load_pgx_population, sample_diplotypes
from .retrial import load_retrial
from .truth import LATENT, RETRIAL, draw_truth, drug_effects

_DAYS_PER_YEAR = 365.25
_STOP_REASON = {"stop-adverse": "adverse reaction", "switch": "not effective"}  # MedicationRequest.statusReason

ObsLog = dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]  # quantity -> (pid, day, value) parts


def _to_units(area: Area, y: np.ndarray) -> np.ndarray:
    return np.exp(y) if area.outcome.scale == "log" else y


def _gumbel_choice(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row-wise categorical draw from log-weights (-inf = unavailable); -1 when a row has none available."""
    g = scores + rng.gumbel(size=scores.shape)
    choice = np.argmax(g, axis=1)
    none = ~np.isfinite(scores).any(axis=1)
    choice[none] = -1
    return choice


class SimRun:
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
        self.index_day = rng.integers(0, 5 * 365, n)  # days since result.EPOCH
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
        fac = self.retrial_factors(rows, itt=False)
        cols = []
        for c in range(self.C):
            d = drug[:, c]
            dose = np.full(rows.size, np.nan)
            on = d >= 0
            if on.any():
                dose[on] = [self.levels[j][k] for j, k in zip(d[on], lvl[on, c])]
            cols.append(drug_effects(self.area, self.truth, d, dose, values, ph, fac))
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
    def run(self) -> ObsLog:
        """Simulate every patient from the first visit to the end; returns the measurement log (the state and
        the other logs stay on this object for :func:`planner.simulate.frames.build_outputs`)."""
        self.population()
        n, C = self.n, self.C
        self.drug = np.full((n, C), -1, dtype=int)
        self.lvl = np.zeros((n, C), dtype=int)
        self.cur_eff = np.zeros(n)
        self.req = np.full((n, C), -1, dtype=int)  # open request index per slot
        self.med_rows: list[list[Any]] = []  # [pid, drug, dose, start, end, status, end_written, stop_reason]
        self.dec: list[dict[str, np.ndarray]] = []
        self.obs_log: ObsLog = {self.area.outcome.quantity: []}
        for q in self.sim.quantities:
            self.obs_log.setdefault(q.quantity, [])
        self.pend_day = np.full(n, np.inf)  # a pending early adverse stop: its day and slot
        self.pend_slot = np.full(n, -1, dtype=int)
        # failed courses carried into re-trials (rules/areas/simulation/retrial.yaml; None: not simulated)
        self.retrial = load_retrial(self.area.id)
        self.not_tolerated = np.zeros((n, self.D), dtype=bool)
        self.no_response = np.zeros((n, self.D), dtype=bool)
        self.failures: list[tuple[int, int, str, int]] = []  # (patient, drug, "not_tolerated"/"no_response", day)
        self.course_day = np.zeros((n, C), dtype=int)  # start day and true level at the start of each slot's course
        self.course_level = np.zeros((n, C))
        self.prevalent_users()
        self.visits()
        return self.obs_log

    def apply(
        self, rows: np.ndarray, new_drug: np.ndarray, new_lvl: np.ndarray, day: np.ndarray, reason: np.ndarray
    ) -> None:
        """Record changes for rows whose slots differ; update state, requests, effects, early stops."""
        area, rng = self.area, self.rng
        drug, lvl = self.drug, self.lvl
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
        if self.retrial is not None:
            self.note_failures(rows, new_drug, day, reason)
        vals = self.true_values(rows, day, self.cur_eff[rows])
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
        if self.retrial is not None:
            fac = self.retrial_factors(rows, itt=True)
            for j, entry in enumerate(area.formulary):
                rec[RETRIAL + entry.ingredient] = fac[:, j]
        self.dec.append(rec)
        new_eff = self.regimen_effect(rows, new_drug, new_lvl, vals)
        self.write_requests(rows, new_drug, new_lvl, day, reason)
        # early adverse stops for new drugs / doses
        started = (new_drug >= 0) & ((new_drug != drug[rows]) | (new_lvl != lvl[rows]))
        p = np.where(started, self.early_stop[rows[:, None], np.maximum(new_drug, 0)], 0.0)
        hit = rng.random(p.shape) < p
        any_hit = hit.any(axis=1)
        slot = np.argmax(hit, axis=1)
        delay = rng.integers(10, 56, rows.size)
        self.pend_day[rows] = np.where(any_hit, day + delay, np.inf)
        self.pend_slot[rows] = np.where(any_hit, slot, -1)
        drug[rows] = new_drug
        lvl[rows] = new_lvl
        self.cur_eff[rows] = new_eff

    def retrial_factors(self, rows: np.ndarray, *, itt: bool) -> np.ndarray | None:
        """Effect factors (rows x drugs) of the failed courses so far; ``itt``: with re-trials stopped again."""
        if self.retrial is None:
            return None
        return self.retrial.factors(self.area, self.not_tolerated[rows], self.no_response[rows], itt=itt)

    def note_failures(self, rows: np.ndarray, new_drug: np.ndarray, day: np.ndarray, reason: np.ndarray) -> None:
        """Courses that end with this change: an adverse stop is a drug not tolerated (its re-trial is stopped
        early again with restop_same_drug); a course of at least adequate_days during which the true level fell
        by less than fall_below is one without response. New courses note their start day and true level."""
        rt = self.retrial
        assert rt is not None
        sign = 1.0 if self.area.outcome.direction == "lower" else -1.0
        level = _to_units(self.area, self.u0[rows] + self.drift[rows] * day / 365.0 + self.cur_eff[rows])
        for c in range(self.C):
            od, nd = self.drug[rows, c], new_drug[:, c]
            ended = (od >= 0) & (nd != od)
            nt = ended & (reason == "stop-adverse")
            start = self.course_level[rows, c]
            fall = sign * (start - level) / np.maximum(np.abs(start), 1e-9)
            nr = ended & ~nt & (day - self.course_day[rows, c] >= rt.adequate_days) & (fall < rt.fall_below)
            for kind, hit in (("not_tolerated", nt), ("no_response", nr)):
                i, j = rows[hit], od[hit]
                getattr(self, kind)[i, j] = True
                self.failures += [(int(a), int(b), kind, int(d)) for a, b, d in zip(i, j, day[hit])]
            i, j = rows[nt], od[nt]
            self.early_stop[i, j] = np.maximum(self.early_stop[i, j], rt.restop_same_drug)
            begun = (nd >= 0) & (nd != od)
            self.course_day[rows[begun], c] = day[begun]
            self.course_level[rows[begun], c] = level[begun]

    def write_requests(
        self, rows: np.ndarray, new_drug: np.ndarray, new_lvl: np.ndarray, day: np.ndarray, reason: np.ndarray
    ) -> None:
        """Medication requests of a change: the changed slots' open requests end (a stopped one with the
        clinician's reason where there is one: an adverse stop, a switch for lack of effect), the new ones open."""
        drug, lvl, req, rng = self.drug, self.lvl, self.req, self.rng
        for r_i, i in enumerate(rows.tolist()):
            d_day = int(day[r_i])
            for c in range(self.C):
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
                        row[7] = _STOP_REASON.get(str(reason[r_i]))
                    req[i, c] = -1
                if nd >= 0:
                    req[i, c] = len(self.med_rows)
                    self.med_rows.append([i, int(nd), float(self.levels[nd][nl]), d_day, None, "active", False, None])

    def process_pending(self, rows: np.ndarray) -> None:
        """Carry out the pending early adverse stops of ``rows``."""
        if rows.size == 0:
            return
        nd, nl = self.drug[rows].copy(), self.lvl[rows].copy()
        nd[np.arange(rows.size), self.pend_slot[rows]] = -1
        nl[np.arange(rows.size), self.pend_slot[rows]] = 0
        d = self.pend_day[rows].astype(int)
        self.pend_day[rows] = np.inf
        self.apply(rows, nd, nl, d, np.full(rows.size, "stop-adverse", dtype=object))

    def prevalent_users(self) -> None:
        """Prevalent users: a first-line (or preferred) class started 1-24 months before the first visit, after
        the diagnosis."""
        n, rng, area, drug, lvl = self.n, self.rng, self.area, self.drug, self.lvl
        prev = np.nonzero(rng.random(n) < self.sim.prevalent_share)[0]
        if not prev.size:
            return
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
        self.apply(prev, nd, nl, pday, np.full(prev.size, "prevalent", dtype=object))
        late = prev[self.pend_day[prev] < 0]
        self.process_pending(late)
        self.pend_day[prev[self.pend_day[prev] >= 0]] = np.inf  # a stop after the first visit: not simulated

    def visits(self) -> None:
        """Every patient's visits, all patients in step, until each drops out or reaches the horizon."""
        n, rng, sim = self.n, self.rng, self.sim
        day = np.zeros(n, dtype=int)
        alive = np.ones(n, dtype=bool)
        while alive.any():
            rows = np.nonzero(alive)[0]
            d = day[rows]
            self.process_pending(rows[self.pend_day[rows] < d])
            y, measured = self.measure(rows, d)
            self.clinician(rows, d, y, measured)
            # next visit or the end
            gapd = rng.integers(sim.visit_interval_days[0], sim.visit_interval_days[1] + 1, rows.size)
            p_drop = 1 - (1 - sim.dropout_per_year) ** (gapd / 365.0)
            nxt = d + gapd
            end = (nxt > self.horizon[rows]) | (rng.random(rows.size) < p_drop)
            ended = rows[end]
            self.end_day[ended] = d[end]
            self.process_pending(ended[self.pend_day[ended] <= self.end_day[ended] + 30])
            self.pend_day[ended] = np.inf
            alive[ended] = False
            day[rows[~end]] = nxt[~end]

    def measure(self, rows: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The visit's measurements (logged); returns the outcome values and which were measured."""
        rng, sim, area = self.rng, self.sim, self.area
        lo, hi = area.outcome.plausible
        mu = self.u0[rows] + self.drift[rows] * d / 365.0 + self.cur_eff[rows]
        measured = rng.random(rows.size) >= sim.missed_lab
        y = _to_units(area, mu + rng.normal(0.0, self.truth.noise_sd, rows.size))
        y = np.clip(np.round(y, sim.outcome_decimals), lo, hi)
        self.obs_log[area.outcome.quantity].append((rows[measured], d[measured], y[measured]))
        for q in sim.quantities:
            m = rng.random(rows.size) < q.measure_probability
            v = np.clip(self.qbase[q.quantity][rows] + q.per_year * d / 365.0, q.low, q.high)
            v = np.clip(np.round(v + rng.normal(0.0, q.noise_sd, rows.size), q.decimals), q.low, q.high)
            if q.decimals == 0:
                v = np.round(v)
            self.obs_log[q.quantity].append((rows[m], d[m], v[m]))
        return y, measured

    def clinician(self, rows: np.ndarray, d: np.ndarray, y: np.ndarray, measured: np.ndarray) -> None:
        """The clinician at a visit: intolerance stops, then intensify above target or step down well below."""
        rng, sim = self.rng, self.sim
        direction = 1.0 if self.area.outcome.direction == "lower" else -1.0
        vals = self.true_values(rows, d, self.cur_eff[rows])
        nd, nl = self.drug[rows].copy(), self.lvl[rows].copy()
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
        self.apply(rows, nd, nl, d, reason)

    def targets(self, rows: np.ndarray, day: np.ndarray, vals: dict[str, np.ndarray]) -> np.ndarray:
        area = self.area
        target = np.full(rows.size, area.outcome.target)
        age = (self.birth_offset[rows] + day) / _DAYS_PER_YEAR
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
