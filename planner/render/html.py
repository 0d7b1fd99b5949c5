"""Recommendation -> HTML (for Jupyter's ``_repr_html_``). Every value is escaped."""

from __future__ import annotations

from html import escape

from ..recommendation import PlanDrug, Recommendation

_ACTION_COLOR = {"exclude": "#b00020", "adjust_dose": "#b26a00", "caution": "#8a6d00", "info": "#555"}


def _drugs(drugs: tuple[PlanDrug, ...], stopped: tuple[PlanDrug, ...] = ()) -> str:
    items = []
    for d in drugs:
        dose = f" {d.dose_mg_day:g}&nbsp;mg/d" if d.dose_mg_day is not None else ""
        tag = "" if d.change == "continue" else f" <em>({escape(d.change)})</em>"
        items.append(f"{escape(d.drug)}{dose}{tag}")
    items += [f"<s>{escape(d.drug)}</s> <em>(stop)</em>" for d in stopped]
    return "<br>".join(items) or "<em>no drug therapy</em>"


def _finding(f) -> str:  # noqa: ANN001
    color = _ACTION_COLOR.get(f.action, "#555")
    return (f'<span style="color:{color}"><b>{escape(f.action)}</b></span> {escape(f.message)} '
            f'<small>[{escape(f.rule_id)}]</small>')


def render_html(rec: Recommendation) -> str:
    o = rec.outcome
    base = "no recent value" if o.baseline is None else f"{o.baseline:g} {escape(o.unit)} ({o.baseline_date})"
    rows = []
    for p in rec.plans:
        pr = p.predicted
        rows.append(
            "<tr>"
            f"<td>{p.rank}</td><td>{_drugs(p.regimen, p.stopped)}</td>"
            f"<td>{pr.mean:.2f} [{pr.lower:.2f}, {pr.upper:.2f}]</td>"
            f"<td>{p.p_target:.2f}</td><td>{p.p_best:.2f}</td>"
            f"<td>{'<br>'.join(_finding(f) for f in p.findings) or '-'}</td>"
            f"<td><small>{escape(p.rationale)}</small></td></tr>"
        )
    excluded = "".join(
        f"<li>{escape(e.key)}: " + "; ".join(_finding(f) for f in e.findings if f.action == "exclude") + "</li>"
        for e in rec.excluded
    )
    gaps = "".join(f"<li>{escape(g.message)}</li>" for g in rec.data_gaps)
    current = "".join(f"<li>{_finding(f)}</li>" for f in rec.current_findings)
    p = rec.provenance
    return (
        f"<div class='planner-recommendation'><h4>{escape(rec.area_name)}</h4>"
        f"<p>Outcome {escape(o.quantity)} (LOINC {escape(o.loinc)}): baseline {base}; target "
        f"{'&lt;' if o.direction == 'lower' else '&gt;'} {o.target:g} {escape(o.unit)}</p>"
        "<table><thead><tr><th>#</th><th>regimen</th>"
        f"<th>predicted ({escape(o.unit)}), {int(round(rec.plans[0].predicted.level * 100)) if rec.plans else 90}% interval</th>"
        "<th>P(target)</th><th>P(best)</th><th>findings</th><th>why</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        + (f"<details><summary>Excluded regimens ({len(rec.excluded)})</summary><ul>{excluded}</ul></details>"
           if excluded else "")
        + (f"<p><b>Findings on current medications</b></p><ul>{current}</ul>" if current else "")
        + (f"<p><b>Data gaps</b></p><ul>{gaps}</ul>" if gaps else "")
        + f"<p><small>planner {escape(p.planner_version)}; rules {escape(p.rules_version)}; "
        f"model {escape(p.model)}; seed {p.seed}; as of {p.as_of}</small></p></div>"
    )
