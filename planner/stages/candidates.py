"""The candidates stage: ``FeatureRow -> CandidateSet``.

The current regimen (doses as recorded) comes first, then the generator's proposals for the patient's features
(its samples, and every single move from the current regimen), de-duplicated by regimen key. The generator
sees the current regimen with unknown doses at their reference dose; that filled-in copy is not itself a
candidate unless it is the current regimen.
"""

from __future__ import annotations

from typing import Protocol

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
    proposals = generator.propose(features.frame(), filled, n=n, seed=seed)
    seen: dict[str, Regimen] = {}
    for r in [current, *proposals]:
        if r == filled and filled != current:
            continue  # the current regimen itself, with its unknown doses filled in for the generator
        seen.setdefault(r.key(), r)
    name = str(getattr(generator, "name", type(generator).__name__))
    return CandidateSet(features=features, candidates=tuple(seen.values()), generator=name, seed=seed, requested=n)
