"""Units as clinicians read them (``mm[Hg]`` -> ``mmHg``, ``{score}`` -> ``points``), from ``rules/codes/units.yaml``.

The UCUM code stays the machine-readable unit (JSON ``unit``, FHIR ``valueQuantity.code``); every text a person
reads (rationale, table, HTML, FHIR narrative) writes :func:`unit_display`, and JSON carries it as
``unit_display`` beside the code.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from .errors import RuleError
from .rule_files import read_yaml, rules_dir

__all__ = ["UnitDisplay", "unit_display", "with_unit", "num", "one_decimal", "rounded"]


@dataclass(frozen=True)
class UnitDisplay:
    display: str
    space: bool  # a space between the number and the unit ("128 mmHg"; "7.1%")


@functools.lru_cache(maxsize=4)
def _table(root: str) -> dict[str, UnitDisplay]:
    path = Path(root) / "codes" / "units.yaml"
    raw = read_yaml(path)
    try:
        return {
            str(k): UnitDisplay(display=str(v["display"]), space=bool(v.get("space", True)))
            for k, v in (raw.get("units") or {}).items()
        }
    except (KeyError, TypeError, AttributeError) as exc:
        raise RuleError(f"invalid unit display table ({exc})", file=str(path), field="units") from None


def _lookup(ucum: str, rules: str | Path | None) -> UnitDisplay:
    hit = _table(str(rules_dir(rules))).get(ucum)
    if hit is not None:
        return hit
    # not listed: UCUM annotations and brackets go ({cells} -> cells), powers of ten read as such
    plain = ucum.replace("{", "").replace("}", "").replace("[", "").replace("]", "").replace("10*", "10^")
    return UnitDisplay(display=plain, space=bool(plain))


def unit_display(ucum: str, rules: str | Path | None = None) -> str:
    """The unit ``ucum`` as written for a reader (``mm[Hg]`` -> ``mmHg``)."""
    return _lookup(ucum, rules).display


def with_unit(value: str, ucum: str, rules: str | Path | None = None) -> str:
    """``value`` followed by its unit as read (``"128.0 mmHg"``, ``"7.1%"``, ``"12 points"``)."""
    u = _lookup(ucum, rules)
    if not u.display:
        return value
    return f"{value}{' ' if u.space else ''}{u.display}"


def num(x: float) -> str:
    """A measured value to four significant digits (``172.678`` -> ``172.7``; ``7.00044`` -> ``7``)."""
    return f"{x:.4g}" if abs(x) < 1e4 else f"{x:.0f}"


def one_decimal(x: float) -> str:
    """A predicted value for a reader, without its unit: one decimal, none from 1,000 up (``170.84`` -> ``170.8``)."""
    return f"{x:.1f}" if abs(x) < 1000 else f"{x:.0f}"


def rounded(x: float, ucum: str, rules: str | Path | None = None) -> str:
    """A predicted value for a reader: one decimal (none from 1,000 up) and its unit (``"7.1%"``)."""
    return with_unit(one_decimal(x), ucum, rules)
