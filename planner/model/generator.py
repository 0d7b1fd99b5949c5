"""``RegimenGenerator``: which regimen clinicians choose, given features and the current regimen.

Generative story (per decision)::

    kind   ~ Categorical(softmax(W . [x, current-regimen indicators]))   restricted to kinds available
             kinds: continue | add | switch_within | switch_between | dose_up | dose_down | stop | other
    target ~ Categorical(w_kind,d)  over the drugs the kind can act on   (drug preference per kind)
    level  ~ Categorical(v_kind,l)  over the dose levels of the target   (dose-level preference per kind)
    chosen = move(current, kind, target, level)        ("other": two successive single moves)

The kind model is a multinomial logistic regression (scikit-learn) on standardized features and the current
regimen's classes; drug and dose-level preferences are Dirichlet-smoothed counts. Untrained, every available
kind is equally likely, drugs are uniform within a kind except first-line drugs (area file), which get
``first_line_weight`` times the weight: a guideline-like default. Moves respect the area's combination
limits (``max_drugs``, ``max_per_class``, exclusive classes).

Regimens are handled internally as sorted tuples of ``(drug index, dose level index)``; doses are snapped
to the nearest formulary level (a missing dose is the reference dose).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from ..areas import Area, load_area
from ..errors import ModelError
from ..record import DrugDose, Regimen
from .choice import Choice as _Choice
from .inputs import raw_row

__all__ = ["RegimenGenerator", "MOVE_KINDS", "Move"]

MOVE_KINDS = ("continue", "add", "switch_within", "switch_between", "dose_up", "dose_down", "stop", "other")
_K = {k: i for i, k in enumerate(MOVE_KINDS)}
Key = tuple[tuple[int, int], ...]  # sorted (drug index, level index)


_move = tuple.__new__  # Move(...) without the Python-level __new__ (moves() makes thousands)


class Move(tuple):
    """A single move: ``(kind, target drug index or -1, level index or -1, resulting key)``."""

    __slots__ = ()

    def __new__(cls, kind: str, drug: int, level: int, result: Key) -> "Move":
        return super().__new__(cls, (kind, drug, level, result))

    kind = property(lambda self: self[0])
    drug = property(lambda self: self[1])
    level = property(lambda self: self[2])
    result = property(lambda self: self[3])


class RegimenGenerator(BaseEstimator):
    """Multinomial model of clinicians' regimen moves; proposes candidates and gives propensities.

    Parameters (keyword-only): ``area`` (id or :class:`Area`), ``seed``, ``C`` (inverse L2 strength of the
    kind model), ``prior_strength`` (pseudo-counts of the drug / dose-level preferences),
    ``first_line_weight`` (untrained preference for first-line drugs), ``smoothing`` (mixing weight of a
    uniform over available kinds, so that no move has propensity 0), ``rules``.

    Fitted attributes: ``kind_model_`` (LogisticRegression or None), ``feature_names_in_``, ``feat_loc_``,
    ``feat_scale_``, ``drug_weights_`` (kinds x drugs), ``level_weights_`` (kinds x levels),
    ``kind_counts_``, ``n_decisions_``.
    """

    def __init__(
        self,
        *,
        area: str | Area,
        seed: int = 0,
        C: float = 1.0,
        prior_strength: float = 5.0,
        first_line_weight: float = 3.0,
        smoothing: float = 0.02,
        rules: str | None = None,
    ) -> None:
        self.area = area
        self.seed = seed
        self.C = C
        self.prior_strength = prior_strength
        self.first_line_weight = first_line_weight
        self.smoothing = smoothing
        self.rules = rules

    @classmethod
    def from_area(cls, area: str | Area, **options: Any) -> "RegimenGenerator":
        return cls(area=area, **options)

    # ---- area structure ------------------------------------------------------------------------------
    def _a(self) -> Area:
        if isinstance(self.area, Area):
            return self.area
        cached = getattr(self, "_area_cache", None)
        if cached is None or cached.id != self.area:
            cached = load_area(str(self.area), self.rules)
            self._area_cache = cached
        return cached

    def _struct(self) -> dict[str, Any]:
        area = self._a()
        cached = getattr(self, "_struct_cache", None)
        if cached is not None and cached["key"] == (area.id, area.version):
            return cached
        classes = [c.id for c in area.classes]
        drugs = list(area.formulary)
        st = {
            "key": (area.id, area.version),
            "drugs": drugs,
            "names": {**{d.ingredient: i for i, d in enumerate(drugs)}, **{d.rxcui: i for i, d in enumerate(drugs)}},
            "cls": [classes.index(d.drug_class) for d in drugs],
            "classes": classes,
            "levels": [tuple(d.doses) for d in drugs],
            "ref_level": [int(np.argmin([abs(x - d.reference_dose) for x in d.doses])) for d in drugs],
            "first": np.array([self.first_line_weight if d.first_line else 1.0 for d in drugs]),
            "max_drugs": area.combination.max_drugs,
            "max_per_class": area.combination.max_per_class,
            "exclusive": [set(x) for x in area.combination.exclusive_classes],
            "n_levels": max(len(d.doses) for d in drugs),
        }
        self._struct_cache = st
        return st

    def key_of(self, regimen: Regimen | Sequence[Any], *, field: str = "regimen") -> Key:
        """Canonical key of a regimen: drugs by formulary index, doses snapped to the nearest level."""
        st = self._struct()
        items: list[tuple[str, float | None]]
        if isinstance(regimen, Regimen):
            items = [(d.ingredient, d.dose_mg_day) for d in regimen.drugs]
        elif isinstance(regimen, (set, frozenset, list, tuple)):
            items = [(x.ingredient, x.dose_mg_day) if isinstance(x, DrugDose) else (str(x), None) for x in regimen]
        else:
            raise ModelError("not a regimen", field=field, value=regimen, expected="a planner.record.Regimen")
        out = []
        for name, dose in items:
            di = st["names"].get(name)
            if di is None:
                raise ModelError(
                    "unknown drug", field=field, value=name, expected=f"a drug of the {self._a().id} formulary"
                )
            lv = st["levels"][di]
            li = (
                st["ref_level"][di]
                if dose is None
                else int(np.argmin([abs(math.log(dose / x)) if dose > 0 else abs(x) for x in lv]))
            )
            out.append((di, li))
        return tuple(sorted(out))

    def regimen_of(self, key: Key) -> Regimen:
        """The regimen of a key (remembered: a Regimen is immutable)."""
        return self._regimens_of([key])[0]

    @staticmethod
    def _regimen_of(key: Key, st: dict[str, Any]) -> Regimen:
        return Regimen.of(
            [
                DrugDose(
                    ingredient=st["drugs"][d].ingredient,
                    rxcui=st["drugs"][d].rxcui,
                    dose_mg_day=float(st["levels"][d][lv]),
                    drug_class=st["drugs"][d].drug_class,
                )
                for d, lv in key
            ]
        )

    def _allowed(self, key: Key, st: dict[str, Any] | None = None) -> bool:
        st = self._struct() if st is None else st
        if len(key) > st["max_drugs"]:
            return False
        cls = [st["cls"][d] for d, _ in key]
        memo = st.setdefault("allowed", {})  # the answer depends only on the classes (moves() asks thousands)
        ck = tuple(sorted(cls))
        hit = memo.get(ck)
        if hit is None:
            hit = memo[ck] = self._classes_allowed(cls, st)
        return bool(hit)

    @staticmethod
    def _classes_allowed(cls: list[int], st: dict[str, Any]) -> bool:
        if any(cls.count(c) > st["max_per_class"] for c in set(cls)):
            return False
        names = {st["classes"][c] for c in cls}
        return not any(len(names & ex) > 1 for ex in st["exclusive"])

    def moves(self, current: Key) -> list[Move]:
        """Every valid single move from ``current`` (including ``continue``), in a stable order."""
        cache = getattr(self, "_moves_cache", None)
        if cache is None:
            cache = self._moves_cache = {}
        hit = cache.get(current)
        if hit is not None:
            return hit
        st = self._struct()
        out: list[Move] = [Move("continue", -1, -1, current)]
        cur = dict(current)
        cur_cls = {st["cls"][d] for d in cur}
        nd = len(st["drugs"])

        def put(kind: str, drug: int, level: int, items: dict[int, int]) -> None:
            key = tuple(sorted(items.items()))
            if key != current and self._allowed(key, st):
                out.append(Move(kind, drug, level, key))

        def put_levels(kind: str, drug: int, others: Key, ok: dict[int, bool]) -> None:
            """``put`` of ``others`` (sorted, without ``drug``) plus ``drug`` at each of its levels: the keys are
            ``others`` with ``(drug, level)`` inserted in order, and the combination limits depend only on the
            classes, the same at every level and for every drug of a class (``ok``: the answers for ``others``
            by the added drug's class), so they are checked once per class."""
            n = len(st["levels"][drug])
            if not n:
                return
            at = 0
            while at < len(others) and others[at][0] < drug:
                at += 1
            head, tail = others[:at], others[at:]
            keys = [(*head, (drug, li), *tail) for li in range(n)]
            c = st["cls"][drug]
            allowed = ok.get(c)
            if allowed is None:
                allowed = ok[c] = self._allowed(keys[0], st)
            if allowed:
                out.extend(_move(Move, (kind, drug, li, key)) for li, key in enumerate(keys) if key != current)

        if len(cur) < st["max_drugs"]:
            base, ok = tuple(sorted(cur.items())), {}
            for d in range(nd):
                if d not in cur:
                    put_levels("add", d, base, ok)
        for d0, l0 in current:
            rest = {k: v for k, v in cur.items() if k != d0}
            others, ok = tuple(sorted(rest.items())), {}
            for d in range(nd):
                if d in cur:
                    continue
                same = st["cls"][d] == st["cls"][d0]
                if not same and st["cls"][d] in cur_cls:
                    continue
                put_levels("switch_within" if same else "switch_between", d, others, ok)
            if l0 + 1 < len(st["levels"][d0]):
                put("dose_up", d0, l0 + 1, {**cur, d0: l0 + 1})
            if l0 > 0:
                put("dose_down", d0, l0 - 1, {**cur, d0: l0 - 1})
            put("stop", d0, -1, rest)
        if len(cache) > 20000:
            cache.clear()
        cache[current] = out
        return out

    # ---- features ------------------------------------------------------------------------------------
    def _design(self, X: pd.DataFrame, currents: Sequence[Key]) -> np.ndarray:
        names = list(self.feature_names_in_)
        return self._design_z(self._standardize(self._raw(X, names, getattr(self, "categories_", {}))), currents)

    def _standardize(self, raw: np.ndarray) -> np.ndarray:
        raw = np.where(np.isfinite(raw), raw, self.feat_loc_)
        return (raw - self.feat_loc_) / self.feat_scale_

    def _design_z(self, z: np.ndarray, currents: Sequence[Key]) -> np.ndarray:
        st = self._struct()
        C = len(st["classes"])
        reg = np.zeros((len(currents), C + 1))
        for i, key in enumerate(currents):
            for d, _ in key:
                reg[i, st["cls"][d]] = 1.0
            reg[i, C] = len(key)
        return np.hstack([z, reg])

    def _row_z(self, values: Mapping[str, float | str | None]) -> np.ndarray | None:
        """The standardized features (1, p) of one row of values, as :meth:`_design` reads a one-row frame of
        them; None when a value is not a plain number or label (the frame path then decides, with its errors)."""
        raw = raw_row(list(self.feature_names_in_), getattr(self, "categories_", {}), values)
        if raw is None:
            return None
        return self._standardize(raw)

    @staticmethod
    def _raw(X: pd.DataFrame, names: list[str], cats: dict[str, list[str]]) -> np.ndarray:
        from .response import ResponseModel
        from .spec import ModelSpec

        probe = ModelSpec(classes=[], drugs=[], features=names, feat_loc=[], feat_scale=[], categories=cats)
        return ResponseModel._raw_features(probe, X, lenient=False)

    def _kind_probs(self, X: pd.DataFrame | None, currents: Sequence[Key]) -> np.ndarray:
        """P(kind) per row, (n, len(MOVE_KINDS)), before restriction to available kinds."""
        model = getattr(self, "kind_model_", None)
        if model is None or X is None:
            return np.full((len(currents), len(MOVE_KINDS)), 1.0 / len(MOVE_KINDS))
        return self._kind_probs_z(None, currents, X)

    def _kind_probs_z(self, z: np.ndarray | None, currents: Sequence[Key], X: pd.DataFrame | None = None) -> np.ndarray:
        """:meth:`_kind_probs` of a fitted kind model from standardized features ``z`` (or the frame ``X``)."""
        n = len(currents)
        base = np.full((n, len(MOVE_KINDS)), 1.0 / len(MOVE_KINDS))
        model = self.kind_model_
        assert z is not None or X is not None
        p = model.predict_proba(self._design(X, currents) if z is None else self._design_z(z, currents))
        full = np.zeros((n, len(MOVE_KINDS)))
        for j, k in enumerate(model.classes_):
            full[:, int(k)] = p[:, j]
        return (1 - self.smoothing) * full + self.smoothing * base

    def _weights(self) -> tuple[np.ndarray, np.ndarray]:
        st = self._struct()
        dw = getattr(self, "drug_weights_", None)
        lw = getattr(self, "level_weights_", None)
        if dw is None or lw is None:  # the untrained preferences, made once per area structure
            if "prior_weights" not in st:
                st["prior_weights"] = (
                    np.tile(st["first"], (len(MOVE_KINDS), 1)),
                    np.ones((len(MOVE_KINDS), st["n_levels"])),
                )
            dw = st["prior_weights"][0] if dw is None else dw
            lw = st["prior_weights"][1] if lw is None else lw
        return dw, lw

    def move_distribution(self, kind_p: np.ndarray, current: Key) -> tuple[list[Move], np.ndarray]:
        """Moves from ``current`` and their probabilities (summing to 1 with ``P(other)``, returned last
        as the probability of the pseudo-move ``other``). Remembered per (kind probabilities, current,
        weights): an unfitted generator gives every patient the same kind probabilities."""
        mv, probs, _nonc = self._distribution(kind_p, current)
        return mv, probs.copy()

    def _distribution(self, kind_p: np.ndarray, current: Key) -> tuple[list[Move], np.ndarray, np.ndarray]:
        """:meth:`move_distribution` (the remembered probabilities themselves: read them, never write) and the
        moves' not-``continue`` mask from the same move table: one weights look-up a current regimen for both."""
        dw, lw = self._weights()
        kp = np.asarray(kind_p, dtype=np.float64)
        key = (kp.shape, kp.tobytes(), current, dw.tobytes(), lw.tobytes())
        cache = getattr(self, "_dist_cache", None)
        if cache is None:
            cache = self._dist_cache = {}
        hit = cache.get(key)
        if hit is None:
            mv, t = self._move_table(current, dw, lw)
            kpa = np.array([kind_p[_K[k]] for k in t["avail"]])
            kpa = kpa / kpa.sum()
            probs = np.empty(len(mv) + 1)
            probs[:-1] = kpa[t["kind_at"]] * t["w"] / t["wsum"]  # P(kind) x the move's share of its kind
            probs[-1] = kpa[-1]  # "other" is always available, last
            hit = (mv, probs, t["nonc"])
            if len(cache) < 20_000:  # bounded on any cohort
                cache[key] = hit
        return hit

    def _move_table(self, current: Key, dw: np.ndarray, lw: np.ndarray) -> tuple[list[Move], dict[str, Any]]:
        """What of :meth:`move_distribution` does not depend on the kind probabilities, per current regimen and
        weights: the available kinds, each move's kind (its position among them), its drug x level weight and
        the sum of the weights of its kind (``continue``: 1 and 1)."""
        st = self._struct()
        tables = st.setdefault("tables", {})
        tkey = (current, dw.tobytes(), lw.tobytes())
        hit = tables.get(tkey)
        if hit is not None:
            return hit
        mv = self.moves(current)
        by_kind: dict[str, list[int]] = {}
        for i, m in enumerate(mv):
            by_kind.setdefault(m[0], []).append(i)  # m[0]: the kind (tuple access, no property)
        avail = [k for k in MOVE_KINDS if k in by_kind or k == "other"]
        pos = {k: i for i, k in enumerate(avail)}
        kind_at = np.array([pos[m[0]] for m in mv], dtype=np.int64)
        w = np.ones(len(mv))
        wsum = np.ones(len(mv))
        dwl, lwl = dw.tolist(), lw.tolist()  # Python floats: the same float64 products, without numpy scalars
        for k, idx in by_kind.items():
            if k == "continue":
                continue
            kk = _K[k]
            wk = np.array([dwl[kk][mv[i][1]] * (lwl[kk][mv[i][2]] if mv[i][2] >= 0 else 1.0) for i in idx])
            w[idx] = wk
            wsum[idx] = wk.sum()
        table = {"avail": avail, "kind_at": kind_at, "w": w, "wsum": wsum}
        table["nonc"] = np.array([m[0] != "continue" for m in mv], dtype=float)
        if len(tables) > 20_000:
            tables.clear()
        tables[tkey] = (mv, table)
        return mv, table

    # ---- fitting -------------------------------------------------------------------------------------
    def classify(self, current: Key, chosen: Key) -> Move:
        """The single move taking ``current`` to ``chosen`` (kind ``other`` when there is none)."""
        for m in self.moves(current):
            if m.result == chosen:
                return m
        return Move("other", -1, -1, chosen)

    def fit(
        self, X: pd.DataFrame, current_regimens: Sequence[Any], chosen_regimens: Sequence[Any]
    ) -> "RegimenGenerator":
        """Fit on decisions: features at the decision, the regimen before it, and the regimen chosen."""
        if not isinstance(X, pd.DataFrame):
            raise ModelError("features must be a pandas DataFrame", field="X", value=type(X).__name__)
        n = len(X)
        if len(current_regimens) != n or len(chosen_regimens) != n:
            raise ModelError(
                "X, current_regimens and chosen_regimens differ in length",
                field="regimens",
                value=(n, len(current_regimens), len(chosen_regimens)),
                expected="equal lengths",
            )
        if n == 0:
            raise ModelError("no decisions to fit", field="X", value=0, expected="at least one row")
        from .response import ResponseModel  # the same column handling as the response model

        cols, cats = ResponseModel()._feature_columns(X, None)
        self.categories_ = cats
        raw = self._raw(X, cols, cats)
        loc = np.nan_to_num(np.nanmean(raw, axis=0)) if cols else np.zeros(0)
        sd = np.nan_to_num(np.nanstd(raw, axis=0), nan=1.0) if cols else np.zeros(0)
        self.feature_names_in_ = np.array(cols, dtype=object)
        self.n_features_in_ = len(cols)
        self.feat_loc_ = loc
        self.feat_scale_ = np.where(sd > 1e-12, sd, 1.0)
        cur = [self.key_of(r, field=f"current_regimens[{i}]") for i, r in enumerate(current_regimens)]
        cho = [self.key_of(r, field=f"chosen_regimens[{i}]") for i, r in enumerate(chosen_regimens)]
        st = self._struct()
        moves = [self.classify(c, h) for c, h in zip(cur, cho)]
        labels = np.array([_K[m.kind] for m in moves])
        self.kind_counts_ = {k: int((labels == i).sum()) for i, k in enumerate(MOVE_KINDS)}
        self.n_decisions_ = n
        if len(np.unique(labels)) >= 2:
            from sklearn.linear_model import LogisticRegression  # lazy: only fitting needs it

            lr = LogisticRegression(C=self.C, max_iter=1000)
            lr.fit(self._design(X, cur), labels)
            self.kind_model_ = lr
        else:
            self.kind_model_ = None
        a = self.prior_strength
        dw = np.tile(st["first"] / st["first"].sum() * a, (len(MOVE_KINDS), 1))
        lw = np.full((len(MOVE_KINDS), st["n_levels"]), a / st["n_levels"])
        for m in moves:
            if m.drug >= 0:
                dw[_K[m.kind], m.drug] += 1
            if m.level >= 0:
                lw[_K[m.kind], m.level] += 1
        self.drug_weights_ = dw
        self.level_weights_ = lw
        return self

    # ---- use -----------------------------------------------------------------------------------------
    def propensity(
        self, X: pd.DataFrame | None, current_regimens: Sequence[Any], chosen_regimens: Sequence[Any]
    ) -> np.ndarray:
        """P(chosen | features, current) per row. A regimen not one move away gets ``P(other)`` spread evenly
        over the about ``m^2/2`` two-move regimens (``m`` the number of single moves), an approximation."""
        n = len(current_regimens)
        if len(chosen_regimens) != n or (X is not None and len(X) != n):
            raise ModelError(
                "inputs differ in length",
                field="regimens",
                value=(None if X is None else len(X), n, len(chosen_regimens)),
            )
        cur = [self.key_of(r, field=f"current_regimens[{i}]") for i, r in enumerate(current_regimens)]
        cho = [self.key_of(r, field=f"chosen_regimens[{i}]") for i, r in enumerate(chosen_regimens)]
        kp = self._kind_probs(X if self._is_fitted() else None, cur)
        out = np.empty(n)
        for i in range(n):
            mv, pr = self.move_distribution(kp[i], cur[i])
            hit = [pr[j] for j, m in enumerate(mv) if m.result == cho[i]]
            if hit:
                out[i] = float(sum(hit))
            else:
                m = max(len(mv) - 1, 1)
                out[i] = float(pr[-1]) / max(m * m / 2.0, 1.0)
        return out

    def propose(
        self, X_row: pd.DataFrame | pd.Series | None, current: Regimen, *, n: int = 50, seed: int = 0
    ) -> list[Regimen]:
        """Candidate regimens: the current one, every valid single move (most probable first), then up to
        ``n`` sampled two-move regimens drawn from the generator (kind ``other``), without duplicates."""
        if isinstance(X_row, pd.Series):
            X_row = X_row.to_frame().T
        if X_row is not None and len(X_row) != 1:
            raise ModelError("propose takes one patient row", field="X_row", value=len(X_row), expected="1 row")
        cur = self.key_of(current, field="current")
        kp = self._kind_probs(X_row if self._is_fitted() else None, [cur])[0]
        return self._regimens_of(self._propose_keys(kp, cur, n, seed))

    def propose_values(
        self, values: Mapping[str, float | str | None], current: Regimen, *, n: int = 50, seed: int = 0
    ) -> list[Regimen]:
        """:meth:`propose` for a patient's feature values (column -> value, None missing) as one row: the same
        regimens, without building a DataFrame where the values are plain numbers and labels."""
        cur = self.key_of(current, field="current")
        if getattr(self, "kind_model_", None) is None or not self._is_fitted():
            kp = self._kind_probs(None, [cur])[0]  # the kinds' prior: the same for every row
        else:
            z = self._row_z(values)
            if z is None:
                frame = pd.DataFrame([{k: (np.nan if v is None else v) for k, v in values.items()}])
                kp = self._kind_probs(frame, [cur])[0]
            else:
                kp = self._kind_probs_z(z, [cur])[0]
        return self._regimens_of(self._propose_keys(kp, cur, n, seed))

    def _regimens_of(self, keys: list[Key]) -> list[Regimen]:
        """:meth:`regimen_of` of each key (the area structure and memory looked up once)."""
        st = self._struct()
        memo = st.setdefault("regimens", {})
        out = []
        for key in keys:
            hit = memo.get(key)
            if hit is None:
                if len(memo) > 50_000:
                    memo.clear()
                hit = memo[key] = self._regimen_of(key, st)
            out.append(hit)
        return out

    def _propose_keys(self, kp: np.ndarray, cur: Key, n: int, seed: int) -> list[Key]:
        mv, pr, nonc = self._distribution(kp, cur)
        order = np.lexsort((np.arange(len(mv)), -pr[:-1], nonc))  # continue first, then most probable, stable
        keys: list[Key] = []
        seen: set[Key] = set()
        for j in order.tolist():
            r = mv[j][3]  # the move's result
            if r not in seen:
                seen.add(r)
                keys.append(r)
        rng = np.random.default_rng(seed)
        draws = rng.random(max(int(n), 0))
        w1 = pr[:-1] * nonc
        if w1.sum() <= 0:
            return keys
        p1 = _Choice(w1 / w1.sum())
        other = pr[-1]
        seconds: dict[Key, tuple[list[Move], _Choice]] = {}  # moves from a first move's result, asked once
        for u in draws.tolist():  # single-move draws add nothing new; a draw of kind "other" takes two moves
            if u >= other:
                continue
            first = mv[p1.draw(rng)]
            if first[3] not in seconds:
                mv2, pr2, nonc2 = self._distribution(kp, first[3])
                w2 = pr2[:-1] * nonc2
                seconds[first[3]] = mv2, _Choice(w2 / w2.sum() if w2.sum() > 0 else w2)
            mv2, p2 = seconds[first[3]]
            if p2.p.sum() <= 0:
                continue
            second = mv2[p2.draw(rng)][3]
            if second not in seen:
                seen.add(second)
                keys.append(second)
        return keys

    def _is_fitted(self) -> bool:
        return hasattr(self, "drug_weights_")

    # ---- persistence (planner.model.generator_io) ------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``generator.json`` (options, fitted weights and the kind model's coefficients)."""
        from .generator_io import save_generator

        return save_generator(self, directory)

    @classmethod
    def load(cls, directory: str | Path, *, rules: str | None = None) -> "RegimenGenerator":
        from .generator_io import load_generator

        return load_generator(cls, directory, rules=rules)
