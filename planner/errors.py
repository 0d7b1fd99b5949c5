"""Errors for users, apart from bugs.

Every error raised for bad input is a :class:`PlannerError`. It names where the problem is (file, resource,
field), the value that was found and what was expected, so that the CLI, the service and a batch run can
report it without a traceback. Values are echoed only for the offending field (never a whole record), and
the caller decides whether to show them.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "PlannerError",
    "InputError",
    "FhirError",
    "UnitError",
    "CodeError",
    "RuleError",
    "AreaError",
    "ModelError",
    "ConfigError",
]


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class PlannerError(Exception):
    """Base class of every error planner raises for bad input, data or configuration.

    Parameters are keyword-only so messages stay uniform:
    ``Observation/obs-7 valueQuantity.unit 'mg/dL' for LOINC 33914-3: expected mL/min/1.73m2``.
    """

    kind = "error"

    def __init__(
        self,
        message: str | None = None,
        *,
        file: str | None = None,
        resource: str | None = None,
        field: str | None = None,
        value: Any = ...,
        expected: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.file = file
        self.resource = resource
        self.field = field
        self.value = value
        self.expected = expected
        self.hint = hint
        self.detail = message
        super().__init__(self._compose())

    def _compose(self) -> str:
        loc = " ".join(p for p in (self.resource, self.field) if p)
        if self.value is not ...:
            loc = f"{loc} {_short(self.value)}" if loc else _short(self.value)
        head = ": ".join(p for p in (self.file, loc) if p)
        tail = "; ".join(p for p in (self.detail, self.expected and f"expected {self.expected}") if p)
        msg = ": ".join(p for p in (head, tail) if p)
        if self.hint:
            msg += f" ({self.hint})"
        return msg or self.kind

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe description, for batch results and HTTP problem responses."""
        out: dict[str, Any] = {"error": type(self).__name__, "message": str(self)}
        for key in ("file", "resource", "field", "expected", "hint"):
            val = getattr(self, key)
            if val is not None:
                out[key] = val
        return out


class InputError(PlannerError):
    """The input is not something planner can read (not JSON, empty, too large, wrong shape)."""


class FhirError(InputError):
    """A FHIR resource is malformed or inconsistent (missing Patient, bad reference, bad date...)."""


class UnitError(FhirError):
    """A quantity has a unit planner does not know how to convert to the canonical one."""


class CodeError(PlannerError):
    """A code (drug, gene, diplotype, condition) is unknown or cannot be resolved."""


class RuleError(PlannerError):
    """A rule file is invalid, or the rules manifest does not match the files."""


class AreaError(PlannerError):
    """A therapeutic area definition is invalid or an unknown area was asked for."""


class ModelError(PlannerError):
    """A model cannot be fitted, loaded or used with the given data (shapes, arms, files)."""


class ConfigError(PlannerError):
    """An option or configuration value is invalid."""
