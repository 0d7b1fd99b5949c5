"""Per-draw utility values held once per distinct column (regimens that share a column share all its values), and
the few array steps the ranking takes on them with numpy's own sums: the same bits as on the (S, n) arrays
(tests/test_rank_speed.py)."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

__all__: list[str] = []


class _Columns:
    """(S, m) draws and the column of each of n regimens: regimens that share a column share all its values, so
    every elementwise step runs once per distinct column and the (S, n) array is gathered only when needed.
    Built from the (S, m) :attr:`values` or from the (m, S) :attr:`rows`; the other layout is made when first
    asked for (the same values: every step here is elementwise)."""

    __slots__ = ("_values", "_rows", "at")

    def __init__(self, values: np.ndarray | None, at: np.ndarray, rows: np.ndarray | None = None) -> None:
        if values is None and rows is None:
            raise ValueError("_Columns needs values or rows")
        self._values, self._rows, self.at = values, rows, at  # at: (n,) column of each regimen

    @property
    def values(self) -> np.ndarray:
        """(S, m), C order (made from the rows when built from them)."""
        if self._values is None:
            assert self._rows is not None
            self._values = np.ascontiguousarray(self._rows.T)
        return self._values

    @property
    def rows(self) -> np.ndarray:
        """(m, S): each column's draws contiguous (gathering whole rows is far cheaper than columns)."""
        if self._rows is None:
            assert self._values is not None
            self._rows = np.ascontiguousarray(self._values.T)
        return self._rows

    @property
    def num(self) -> int:
        """S, the number of draws."""
        return self._values.shape[0] if self._values is not None else self.rows.shape[1]

    @property
    def dtype(self) -> np.dtype:
        return (self._values if self._values is not None else self.rows).dtype

    @property
    def c_contiguous(self) -> bool:
        """Whether :attr:`values` is (or, made from the rows, will be) C-ordered."""
        return self._values is None or bool(self._values.flags.c_contiguous)

    def full(self) -> np.ndarray:
        return np.take(self.values, self.at, axis=1)  # (S, n), C order (as np.stack built it)

    @classmethod
    def of_rows(cls, rows: np.ndarray, at: np.ndarray) -> "_Columns":
        """From the (m, S) rows (:attr:`values` made from them when asked for)."""
        return cls(None, at, rows)

    def map(self, f: Callable[[np.ndarray], np.ndarray]) -> "_Columns":
        """``f`` (elementwise) of every value: of the rows where they are kept (the values are then made from
        them: the same values), else of the values."""
        if self._rows is not None:
            return _Columns(None, self.at, f(self._rows))
        return _Columns(f(self.values), self.at)

    def scaled(self, factor: float) -> "_Columns":
        return self.map(lambda v: factor * v)

    def mean(self) -> np.ndarray:
        """``full().mean(axis=0)`` with the same sums: numpy adds a C-order 2-D array's rows in turn, and sums
        a single column pairwise, so the distinct columns give it exactly when both have one column or both more."""
        if (self.values.shape[1] >= 2) == (len(self.at) >= 2):
            return self.values.mean(axis=0)[self.at]
        return self.full().mean(axis=0)

    def mean_at(self, idx: Sequence[int]) -> np.ndarray:
        """:meth:`mean` at the regimens ``idx`` (others NaN), with the same sums (see :func:`_means_at`)."""
        return _means_at([self], idx)[0]


def _means_at(columns: Sequence[_Columns], idx: Sequence[int]) -> list[np.ndarray]:
    """``[c.mean() for c in columns]`` at the regimens ``idx`` (others NaN), with the same sums: with two regimens
    or more each regimen's mean is its column's sum row by row, which the columns needed give side by side in
    one (S, k) array (one reduction for all; two columns at least: one alone would be summed pairwise)."""
    out: list[np.ndarray | None] = [None] * len(columns)
    parts: list[tuple[int, list[int], np.ndarray]] = []
    pick = np.asarray(idx, dtype=np.intp)
    for k, c in enumerate(columns):
        if len(c.at) < 2 or not pick.size or not c.c_contiguous:
            out[k] = c.mean()
            continue
        first: dict[int, int] = {}
        inv = np.array([first.setdefault(j, len(first)) for j in c.at[pick].tolist()], dtype=np.intp)
        parts.append((k, list(first), inv))
    if parts:  # whole rows gathered, then side by side as columns (far cheaper than gathering columns)
        block = np.ascontiguousarray(np.concatenate([columns[k].rows[need] for k, need, _ in parts]).T)
        sums = (block if block.shape[1] >= 2 else np.repeat(block, 2, axis=1)).mean(axis=0)
        start = 0
        for k, need, inv in parts:
            full = np.full(len(columns[k].at), np.nan)
            full[pick] = sums[start + inv]
            start += len(need)
            out[k] = full
    return [o for o in out if o is not None]


def _added(parts: Sequence[np.ndarray]) -> np.ndarray | float:
    """``parts[0] + parts[1]``, then the rest added in place, in order (a part itself when alone; 0.0 for none)."""
    if len(parts) < 2:
        return parts[0] if parts else 0.0
    out = parts[0] + parts[1]
    for p in parts[2:]:
        if np.result_type(out, p) == out.dtype:
            out += p
        else:
            out = out + p
    return out


def _distinct(row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of a float64 ``row`` by bits (-0.0 is not 0.0 here), first seen first, and the
    position of each element's (a row holds a few distinct values: a dict beats a sort)."""
    first: dict[int, int] = {}
    at = np.array([first.setdefault(b, len(first)) for b in row.view(np.uint64).tolist()], dtype=np.intp)
    return np.array(list(first), dtype=np.uint64).view(np.float64), at


def _row_columns(row: np.ndarray, num: int) -> _Columns:
    """The same ``row`` (n,) in each of ``num`` draws as distinct columns (by bits: -0.0 is not 0.0 here)."""
    values, at = _distinct(np.ascontiguousarray(row, dtype=np.float64))
    return _Columns(np.broadcast_to(values, (num, len(values))), at)


def _broadcast_mean(row: np.ndarray, num: int) -> np.ndarray:
    """``np.broadcast_to(row, (num, n)).mean(axis=0)``, summed once per distinct value (the same sums)."""
    if row.dtype != np.float64 or row.ndim != 1:
        return np.broadcast_to(row, (num, *row.shape[-1:])).mean(axis=0)
    values, at = _distinct(np.ascontiguousarray(row))
    return _Columns(np.broadcast_to(values, (num, len(values))), at).mean()
