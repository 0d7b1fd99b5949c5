"""Turn a finished simulation run into the decisions frame, the patients frame and the record logs."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from ..areas import Area
from ..record import DrugDose, Regimen
from ..status import GeneStatus
from .engine import ObsLog, SimRun
from .fhir import _uuid
from .result import EPOCH, SimCohort, SimLogs
from .truth import LATENT, expected_outcome

_KEY = 1 << 22  # day offset inside a (patient, day) sort key
_OFF = 1 << 20


def _keys(pid: np.ndarray, day: np.ndarray) -> np.ndarray:
    return pid.astype(np.int64) * _KEY + (day.astype(np.int64) + _OFF)


def _latest(
    okey: np.ndarray, opid: np.ndarray, oday: np.ndarray, pid: np.ndarray, day: np.ndarray, lookback: int | None
) -> np.ndarray:
    """Index of the latest observation of patient ``pid`` dated <= ``day`` (within ``lookback``), else -1."""
    if okey.size == 0:
        return np.full(pid.size, -1)
    i = np.searchsorted(okey, _keys(pid, day), side="right") - 1
    ok = i >= 0
    ic = np.maximum(i, 0)
    ok &= opid[ic] == pid
    if lookback is not None:
        ok &= oday[ic] >= day - lookback
    return np.where(ok, i, -1)


def _followup(
    okey: np.ndarray,
    opid: np.ndarray,
    oday: np.ndarray,
    pid: np.ndarray,
    t0: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    aim: np.ndarray,
) -> np.ndarray:
    """Index of the observation closest to ``aim`` within [lower, upper] (ties: the earlier), else -1."""
    if okey.size == 0:
        return np.full(pid.size, -1)
    n = okey.size
    # last observation <= min(aim, upper) (strictly before aim when aim <= upper, to pair with the first >= aim)
    hi_for_left = np.minimum(aim - 1, upper)
    i0 = np.searchsorted(okey, _keys(pid, hi_for_left), side="right") - 1
    i1 = np.searchsorted(okey, _keys(pid, aim), side="left")
    c0 = np.maximum(i0, 0)
    c1 = np.minimum(i1, n - 1)
    ok0 = (i0 >= 0) & (opid[c0] == pid) & (oday[c0] >= lower) & (oday[c0] <= upper)
    ok1 = (i1 < n) & (opid[c1] == pid) & (oday[c1] <= upper) & (oday[c1] >= lower)
    d0 = np.where(ok0, aim - oday[c0], np.iinfo(np.int64).max)
    d1 = np.where(ok1, oday[c1] - aim, np.iinfo(np.int64).max)
    pick = np.where(d1 < d0, c1, c0)
    return np.where(ok0 | ok1, pick, -1)


def build_outputs(sim: SimRun, obs_log: ObsLog) -> SimCohort:
    """The cohort of a finished run: decisions (with truth), patients, record logs and the hidden state."""
    area, n = sim.area, sim.n
    obs = _sorted_observations(obs_log)
    D = _decision_arrays(sim)
    index_date = np.datetime64(EPOCH, "D") + sim.index_day.astype("timedelta64[D]")
    id_seed = hashlib.blake2b(f"planner-sim/{area.id}/{sim.seed}/{n}".encode(), digest_size=8).digest()
    patient_ids = np.array([_uuid(id_seed, i) for i in range(n)], dtype=object)
    frame, reg_before, reg_after = _decision_frame(sim, obs, D, index_date, patient_ids)
    _observed_features(frame, sim, obs, D, index_date)
    _current_regimen(frame, sim, D)
    _true_columns(frame, sim, D)
    decisions = pd.DataFrame(frame)
    # truth under the chosen and the previous regimen
    decisions["true_expected"] = _truth_under(area, sim, decisions, "regimen_key", reg_after)
    decisions["true_expected_before"] = _truth_under(area, sim, decisions, "regimen_before_key", reg_before)
    last_dec = np.full(n, -(10**6))
    if D["m"]:
        np.maximum.at(last_dec, D["pid"], D["day"])
    record_end = np.maximum(sim.end_day, last_dec)
    logs = _record_logs(sim, obs, record_end)
    patients = _patients(sim, patient_ids, index_date, record_end)
    latent = {
        "u0": sim.u0,
        "drift": sim.drift,
        "qbase": sim.qbase,
        "birth_offset": sim.birth_offset,
        "female": sim.female,
        "cond_onset": sim.cond_onset,
        "phenotype": sim.phenotype,
        "retrial": sim.retrial,
        "failures": sim.failures,
    }
    return SimCohort(
        area=area, seed=sim.seed, n=n, truth=sim.truth, decisions=decisions, patients=patients, logs=logs, latent=latent
    )


Obs = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # quantity -> (pid, day, value), by (pid, day)


def _sorted_observations(obs_log: ObsLog) -> Obs:
    obs: Obs = {}
    for q, parts in obs_log.items():
        if parts:
            pid = np.concatenate([p[0] for p in parts]).astype(np.int64)
            day = np.concatenate([p[1] for p in parts]).astype(np.int64)
            val = np.concatenate([p[2] for p in parts]).astype(float)
        else:
            pid = day = np.zeros(0, dtype=np.int64)
            val = np.zeros(0)
        order = np.lexsort((day, pid))
        obs[q] = (pid[order], day[order], val[order])
    return obs


def _decision_arrays(sim: SimRun) -> dict[str, Any]:
    """The run's decision records as arrays sorted by (patient, day), with ``m`` (their number), ``pid``,
    ``day``, ``same_next`` (the next row is the same patient's), ``next_day`` and ``decision`` (number)."""
    cols: dict[str, list[np.ndarray]] = {}
    for rec in sim.dec:
        for k, v in rec.items():
            cols.setdefault(k, []).append(np.asarray(v))
    D: dict[str, Any] = {k: np.concatenate(v) for k, v in cols.items()} if cols else {}
    m = D["pid"].size if D else 0
    order = np.lexsort((D["day"], D["pid"])) if m else np.zeros(0, dtype=int)
    D = {k: v[order] for k, v in D.items()}
    pid = D["pid"].astype(np.int64) if m else np.zeros(0, dtype=np.int64)
    day = D["day"].astype(np.int64) if m else np.zeros(0, dtype=np.int64)
    same_next = np.zeros(m, dtype=bool)
    if m > 1:
        same_next[:-1] = pid[1:] == pid[:-1]
    next_day = np.where(same_next, np.roll(day, -1), np.iinfo(np.int32).max)
    decision_no = np.zeros(m, dtype=int)
    if m:
        first = np.r_[True, pid[1:] != pid[:-1]]
        grp_start = np.maximum.accumulate(np.where(first, np.arange(m), 0))
        decision_no = np.arange(m) - grp_start
    D.update(m=m, pid=pid, day=day, same_next=same_next, next_day=next_day, decision=decision_no)
    return D


def _regimens(area: Area, sim: SimRun, D: dict[str, Any]) -> tuple[list[Regimen], list[Regimen]]:
    """The regimens before and after each decision (one object per distinct slot state)."""
    cache: dict[tuple[int, ...], Regimen] = {}

    def regimen(dr: np.ndarray, lv: np.ndarray) -> Regimen:
        key = tuple(int(x) for x in dr) + tuple(int(x) for x in lv)
        r = cache.get(key)
        if r is None:
            drugs = []
            for j, k in zip(dr, lv):
                if j >= 0:
                    e = area.formulary[int(j)]
                    drugs.append(
                        DrugDose(
                            ingredient=e.ingredient,
                            rxcui=e.rxcui,
                            dose_mg_day=float(sim.levels[int(j)][int(k)]),
                            drug_class=e.drug_class,
                        )
                    )
            r = cache[key] = Regimen.of(drugs)
        return r

    m = D["m"]
    reg_before = [regimen(D["drug_before"][i], D["lvl_before"][i]) for i in range(m)]
    reg_after = [regimen(D["drug_after"][i], D["lvl_after"][i]) for i in range(m)]
    return reg_before, reg_after


def _decision_frame(
    sim: SimRun, obs: Obs, D: dict[str, Any], index_date: np.ndarray, patient_ids: np.ndarray
) -> tuple[dict[str, Any], list[Regimen], list[Regimen]]:
    """The decision columns up to ``target``: dates, regimens, the episode's baseline and follow-up."""
    area = sim.area
    m, pid, day, same_next, next_day = D["m"], D["pid"], D["day"], D["same_next"], D["next_day"]
    out = area.outcome
    opid, oday, oval = obs[out.quantity]
    okey = _keys(opid, oday)
    bi = _latest(okey, opid, oday, pid, day, out.baseline_window_days)
    lo_w, hi_w = out.followup_window
    upper = np.minimum(day + hi_w, next_day)
    fi = _followup(okey, opid, oday, pid, day, upper, day + lo_w, day + out.followup_days)
    has_b, has_f = bi >= 0, fi >= 0
    overlap = next_day < day + lo_w
    drop = np.where(
        ~has_b, "no-baseline", np.where(overlap, "overlapping-change", np.where(~has_f, "no-follow-up", None))
    ).astype(object)
    drop[has_b & has_f] = None
    t0 = index_date[pid] + day.astype("timedelta64[D]")

    def dates(idx: np.ndarray) -> np.ndarray:
        res = np.full(idx.size, np.datetime64("NaT"), dtype="datetime64[D]")
        ok = idx >= 0
        res[ok] = index_date[pid[ok]] + oday[idx[ok]].astype("timedelta64[D]")
        return res

    reg_before, reg_after = _regimens(area, sim, D)
    frame: dict[str, Any] = {
        "patient_id": patient_ids[pid] if m else np.zeros(0, dtype=object),
        "decision": D["decision"],
        "t0": t0.astype("datetime64[ns]"),
        "day": day,
        "reason": D["reason"] if m else np.zeros(0, dtype=object),
        "regimen_before": reg_before,
        "regimen": reg_after,
        "regimen_before_key": [r.key() for r in reg_before],
        "regimen_key": [r.key() for r in reg_after],
        "baseline": np.where(has_b, oval[np.maximum(bi, 0)] if oval.size else np.nan, np.nan),
        "baseline_date": dates(bi).astype("datetime64[ns]"),
        "followup": np.where(has_f, oval[np.maximum(fi, 0)] if oval.size else np.nan, np.nan),
        "followup_date": dates(fi).astype("datetime64[ns]"),
        "episode": has_b & has_f,
        "drop_reason": drop,
        "next_t0": np.where(
            same_next, index_date[pid] + np.minimum(next_day, 10**6).astype("timedelta64[D]"), np.datetime64("NaT")
        ).astype("datetime64[ns]"),
    }
    # targets (vectorized over decisions)
    frame["target"] = sim.targets(pid, day, _true_values(D)) if m else np.zeros(0)
    return frame, reg_before, reg_after


def _true_values(D: dict[str, Any]) -> dict[str, np.ndarray]:
    return {k[5:]: D[k] for k in D if k.startswith("true_")}


def _observed_features(frame: dict[str, Any], sim: SimRun, obs: Obs, D: dict[str, Any], index_date: np.ndarray) -> None:
    """Each area feature as the record shows it at t0 (what planner.features gives on the ingested record)."""
    m, pid, day = D["m"], D["pid"], D["day"]
    out = sim.area.outcome
    t0 = index_date[pid] + day.astype("timedelta64[D]")
    for f in sim.area.features:
        if f.kind == "age":
            birth = index_date[pid] - sim.birth_offset[pid].astype("timedelta64[D]")
            frame[f.name] = (t0 - birth).astype(int) / 365.25
        elif f.kind == "sex":
            frame[f.name] = sim.female[pid].astype(float)
        elif f.kind == "baseline" and f.name == "baseline" and f.lookback_days >= out.baseline_window_days:
            continue  # the episode baseline column above is this feature
        elif f.kind in ("quantity", "baseline"):
            q = f.quantity or ""
            if q in obs:
                qp, qd, qv = obs[q]
                qi = _latest(_keys(qp, qd), qp, qd, pid, day, f.lookback_days)
                frame[f.name] = np.where(qi >= 0, qv[np.maximum(qi, 0)] if qv.size else np.nan, np.nan)
            else:
                frame[f.name] = np.full(m, np.nan)
        elif f.kind == "condition":
            onset = sim.cond_onset.get(f.name)
            frame[f.name] = np.zeros(m) if onset is None else (onset[pid] <= day).astype(float)
        elif f.kind == "pgx":
            ph = sim.phenotype.get(f.gene or "")
            if ph is None:
                frame[f.name] = np.full(m, GeneStatus.NOT_TESTED.value, dtype=object)
            else:
                known = sim.tested[pid] & (sim.test_day[pid] <= day)
                frame[f.name] = np.where(known, ph[pid], GeneStatus.NOT_TESTED.value).astype(object)


def _current_regimen(frame: dict[str, Any], sim: SimRun, D: dict[str, Any]) -> None:
    """The current regimen as the featurizer gives it (dose / reference dose per class, number of drugs)."""
    if D["m"]:
        ref = np.array([e.reference_dose for e in sim.area.formulary])
        for c, cid in enumerate(sim.classes):
            dj, lv = D["drug_before"][:, c], D["lvl_before"][:, c]
            dose = np.array([sim.levels[j][k] if j >= 0 else 0.0 for j, k in zip(dj, lv)])
            frame[f"cur_{cid}"] = np.where(dj >= 0, dose / ref[np.maximum(dj, 0)], 0.0)
        frame["cur_n_drugs"] = (D["drug_before"] >= 0).sum(axis=1).astype(float)
    else:
        for cid in sim.classes:
            frame[f"cur_{cid}"] = np.zeros(0)
        frame["cur_n_drugs"] = np.zeros(0)


def _true_columns(frame: dict[str, Any], sim: SimRun, D: dict[str, Any]) -> None:
    """The noise-free values the truth uses, the true phenotypes (tested or not) and the untreated latent."""
    m, pid = D["m"], D["pid"]
    for k, v in _true_values(D).items():
        frame["true_" + k] = v
    for f in sim.area.features:
        if f.kind == "pgx":
            ph = sim.phenotype.get(f.gene or "")
            frame["true_" + f.name] = ph[pid] if ph is not None else np.full(m, "Normal", dtype=object)
    frame[LATENT] = D[LATENT] if m else np.zeros(0)


def _truth_under(area: Area, sim: SimRun, decisions: pd.DataFrame, col: str, regs: list[Regimen]) -> np.ndarray:
    """TRUE expected follow-up of each decision under its regimen in ``regs`` (grouped by ``col``, its key)."""
    target = np.empty(len(decisions))
    for _key, idx in decisions.groupby(col, sort=True).indices.items():
        target[idx] = expected_outcome(area, decisions.iloc[idx], [regs[idx[0]]], truth_params=sim.truth)[:, 0]
    return target


def _record_logs(sim: SimRun, obs: Obs, record_end: np.ndarray) -> SimLogs:
    """What each patient's record holds: measurements, medication requests (with cancelled orders),
    conditions, genotype results and drug allergies."""
    area, n = sim.area, sim.n
    rng = np.random.default_rng([sim.seed, 15485863, n])
    cols = ["pid", "drug", "dose", "start", "end", "status", "end_written", "stop_reason"]
    meds = pd.DataFrame(sim.med_rows, columns=cols)
    # cancelled orders: a drug not active that day, never active from it (no effect on intervals)
    cancel_pids = np.nonzero(rng.random(n) < area.simulation.cancelled_order_share)[0]
    extra = []
    by_pid = {p: g for p, g in meds.groupby("pid")} if len(meds) else {}
    for p in cancel_pids.tolist():
        cday = int(rng.integers(0, max(int(sim.end_day[p]), 1)))
        j = int(rng.integers(0, sim.D))
        g = by_pid.get(p)
        if g is not None:
            gj = g[g.drug == j]
            active = ((gj.start <= cday) & (gj.end.isna() | (gj.end.fillna(10**9) > cday))).any()
            later_same_day = (gj.start == cday).any()
            if active or later_same_day:
                continue
        extra.append([p, j, float(sim.levels[j][0]), cday, None, "cancelled", False, None])
    if extra:
        meds = pd.concat([meds, pd.DataFrame(extra, columns=meds.columns)], ignore_index=True)
    meds = meds.sort_values(["pid", "start", "drug"], kind="stable").reset_index(drop=True)
    cond_rows = [
        (i, area.simulation.condition[0], area.simulation.condition[1], int(sim.area_onset[i])) for i in range(n)
    ]
    for c in area.simulation.conditions:
        onset = sim.cond_onset[c.feature]
        for i in np.nonzero(onset <= record_end)[0].tolist():
            cond_rows.append((i, c.code, c.display, int(onset[i])))
    conditions = (
        pd.DataFrame(cond_rows, columns=["pid", "code", "display", "onset"])
        .sort_values(["pid", "onset", "code"], kind="stable")
        .reset_index(drop=True)
    )
    pgx_rows = []
    for gene, dip in sim.diplotype.items():
        ok = np.nonzero(sim.tested & (sim.test_day <= record_end))[0]
        for i in ok.tolist():
            pgx_rows.append((i, gene, dip[i], sim.phenotype[gene][i], int(sim.test_day[i])))
    pgx = (
        pd.DataFrame(pgx_rows, columns=["pid", "gene", "diplotype", "phenotype", "day"])
        .sort_values(["pid", "gene"], kind="stable")
        .reset_index(drop=True)
    )
    al = np.nonzero(sim.allergy >= 0)[0]
    allergies = pd.DataFrame({"pid": al, "drug": sim.allergy[al], "day": sim.allergy_day[al]})
    return SimLogs(obs=obs, meds=meds, conditions=conditions, pgx=pgx, allergies=allergies)


def _patients(sim: SimRun, patient_ids: np.ndarray, index_date: np.ndarray, record_end: np.ndarray) -> pd.DataFrame:
    area = sim.area
    birth = index_date - sim.birth_offset.astype("timedelta64[D]")
    patients = pd.DataFrame(
        {
            "patient_id": patient_ids,
            "birth_date": birth.astype("datetime64[ns]"),
            "sex": np.where(sim.female, "female", "male"),
            "index_date": index_date.astype("datetime64[ns]"),
            "end_date": (index_date + record_end.astype("timedelta64[D]")).astype("datetime64[ns]"),
            "last_visit_day": sim.end_day,
            "allergy": [area.formulary[j].ingredient if j >= 0 else None for j in sim.allergy],
            "pgx_tested": sim.tested,
            "pgx_test_date": (index_date + sim.test_day.astype("timedelta64[D]")).astype("datetime64[ns]"),
        }
    )
    for gene, ph in sim.phenotype.items():
        patients[f"phenotype_{gene}"] = ph
    return patients
