"""Plots of the plans' predicted outcome distributions against the target (matplotlib, Agg-safe).

Every plot has labelled axes with units, the target line and, where known, the baseline line.
:func:`figure_html` embeds one as a PNG data URI with alt text (the report page loads nothing from a network).
"""

from __future__ import annotations

import base64
import io
from typing import Any

from ..recommendation import Plan, Recommendation
from .html import esc, num, quantity_label, unit

__all__ = ["alt_text", "figure_html", "plot_plans", "plot_problems", "plot_recommendation", "png_bytes"]


def _label(p: Plan) -> str:
    drugs = " + ".join(d.drug for d in p.regimen) or "no drug therapy"
    return f"{p.rank}. {drugs}"


def plot_plans(
    rec: Recommendation, plans: tuple[Plan, ...] | list[Plan] | None = None, ax: Any = None, *, title: str | None = None
) -> Any:
    """Horizontal interval plot of ``plans`` (default: all of ``rec``'s): the predictive 5-95% and 25-75%
    ranges of a new measurement, the expected outcome's interval and mean, the baseline and the target.
    Returns the Axes."""
    import matplotlib.pyplot as plt

    plans = list(rec.plans if plans is None else plans)
    if ax is None:
        _, ax = plt.subplots(figsize=(10.5, 0.5 * max(len(plans), 1) + 1.8))
    o = rec.outcome
    u = unit(o.unit)
    for i, p in enumerate(plans):
        y = len(plans) - 1 - i
        q = p.predicted.quantiles
        if len(q) == 19:
            ax.hlines(y, q[0], q[-1], color="#9ecae1", lw=7, label="next measurement, 5-95%" if i == 0 else None)
            ax.hlines(y, q[4], q[14], color="#3182bd", lw=7, label="next measurement, 25-75%" if i == 0 else None)
        ax.hlines(
            y + 0.28,
            p.predicted.lower,
            p.predicted.upper,
            color="black",
            lw=1.5,
            label=f"expected outcome, {round(p.predicted.level * 100)}% interval" if i == 0 else None,
        )
        ax.plot([p.predicted.mean], [y + 0.28], "ko", ms=4, label="expected outcome, mean" if i == 0 else None)
    ax.set_yticks(range(len(plans) - 1, -1, -1), [_label(p) for p in plans])
    if not plans:
        ax.text(0.5, 0.5, "no ranked plan", transform=ax.transAxes, ha="center", va="center")
    sign = "<" if o.direction == "lower" else ">"
    ax.axvline(o.target, color="#31a354", ls="--", lw=1.5, label=f"target {sign} {o.target:g} {u}")
    if o.baseline is not None:
        ax.axvline(o.baseline, color="#de2d26", ls=":", lw=1.5, label=f"baseline {num(o.baseline)} {u}")
    label = quantity_label(o.quantity)
    ax.set_xlabel(f"predicted {label} at follow-up ({u})")
    ax.set_ylabel("plan (rank. regimen)")
    ax.set_title(title or f"{rec.area_name}: predicted {label} by plan", fontsize="medium")
    ax.set_ylim(-0.7, max(len(plans), 1) - 0.2)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small", frameon=False)
    return ax


def plot_recommendation(rec: Recommendation, ax: Any = None) -> Any:
    """All of ``rec``'s plans against the target (``Recommendation.plot``). Returns the Axes."""
    return plot_plans(rec, None, ax)


def png_bytes(rec: Recommendation, *, dpi: int = 96) -> bytes:
    """The plot as PNG bytes (no timestamp in the metadata: same input, same bytes)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11.5, 0.5 * max(len(rec.plans), 1) + 1.8))
    ax = fig.add_subplot()
    plot_plans(rec, None, ax)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def alt_text(rec: Recommendation) -> str:
    """What the plot shows, in words (the image's alt text)."""
    o = rec.outcome
    u = unit(o.unit)
    sign = "below" if o.direction == "lower" else "above"
    parts = [
        f"Predicted {quantity_label(o.quantity)} ({u}) at follow-up for {len(rec.plans)} ranked plans; target {sign} "
        f"{o.target:g} {u}" + ("" if o.baseline is None else f"; baseline {num(o.baseline)} {u}") + "."
    ]
    for p in rec.plans:
        pr = p.predicted
        parts.append(
            f"{_label(p)}: mean {pr.mean:.2f}, {round(pr.level * 100)}% interval {pr.lower:.2f} to "
            f"{pr.upper:.2f}, P(target) {p.p_target:.2f}."
        )
    return " ".join(parts)


def figure_html(rec: Recommendation) -> str:
    """The plot as a ``<figure>`` with an inline PNG, alt text and a caption ("" when there is no plan)."""
    if not rec.plans:
        return ""
    data = base64.b64encode(png_bytes(rec)).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{esc(alt_text(rec))}">'
        "<figcaption>Bars: where the next measurement is likely to fall (light 5-95%, dark 25-75%); black line "
        "and dot: the expected outcome's interval and mean; dashed green: target; dotted red: baseline."
        "</figcaption></figure>"
    )


def plot_problems(ax: Any, rec: Recommendation) -> list[str]:
    """What a plot of ``rec`` lacks ([] when complete): an x label with the outcome's unit, a y label, a title,
    the target line (and the baseline line when there is a baseline), a legend naming the target, one y tick
    per plan. Tests and notebooks assert it is empty."""
    u = unit(rec.outcome.unit)
    problems = []
    if f"({u})" not in ax.get_xlabel():
        problems.append(f"x axis label {ax.get_xlabel()!r} lacks the unit ({u})")
    if not ax.get_ylabel():
        problems.append("no y axis label")
    if not ax.get_title():
        problems.append("no title")

    def vertical(x: float) -> bool:
        return any(list(line.get_xdata()) == [x, x] for line in ax.get_lines())

    if not vertical(rec.outcome.target):
        problems.append(f"no target line at {rec.outcome.target:g}")
    if rec.outcome.baseline is not None and not vertical(rec.outcome.baseline):
        problems.append(f"no baseline line at {rec.outcome.baseline:g}")
    legend = ax.get_legend()
    if legend is None or not any(t.get_text().startswith("target") for t in legend.get_texts()):
        problems.append("the legend does not name the target")
    if rec.plans and len(ax.get_yticklabels()) != len(rec.plans):
        problems.append(f"{len(ax.get_yticklabels())} y ticks for {len(rec.plans)} plans")
    return problems
