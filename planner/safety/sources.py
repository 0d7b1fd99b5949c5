"""Which safety rules carry a source someone can check, and which data lines are still marked unchecked.

``planner rules validate`` prints :func:`source_report`: rules whose ``source`` matches none of the checkable
forms in ``rules/sources.yaml`` (a label section, DailyMed set id, the FDA CYP table, the ONC high-priority
list, a guideline URL, a PMID or journal citation), and every line of a rules data file that carries the
``(verify)`` marker (a fact taken from memory, not yet checked against its source).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RuleError
from ..rule_files import read_yaml

if TYPE_CHECKING:
    from .engine import RuleSet

__all__ = ["SourceIssue", "source_report"]


@dataclass(frozen=True)
class SourceIssue:
    where: str  # rule id, or file:line
    kind: str  # "no checkable source" | "marked unverified"
    text: str


def _patterns(root: Path) -> tuple[str, list[re.Pattern[str]]]:
    path = root / "sources.yaml"
    data = read_yaml(path)
    try:
        return str(data["marker"]), [re.compile(p, re.IGNORECASE) for p in data["checkable"]]
    except (KeyError, TypeError, re.error) as exc:
        raise RuleError(f"invalid source conventions: {exc}", file=str(path)) from None


def source_report(rs: "RuleSet") -> list[SourceIssue]:
    """Rules without a checkable source, then data lines marked unverified, in a stable order."""
    marker, checkable = _patterns(rs.root)
    out = [
        SourceIssue(rid, "no checkable source", source or "(empty)")
        for rid, _kind, _version, source in rs.all_rules()
        if not any(p.search(source or "") for p in checkable)
    ]
    for path in sorted(p for p in rs.root.rglob("*") if p.suffix in {".yaml", ".csv"} and p.is_file()):
        if path.name in {"manifest.yaml", "sources.yaml"}:
            continue
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if marker in line and not line.lstrip().startswith("#"):
                rel = path.relative_to(rs.root).as_posix()
                out.append(SourceIssue(f"{rel}:{no}", "marked unverified", " ".join(line.split())[:110]))
    return out
