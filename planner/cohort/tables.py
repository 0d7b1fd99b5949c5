"""Terminal tables of a cohort evaluation (``planner cohort evaluate --format table``)."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["print_evaluation", "fmt"]


def fmt(x: Any, nd: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def _interval(est: dict[str, Any] | None) -> str:
    if not est:
        return "-"
    return f"{fmt(est.get('value'))} [{fmt(est.get('lower'))}, {fmt(est.get('upper'))}]"


def print_evaluation(ev: dict[str, Any]) -> None:
    from rich.console import Console

    con = Console()
    if not con.is_terminal and "COLUMNS" not in os.environ:  # a file or a pipe: rich's 80 columns cut headers
        con = Console(width=140)
    c = ev["counts"]
    o = ev["outcome"]
    con.print(
        f"[bold]{ev['area']}[/bold]: {c['patients']} patients, {c['rows']} rows, "
        f"{c['decision_points_with_follow_up']} decision points with a follow-up, {c['error_rows']} error rows; "
        f"outcome {o['quantity']} ({o.get('unit_display', o['unit'])}, {o['direction']} is better)",
        markup=True,
        highlight=False,
    )
    if ev.get("policy"):
        _policy(con, ev["policy"], o)
    _calibration(con, ev.get("calibration") or {})
    ag = ev.get("agreement") or {}
    if ag.get("n"):
        con.print(
            f"agreement with the observed regimen: top-1 {fmt(ag['top1'])}, same drugs "
            f"{fmt(ag['same_drugs'])}, in top-k {fmt(ag['in_top_k'])}"
        )
    _safety(con, ev.get("safety") or {})
    for name, rows in (ev.get("subgroups") or {}).items():
        _subgroup(con, name, rows)


def _policy(con: Any, pol: dict[str, Any], o: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title=f"Policy value (mean follow-up {o['quantity']}, {int(100 * pol['observed']['level'])}% intervals)")
    for col in ("policy", "estimator", "value [interval]", "sampling only", "model sd", "true value", "covers truth"):
        t.add_column(col)
    truth = pol.get("truth") or {}
    obs = pol["observed"]
    t.add_row("observed", "mean", _interval(obs), "-", "-", fmt(truth.get("observed")), fmt(obs.get("covers_truth")))
    for name, est in pol["recommended"].items():
        samp = est.get("sampling_interval")
        t.add_row(
            "recommended",
            name,
            _interval(est),
            f"[{fmt(samp[0])}, {fmt(samp[1])}]" if samp else "-",
            fmt(est.get("model_sd")),
            fmt(truth.get("recommended")),
            fmt(est.get("covers_truth")),
        )
    con.print(t)
    m, ov = pol["match"], pol.get("overlap") or {}
    con.print(
        f"recommended = observed (drug classes) at {m['matched']} of {pol['n']} decision points "
        f"({100 * m['rate']:.1f}%), weights' effective sample size {m['effective_sample_size']:.1f}; "
        f"DR - observed {_interval(pol['difference_dr'])}",
        markup=False,
    )
    if ov:
        style = "bold yellow" if ov["verdict"] in ("poor", "limited") else "green"
        con.print(f"overlap: {ov['verdict']} ({ov['message']})", style=style, markup=False)
    if pol.get("interval"):
        con.print(f"intervals: {pol['interval']['text']}", markup=False)
    if truth:
        con.print(
            f"true regret: recommended {fmt(truth['regret_recommended'])}, observed "
            f"{fmt(truth['regret_observed'])} {o.get('unit_display', o['unit'])}",
            markup=False,
        )


def _calibration(con: Any, cal: dict[str, Any]) -> None:
    from rich.table import Table

    if not cal.get("n"):
        return
    t = Table(title="Calibration against observed follow-ups (observed regimen)")
    for col in ("n", "cov 50", "cov 80", "cov 90", "cov 95", "PIT KS", "CRPS", "ECE P(target)"):
        t.add_column(col)
    cv = cal["coverage"]
    t.add_row(
        str(cal["n"]),
        *(fmt(cv[k]) for k in ("50", "80", "90", "95")),
        fmt(cal["pit"]["ks"]),
        fmt(cal["crps"]),
        fmt(cal["p_target"]["ece"]),
    )
    con.print(t)


def _safety(con: Any, s: dict[str, Any]) -> None:
    from rich.table import Table

    if not s.get("patients"):
        return
    t = Table(title="Safety: findings on current medications")
    t.add_column("kind:action")
    t.add_column("per patient")
    t.add_column("share of patients")
    for k, v in s["current_findings_per_patient"].items():
        t.add_row(k, fmt(v), fmt(s["patients_with_kind"].get(k)))
    con.print(t)


def _subgroup(con: Any, name: str, rows: list[dict[str, Any]]) -> None:
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"By {name}")
    for col in ("group", "patients", "decisions", "agree", "cov 90", "CRPS", "DR value", "observed", "true"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            escape(str(r["group"])),  # a recorded race or ethnicity text is the EHR's, not markup
            str(r["patients"]),
            fmt(r.get("decision_points")),
            fmt(r.get("agreement_top1")),
            fmt(r.get("coverage90")),
            fmt(r.get("crps")),
            _interval(r.get("dr_value")),
            _interval(r.get("observed_value")),
            fmt(r.get("true_value")),
        )
    con.print(t)
