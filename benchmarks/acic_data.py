"""ACIC 2016 data challenge instances as shipped inside the ``causallib`` wheel (read from the installed package's
data folder, never downloaded at run time).

Source: Dorie, Hill, Shalit, Scott and Cervone, "Automated versus do-it-yourself methods for causal inference:
Lessons learned from a data analysis competition", Statistical Science 34(1):43-68, 2019; the ten instances
(one of each of ten data-generating processes) are those causallib 0.10.0 (Apache-2.0) ships as
``causallib/datasets/data/acic_challenge_2016/{x.csv, zymu_<i>.csv}``.

``load(i)`` gives covariates (categoricals one-hot, first level dropped, as causallib's ``load_acic16`` does),
treatment ``a``, the observed outcome ``y`` and the true conditional means ``mu0``, ``mu1``.
Install: ``pip install --no-deps causallib==0.10.0`` (its data loader is not imported, so its pins on pandas < 3
do not apply).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["AcicInstance", "data_dir", "load"]


@dataclass(frozen=True)
class AcicInstance:
    i: int
    X: pd.DataFrame
    a: np.ndarray
    y: np.ndarray
    mu0: np.ndarray
    mu1: np.ndarray

    @property
    def tau(self) -> np.ndarray:
        return self.mu1 - self.mu0


def data_dir() -> Path:
    spec = importlib.util.find_spec("causallib")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "causallib is not installed: pip install --no-deps causallib==0.10.0 (ships the ACIC 2016 "
            "instances; nothing is downloaded at run time)"
        )
    d = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "acic_challenge_2016"
    if not (d / "x.csv").is_file():
        raise SystemExit(f"causallib is installed but ships no ACIC 2016 data under {d}")
    return d


_X_CACHE: dict[str, pd.DataFrame] = {}


def load(i: int) -> AcicInstance:
    if not 1 <= i <= 10:
        raise SystemExit(f"ACIC 2016 instance {i}: causallib ships instances 1..10")
    d = data_dir()
    key = str(d)
    if key not in _X_CACHE:
        X = pd.read_csv(d / "x.csv")
        cats = X.select_dtypes(include=["object", "string"]).columns
        _X_CACHE[key] = pd.get_dummies(X, columns=list(cats), drop_first=True, dtype=float).astype(float)
    z = pd.read_csv(d / f"zymu_{i}.csv")
    a = z["z"].to_numpy(dtype=int)
    y = np.where(a == 1, z["y1"].to_numpy(float), z["y0"].to_numpy(float))
    return AcicInstance(
        i=i, X=_X_CACHE[key].copy(), a=a, y=y, mu0=z["mu0"].to_numpy(float), mu1=z["mu1"].to_numpy(float)
    )
