"""Review helpers for a notebook: what-if edits of a record, side-by-side plans, what moved, why excluded.

    record ─with_lab / with_genotype / with_medication─▶ edited record ─Planner.recommend─▶ after
    what_changed(before, after)   plans, P(target), findings and exclusions that moved
    compare(rec, 1, 2)            two plans side by side (drugs, predicted outcome, P(target), findings)
    why_excluded(rec, "drug")     the rules that removed every regimen with that drug

Edits return a new record (records are frozen); nothing here changes the record it was given. Every result
displays as HTML in Jupyter (:class:`Html`) and is a plain string of escaped HTML otherwise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from ..errors import ConfigError
from ..recommendation import Plan, Recommendation
from ..record import Finding, Measurement, Medication, PatientRecord, PgxResult
from .html import drugs_html, esc, excluded_html, finding_html, fragment, plan_card_html, table, unit

__all__ = ["Html", "compare", "what_changed", "why_excluded", "with_genotype", "with_lab", "with_medication"]


class Html(str):
    """Escaped HTML that Jupyter renders (``_repr_html_``)."""

    def _repr_html_(self) -> str:
        return fragment(str(self))


def _date(value: dt.date | str | None, default: dt.date) -> dt.date:
    if value is None:
        return default
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


# ---- what-if edits -------------------------------------------------------------------------------------------


def with_lab(record: PatientRecord, quantity: str, value: float, *, date: dt.date | str | None = None) -> PatientRecord:
    """The record with one more measurement of ``quantity`` (e.g. ``"hba1c"``, ``"egfr"``) in its canonical
    unit, dated ``date`` (default: the record's as-of date, so it becomes the latest value)."""
    from ..ingest.codes import code_tables

    q = code_tables().quantities.get(quantity)
    if q is None:
        raise ConfigError(
            "unknown quantity",
            field="quantity",
            value=quantity,
            expected="one of " + ", ".join(sorted(code_tables().quantities)),
        )
    m = Measurement(date=_date(date, record.as_of), value=float(value), unit=q.unit, loinc=q.loinc[0], source="what-if")
    series = tuple(sorted((*record.observations.get(quantity, ()), m), key=lambda x: x.date))
    return record.model_copy(update={"observations": {**record.observations, quantity: series}})


def with_genotype(
    record: PatientRecord, gene: str, diplotype: str, *, date: dt.date | str | None = None
) -> PatientRecord:
    """The record with ``gene``'s results replaced by one genotype (``"*2/*2"``); the safety layer derives the
    phenotype from it as from any genotype Observation."""
    pgx = tuple(p for p in record.pgx if p.gene != gene) + (
        PgxResult(
            gene=gene,
            diplotype=diplotype.removeprefix(gene),
            source="fhir-genotype",
            source_ref="what-if",
            date=_date(date, record.as_of),
        ),
    )
    return record.model_copy(update={"pgx": pgx})


def with_medication(
    record: PatientRecord, drug: str, dose_mg_day: float | None = None, *, start: dt.date | str | None = None
) -> PatientRecord:
    """The record with ``drug`` (an ingredient name, resolved by the RxNorm table) as a current medication
    started on ``start`` (default: 30 days before as-of)."""
    from ..ingest.codes import code_tables

    ing = code_tables().ingredient_by_name(drug)
    if ing is None or ing.rxcui is None:
        raise ConfigError(
            "unknown medication", field="drug", value=drug, expected="an ingredient name in rules/codes/rxnorm.csv"
        )
    med = Medication(
        id=f"what-if-{ing.name.replace(' ', '-')}",
        rxcui=ing.rxcui,
        ingredient=ing.name,
        source_display=f"{ing.name} (what-if)",
        dose_mg_day=dose_mg_day,
        status="active",
        intent="order",
        start=_date(start, record.as_of - dt.timedelta(days=30)),
    )
    return record.model_copy(update={"medications": (*record.medications, med)})


# ---- comparisons ---------------------------------------------------------------------------------------------


def _plan(rec: Recommendation, which: int | str | Plan) -> Plan:
    if isinstance(which, Plan):
        return which
    for p in rec.plans:
        if (isinstance(which, int) and p.rank == which) or p.key == which:
            return p
    raise ConfigError(
        "no such plan",
        field="plan",
        value=which,
        expected="a rank 1-" + str(len(rec.plans)) + " or a plan key: " + ", ".join(p.key for p in rec.plans),
    )


def compare(
    rec: Recommendation, a: int | str | Plan = 1, b: int | str | Plan = 2, other: Recommendation | None = None
) -> Html:
    """Two plans side by side: plan ``a`` of ``rec`` and plan ``b`` of ``other`` (default: of ``rec`` too;
    with ``other`` the cards say which is before and which after)."""
    pa, pb = _plan(rec, a), _plan(other or rec, b)
    ta, tb = (
        (f"Plan {pa.rank}", f"Plan {pb.rank}")
        if other is None
        else (f"Before: plan {pa.rank}", f"After: plan {pb.rank}")
    )
    return Html(
        f'<div class="compare"><div>{plan_card_html(rec, pa, title=ta)}</div>'
        f"<div>{plan_card_html(other or rec, pb, title=tb)}</div></div>"
    )


def _fmt_move(before: float | None, after: float | None, digits: int = 2) -> str:
    if before is None and after is None:
        return "-"
    if before is None:
        return f"new: {after:.{digits}f}"
    if after is None:
        return f"{before:.{digits}f} -> gone"
    return f"{before:.{digits}f} -> {after:.{digits}f} ({after - before:+.{digits}f})"


def _value(p: Plan | None, attr: str) -> float | None:
    if p is None:
        return None
    return float(p.predicted.mean if attr == "mean" else getattr(p, attr))


def _finding_keys(fs: Sequence[Finding]) -> dict[tuple[str, str | None, str], Finding]:
    return {(f.rule_id, f.target_drug, f.action): f for f in fs}


def what_changed(before: Recommendation, after: Recommendation) -> Html:
    """What moved between two recommendations for the same patient and area: each plan's rank, predicted
    outcome, P(target) and P(best); findings on the current medications and regimens newly excluded or let back."""
    b_plans = {p.key: p for p in before.plans}
    a_plans = {p.key: p for p in after.plans}
    keys = [p.key for p in after.plans] + [k for k in b_plans if k not in a_plans]
    rows = []
    for k in keys:
        pb, pa = b_plans.get(k), a_plans.get(k)
        shown = pa or pb
        assert shown is not None
        rows.append(
            [drugs_html(shown.regimen, shown.stopped)]
            + [
                esc(_fmt_move(_value(pb, attr), _value(pa, attr), 0 if attr == "rank" else 2))
                for attr in ("rank", "mean", "p_target", "p_best")
            ]
        )
    out = table(
        ["plan", "rank", f"predicted ({unit(before.outcome.unit)})", "P(target)", "P(best)"],
        rows,
        caption="Plans before -> after",
        widths=(32, 12, 20, 18, 18),
    )
    fb, fa = _finding_keys(before.current_findings), _finding_keys(after.current_findings)
    new = [f for k, f in fa.items() if k not in fb]
    gone = [f for k, f in fb.items() if k not in fa]
    out += "<h3>Findings on current medications</h3>" + (
        "".join("<p>new: " + finding_html(f, source=False) + "</p>" for f in new)
        + "".join("<p>no longer: " + finding_html(f, source=False) + "</p>" for f in gone)
        or '<p class="muted">unchanged</p>'
    )
    eb, ea = {e.key: e for e in before.excluded}, {e.key: e for e in after.excluded}
    newly = [e for k, e in ea.items() if k not in eb]
    back = [e for k, e in eb.items() if k not in ea]
    out += "<h3>Newly excluded regimens</h3>" + (
        excluded_html(newly, caption=f"{len(newly)} newly excluded") if newly else '<p class="muted">none</p>'
    )
    if back:
        out += "<p>No longer excluded: " + esc(", ".join(e.key for e in back)) + "</p>"
    return Html(out)


def why_excluded(rec: Recommendation, drug: str) -> Html:
    """Why regimens with ``drug`` are not among the plans: every excluded regimen containing it with the rules
    that removed it, or where it stands when none was excluded."""
    drug = drug.lower()
    hits = [e for e in rec.excluded if drug in {d.drug for d in e.regimen}]
    if hits:
        return Html(f"<p><b>{esc(drug)}</b>: {len(hits)} regimen(s) excluded.</p>" + excluded_html(hits))
    planned = [p.rank for p in rec.plans if drug in {d.drug for d in p.regimen}]
    if planned:
        return Html(
            f"<p><b>{esc(drug)}</b> was not excluded: it is in plan(s) {esc(', '.join(map(str, planned)))}.</p>"
        )
    return Html(
        f"<p><b>{esc(drug)}</b> was not excluded by any rule; it is not among the top {len(rec.plans)} plans "
        f"(of {rec.provenance.candidates_considered} candidates considered).</p>"
    )
