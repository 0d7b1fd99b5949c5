"""``planner cohort report``: one self-contained HTML file of a cohort evaluation.

No network and no script: styles inline, plots as PNG data URIs with alt text that says what each shows.
Sections: counts, policy values with intervals (plot and table), calibration (coverage table, P(target)
calibration curve, PIT histogram), safety, and one table per subgroup kind.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from .tables import fmt

__all__ = ["write_report", "render_report", "plot_policy", "plot_calibration", "plot_pit"]

_CSS = """
body{font-family:system-ui,-apple-system,"DejaVu Sans",sans-serif;margin:0;background:#fafafa;color:#222}
main{max-width:1100px;margin:0 auto;padding:24px;background:#fff}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0;font-size:.92em;width:100%}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
thead th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:12px 0}img{max-width:100%;height:auto}figcaption{font-size:.9em;color:#555}
p.note{color:#555;font-size:.92em}
p.warn{color:#7a4b00;background:#fff6e0;border-left:4px solid #e0a000;padding:6px 10px}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _table(head: list[str], rows: list[list[Any]]) -> str:
    th = "".join(f'<th scope="col">{_e(h)}</th>' for h in head)
    body = []
    for r in rows:
        cells = []
        for v in r:
            num = isinstance(v, (int, float)) and not isinstance(v, bool)
            cells.append(f'<td class="num">{_e(fmt(v))}</td>' if num else f"<td>{_e(fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(src: str, alt: str, caption: str) -> str:
    return f'<figure><img src="{src}" alt="{_e(alt)}"><figcaption>{_e(caption)}</figcaption></figure>'


def _interval(est: dict[str, Any] | None) -> str:
    if not est:
        return "-"
    return f"{fmt(est.get('value'))} [{fmt(est.get('lower'))}, {fmt(est.get('upper'))}]"


def _axes(ax: Any, size: tuple[float, float]) -> tuple[Any, Any]:
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    return fig, fig.add_subplot()


def plot_policy(ev: dict[str, Any], ax: Any = None) -> Any:
    """Policy values with their intervals (and the true values on a simulated cohort); returns the Figure."""
    pol = ev["policy"]
    names = ["observed"] + [f"recommended ({k})" for k in pol["recommended"]]
    ests = [pol["observed"]] + list(pol["recommended"].values())
    fig, ax = _axes(ax, (7.5, 0.45 * len(names) + 1.2))
    ys = list(range(len(names)))[::-1]
    for y, est in zip(ys, ests):
        v, lo, hi = est.get("value"), est.get("lower"), est.get("upper")
        if v is None:
            continue
        ax.errorbar(
            [v],
            [y],
            xerr=[[v - (lo if lo is not None else v)], [(hi if hi is not None else v) - v]],
            fmt="o",
            color="#1f5fa8",
            capsize=4,
        )
    truth = pol.get("truth") or {}
    if truth:
        ax.axvline(truth["recommended"], color="#c0392b", ls="--", label="true value, recommended")
        ax.axvline(truth["observed"], color="#7f8c8d", ls=":", label="true value, observed")
        ax.legend(loc="best", fontsize=8)
    ax.set_yticks(ys, names)
    o = ev["outcome"]
    ax.set_xlabel(f"mean follow-up {o['quantity']} ({o.get('unit_display', o['unit'])}; {o['direction']} is better)")
    ax.set_title(f"Policy values with {int(100 * pol['observed']['level'])}% bootstrap intervals")
    return fig


def plot_calibration(cal: dict[str, Any], ax: Any = None) -> Any:
    """Predicted P(target) against the observed share reaching it, by bin; returns the Figure."""
    curve = cal["p_target"]["curve"]
    fig, ax = _axes(ax, (5, 4.2))
    ax.plot([0, 1], [0, 1], color="#999", ls="--", label="perfect calibration")
    ax.plot(
        [c["predicted"] for c in curve],
        [c["observed"] for c in curve],
        "o-",
        color="#1f5fa8",
        label="observed share reaching target",
    )
    for c in curve:
        ax.annotate(str(c["n"]), (c["predicted"], c["observed"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted P(target), observed regimen")
    ax.set_ylabel("observed share that reached the target")
    ax.set_title(f"P(target) calibration (ECE {cal['p_target']['ece']:.3f})")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def plot_pit(cal: dict[str, Any], ax: Any = None) -> Any:
    """PIT histogram of the observed follow-ups; returns the Figure."""
    hist = cal["pit"]["histogram"]
    k = len(hist)
    fig, ax = _axes(ax, (5, 3.6))
    ax.bar([(i + 0.5) / k for i in range(k)], hist, width=0.9 / k, color="#1f5fa8")
    ax.axhline(sum(hist) / k, color="#c0392b", ls="--", label="uniform (calibrated)")
    ax.set_xlabel("PIT of the observed follow-up")
    ax.set_ylabel("decision points")
    ax.set_title("PIT histogram")
    ax.legend(fontsize=8)
    return fig


def render_report(ev: dict[str, Any]) -> str:
    """The report page for an evaluation dict (:func:`planner.cohort.evaluate.evaluate`)."""
    o, c = ev["outcome"], ev["counts"]
    parts = [
        f"<h1>Cohort evaluation: {_e(ev['area'])}</h1>",
        f"<p>{c['patients']} patients, {c['rows']} result rows, {c['decision_points_with_follow_up']} decision "
        f"points with an observed follow-up, {c['error_rows']} error rows, {c['not_in_area']} patients "
        f"outside the area. Outcome: {_e(o['quantity'])} ({_e(o.get('unit_display', o['unit']))}; {_e(o['direction'])} is "
        "better).</p>",
    ]
    if c.get("errors_by_class"):
        parts.append(_table(["error class", "rows"], [[k, v] for k, v in c["errors_by_class"].items()]))
    parts.append(_policy_section(ev))
    parts.append(_calibration_section(ev.get("calibration") or {}, o))
    parts.append(_safety(ev.get("safety") or {}))
    parts += [_subgroup_section(name, rows) for name, rows in (ev.get("subgroups") or {}).items()]
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Cohort evaluation '
        f"{_e(ev['area'])}</title><style>{_CSS}</style></head><body><main>{body}</main></body></html>"
    )


def _policy_rows(pol: dict[str, Any]) -> list[list[Any]]:
    truth = pol.get("truth") or {}
    obs = pol["observed"]
    rows = [
        ["observed", "mean of follow-ups", _interval(obs), "-", None, truth.get("observed"), obs.get("covers_truth")]
    ]
    for k, v in pol["recommended"].items():
        samp = v.get("sampling_interval")
        rows.append(
            [
                "recommended",
                k,
                _interval(v),
                f"[{fmt(samp[0])}, {fmt(samp[1])}]" if samp else "-",
                v.get("model_sd"),
                truth.get("recommended"),
                v.get("covers_truth"),
            ]
        )
    return rows


def _policy_section(ev: dict[str, Any]) -> str:
    pol, o = ev.get("policy"), ev["outcome"]
    if not pol:
        return "<h2>Policy value</h2><p>Too few decision points with a follow-up for off-policy evaluation.</p>"
    truth = pol.get("truth") or {}
    head = ["policy", "estimator", "value [interval]", "sampling only", "model error sd", "true value"]
    parts = [
        "<h2>Policy value</h2>",
        _overlap_note(pol),
        _table(head + ["interval holds truth"], _policy_rows(pol)),
        f'<p class="note">Intervals: {_e((pol.get("interval") or {}).get("text", "patient bootstrap"))}. '
        f"DR minus observed: {_e(_interval(pol['difference_dr']))}."
        + (
            f" True regret: recommended {fmt(truth.get('regret_recommended'))}, observed "
            f"{fmt(truth.get('regret_observed'))} {_e(o.get('unit_display', o['unit']))}."
            if truth
            else ""
        )
        + "</p>",
    ]
    rec = pol["recommended"]["dr"]
    alt = (
        f"Dot plot of policy values with intervals: observed {fmt(pol['observed']['value'])}, recommended "
        f"(doubly robust) {fmt(rec['value'])} from {fmt(rec['lower'])} to {fmt(rec['upper'])} {o.get('unit_display', o['unit'])}"
        + (f"; true value of the recommended policy {fmt(truth['recommended'])}" if truth else "")
    )
    parts.append(_figure(_png(plot_policy(ev)), alt, "Estimated mean follow-up under each policy."))
    return "".join(parts)


def _overlap_note(pol: dict[str, Any]) -> str:
    """How far the observed decisions reach the recommended ones, and what that means for the DR value."""
    m, ov = pol["match"], pol.get("overlap") or {}
    text = (
        f"The recommended regimen has the observed regimen's drug classes at {m['matched']} of {pol['n']} "
        f"decision points ({100 * m['rate']:.1f}%); weights' effective sample size "
        f"{m['effective_sample_size']:.1f}"
    )
    if ov:
        text += (
            f", largest weight {100 * (ov.get('max_weight_share') or 0):.1f}% of the total, "
            f"{ov.get('floored_matched')} matched propensities raised to the floor {ov.get('propensity_floor')}. "
            f"Overlap: {ov['verdict']} ({ov['message']})."
        )
    cls = "warn" if ov.get("verdict") in ("poor", "limited") else "note"
    return f'<p class="{cls}">{_e(text)}</p>'


def _calibration_section(cal: dict[str, Any], o: dict[str, Any]) -> str:
    if not cal.get("n"):
        return "<h2>Calibration against observed follow-ups</h2><p>No decision point with an observed follow-up.</p>"
    cov = cal["coverage"]
    curve = ", ".join(
        f"{c['predicted']:.2f} predicted vs {c['observed']:.2f} observed" for c in cal["p_target"]["curve"]
    )
    return "".join(
        [
            "<h2>Calibration against observed follow-ups</h2>",
            _table(["nominal", "empirical coverage"], [[f"{k}%", v] for k, v in cov.items()]),
            f"<p>CRPS {fmt(cal['crps'])} {_e(o.get('unit_display', o['unit']))}; PIT mean {fmt(cal['pit']['mean'])}, KS distance "
            f"from uniform {fmt(cal['pit']['ks'])}; ECE of P(target) {fmt(cal['p_target']['ece'])} "
            f"(mean predicted {fmt(cal['p_target']['mean_predicted'])}, observed "
            f"{fmt(cal['p_target']['observed_rate'])}).</p>",
            _figure(
                _png(plot_calibration(cal)),
                f"Calibration curve of P(target) by bin: {curve}",
                "Predicted P(target) against the observed share reaching it (points: bins, labels: n).",
            ),
            _figure(
                _png(plot_pit(cal)),
                "Histogram of PIT values in ten bins, counts " + ", ".join(str(h) for h in cal["pit"]["histogram"]),
                "PIT histogram: flat when the predictive distributions are calibrated.",
            ),
        ]
    )


_SUBGROUP_HEAD = [
    "group",
    "patients",
    "decision points",
    "agreement",
    "coverage 90%",
    "CRPS",
    "ECE",
    "DR value",
    "observed value",
    "true value",
    "patients with findings",
]


def _subgroup_section(name: str, rows: list[dict[str, Any]]) -> str:
    body = [
        [
            r["group"],
            r["patients"],
            r.get("decision_points"),
            r.get("agreement_top1"),
            r.get("coverage90"),
            r.get("crps"),
            r.get("ece"),
            _interval(r.get("dr_value")),
            _interval(r.get("observed_value")),
            r.get("true_value"),
            r.get("safety_patients_with_findings"),
        ]
        for r in rows
    ]
    return f"<h2>By {_e(name)}</h2>" + _table(_SUBGROUP_HEAD, body)


def _safety(s: dict[str, Any]) -> str:
    if not s.get("patients"):
        return "<h2>Safety</h2><p>No patient planned.</p>"
    rows = [[k, v, s["patients_with_kind"].get(k)] for k, v in s["current_findings_per_patient"].items()]
    plan = [[k, v] for k, v in s["plan_findings_per_decision"].items()]
    return (
        "<h2>Safety</h2>"
        f"<p>{s['patients_with_findings']} of {s['patients']} patients have findings on their current "
        "medications.</p>"
        + _table(["kind:action", "findings per patient", "share of patients"], rows)
        + "<p>Findings on the recommended plans:</p>"
        + _table(["kind:action", "per decision point"], plan)
    )


def write_report(
    results: str | Path, html_path: str | Path, evaluation: dict[str, Any] | None = None, **evaluate_options: Any
) -> Path:
    """Evaluate ``results`` (unless an evaluation is given) and write the report to ``html_path``."""
    from .evaluate import evaluate

    ev = evaluation if evaluation is not None else evaluate(results, **evaluate_options)
    out = Path(html_path)
    out.write_text(render_report(ev), encoding="utf-8")
    return out
