"""Re-trial of a drug after a failed course, as both simulators' truth sees it (``rules/areas/simulation/
retrial.yaml``): a course stopped for an adverse effect makes a re-trial of the same drug likely to be stopped
again; a course without response makes the drug and its class-mates work less in that patient.

Each simulator decides for itself what a failed course was (the project simulator from its adverse-stop events
and its noise-free level, the independent one from the drug's own removed fraction) and applies the factors in
its own effect shape; this module only reads the file and turns per-drug failure flags into effect factors."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ..areas import Area
from ..errors import ConfigError
from ..rule_files import read_yaml, rules_dir

__all__ = ["RETRIAL_FILE", "Retrial", "load_retrial"]

RETRIAL_FILE = "areas/simulation/retrial.yaml"


@dataclasses.dataclass(frozen=True)
class Retrial:
    """One area's re-trial effect sizes (see the rules file for their sources)."""

    restop_same_drug: float
    adequate_days: int
    fall_below: float
    same_drug_factor: float
    same_class_factor: float

    def factors(self, area: Area, not_tolerated: np.ndarray, no_response: np.ndarray, *, itt: bool) -> np.ndarray:
        """Effect factor (rows x formulary drugs) from boolean failure flags of the same shape: a drug without
        response gets ``same_drug_factor``, a class-mate of one ``same_class_factor`` (the smaller if both);
        with ``itt`` a drug not tolerated before also keeps only ``1 - restop_same_drug`` of its effect (the
        re-trials stopped again before the follow-up)."""
        same = _class_mates(tuple([d.drug_class for d in area.formulary]))
        mate = no_response.astype(float) @ same > 0  # any drug of the class without response
        f = np.where(mate, self.same_class_factor, 1.0)
        f = np.where(no_response, np.minimum(f, self.same_drug_factor), f)
        if itt:
            f = np.where(not_tolerated, f * (1.0 - self.restop_same_drug), f)
        return f


@functools.lru_cache(maxsize=64)
def _class_mates(classes: tuple[str, ...]) -> np.ndarray:
    """(D, D) 1.0 where two formulary drugs (by their classes, in formulary order) share a class, else 0.0; built
    once per formulary (read-only: every :meth:`Retrial.factors` call of both simulators shares it)."""
    cls = np.array(classes, dtype=object)
    same = (cls[:, None] == cls[None, :]).astype(float)
    same.setflags(write=False)
    return same


def load_retrial(area_id: str, rules: str | None = None) -> Retrial | None:
    """The area's re-trial entry, or None when the file lists none for it (no carry-over simulated)."""
    path = rules_dir(rules) / RETRIAL_FILE
    if not path.exists():
        return None
    entry = (read_yaml(path).get("areas") or {}).get(area_id)
    if entry is None:
        return None
    try:
        nt, nr = entry["not_tolerated"], entry["no_response"]
        out = Retrial(
            restop_same_drug=float(nt["restop_same_drug"]),
            adequate_days=int(nr["adequate_days"]),
            fall_below=float(nr["fall_below"]),
            same_drug_factor=float(nr["same_drug_factor"]),
            same_class_factor=float(nr["same_class_factor"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            "re-trial entry is incomplete",
            field=f"{RETRIAL_FILE}:areas.{area_id}",
            value=str(exc),
            expected="not_tolerated.restop_same_drug and no_response.{adequate_days, fall_below, "
            "same_drug_factor, same_class_factor}",
        ) from None
    for name in ("restop_same_drug", "fall_below", "same_drug_factor", "same_class_factor"):
        v = getattr(out, name)
        if not 0.0 <= v <= 1.0:
            raise ConfigError(
                "re-trial value out of range", field=f"{RETRIAL_FILE}:areas.{area_id}.{name}", value=v, expected="0-1"
            )
    return out
