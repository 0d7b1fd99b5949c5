"""Data gaps: what a recommendation lacks, from the feature row and the screen (wording in ``rules/data_gaps.yaml``).

In order: unknown current doses; no recent outcome value; labs missing for the features; genes the candidates
depend on whose status is a gap; an implausible baseline; no outcome value at all.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError, field_validator

from ..areas import Area
from ..errors import RuleError
from ..handoffs import ScreenedCandidates
from ..recommendation import DataGap
from ..record import Frozen
from ..rule_files import read_yaml, rules_dir
from ..status import GeneStatus

__all__ = ["GapText", "GapRules", "data_gaps"]

# the fields each gap's text may use (the stage fills in exactly these)
_FIELDS: dict[str, tuple[str, ...]] = {
    "dose-unknown": ("drug",),
    "no-recent-outcome": ("quantity", "days", "last", "loinc"),
    "lab-missing": ("quantity", "days"),
    "gene": ("gene", "status", "status_label", "drugs"),
    "implausible-outcome": ("quantity", "low", "high", "unit"),
    "no-outcome": ("quantity", "loinc"),
}


class GapText(Frozen):
    message: str
    suggestion: str
    message_with_last: str | None = None


class GapRules(Frozen):
    """The data-gap wording and the gene statuses that are gaps (validated: every template formats)."""

    id: str
    version: str
    source: str
    gene_statuses: frozenset[GeneStatus]
    gaps: dict[str, GapText]

    @field_validator("gene_statuses")
    @classmethod
    def _never_tested(cls, v: frozenset[GeneStatus]) -> frozenset[GeneStatus]:
        if GeneStatus.TESTED in v:
            raise ValueError("a tested gene is not a data gap")
        return v

    @classmethod
    def load(cls, rules: str | os.PathLike[str] | None = None) -> GapRules:
        """``rules/data_gaps.yaml`` of a rules folder (default: the packaged rules); cached per file."""
        return _load(str(rules_dir(rules).resolve() / "data_gaps.yaml"))

    def text(self, code: str, *, with_last: bool = False, **fields: Any) -> tuple[str, str]:
        t = self.gaps[code]
        message = t.message_with_last if with_last and t.message_with_last else t.message
        return message.format(**fields), t.suggestion.format(**fields)


@functools.lru_cache(maxsize=8)
def _load(path: str) -> GapRules:
    raw = read_yaml(Path(path))
    try:
        rules = GapRules.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise RuleError(
            str(err["msg"]),
            file=path,
            field=".".join(str(x) for x in err["loc"]),
            expected="id, version, source, gene_statuses and gaps as in the packaged file",
        ) from None
    for code, names in _FIELDS.items():
        t = rules.gaps.get(code)
        if t is None:
            raise RuleError(
                "data-gap wording missing", file=path, field=f"gaps.{code}", expected="message and suggestion"
            )
        sample = {n: 1.0 if n in ("low", "high") else "x" for n in names}
        for key, template in (
            ("message", t.message),
            ("suggestion", t.suggestion),
            ("message_with_last", t.message_with_last or ""),
        ):
            try:
                template.format(**sample)
            except (KeyError, IndexError, ValueError) as exc:
                raise RuleError(
                    f"template does not format ({exc!r})",
                    file=path,
                    field=f"gaps.{code}.{key}",
                    value=template,
                    expected="placeholders among {" + ", ".join(names) + "}",
                ) from None
    return rules


def data_gaps(screened: ScreenedCandidates, *, area: Area, rules: GapRules) -> tuple[DataGap, ...]:
    """Every data gap of the recommendation the screened candidates lead to."""
    f = screened.features
    o = area.outcome
    gaps: list[DataGap] = []

    def add(
        code: str,
        key: str | None = None,
        *,
        with_last: bool = False,
        gene: str | None = None,
        quantity: str | None = None,
        **fields: Any,
    ) -> None:
        named = {k: v for k, v in (("gene", gene), ("quantity", quantity)) if v is not None}
        message, suggestion = rules.text(key or code, with_last=with_last, **named, **fields)
        gaps.append(DataGap(code=code, message=message, suggestion=suggestion, gene=gene, quantity=quantity))

    for d in f.current.drugs:
        if d.dose_mg_day is None:
            add("dose-unknown", drug=d.ingredient)
    if f.outcome_recent is None:
        last = f.outcome_last
        add(
            "no-recent-outcome",
            with_last=last is not None,
            quantity=o.quantity,
            days=o.baseline_window_days,
            last="" if last is None else last.date.isoformat(),
            loinc=o.loinc[0],
        )
    by_name = {q.name: q for q in area.features}
    for name in f.labs_missing:
        add("lab-missing", quantity=by_name[name].quantity, days=by_name[name].lookback_days)
    for need in screened.genes:
        if need.status in rules.gene_statuses:
            add(
                f"gene-{need.status.value}",
                "gene",
                gene=need.gene,
                status=need.status.value,
                status_label=need.status.label,
                drugs=", ".join(need.drugs),
            )
    used = f.values.get(f.baseline_feature) if f.baseline_feature else None
    lo, hi = o.plausible
    if isinstance(used, (int, float)) and not lo <= used <= hi:
        add("implausible-outcome", quantity=o.quantity, low=lo, high=hi, unit=o.unit)
    if not f.can_predict:
        add("no-outcome", quantity=o.quantity, loinc=o.loinc[0])
    return tuple(gaps)
