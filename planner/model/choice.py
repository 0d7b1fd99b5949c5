"""Drawing many times from one probability vector with numpy's own ``Generator.choice`` steps."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["Choice"]


class Choice:
    """``rng.choice(len(p), p=p)`` for one probability vector drawn from many times: numpy's own steps (the
    cumulative sum normalised by its last value, one ``rng.random()`` per draw, ``searchsorted(side="right")``),
    so the same index and the same random stream, without validating ``p`` again on every draw. A vector numpy
    would refuse (NaN, negative, not summing to 1) is drawn from by ``rng.choice`` itself, with its error."""

    __slots__ = ("p", "cdf")

    def __init__(self, p: np.ndarray) -> None:
        self.p = p
        ok = p.ndim == 1 and p.size > 0 and bool(np.isfinite(p).all()) and not bool((p < 0).any())
        ok = ok and abs(float(p.sum()) - 1.0) <= math.sqrt(float(np.finfo(np.float64).eps)) / 2
        cdf = None
        if ok:
            cdf = np.asarray(p, dtype=np.float64).cumsum()
            cdf /= cdf[-1]
        self.cdf = cdf

    def draw(self, rng: np.random.Generator) -> int:
        if self.cdf is None:
            return int(rng.choice(len(self.p), p=self.p))
        return int(self.cdf.searchsorted(rng.random(), side="right"))
