"""The patient loop of the independent simulator (:mod:`planner.simulate.independent`): visits, labs, the
latent level, clinicians' decisions, and each patient's FHIR bundle (through :class:`planner.testing.BundleBuilder`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..areas import Area
from ..record import DrugDose, Regimen
from ..testing import BundleBuilder
from .population import sample_diplotypes

if TYPE_CHECKING:  # pragma: no cover
    from .independent import IndependentCohort

__all__ = ["run_patients"]

_STOP_REASON = {"stop-adverse": "adverse reaction"}  # MedicationRequest.statusReason.text of a stopped order

EPOCH = dt.date(2015, 1, 1)  # day 0 of this simulator's calendar (index dates are days after it)


def run_patients(cohort: "IndependentCohort", n: int, pops: dict[str, Any]) -> None:
    for i in range(n):
        _Patient(cohort, i, pops).run()
    dec = pd.DataFrame(cohort._dec)
    if len(dec):
        dec["t0"] = pd.to_datetime(dec["t0"]).astype("datetime64[ns]")
    cohort.decisions = dec.reset_index(drop=True)


class _Patient:
    def __init__(self, cohort: "IndependentCohort", i: int, pops: dict[str, Any]) -> None:
        self.c, self.area, self.p, self.w = cohort, cohort.area, cohort.params, cohort.world
        area, sim = self.area, self.area.simulation
        self.rng = rng = np.random.default_rng([cohort.seed, i, 99])
        self.pid = patient_id(area, cohort.seed, i)
        a_mean, a_sd, a_lo, a_hi = sim.age
        self.age0 = float(np.clip(rng.normal(a_mean, a_sd), a_lo, a_hi))
        self.female = bool(rng.random() < sim.female_share)
        self.index = EPOCH + dt.timedelta(days=int(rng.integers(0, 3 * 365)))
        self.q0 = {
            q.quantity: float(np.clip(rng.normal(q.mean + q.age_slope * (self.age0 - 60), q.sd), q.low, q.high))
            for q in sim.quantities
        }
        self.qspec = {q.quantity: q for q in sim.quantities}
        self.years = float(rng.uniform(*self.p["clinic"]["followup_years"]))
        self.end_day = int(self.years * 365.25)
        self.cond: dict[str, int] = {}  # feature -> onset day
        for cs in sim.conditions:
            prev = cs.prevalence
            for q, (thr, p2) in cs.prevalence_below.items():
                if self.q0.get(q, math.inf) < thr:
                    prev = p2
            if rng.random() < prev:
                incident = rng.random() < cs.incident_share
                self.cond[cs.feature] = (
                    int(rng.integers(1, max(self.end_day, 2))) if incident else -int(rng.integers(30, 3000))
                )
        self.pheno: dict[str, str] = {}
        self.dip: dict[str, str] = {}
        for g in area.pgx_genes:
            if g in pops:
                d, ph = sample_diplotypes(pops[g], 1, rng)
                self.dip[g], self.pheno[g] = str(d[0]), str(ph[0])
        self.tested = bool(rng.random() < self.p["world"]["tested_share"]) and bool(self.dip)
        w = self.p["world"]
        noise = area.outcome.noise_sd
        self.sens = float(rng.lognormal(0, w["patient_sensitivity_sd"]))
        self.sens_c = {c.id: float(rng.lognormal(0, w["class_sensitivity_sd"])) for c in area.classes}
        bmi_q = self.qspec.get("bmi")
        bmi = self.q0.get("bmi", 30.0)
        zb = 0.0 if bmi_q is None else (bmi - bmi_q.mean) / max(bmi_q.sd, 1e-9)
        self.z_bmi = zb
        self.m = sim.untreated_mean + sim.untreated_sd * (
            rng.normal() + w["level_slope_bmi"] * math.tanh(zb) + w["level_slope_age"] * ((self.age0 - 60) / 15) ** 2
        )
        self.drift = float(rng.normal(0, w["drift_sd_per_year"] * noise))
        self.ou_sd = w["ou_sd"] * noise
        self.lam = math.log(2) / w["ou_halflife_days"]
        self.ou = float(rng.normal(0, self.ou_sd))
        self.ou_day = 0
        self.b = BundleBuilder(
            patient_id=self.pid,
            birth_date=self.index - dt.timedelta(days=int(self.age0 * 365.25)),
            sex="female" if self.female else "male",
        )
        self.regimen: dict[int, float] = {}  # drug index -> dose
        self.med_ids: dict[int, tuple[float, int]] = {}  # drug index -> (dose, start day) of the open request
        self.P = 1.0
        # failed courses (rules/areas/simulation/retrial.yaml): drugs not tolerated / without response, the start
        # day of each drug's course, and a pending stop for an adverse effect (day, drug)
        self.not_tolerated: set[int] = set()
        self.no_response: set[int] = set()
        self.started: dict[int, int] = {}
        self.pending: tuple[int, int] | None = None

    # ---- state ---------------------------------------------------------------------------------------------
    def date(self, day: int) -> dt.date:
        return self.index + dt.timedelta(days=int(day))

    def q(self, name: str, day: int) -> float:
        s = self.qspec[name]
        return float(np.clip(self.q0[name] + s.per_year * day / 365.25, s.low, s.high))

    def advance_ou(self, day: int) -> None:
        gap = max(day - self.ou_day, 0)
        a = math.exp(-self.lam * gap)
        self.ou = self.ou * a + self.ou_sd * math.sqrt(1 - a * a) * float(self.rng.normal())
        self.ou_day = day

    def truth_row(self, day: int) -> dict[str, Any]:
        row: dict[str, Any] = {"day": day, "true_age": self.age0 + day / 365.25}
        for f in self.area.features:
            if f.kind == "quantity" and f.quantity is not None and f.quantity in self.qspec:
                row["true_" + f.name] = self.q(f.quantity, day)
            elif f.kind == "condition":
                row["true_" + f.name] = float(self.cond.get(f.name, 10**9) <= day)
            elif f.kind == "sex":
                row["true_" + f.name] = float(self.female)
        for g, ph in self.pheno.items():
            row["true_pgx:" + g] = ph
        if self.c.retrial is not None:
            for d, e in enumerate(self.area.formulary):
                row["hist_nt:" + e.ingredient] = float(d in self.not_tolerated)
                row["hist_nr:" + e.ingredient] = float(d in self.no_response)
        row.update(
            {
                "sens": self.sens,
                **{f"sens:{k}": v for k, v in self.sens_c.items()},
                "state_mean": self.m,
                "state_ou": self.ou,
                "state_drift": self.drift,
            }
        )
        return row

    def target(self, day: int) -> float:
        codes = {cs.code for cs in self.area.simulation.conditions if self.cond.get(cs.feature, 10**9) <= day}
        return float(self.area.target_for(codes, self.age0 + day / 365.25))

    def level_units(self, day: int) -> float:
        z = self.m + self.drift * day / 365.25 + self.ou
        fl = self.w.floor
        if self.area.outcome.scale == "log":
            return math.exp(z) * self.P
        return fl + (z - fl) * self.P

    # ---- regimen changes -----------------------------------------------------------------------------------
    def change(self, day: int, new: dict[int, float], reason: str) -> None:
        if new == self.regimen:
            return
        if self.c.retrial is not None:
            self.note_courses(day, new, reason)
        row = self.truth_row(day)
        before, after = regimen_of(self.area, self.regimen), regimen_of(self.area, new)
        for d, (dose, start) in list(self.med_ids.items()):
            if new.get(d) != dose:
                why = _STOP_REASON.get(reason) if d not in new else None  # the reason for a stop, on its order
                self.b.medication(
                    self.area.formulary[d].ingredient,
                    dose,
                    start=self.date(start),
                    end=self.date(day),
                    status_reason=why,
                )
                del self.med_ids[d]
        for d, dose in new.items():
            if d not in self.med_ids:
                self.med_ids[d] = (dose, day)
        self.regimen = dict(new)
        self.P = float(self.c._fractions(row, [after], itt=False)[0, 0])
        self.c._dec.append(
            {
                "patient_id": self.pid,
                "t0": pd.Timestamp(self.date(day)),
                "reason": reason,
                "regimen_before": before,
                "regimen": after,
                "regimen_before_key": before.key(),
                "regimen_key": after.key(),
                "target": self.target(day),
                **row,
            }
        )

    def note_courses(self, day: int, new: dict[int, float], reason: str) -> None:
        """Courses ending now: stopped for an adverse effect -> not tolerated; at least adequate_days with the
        drug's own removed fraction under fall_below -> no response. Courses starting now may be stopped early
        for an adverse effect (a re-trial of a drug not tolerated: restop_same_drug)."""
        rt, cl = self.c.retrial, self.p["clinic"]
        assert rt is not None
        row = self.truth_row(day)
        for d in [d for d in self.regimen if d not in new]:
            if reason == "stop-adverse":
                self.not_tolerated.add(d)
            elif day - self.started.get(d, day) >= rt.adequate_days:
                own = regimen_of(self.area, {d: self.regimen[d]})
                if 1.0 - float(self.c._fractions(row, [own], itt=False)[0, 0]) < rt.fall_below:
                    self.no_response.add(d)
        for d in [d for d in new if d not in self.regimen]:
            self.started[d] = day
            p = rt.restop_same_drug if d in self.not_tolerated else cl["adverse_stop_probability"]
            if self.pending is None and self.rng.random() < p:
                lo, hi = cl["adverse_stop_days"]
                self.pending = (day + int(self.rng.integers(lo, hi + 1)), d)

    def stop_pending(self, day: int) -> None:
        """An adverse stop due on or before ``day`` (a contact between visits), if the drug is still taken."""
        if self.pending is None or self.pending[0] > day:
            return
        pday, d = self.pending
        self.pending = None
        if d in self.regimen:
            self.advance_ou(pday)
            new = dict(self.regimen)
            del new[d]
            self.change(pday, new, "stop-adverse")

    def choose(self, day: int, value: float) -> None:
        """A clinician's move at a lab above target."""
        area, rng, cl = self.area, self.rng, self.p["clinic"]
        cls_of = {d: area.formulary[d].drug_class for d in self.regimen}
        present = set(cls_of.values())
        moves: list[tuple[str, Any]] = []
        for d, dose in self.regimen.items():
            lv = list(area.formulary[d].doses)
            if dose in lv and lv.index(dose) < len(lv) - 1:
                moves.append(("uptitrate", d))
        addable = [c for c in area.classes if c.id not in present]
        if len(self.regimen) < area.combination.max_drugs and addable:
            moves.append(("add", None))
        if self.regimen and addable:
            moves.append(("switch", None))
        if not moves:
            return
        wts = np.array([cl[m[0] + "_weight"] for m in moves])
        kind, d0 = moves[int(rng.choice(len(moves), p=wts / wts.sum()))]
        new = dict(self.regimen)
        if kind == "uptitrate":
            lv = list(area.formulary[d0].doses)
            new[d0] = lv[lv.index(new[d0]) + 1]
        else:
            ids = [c.id for c in area.classes]
            score = np.array(
                [self.w.pref[ids.index(c.id)] + self.w.pref_bmi[ids.index(c.id)] * self.z_bmi for c in addable]
            )
            pr = np.exp(score - score.max())
            cid = addable[int(rng.choice(len(addable), p=pr / pr.sum()))].id
            drugs = [k for k, e in enumerate(area.formulary) if e.drug_class == cid]
            d = drugs[int(rng.integers(len(drugs)))]
            if kind == "switch":
                del new[list(self.regimen)[int(rng.integers(len(self.regimen)))]]
            new[d] = area.formulary[d].doses[min(1, len(area.formulary[d].doses) - 1) * int(rng.random() < 0.4)]
        self.change(day, new, kind)

    # ---- the loop --------------------------------------------------------------------------------------------
    def run(self) -> None:  # long: one pass over a patient's visits, read top-down
        area, rng, cl, b = self.area, self.rng, self.p["clinic"], self.b
        sim, out = area.simulation, area.outcome
        b.condition(sim.condition[0], sim.condition[1], onset=self.date(-int(rng.integers(60, 2000))))
        for cs in sim.conditions:
            if cs.feature in self.cond:
                b.condition(cs.code, cs.display, onset=self.date(self.cond[cs.feature]))
        if self.tested:
            tday = self.date(-int(rng.integers(10, 1500)))
            for g, dip in self.dip.items():
                b.genotype(g, dip, date=tday)
        if rng.random() < self.p["world"]["prevalent_share"]:
            first = [k for k, e in enumerate(area.formulary) if e.first_line] or [0]
            d = first[int(rng.integers(len(first)))]
            self.change(-int(rng.integers(30, 720)), {d: float(rng.choice(area.formulary[d].doses))}, "prevalent")
        mean_gap = float(rng.uniform(*cl["visit_gap_days"]))
        day, noise, df = 0, out.noise_sd, self.p["world"]["noise_df"]
        tscale = noise / math.sqrt(df / (df - 2))
        lo, hi = out.plausible
        while day <= self.end_day:
            self.stop_pending(day)
            self.advance_ou(day)
            y = self.level_units(day)
            tgt = self.target(day)
            above = y > tgt
            measured = day == 0 or rng.random() < cl["lab_probability"] + 0.35 * above
            n_changes = len(self.c._dec)
            for qn, qs in self.qspec.items():
                if rng.random() < qs.measure_probability * 0.8:
                    v = round(self.q(qn, day) + float(rng.normal(0, qs.noise_sd)), qs.decimals)
                    if qn == "sbp":
                        b.blood_pressure(v, round(0.6 * v + float(rng.normal(0, 5))), date=self.date(day))
                    else:
                        b.observation(qn, v, date=self.date(day))
            if measured:
                e = float(rng.standard_t(df)) * tscale
                val = y * math.exp(e) if out.scale == "log" else y + e
                val = float(np.clip(round(val, sim.outcome_decimals), lo, hi))
                if out.quantity == "sbp":
                    b.blood_pressure(val, round(0.6 * val + float(rng.normal(0, 5))), date=self.date(day))
                else:
                    b.observation(out.quantity, val, date=self.date(day))
                gap = (math.log(val / tgt) if out.scale == "log" else val - tgt) / (cl["act_gap_noise_sd"] * noise)
                if gap > 0 and rng.random() < cl["act_probability"] * (1 - math.exp(-gap)):
                    self.choose(day, val)
                elif gap < -1 and self.regimen and rng.random() < cl["deescalate_probability"]:
                    d = list(self.regimen)[int(rng.integers(len(self.regimen)))]
                    new = dict(self.regimen)
                    lv = list(area.formulary[d].doses)
                    if new[d] in lv and lv.index(new[d]) > 0:
                        new[d] = lv[lv.index(new[d]) - 1]
                    else:
                        del new[d]
                    self.change(day, new, "deescalate")
            for d in list(self.regimen):
                if len(self.c._dec) == n_changes and rng.random() < cl["stop_probability"]:  # one change a visit
                    new = dict(self.regimen)
                    del new[d]
                    self.change(day, new, "stop")
                    break
            day += max(14, int(rng.gamma(2.0, mean_gap / 2.0)))
        for d, (dose, start) in self.med_ids.items():
            b.medication(area.formulary[d].ingredient, dose, start=self.date(start))
        self.c.patients.append({"patient_id": self.pid, "index_date": self.index, "tested": self.tested})
        self.c.builders.append(b)


def patient_id(area: Area, seed: int, i: int) -> str:
    return hashlib.blake2b(f"planner-indep/{area.id}/{seed}/{i}".encode(), digest_size=8).hexdigest()


def regimen_of(area: Area, drugs: dict[int, float]) -> Regimen:
    return Regimen.of(
        [
            DrugDose(
                ingredient=area.formulary[d].ingredient,
                rxcui=area.formulary[d].rxcui,
                dose_mg_day=float(dose),
                drug_class=area.formulary[d].drug_class,
            )
            for d, dose in sorted(drugs.items())
        ]
    )
