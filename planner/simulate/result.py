"""What a simulation gives: :class:`SimCohort` (the decisions frame documented in
:mod:`planner.simulate.cohort`, the patients, the true world) and :class:`SimLogs`, the raw material of each
patient's record (for FHIR bundles and PatientRecords)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from ..areas import Area, enumerate_regimens
from ..errors import ConfigError
from ..record import Regimen
from .truth import LATENT, RETRIAL, TruthParams, expected_outcome

EPOCH = dt.date(2014, 1, 1)  # day 0 of the simulated calendar (index dates are days after it)


@dataclasses.dataclass
class SimLogs:
    """Everything the record of each patient holds (columnar), for FHIR writing and PatientRecords."""

    # measurements: quantity -> (pid, day, value)
    obs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    # medication requests: pid, drug index, dose, start day, end day (or nan), status, end written, stop reason
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
    logs: SimLogs
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
        out.update(self._retrial_columns(rows, day))
        return pd.DataFrame(out)

    def _retrial_columns(self, rows: np.ndarray, day: np.ndarray) -> dict[str, np.ndarray]:
        """``true_retrial:<ingredient>`` factors from the failed courses recorded on or before each day."""
        rt = self.latent.get("retrial")
        if rt is None:
            return {}
        D = len(self.area.formulary)
        nt = np.zeros((rows.size, D), dtype=bool)
        nr = np.zeros((rows.size, D), dtype=bool)
        for pid, drug, kind, fday in self.latent.get("failures", []):
            hit = (rows == pid) & (day >= fday)
            (nt if kind == "not_tolerated" else nr)[hit, drug] = True
        fac = rt.factors(self.area, nt, nr, itt=True)
        return {RETRIAL + d.ingredient: fac[:, j] for j, d in enumerate(self.area.formulary)}

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
