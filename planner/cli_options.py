"""Typed command-line options shared by the commands: ``Annotated`` types and the enums Typer validates.

A bad choice (``--format pdf``) is refused by Typer itself with exit code 2 and the list of choices, before a
command runs; no command checks its options by hand. Only typer and the standard library are imported here, so
the CLI starts fast.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

__all__ = [
    "RecommendFormat",
    "ReportFormat",
    "RecommendFormatOption",
    "ReportFormatOption",
    "RulesOption",
    "AsOfOption",
    "SeedOption",
]


class RecommendFormat(enum.StrEnum):
    """What ``planner recommend`` prints (the renderers of :mod:`planner.render`)."""

    table = "table"
    json = "json"
    fhir = "fhir"
    html = "html"


class ReportFormat(enum.StrEnum):
    """What the report commands (``inspect``, ``check``) print."""

    table = "table"
    json = "json"


RecommendFormatOption = Annotated[
    RecommendFormat, typer.Option("--format", case_sensitive=False, help="Output: table, json, fhir or html.")
]
ReportFormatOption = Annotated[
    ReportFormat, typer.Option("--format", case_sensitive=False, help="Output: table or json.")
]
RulesOption = Annotated[Path | None, typer.Option("--rules", help="Rules folder (default: packaged rules).")]
AsOfOption = Annotated[str | None, typer.Option("--as-of", help="Read the record as of this date (YYYY-MM-DD).")]
SeedOption = Annotated[int, typer.Option("--seed", help="Random seed (same input and seed: same output).")]
