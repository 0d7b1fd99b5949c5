"""The record's data-quality warnings as a rich table: what ``planner recommend`` (:mod:`planner.render.table`) and
``planner check`` (:mod:`planner.safety.cli`) print. A module of its own, at the root, so that both can use it
without the render and safety packages importing each other."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from .recommendation import RecordWarning

__all__ = ["SHOWN", "warnings_table"]

SHOWN = 15  # rows of a long list the table prints (the JSON holds them all)


def warnings_table(ws: Sequence[RecordWarning]) -> Table:
    """The record's data-quality warnings: code, resource and field, and why (as ``planner inspect`` lists them)."""
    t = Table(title=f"Data-quality warnings in the record ({len(ws)})", show_lines=False)
    for col in ("warning", "resource", "what"):
        t.add_column(col)
    for w in ws[:SHOWN]:
        where = (w.resource or "-") + (f" {w.field}" if w.field else "")
        t.add_row(Text(w.code), Text(where), Text(w.message))
    if len(ws) > SHOWN:
        t.add_row("...", f"{len(ws) - SHOWN} more", "use --format json, or planner inspect FILE")
    return t
