"""Schemas of the safety rule files, validated with pydantic when a :class:`~planner.safety.RuleSet` loads.

An invalid file raises :class:`~planner.errors.RuleError` naming the file, the rule id and the field.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import RuleError

__all__ = [
    "GeneDrugRule",
    "DdiRule",
    "ConditionRule",
    "LabRule",
    "AllergyGroup",
    "DrugClass",
    "Population",
    "validate_rule",
    "ACTION_RANK",
]

ActionName = Literal["exclude", "adjust_dose", "caution", "info"]
ACTION_RANK = {"exclude": 0, "adjust_dose": 1, "caution": 2, "info": 3}


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=3)
    version: str = Field(min_length=1)
    source: str = Field(min_length=3)
    action: ActionName
    strength: str | None = None
    message: str = Field(min_length=5, max_length=140)


class GeneDrugRule(_Rule):
    """One CPIC recommendation, structured (a row of ``rules/pgx/gene_drug.csv``)."""

    drug: str
    rxcui: str = ""
    genes: tuple[str, ...]
    conditions: tuple[tuple[str, str], ...]  # (locus, value); locus "HLA-B*15:02" for HLA alleles
    population: str = "general"
    dose_factor: float | None = Field(default=None, gt=0, le=5)
    max_dose_mg_day: float | None = Field(default=None, gt=0)
    alternatives: tuple[str, ...] = ()
    data_version: str
    mapping: str = ""

    @model_validator(mode="after")
    def _dose(self) -> "GeneDrugRule":
        if self.action == "adjust_dose" and self.dose_factor is None and self.max_dose_mg_day is None:
            raise ValueError("adjust_dose needs dose_factor or max_dose_mg_day")
        return self


class DdiRule(_Rule):
    a: tuple[str, ...] = Field(min_length=1)
    b: tuple[str, ...] = Field(min_length=1)
    target: str | None = None  # "a", "b" or an ingredient
    max_dose_mg_day: float | None = Field(default=None, gt=0)
    alternatives: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _dose(self) -> "DdiRule":
        if self.action == "adjust_dose" and self.max_dose_mg_day is None:
            raise ValueError("adjust_dose needs max_dose_mg_day")
        if self.action in {"exclude", "adjust_dose"} and self.target is None:
            raise ValueError("exclude/adjust_dose needs a target ('a', 'b' or an ingredient)")
        return self


class ConditionRule(_Rule):
    drugs: tuple[str, ...] = Field(min_length=1)
    condition: str | None = None
    min_age: float | None = None
    max_dose_mg_day: float | None = Field(default=None, gt=0)  # adjust_dose: cap for this condition / age

    @model_validator(mode="after")
    def _when(self) -> "ConditionRule":
        if self.condition is None and self.min_age is None:
            raise ValueError("give condition or min_age")
        if self.action == "adjust_dose" and self.max_dose_mg_day is None:
            raise ValueError("adjust_dose needs max_dose_mg_day")
        return self


class LabRule(_Rule):
    drugs: tuple[str, ...] = Field(min_length=1)
    quantity: str
    below: float | None = None
    at_least: float | None = None
    when: Literal["any", "new_start", "continuing"] = "any"
    within_days: int = Field(default=365, gt=0)
    max_dose_mg_day: float | None = Field(default=None, gt=0)  # adjust_dose: cap in this band

    @model_validator(mode="after")
    def _bounds(self) -> "LabRule":
        if self.below is None and self.at_least is None:
            raise ValueError("give below and/or at_least")
        if self.action == "adjust_dose" and self.max_dose_mg_day is None:
            raise ValueError("adjust_dose needs max_dose_mg_day")
        return self


class AllergyGroup(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    classes: tuple[str, ...] = ()
    snomed: tuple[str, ...] = ()
    rxnorm: tuple[str, ...] = ()
    terms: tuple[str, ...] = ()
    cross: dict[str, ActionName] = Field(default_factory=dict)

    @field_validator("snomed", "rxnorm", mode="before")
    @classmethod
    def _codes(cls, v: Any) -> Any:
        return tuple(str(x) for x in v) if isinstance(v, (list, tuple)) else v


class DrugClass(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str
    members: tuple[str, ...] = Field(min_length=1)
    duplicate: ActionName | None = None


class Population(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["always", "new_start", "established_use", "age", "conditions", "conditions_without", "declared"]
    min_days: int | None = None
    min: float | None = None
    max: float | None = None
    conditions: str | None = None
    without: tuple[str, ...] = ()


M = TypeVar("M", bound=BaseModel)


def validate_rule(model: type[M], data: Any, *, file: str, rule_id: str | None = None) -> M:
    """Validate one rule; errors name the file, the rule id and the first failing field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ())) or None
        rid = rule_id or (data.get("id") if isinstance(data, dict) else None)
        raise RuleError(
            err.get("msg", "invalid"),
            file=file,
            resource=str(rid) if rid else None,
            field=loc,
            value=err.get("input", ...) if loc else ...,
        ) from None
