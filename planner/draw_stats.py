"""Summaries of posterior draws for the ranking: column means and linear-interpolation quantiles, computed with
fewer passes than numpy's general routines but the same floating-point operations (bit-identical results)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["column_means", "linear_quantiles", "shown_intervals", "shown_means", "winners_by_draw"]


def column_means(draws: np.ndarray, shown: Sequence[int]) -> np.ndarray:
    """``draws.mean(axis=0)`` at the ``shown`` columns (others NaN), with the same sums: numpy adds a C-order
    2-D array's rows in turn, a single column pairwise, so the shown columns alone give it when both have more
    than one column (or both one)."""
    n = draws.shape[1]
    if (len(shown) >= 2) != (n >= 2) or not draws.flags.c_contiguous:
        return draws.mean(axis=0)
    out = np.full(n, np.nan)
    out[list(shown)] = np.take(draws, shown, axis=1).mean(axis=0)
    return out


def linear_quantiles(rows: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """``np.quantile(rows, levels, axis=1)`` (method "linear") for a 2-D float64 or float32 array: one sort per row, then
    numpy's own steps (virtual index ``(N - 1) q``, its floor and the next order statistic, clipped at the ends,
    and its interpolation ``a + (b - a) t``, or ``b - (b - a)(1 - t)`` from ``t >= 0.5``), so the same bits.
    Float32 rows go through the same promotions as numpy's (``b - a`` in float32, times the float64 weights: a
    float64 result). A row holding NaN goes to numpy itself (its NaN rules)."""
    if rows.ndim != 2 or rows.dtype not in (np.float64, np.float32) or rows.shape[1] == 0:
        return np.asarray(np.quantile(rows, levels, axis=1))
    ordered = np.sort(rows, axis=1)
    if np.isnan(ordered[:, -1]).any():
        return np.asarray(np.quantile(rows, levels, axis=1))
    count = rows.shape[1]
    virtual = (count - 1) * np.asarray(levels, dtype=np.float64)
    prev = np.floor(virtual)
    nxt = prev + 1
    above = virtual >= count - 1
    prev[above] = -1
    nxt[above] = -1
    below = virtual < 0
    prev[below] = 0
    nxt[below] = 0
    lo_i, hi_i = prev.astype(np.intp), nxt.astype(np.intp)
    a = ordered[:, lo_i].T  # (levels, rows)
    b = ordered[:, hi_i].T
    t = (virtual - lo_i)[:, None]
    diff = b - a
    out = a + diff * t
    np.subtract(b, diff * (1 - t), out=out, where=t >= 0.5)
    return out


def winners_by_draw(util_draws: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The candidate with the highest utility in each draw; a tie goes to the higher-ranked (``order``: best
    first). The first maximum of each draw is the winner wherever it is the only one; the draws with a tie (or a
    NaN) are decided in rank order, as ``order[argmax(util_draws[:, order])]`` decides every draw."""
    first = util_draws.argmax(axis=1)
    rows = np.arange(len(first))
    top = util_draws[rows, first]
    util_draws[rows, first] = -np.inf  # the best of the others (the array is put back as it was)
    alone = util_draws[rows, util_draws.argmax(axis=1)] < top
    util_draws[rows, first] = top
    if not alone.all():
        again = np.flatnonzero(~alone)
        first[again] = order[np.argmax(np.take(util_draws[again], order, axis=1), axis=1)]
    return first


def shown_means(draws: np.ndarray, shown: Sequence[int]) -> dict[int, float]:
    """``float(draws[:, i].mean())`` for each ``shown`` column, with the same sums: a column alone is summed
    pairwise, as is each row of the shown columns made contiguous (one reduction for all)."""
    if not len(shown):
        return {}
    idx = np.asarray(shown, dtype=np.intp)
    return dict(zip(shown, np.ascontiguousarray(draws[:, idx].T).mean(axis=1).tolist()))


def shown_intervals(
    mean_draws: np.ndarray, pred_draws: np.ndarray, shown: Sequence[int], alpha: float, levels: Sequence[float]
) -> tuple[np.ndarray, ...]:
    """Central intervals of the mean and predictive draws and the predictive quantiles of the ``shown``
    columns at ``levels``, as full-width arrays indexed by candidate (other columns NaN)."""
    idx, n = np.asarray(shown, dtype=int), mean_draws.shape[1]
    full = [np.full(n, np.nan) for _ in range(4)] + [np.full((len(levels), n), np.nan)]
    if idx.size:  # each column's draws contiguous (a faster sort; the same order statistics and weights)
        m = np.ascontiguousarray(mean_draws[:, idx].T)
        p = np.ascontiguousarray(pred_draws[:, idx].T)
        full[0][idx], full[1][idx] = linear_quantiles(m, [alpha, 1 - alpha])  # np.quantile's bits, one sort
        qp = linear_quantiles(p, [alpha, 1 - alpha, *levels])
        full[2][idx], full[3][idx] = qp[0], qp[1]
        full[4][:, idx] = qp[2:]
    return tuple(full)
