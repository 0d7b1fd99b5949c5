"""FHIR date and dateTime strings -> :class:`datetime.date` (the engine reasons in days).

Accepted: ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` and ``YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm|-hh:mm)``; a partial date
is read as its first day. The calendar date is taken as written (no time-zone shift).
"""

from __future__ import annotations

import datetime as dt
import functools
import re

from ..errors import FhirError

__all__ = ["parse_date"]

_FULL = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T([01]\d|2[0-3]):[0-5]\d(?::([0-5]\d|60)(?:\.\d{1,9})?)?"
    r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d|[+-]14:00)?)?)?)?"
)


@functools.lru_cache(maxsize=8192)
def _parse(value: str) -> dt.date | None:
    m = _FULL.fullmatch(value)
    if m is not None:
        year, month, day = int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1)
        try:
            if year >= 1:
                return dt.date(year, month, day)
        except ValueError:
            pass
    return None


def parse_date(
    value: object, *, resource: str | None = None, field: str | None = None, file: str | None = None
) -> dt.date:
    """Parse one FHIR date/dateTime; anything else is a :class:`FhirError` naming resource, field and value."""
    if isinstance(value, str):
        d = _parse(value)
        if d is not None:
            return d
    raise FhirError(
        "invalid date",
        file=file,
        resource=resource,
        field=field,
        value=value,
        expected="a FHIR date or dateTime such as 2024-01-05 or 2024-01-05T10:00:00Z",
    )
