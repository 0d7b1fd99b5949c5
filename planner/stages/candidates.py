"""The candidates stage: ``FeatureRow -> CandidateSet``.

The current regimen (doses as recorded) comes first, then the generator's proposals for the patient's features
(its samples, and every single move from the current regimen), de-duplicated by regimen key. The generator
sees the current regimen with unknown doses at their reference dose; that filled-in copy is not itself a
candidate unless it is the current regimen.
"""

from __future__ import annotations

import weakref
from typing import Any, Protocol

import pandas as pd

from ..areas import Area, fill_doses
from ..handoffs import CandidateSet, FeatureRow
from ..record import Regimen

__all__ = ["CandidateGenerator", "propose_candidates"]


class CandidateGenerator(Protocol):
    """What the stage needs of a regimen generator (:class:`planner.model.RegimenGenerator`)."""

    def propose(self, X_row: pd.DataFrame, current: Regimen, *, n: int, seed: int) -> list[Regimen]: ...


def propose_candidates(
    features: FeatureRow, *, area: Area, generator: CandidateGenerator, n: int, seed: int
) -> CandidateSet:
    """The regimens to screen for this patient: ``n`` generator samples plus the single moves, current first."""
    current = features.current
    filled = fill_doses(current, area)
    proposals = _propose(generator, features, filled, n=n, seed=seed)
    seen: dict[str, Regimen] = {current.key(): current}
    fkey = filled.key() if filled != current else None
    for r, k in proposals:
        if k == fkey and r == filled:
            continue  # the current regimen itself, with its unknown doses filled in for the generator
        seen.setdefault(k, r)
    name = str(getattr(generator, "name", type(generator).__name__))
    return CandidateSet(features=features, candidates=tuple(seen.values()), generator=name, seed=seed, requested=n)


_MEMO: "weakref.WeakKeyDictionary[Any, dict[Any, list[tuple[Regimen, str]]]]" = weakref.WeakKeyDictionary()
_MEMO_SIZE = 20_000


def _propose(
    generator: CandidateGenerator, features: FeatureRow, filled: Regimen, *, n: int, seed: int
) -> list[tuple[Regimen, str]]:
    """``generator.propose`` with each regimen's key, remembered for a RegimenGenerator: its proposals are a
    function of the current regimen, ``n``, ``seed``, its fitted weights and (only with a fitted kind model) the
    patient's features, so patients on the same regimen get the same list without drawing it again."""
    from ..model import RegimenGenerator

    if not isinstance(generator, RegimenGenerator):
        return [(r, r.key()) for r in generator.propose(features.frame(), filled, n=n, seed=seed)]
    state = tuple(id(getattr(generator, a, None)) for a in ("drug_weights_", "level_weights_", "kind_model_"))
    row = tuple(features.values.items()) if getattr(generator, "kind_model_", None) is not None else None
    key = (state, filled.key(), tuple((d.ingredient, d.dose_mg_day) for d in filled.drugs), n, seed, row)
    memo = _MEMO.setdefault(generator, {})
    hit = memo.get(key)
    if hit is None:
        hit = [(r, r.key()) for r in generator.propose_values(features.values, filled, n=n, seed=seed)]
        if len(memo) >= _MEMO_SIZE:  # bounded on any cohort
            memo.clear()
        memo[key] = hit
    return hit
