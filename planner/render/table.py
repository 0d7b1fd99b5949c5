"""Recommendation -> a rich terminal table (plans, excluded regimens, findings, data gaps, data-quality
warnings)."""

from __future__ import annotations

import io

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..dosing import dose_text
from ..recommendation import Plan, PlanDrug, Recommendation
from ..units import num, one_decimal, unit_display, with_unit
from ..warnings_table import warnings_table

EXCLUDED_SHOWN = 15  # excluded regimens the table lists (the JSON holds them all)


def _drugs(drugs: tuple[PlanDrug, ...], stopped: tuple[PlanDrug, ...] = ()) -> str:
    items = []
    for d in drugs:
        dose = f" {dose_text(d)}" if d.dose_mg_day is not None else ""
        tag = "" if d.change == "continue" else f" ({d.change})"
        if d.change == "continue" and d.previous_dose_mg_day is None and d.dose_mg_day is not None:
            tag = " (set dose; current dose unknown)"
        elif d.change == "continue" and d.dose_mg_day is None:
            tag = " (continue; dose unknown)"
        adj = f" [dose set by {d.dose_adjusted_by}]" if d.dose_adjusted_by else ""
        items.append(f"{d.drug}{dose}{tag}{adj}")
    items += [f"stop {d.drug}" for d in stopped]
    return "\n".join(items) or "no drug therapy"


def _tradeoffs(p: Plan) -> str:
    """Indications met / not met, then each secondary outcome and preference with what it adds to the utility."""
    lines = [("meets " if i.met else "NOT MET ") + i.label for i in p.indications]
    for t in p.tradeoffs:
        if t.term.startswith(("secondary:", "preference:")) and (t.value or t.utility):
            val = (
                f"{100 * t.value:.1f}%"
                if t.unit.startswith("risk") and t.value is not None
                else (f"{t.value:+.1f} {t.unit}" if t.term.startswith("secondary:") else f"{t.value:g} x {t.unit}")
            )
            lines.append(f"{t.label} {val} ({t.utility:+.2f})")
    if p.rank_without_preferences is not None:
        lines.append(f"rank {p.rank_without_preferences} without preferences")
    lines.append(f"utility {p.utility:+.2f}")
    return "\n".join(lines)


def render_table(rec: Recommendation, *, width: int = 140) -> str:
    buf = io.StringIO()
    con = Console(file=buf, width=width, force_terminal=False, color_system=None, highlight=False)
    o = rec.outcome
    u = o.unit_display or unit_display(o.unit)
    # a measured value to four significant digits, as the HTML report writes it (53 mmol/mol -> 7%, not 7.00044%)
    base = "no recent value" if o.baseline is None else f"{with_unit(num(o.baseline), o.unit)} on {o.baseline_date}"
    # text from the record or the rules is printed literally ("[/bold]" in an EHR field is not markup)
    con.print(
        f"[bold]{escape(rec.area_name)}[/bold]  "
        + escape(
            f"outcome {o.quantity} (LOINC {o.loinc}); baseline {base}; "
            f"target {'<' if o.direction == 'lower' else '>'} {with_unit(f'{o.target:g}', o.unit)}"
        )
    )
    if rec.current_regimen:
        con.print(Text("current: " + _drugs(rec.current_regimen).replace("\n", ", ")))
    t = Table(title="Ranked plans", show_lines=True)
    for col in ("#", "regimen", f"predicted ({u})", "P(target)", "P(best)", "guidelines, trade-offs", "findings"):
        t.add_column(col)
    for p in rec.plans:
        pr = p.predicted
        t.add_row(
            *(
                Text(c)
                for c in (
                    str(p.rank),
                    _drugs(p.regimen, p.stopped),
                    # as the rationale writes it: one decimal (SBP 170.8, not 170.84)
                    f"{one_decimal(pr.mean)}\n[{one_decimal(pr.lower)}, {one_decimal(pr.upper)}]",
                    f"{p.p_target:.2f}",
                    f"{p.p_best:.2f}",
                    _tradeoffs(p),
                    "\n".join(f"{f.action}: {f.message}" for f in p.findings) or "-",
                )
            )
        )
    con.print(t)
    if rec.preferences:
        con.print(
            "preferences: "
            + ", ".join(rec.preferences)
            + " (each plan shows what they cost it and its rank without them)"
        )
    if rec.excluded:
        ex = Table(title=f"Excluded regimens ({len(rec.excluded)})", show_lines=False)
        ex.add_column("regimen")
        ex.add_column("why")
        for e in rec.excluded[:EXCLUDED_SHOWN]:
            ex.add_row(
                Text(e.key), Text("; ".join(f"{f.rule_id}: {f.message}" for f in e.findings if f.action == "exclude"))
            )
        if len(rec.excluded) > EXCLUDED_SHOWN:
            ex.add_row("...", f"{len(rec.excluded) - EXCLUDED_SHOWN} more (use --format json)")
        con.print(ex)
    if rec.current_findings:
        con.print("[bold]Findings on current medications[/bold]")
        for f in rec.current_findings:
            con.print(Text(f"  {f.action}: {f.message} [{f.rule_id}]"))
    if rec.data_gaps:
        con.print("[bold]Data gaps[/bold]")
        for g in rec.data_gaps:
            con.print(Text(f"  {g.message}" + (f" ({g.suggestion})" if g.suggestion else "")))
    if rec.record_warnings:
        con.print(warnings_table(rec.record_warnings))
    p = rec.provenance
    con.print(
        Text(
            f"planner {p.planner_version}; rules {p.rules_version}; area {rec.area}@{p.area_version}; "
            f"model {p.model}; seed {p.seed}; as of {p.as_of}"
        )
    )
    return buf.getvalue()
