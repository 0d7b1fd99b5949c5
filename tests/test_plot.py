"""Every plot exists with labelled axes (with units), the target line and a legend that names it."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
from report_cases import FIXTURES, depression_vignette

from planner.ingest import read_record
from planner.render.html import unit
from planner.render.plot import alt_text, plot_problems, png_bytes


@pytest.fixture(scope="module")
def recs():
    from planner import Planner

    planner = Planner.load()
    out = []
    for path in sorted((FIXTURES / "synthea").glob("*.json"))[:4]:
        out += planner.recommend_all(read_record(path), top=4)
    out += planner.recommend_all(read_record(depression_vignette(), as_of="2024-06-01"), top=4)
    assert {r.area for r in out} >= {"t2d", "hypertension", "lipids", "depression"}
    return out


def _vertical_at(ax, x: float) -> bool:
    return any(list(line.get_xdata()) == [x, x] for line in ax.get_lines())


def test_every_plot_has_labelled_axes_units_and_target(recs) -> None:
    import matplotlib.pyplot as plt

    for rec in recs:
        ax = rec.plot()
        u = unit(rec.outcome.unit)
        assert ax.get_xlabel() and f"({u})" in ax.get_xlabel(), ax.get_xlabel()
        assert ax.get_ylabel() and ax.get_title()
        assert _vertical_at(ax, rec.outcome.target), "no target line"
        if rec.outcome.baseline is not None:
            assert _vertical_at(ax, rec.outcome.baseline), "no baseline line"
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any(t.startswith("target") and u in t for t in legend)
        ticks = [t.get_text() for t in ax.get_yticklabels()]
        assert len(ticks) == len(rec.plans) and all(t.startswith(f"{p.rank}.") for t, p in zip(ticks, rec.plans))
        assert plot_problems(ax, rec) == []
        plt.close(ax.figure)


def test_plot_problems_says_what_is_missing(recs) -> None:
    import matplotlib.pyplot as plt

    rec = next(r for r in recs if r.outcome.baseline is not None and r.plans)
    _, ax = plt.subplots()
    ax.plot([1, 2], [1, 2])
    problems = plot_problems(ax, rec)
    assert any("unit" in p for p in problems) and "no y axis label" in problems and "no title" in problems
    assert any(p.startswith("no target line") for p in problems) and any("baseline" in p for p in problems)
    assert "the legend does not name the target" in problems
    plt.close(ax.figure)


def test_embedded_plot_is_a_deterministic_png_with_alt_text(recs) -> None:
    rec = recs[0]
    a, b = png_bytes(rec), png_bytes(rec)
    assert a[:8] == b"\x89PNG\r\n\x1a\n" and a == b
    alt = alt_text(rec)
    assert all(f"{p.rank}. " in alt for p in rec.plans) and f"{rec.outcome.target:g}" in alt
