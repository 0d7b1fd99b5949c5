"""Regimens of an area: enumeration under the combination limits, and the effect arithmetic shared by the
simulator's truth and the model (dose-response, sub-additive combination).

Everything here is pure and vectorized over rows (numpy); no literal drug, class or threshold lives here: they
come from the area file.
"""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np

from ..errors import AreaError
from ..record import DrugDose, Regimen
from .schema import Area, DoseResponse

__all__ = [
    "enumerate_regimens",
    "is_allowed",
    "regimen_violations",
    "dose_scaled_effect",
    "combine_effects",
    "regimen_of",
]


def regimen_of(area: Area, drugs: "dict[str, float | None] | list[tuple[str, float | None]]") -> Regimen:
    """Build a :class:`Regimen` from ``{ingredient: dose_mg_day}`` using the area's RxCUIs and classes."""
    items = drugs.items() if isinstance(drugs, dict) else drugs
    out = []
    for name, dose in items:
        entry = area.drug(name)
        out.append(
            DrugDose(
                ingredient=entry.ingredient,
                rxcui=entry.rxcui,
                dose_mg_day=None if dose is None else float(dose),
                drug_class=entry.drug_class,
            )
        )
    return Regimen.of(out)


def fill_doses(regimen: Regimen, area: Area) -> Regimen:
    """The regimen with each unknown dose set to the drug's reference dose in ``area`` (for prediction only)."""
    for d in regimen.drugs:  # a plain loop: asked for every candidate of every patient
        if d.dose_mg_day is None:
            break
    else:
        return regimen
    return Regimen.of(
        [
            d
            if d.dose_mg_day is not None
            else d.model_copy(update={"dose_mg_day": area.drug(d.ingredient).reference_dose})
            for d in regimen.drugs
        ]
    )


def regimen_violations(area: Area, regimen: Regimen) -> list[str]:
    """Why a regimen breaks the area's combination limits (empty when allowed)."""
    comb = area.combination
    problems: list[str] = []
    classes: list[str] = []
    for d in regimen.drugs:
        try:
            classes.append(area.drug(d.ingredient).drug_class)
        except AreaError:
            problems.append(f"{d.ingredient} is not in the {area.id} formulary")
    if len(regimen.drugs) > comb.max_drugs:
        problems.append(f"{len(regimen.drugs)} drugs > max_drugs {comb.max_drugs}")
    if len(set(regimen.ingredients)) != len(regimen.ingredients):
        problems.append("the same ingredient twice")
    for cid in sorted(set(classes)):
        if classes.count(cid) > comb.max_per_class:
            problems.append(f"{classes.count(cid)} drugs of class {cid} > max_per_class {comb.max_per_class}")
    for group in comb.exclusive_classes:
        present = [c for c in group if c in classes]
        if len(present) > 1:
            problems.append("exclusive classes combined: " + " + ".join(present))
    return problems


def is_allowed(area: Area, regimen: Regimen) -> bool:
    """True when the regimen respects the area's combination limits."""
    return not regimen_violations(area, regimen)


def enumerate_regimens(
    area: Area,
    *,
    doses: Literal["reference", "all"] = "reference",
    max_drugs: int | None = None,
    include_empty: bool = True,
) -> list[Regimen]:
    """Every regimen the area allows: at most ``combination.max_per_class`` drugs a class (one in every shipped
    area), at most ``max_drugs`` (default and ceiling: ``combination.max_drugs``), no two exclusive classes.

    ``doses="reference"`` gives each drug at its reference dose; ``"all"`` every listed dose level. The order
    is deterministic: by number of drugs, then by :meth:`Regimen.key`. ``include_empty`` adds the no-drug
    regimen (key ``"none"``) first.
    """
    if doses not in ("reference", "all"):
        raise AreaError("unknown doses option", field="doses", value=doses, expected="'reference' or 'all'")
    limit = area.combination.max_drugs if max_drugs is None else min(int(max_drugs), area.combination.max_drugs)
    if limit < 0:
        raise AreaError("max_drugs must be >= 0", field="max_drugs", value=max_drugs)
    per_class = area.combination.max_per_class
    out: list[Regimen] = [Regimen()] if include_empty else []
    drugs = list(area.formulary)
    for k in range(1, limit + 1):
        level: list[Regimen] = []
        for combo in itertools.combinations(drugs, k):
            classes = [d.drug_class for d in combo]
            if any(classes.count(c) > per_class for c in set(classes)):
                continue
            if any(sum(c in classes for c in group) > 1 for group in area.combination.exclusive_classes):
                continue
            dose_lists = [[d.reference_dose] if doses == "reference" else list(d.doses) for d in combo]
            for dose_combo in itertools.product(*dose_lists):
                level.append(
                    Regimen.of(
                        [
                            DrugDose(
                                ingredient=d.ingredient, rxcui=d.rxcui, dose_mg_day=float(x), drug_class=d.drug_class
                            )
                            for d, x in zip(combo, dose_combo)
                        ]
                    )
                )
        out.extend(sorted(level, key=lambda r: r.key()))
    return out


def dose_scaled_effect(
    effect: np.ndarray | float,
    ratio: np.ndarray | float,
    dose_response: DoseResponse,
    *,
    per_doubling: float | None = None,
    ed50: float | None = None,
) -> np.ndarray:
    """The effect at ``ratio`` = dose / reference dose (see the schema docstring for the curves).

    ``per_doubling`` / ``ed50`` override the area's values (the simulator's true world uses its own draws).
    The result never changes sign relative to ``effect`` (a low dose can do nothing, never harm).
    """
    eff = np.asarray(effect, dtype=float)
    r = np.maximum(np.asarray(ratio, dtype=float), 1e-9)
    kind = dose_response.kind
    if kind == "none":
        out = eff * np.ones_like(r)
    elif kind == "log2":
        pdbl = dose_response.per_doubling if per_doubling is None else per_doubling
        out = eff + float(pdbl) * np.log2(r)  # type: ignore[arg-type]
    elif kind == "emax":
        e50 = dose_response.ed50 if ed50 is None else ed50
        out = eff * (1.0 + e50) * r / (e50 + r)  # type: ignore[operator]
    elif kind == "linear":
        out = eff * r
    else:  # pragma: no cover - schema forbids
        raise AreaError("unknown dose-response kind", field="dose_response.kind", value=kind)
    return np.where(out * eff < 0, 0.0, out)


def combine_effects(effects: np.ndarray, subadditivity: float) -> np.ndarray:
    """Combine drug effects along the last axis: the largest absolute effect counts fully, every other one is
    multiplied by ``subadditivity``. Zeros (no drug) contribute nothing."""
    e = np.asarray(effects, dtype=float)
    if e.shape[-1] == 0:
        return np.zeros(e.shape[:-1])
    idx = np.argmax(np.abs(e), axis=-1)
    top = np.take_along_axis(e, idx[..., None], axis=-1)[..., 0]
    return top + subadditivity * (e.sum(axis=-1) - top)
