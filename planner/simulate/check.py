"""Acceptance check: do the episodes extracted from the written-and-ingested bundles match the simulator's own
record of decisions exactly (same t0, regimens, baseline and follow-up values and dates, drop reasons)?"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pandas as pd

__all__ = ["EpisodeMatch", "compare_episodes", "feature_columns"]


def feature_columns(area) -> tuple[str, ...]:  # noqa: ANN001 - Area
    """The feature columns both frames carry: the area features and the current-regimen columns."""
    return tuple(f.name for f in area.features) + tuple(f"cur_{c}" for c in area.class_ids) + ("cur_n_drugs",)


@dataclasses.dataclass(frozen=True)
class EpisodeMatch:
    """Outcome of :func:`compare_episodes` (``ok`` when everything agrees)."""

    simulated: int  # decisions the episode rules keep
    extracted: int
    matched: int  # same patient and t0 in both
    mismatched: dict[str, int]  # column -> rows that differ among the matched
    only_simulated: int
    only_extracted: int
    drops_simulated: dict[str, int]
    drops_extracted: dict[str, int]
    feature_mismatches: dict[str, int]

    @property
    def ok(self) -> bool:
        return (
            self.matched == self.simulated == self.extracted
            and not any(self.mismatched.values())
            and self.drops_simulated == self.drops_extracted
        )

    def summary(self) -> str:
        return (
            f"simulated {self.simulated}, extracted {self.extracted}, matched {self.matched}; "
            f"mismatched {self.mismatched}; drops simulated {self.drops_simulated} "
            f"extracted {self.drops_extracted}; features differing {self.feature_mismatches}"
        )


def compare_episodes(
    decisions: pd.DataFrame, episodes: pd.DataFrame, drops: Counter, *, features: tuple[str, ...] = ()
) -> EpisodeMatch:
    """Compare the simulator's ``decisions`` (SimCohort.decisions or truth.parquet) with ``episodes_frame``
    output. ``features``: feature columns to compare too (numeric within 1e-9, text exactly)."""
    sim = decisions[decisions["episode"]].copy()
    sim["t0"] = pd.to_datetime(sim["t0"])
    ext = episodes.copy()
    ext["t0"] = pd.to_datetime(ext["t0"])
    m = sim.merge(ext, on=["patient_id", "t0"], how="outer", suffixes=("_sim", "_ext"), indicator=True)
    both = m[m["_merge"] == "both"]
    mism: dict[str, int] = {}
    pairs = {"regimen": ("regimen_key", "regimen"), "regimen_before": ("regimen_before_key", "regimen_before")}
    for name, (a, b) in pairs.items():
        ca = a if a in both.columns else f"{a}_sim"
        cb = f"{b}_ext" if f"{b}_ext" in both.columns else b
        mism[name] = int((both[ca].astype(str) != both[cb].astype(str)).sum())
    for col in ("baseline", "followup"):
        mism[col] = int(
            (~np.isclose(both[f"{col}_sim"].astype(float), both[f"{col}_ext"].astype(float), rtol=0, atol=1e-9)).sum()
        )
    for col in ("baseline_date", "followup_date"):
        mism[col] = int((pd.to_datetime(both[f"{col}_sim"]) != pd.to_datetime(both[f"{col}_ext"])).sum())
    fmis: dict[str, int] = {}
    for f in features:
        a, b = both.get(f"{f}_sim"), both.get(f"{f}_ext")
        if a is None or b is None:
            continue
        if not (pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b)):
            fmis[f] = int((a.astype(str) != b.astype(str)).sum())
        else:
            av, bv = a.astype(float).to_numpy(), b.astype(float).to_numpy()
            same = np.isclose(av, bv, rtol=0, atol=1e-9) | (np.isnan(av) & np.isnan(bv))
            fmis[f] = int((~same).sum())
    ds = decisions["drop_reason"].dropna().value_counts().to_dict()
    de = {k: int(v) for k, v in drops.items() if k in ("no-baseline", "overlapping-change", "no-follow-up")}
    return EpisodeMatch(
        simulated=len(sim),
        extracted=len(ext),
        matched=len(both),
        mismatched=mism,
        only_simulated=int((m["_merge"] == "left_only").sum()),
        only_extracted=int((m["_merge"] == "right_only").sum()),
        drops_simulated={k: int(v) for k, v in sorted(ds.items())},
        drops_extracted=dict(sorted(de.items())),
        feature_mismatches=fmis,
    )
