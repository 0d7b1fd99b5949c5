"""A plan's rationale: the prediction, the changes with doses as prescribed, the effect modifiers and the rules
that touched it (the guideline and trade-off sentences come from :mod:`planner.explain`). Which modifiers are
named is data (``rules/rationale.yaml``)."""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Mapping, Sequence

from .areas import Area
from .dosing import dose_text
from .errors import RuleError
from .recommendation import PlanDrug, Predicted
from .record import Finding
from .rule_files import read_yaml, rules_dir
from .units import one_decimal, rounded, with_unit

__all__ = ["rationale", "modifier_share"]


def modifier_share(rules: str | Path | None = None) -> float:
    """``modifiers.min_share_of_class_effect`` of ``rules/rationale.yaml``: a modifier is named when it moves the
    class effect by at least this share of it (cached per ``rules`` and ``$PLANNER_RULES_DIR``)."""
    return _share(None if rules is None else str(rules), os.environ.get("PLANNER_RULES_DIR"))


@functools.lru_cache(maxsize=16)
def _share(rules: str | None, env: str | None) -> float:  # env: part of the cache key only
    path = rules_dir(rules) / "rationale.yaml"
    raw = read_yaml(path)
    value = (raw.get("modifiers") or {}).get("min_share_of_class_effect", ...) if isinstance(raw, dict) else ...
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise RuleError(
            "invalid rationale setting",
            file=str(path),
            field="modifiers.min_share_of_class_effect",
            value=value,
            expected="a number in [0, 1): the share of a class's effect a modifier must move to be named",
        )
    return float(value)


# area -> its features' units (planner.features.values.feature_units), kept per area object (identity-checked)
_UNITS: dict[int, tuple[Area, dict[str, str]]] = {}


def _units_of(area: Area) -> dict[str, str]:
    hit = _UNITS.get(id(area))
    if hit is None or hit[0] is not area:
        from .features.values import feature_units

        if len(_UNITS) >= 64:
            _UNITS.clear()
        hit = _UNITS[id(area)] = (area, feature_units(area))
    return hit[1]


def _feature_text(area: Area, name: str, val: float, defaulted: bool, rules: str | Path | None = None) -> str:
    """``bmi 31.2 kg/m²``, rounded and with the feature's unit (as ``rules``' units table writes it); a value not
    measured says what stands in."""
    unit = _units_of(area).get(name, "")
    if unit == "1" and val in (0.0, 1.0):  # a condition present or absent
        return name.replace("_", " ") if val else "no " + name.replace("_", " ")
    text = f"{name} {rounded(val, unit, rules)}"
    if not defaulted:
        return text
    # a baseline not recent is the last value on record (features/row.py); another quantity takes the default
    stale = any(f.name == name and f.kind == "baseline" for f in area.features)
    return text + (" (the last value on record, not recent)" if stale else " (not measured: population default)")


def _modifiers(
    area: Area, klass: str, features: Mapping[str, float | str | None], rules: str | Path | None
) -> list[str]:
    """What the patient's features say about the effect of drug class ``klass`` (a sentence per modifier that
    moves it by ``rules/rationale.yaml`` ``modifiers.min_share_of_class_effect`` of it or more)."""
    out: list[str] = []
    prior = area.class_prior(klass)
    base_eff = prior.effect_on_scale()
    share = modifier_share(rules)
    for m in prior.modifiers:
        val = features.get(m.feature)
        if not isinstance(val, (int, float)) or isinstance(val, bool) or math.isnan(float(val)):
            continue
        shift = m.per_unit * (float(val) - m.center)
        if abs(shift) >= share * abs(base_eff):
            direction = "larger" if (shift < 0) == (base_eff < 0) else "smaller"
            out.append(
                f"{prior.label or klass}: {direction} effect expected with "
                + _feature_text(area, m.feature, float(val), features.get(m.feature + "_missing") == 1, rules)
            )
    return out


def rationale(
    *,
    area: Area,
    drugs: Sequence[PlanDrug],
    stopped: Sequence[PlanDrug],
    pred: Predicted,
    p_target: float,
    baseline: float | None,
    target: float,
    findings: Sequence[Finding],
    features: Mapping[str, float | str | None],
    rules: str | Path | None = None,
    modifiers: dict[str, list[str]] | None = None,
) -> str:
    """The plan's rationale text; units as ``rules``' ``codes/units.yaml`` writes them (default: the packaged rules).
    ``modifiers``: the effect-modifier sentences already said per drug class for this patient (the same area,
    features and rules: every plan of a patient says the same of a class), filled as they are worked out."""
    unit = area.outcome.unit
    written = with_unit("\0", unit, rules)  # rounded(x, unit, rules) with the value in place of "\0" (looked up once)

    def r(x: float) -> str:
        return written.replace("\0", one_decimal(x))

    parts = [
        f"Predicted {area.outcome.quantity} {r(pred.mean)} "
        f"({int(round(pred.level * 100))}% interval {r(pred.lower)} to {r(pred.upper)})"
        + (f" from {r(baseline)}" if baseline is not None else "")
        + f"; P(target {'<' if area.outcome.direction == 'lower' else '>'} {target:g}) {p_target:.2f}."
    ]
    moves = [
        f"{d.change} {d.drug}" + (f" {dose_text(d)}" if d.dose_mg_day else "") for d in drugs if d.change != "continue"
    ]
    moves += [f"stop {d.drug}" for d in stopped]
    if moves:
        parts.append("Changes: " + ", ".join(moves) + ".")
    else:
        parts.append("Keeps the current regimen.")
    mods: list[str] = []
    seen: set[str] = set()
    for d in drugs:
        if not d.drug_class or d.drug_class in seen:
            continue
        seen.add(d.drug_class)
        said = None if modifiers is None else modifiers.get(d.drug_class)
        if said is None:
            said = _modifiers(area, d.drug_class, features, rules)
            if modifiers is not None:
                modifiers[d.drug_class] = said
        mods.extend(said)
    if mods:
        parts.append("Modifiers: " + "; ".join(mods) + ".")
    touched = [f"{f.rule_id} ({f.action})" for f in findings if f.action in {"adjust_dose", "caution"}]
    if touched:
        parts.append("Rules: " + ", ".join(touched) + ".")
    return " ".join(parts)
