"""``Model.model_construct`` for the plain output models the ranking builds many of, with less per-call work.

:func:`constructor` gives, for a model class without aliases, extra fields, private attributes, a root or a
post-init hook, a function that builds exactly what ``cls.model_construct(**values)`` builds (the same
``__dict__`` in field order, defaults as ``model_construct`` fills them, the same fields-set and no extras), from
what the class says once; any other class gets its own ``model_construct``. The values must already be what
validation would hold (tests/test_rank_speed.py checks the built plans against their validated twins).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar, get_args

from pydantic import BaseModel

__all__ = ["constructor", "plan_drug"]

M = TypeVar("M", bound=BaseModel)

_SHARED = (type(None), str, int, float, bool)  # defaults model_construct hands out as they are (no copy)


def constructor(cls: type[M]) -> Callable[..., M]:
    """A faster ``cls.model_construct`` (keyword values only; unknown names are ignored, as it ignores them)."""
    fields = cls.__pydantic_fields__
    plain = (
        cls.model_config.get("extra") != "allow"
        and not cls.__pydantic_root_model__
        and not cls.__pydantic_post_init__
        and not cls.__private_attributes__
        and all(f.alias is None and f.validation_alias is None for f in fields.values())
    )
    if not plain:
        return cls.model_construct
    names = tuple(fields)
    known = frozenset(names)
    shared: dict[str, Any] = {}  # the default of each optional field, where it is handed out uncopied
    for name, f in fields.items():
        if f.is_required() or f.default_factory is not None:
            continue
        if type(f.default) in _SHARED or (type(f.default) is tuple and not f.default):
            shared[name] = f.default
    new = cls.__new__
    setattr_ = object.__setattr__

    def build(**values: Any) -> M:
        d: dict[str, Any] = {}
        for name in names:
            if name in values:
                d[name] = values[name]
            elif name in shared:
                d[name] = shared[name]
            elif not fields[name].is_required():
                d[name] = fields[name].get_default(call_default_factory=True, validated_data=d)
        m = new(cls)
        setattr_(m, "__dict__", d)
        setattr_(m, "__pydantic_fields_set__", {k for k in values if k in known})
        setattr_(m, "__pydantic_extra__", None)
        setattr_(m, "__pydantic_private__", None)
        return m

    return build


def plan_drug(**values: Any) -> Any:
    """``PlanDrug(**values)``, built without re-validating when every value already has the type validation
    would give it (a str, a float or None, one of the changes, a Dosage or None): the same model either way."""
    build, changes, fields, dosage_type = _plan_drug_parts()
    if (
        type(values.get("drug")) is str
        and type(values.get("rxnorm")) is str
        and type(values.get("drug_class")) in _STR_OR_NONE
        and type(values.get("dose_mg_day")) in _FLOAT_OR_NONE
        and type(values.get("previous_dose_mg_day")) in _FLOAT_OR_NONE
        and type(values.get("dose_adjusted_by")) in _STR_OR_NONE
        and values.get("change") in changes
        and type(values.get("dosage")) in (type(None), dosage_type)
        and values.keys() <= fields
    ):
        return build(**values)
    from .recommendation import PlanDrug

    return PlanDrug(**values)


_STR_OR_NONE = (str, type(None))
_FLOAT_OR_NONE = (float, type(None))


@functools.lru_cache(maxsize=1)
def _plan_drug_parts() -> tuple[Callable[..., Any], frozenset[str], frozenset[str], type]:
    from .dosing import Dosage
    from .recommendation import Change, PlanDrug

    return constructor(PlanDrug), frozenset(get_args(Change)), frozenset(PlanDrug.model_fields), Dosage
