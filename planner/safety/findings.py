"""Finding helpers shared by the rule kinds and the screen loop: order, keys, message fitting, and applying
findings to a regimen."""

from __future__ import annotations

import operator
from typing import Any, Iterable, TypeVar

from pydantic import BaseModel

from ..record import Finding, Regimen
from .schema import ACTION_RANK

__all__ = [
    "new_finding",
    "sort_key",
    "sort_findings",
    "keyed",
    "added",
    "plan_adds_forms",
    "fit",
    "apply_findings",
    "key_of",
    "finding_of",
    "replace",
    "built",
    "made",
]

M = TypeVar("M", bound=BaseModel)
_set = object.__setattr__
_new = object.__new__
# the slot setters of every pydantic model (what object.__setattr__ finds for these names, looked up once)
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__

_FIELDS = tuple(Finding.model_fields)
_FIELD_SET = frozenset(_FIELDS)
_DEFAULTS = {k: f.default for k, f in Finding.model_fields.items() if not f.is_required()}
_REQUIRED = frozenset(k for k, f in Finding.model_fields.items() if f.is_required())
# every field in the model's order, with its default (None for a required field: always given, then replaced):
# a new finding's dict is this one updated with the given fields (updating keeps the order)
_TEMPLATE = {k: _DEFAULTS.get(k) for k in _FIELDS}

key_of = operator.itemgetter(0)  # (sort key, finding) -> sort key
finding_of = operator.itemgetter(1)


def replace(model: M, **update: Any) -> M:
    """``model.model_copy(update=update)`` without its generic copying: the same fields, the same fields-set,
    no validation (as ``model_copy``); for the frozen, extra-forbidding, private-free hand-off models."""
    new = _new(type(model))
    d = new.__dict__  # the instance dict is set directly (a frozen model refuses only attribute assignment)
    d.update(model.__dict__)
    d.update(update)
    _set_extra(new, None)
    _set_fields_set(new, model.__pydantic_fields_set__ | update.keys())
    _set_private(new, None)
    return new


_Spec = tuple[tuple[str, ...], frozenset[str], frozenset[str], dict[str, Any]]
_SPECS: dict[type, _Spec] = {}
_IMMUTABLE = (str, int, float, tuple, frozenset, type(None))


def _spec(cls: type[BaseModel]) -> _Spec:
    """(field names, names, names that must be given: required or with a mutable default, defaults)."""
    spec = _SPECS.get(cls)
    if spec is None:
        fields = cls.model_fields
        defaults = {k: f.default for k, f in fields.items() if not f.is_required()}
        must = frozenset(k for k in fields if k not in defaults or not isinstance(defaults[k], _IMMUTABLE))
        spec = _SPECS[cls] = (tuple(fields), frozenset(fields), must, defaults)
    return spec


def built(cls: type[M], **fields: Any) -> M:
    """``cls(**fields)`` for a frozen, extra-forbidding, private-free model whose field values are already of
    the model's types (objects the caller built from validated parts), without validating them again: the
    same fields, defaults and fields-set as the validated model. Unknown or missing fields (or a field with a
    mutable default left out) go through the model, which names the problem (or copies the default);
    ``tests/test_screen_fastpath.py`` compares such objects with their validated twins."""
    names, known, must, defaults = _spec(cls)
    if not (must <= fields.keys() <= known):
        return cls(**fields)
    d = {k: fields[k] if k in fields else defaults[k] for k in names}
    new = object.__new__(cls)
    _set(new, "__dict__", d)
    _set(new, "__pydantic_extra__", None)
    _set(new, "__pydantic_fields_set__", set(fields))
    _set(new, "__pydantic_private__", None)
    return new


def made(cls: type[M], **fields: Any) -> M:
    """:func:`built` for a caller that gives every field of ``cls``, in the model's order, each already of its
    type (the screening stage's per-candidate hand-offs): no check of the names, the same object otherwise;
    ``tests/test_screen_fastpath.py`` compares the stage's objects with their validated twins."""
    new = _new(cls)
    new.__dict__.update(fields)
    _set_extra(new, None)
    _set_fields_set(new, set(fields))
    _set_private(new, None)
    return new


def new_finding(**fields: Any) -> Finding:
    """A :class:`Finding` from fields that are already of the model's types (rule data validated at load,
    literals of the rule kinds), without validating them again: the rule kinds build one per rule that fires.
    Unknown or missing fields are refused as the model refuses them; ``tests/test_screen_fastpath.py`` checks
    that every finding the screen gives equals its validated twin, field types included."""
    if not (_FIELD_SET.issuperset(fields) and _REQUIRED.issubset(fields)):
        return Finding(**fields)  # let the model name the unknown or missing field
    new = _new(Finding)
    d = new.__dict__  # the instance dict is set directly (a frozen model refuses only attribute assignment)
    d.update(_TEMPLATE)
    d.update(fields)
    _set_extra(new, None)
    _set_fields_set(new, set(fields))
    _set_private(new, None)
    return new


def sort_key(f: Finding) -> tuple:
    return (ACTION_RANK[f.action], f.kind, f.rule_id, f.drugs, f.genes, f.target_drug or "", f.message)


def keyed(findings: Iterable[Finding]) -> tuple[tuple[tuple, Finding], ...]:
    """Findings with their sort keys, computed once per finding object of a context."""
    return tuple([(sort_key(f), f) for f in findings])


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Deterministic order: most severe action first, then kind, rule id, drugs."""
    return sorted(findings, key=sort_key)


def added(drugs: Iterable[str], current: frozenset[str]) -> tuple[str, ...]:
    """The drugs of a finding that the screened regimen starts (none when screening the current list)."""
    return tuple(sorted({d for d in drugs if d not in current}))


def plan_adds_forms(f: Finding, a: str, b: str) -> tuple[Finding, Finding, Finding, Finding]:
    """A finding on two drugs ``a`` and ``b`` (``f``: its plan_adds empty) in the four forms of which of them the
    plan adds: both (sorted), only ``a`` (``b`` is current), only ``b``, neither (``f`` itself); the form for a
    patient is ``forms[(a in current) * 2 + (b in current)]``. Built once per rule set by the pair kinds."""
    return (replace(f, plan_adds=tuple(sorted((a, b)))), replace(f, plan_adds=(a,)), replace(f, plan_adds=(b,)), f)


def fit(text: str, limit: int = 140) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def apply_findings(regimen: Regimen, findings: Iterable[Finding]) -> Regimen | None:
    """The regimen after findings: None if any finding excludes it; ``adjust_dose`` applied to its target
    (the lowest adjusted dose wins when several apply); the same object when no dose changes."""
    new: dict[str, float | None] | None = None
    changed = False
    for f in findings:
        action = f.action
        if action == "exclude":
            return None
        if action == "adjust_dose" and f.adjusted_dose_mg_day is not None:
            if new is None:
                new = {d.ingredient: d.dose_mg_day for d in regimen.drugs}
            target, adjusted = f.target_drug, f.adjusted_dose_mg_day
            if target in new:
                cur = new[target]
                if cur is None or adjusted < cur:  # min(cur, adjusted); an equal dose is no change
                    new[target] = adjusted
                    changed = True
    if not changed or new is None:
        return regimen
    drugs = tuple(
        [d if d.dose_mg_day == new[d.ingredient] else replace(d, dose_mg_day=new[d.ingredient]) for d in regimen.drugs]
    )
    ings = [d.ingredient for d in drugs]
    if ings == sorted(ings):  # already in Regimen.of's order: the same regimen without validating it again
        return replace(regimen, drugs=drugs)
    return Regimen.of(drugs)
