"""A plot of the plans' predicted outcome distributions against the target (matplotlib)."""

from __future__ import annotations

from ..recommendation import Recommendation


def plot_recommendation(rec: Recommendation, ax=None):  # noqa: ANN001, ANN201 - matplotlib types
    """Horizontal interval plot: predictive 5-95% and 25-75% ranges, the expected-outcome interval, the
    mean, the baseline and the target. Returns the Axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.6 * max(len(rec.plans), 1) + 1.5))
    o = rec.outcome
    labels = []
    for i, p in enumerate(rec.plans):
        y = len(rec.plans) - 1 - i
        q = p.predicted.quantiles
        if len(q) == 19:
            ax.hlines(y, q[0], q[-1], color="#9ecae1", lw=6, label="predictive 5-95%" if i == 0 else None)
            ax.hlines(y, q[4], q[14], color="#3182bd", lw=6, label="predictive 25-75%" if i == 0 else None)
        ax.hlines(y + 0.25, p.predicted.lower, p.predicted.upper, color="black", lw=1.5,
                  label=f"expected, {int(p.predicted.level * 100)}% interval" if i == 0 else None)
        ax.plot([p.predicted.mean], [y + 0.25], "ko", ms=4)
        labels.append(f"{p.rank}. " + (" + ".join(d.drug for d in p.regimen) or "no drug therapy"))
    ax.set_yticks(range(len(rec.plans) - 1, -1, -1), labels)
    ax.axvline(o.target, color="#31a354", ls="--", label=f"target {o.target:g}")
    if o.baseline is not None:
        ax.axvline(o.baseline, color="#de2d26", ls=":", label=f"baseline {o.baseline:g}")
    ax.set_xlabel(f"{o.quantity} ({o.unit}) at follow-up")
    ax.set_title(rec.area_name)
    ax.legend(loc="best", fontsize="small")
    return ax
