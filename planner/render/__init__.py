"""Renderers: one function per format behind one small protocol, ``render(rec, fmt) -> str``.

Formats: ``json`` (the canonical Recommendation JSON), ``fhir`` (an R4 Bundle: CarePlan per plan with
proposed MedicationRequests, a DetectedIssue per finding, a Provenance), ``table`` (a rich terminal table),
``html`` (a Recommendation as an HTML fragment, what notebooks show; the CLI's ``--format html`` writes the
self-contained report page of :mod:`planner.render.report` instead: record summary plus every area).
``planner.render.plot.plot_recommendation`` draws the plans' predicted distributions against the target.
Importing this package registers the notebook views (``_repr_html_``) of Recommendation, PatientRecord and
findings, which never import the renderers themselves.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from ..errors import ConfigError
from ..recommendation import Recommendation, register_view

__all__ = ["Renderer", "FORMATS", "render"]


class Renderer(Protocol):
    def __call__(self, rec: Recommendation) -> str: ...


def _json(rec: Recommendation) -> str:
    return rec.to_json(indent=2)


def _fhir(rec: Recommendation) -> str:
    from .fhir import render_fhir_json

    return render_fhir_json(rec)


def _table(rec: Recommendation) -> str:
    from .table import render_table

    return render_table(rec)


def _html(rec: Recommendation) -> str:
    from .html import render_html

    return render_html(rec)


FORMATS: dict[str, Callable[[Recommendation], str]] = {"json": _json, "fhir": _fhir, "table": _table, "html": _html}


def render(rec: Recommendation, fmt: str = "json") -> str:
    try:
        fn = FORMATS[fmt]
    except KeyError:
        raise ConfigError(
            "unknown output format", field="format", value=fmt, expected="one of " + ", ".join(FORMATS)
        ) from None
    return fn(rec)


def _plot(rec: Recommendation, ax: Any = None) -> Any:
    from .plot import plot_recommendation

    return plot_recommendation(rec, ax=ax)


def _record_views() -> None:
    from .. import record
    from .html import finding_html, findings_html, fragment, record_html

    record.register_view("record-html", lambda r: fragment(record_html(r)))
    record.register_view("finding-html", lambda f: fragment(finding_html(f)))
    record.register_view("findings-html", lambda fs: fragment(findings_html(fs)))


register_view("html", _html)
register_view("plot", _plot)
_record_views()
