"""The clinician's report: one self-contained HTML page for one patient (``planner recommend --format html``).

    record + recommendations (one per area) + rules -> ReviewReport -> render_page -> HTML

The page loads nothing: the stylesheet is inline, plots are PNG data URIs, and a Content-Security-Policy forbids
any fetch (``default-src 'none'``), so it opens the same in any browser, offline, from an EHR or a file.
It is printable (print stylesheet), every table has a header row, every image has alt text, and every value
from the record or the rules is escaped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from ..recommendation import Recommendation
from ..record import Finding, PatientRecord
from .html import GENE_STATUS_TEXT, css, esc, findings_html, fragment, recommendation_html, record_html

__all__ = ["ReviewReport", "build_report", "gene_results", "render_page"]

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def gene_results(record: PatientRecord, ruleset: Any, recs: Sequence[Recommendation] = ()) -> dict[str, Any]:
    """Interpreted results of every gene with a result on record, plus every gene a current drug or a data gap
    depends on (shown as "not tested" when there is no result: never as normal). Genes nobody needs and nobody
    tested are left out (the table's caption says so)."""
    from ..safety.phenotype import NO_RESULT, GeneResult
    from ..status import GeneStatus

    needed = {g for m in record.active_medications() if m.ingredient for g in ruleset.genes_for(m.ingredient)}
    needed |= {gap.gene for r in recs for gap in r.data_gaps if gap.gene}
    needed |= {p.gene for p in record.pgx}
    genes: dict[str, Any] = {
        g: r
        for g, r in ruleset.phenotypes(record).items()
        if g in needed or r.status != GeneStatus.NOT_TESTED or r.phenoconverted_by
    }
    for g in sorted(needed - set(genes)):
        genes[g] = GeneResult(gene=g, status=GeneStatus.NOT_TESTED, lookup=(NO_RESULT,))
    return dict(sorted(genes.items()))


@dataclasses.dataclass(frozen=True)
class ReviewReport:
    """Everything the page shows, computed once: the record, its recommendations (one per area), the
    interpreted gene results and the findings on the current medications."""

    record: PatientRecord
    recommendations: tuple[Recommendation, ...]
    genes: Mapping[str, Any]
    current_findings: tuple[Finding, ...]
    rules_version: str

    def to_html(self, *, plots: bool = True) -> str:
        return render_page(self, plots=plots)

    def _repr_html_(self) -> str:  # Jupyter: the same content as the page, as a fragment
        return fragment(_body(self, plots=True))


def build_report(record: PatientRecord, recs: Sequence[Recommendation], ruleset: Any) -> ReviewReport:
    """Assemble a report from a record, its recommendations and the rules that screened them."""
    return ReviewReport(
        record=record,
        recommendations=tuple(recs),
        genes=gene_results(record, ruleset, recs),
        current_findings=tuple(ruleset.check(record)),
        rules_version=ruleset.rules_version,
    )


def _contents(report: ReviewReport) -> str:
    items = [
        '<li><a href="#summary">Patient summary</a></li>',
        '<li><a href="#current-findings">Findings on current medications</a></li>',
    ]
    items += [f'<li><a href="#area-{esc(r.area)}">{esc(r.area_name)}</a></li>' for r in report.recommendations]
    items.append('<li><a href="#provenance">Provenance</a></li>')
    return f'<nav class="noprint small"><b>Contents</b><ul>{"".join(items)}</ul></nav>'


def _gene_notes(report: ReviewReport) -> str:
    odd = [(g, getattr(r, "status", "")) for g, r in report.genes.items() if getattr(r, "status", "") != "tested"]
    if not odd:
        return ""
    words = "; ".join(f"{esc(g)}: {esc(GENE_STATUS_TEXT.get(s, s))}" for g, s in odd)
    return (
        f'<p class="note">Not known: {words}. A gene without a usable result is never assumed normal; plans that '
        "depend on it say so under data gaps.</p>"
    )


def _provenance(report: ReviewReport) -> str:
    rows = []
    for r in report.recommendations:
        p = r.provenance
        rows.append(
            [
                esc(r.area),
                esc(p.area_version),
                esc(p.model),
                f"{p.seed}",
                f"{p.num_samples}",
                f"{p.candidates_considered}",
                esc(p.planner_version),
            ]
        )
    from .html import table

    tab = table(
        [
            "area",
            "area version",
            "model",
            ("seed", "num"),
            ("posterior draws", "num"),
            ("candidates considered", "num"),
            "planner",
        ],
        rows,
        caption="Software, knowledge and model",
        widths=(14, 12, 30, 8, 12, 12, 12),
        empty="no recommendation was made",
    )
    return (
        f'<h2 id="provenance">Provenance</h2><p>Rules version <span class="rule">{esc(report.rules_version)}'
        f"</span>; record as of {esc(report.record.as_of)}.</p>"
        + tab
        + '<p class="small muted">Decision support for a clinician, not a prescription: every plan says why, '
        "how sure the model is and which rules applied; a missing fact is reported as missing, never guessed."
        "</p>"
    )


def _body(report: ReviewReport, *, plots: bool) -> str:
    from .plot import figure_html

    record = report.record
    outcomes = [r.outcome.quantity for r in report.recommendations]
    areas = ", ".join(r.area_name for r in report.recommendations) or "none"
    title = (
        f'<h1>Treatment plan review</h1><p class="muted">Patient {esc(record.patient_id)}, as of '
        f"{esc(record.as_of)}; areas: {esc(areas)}</p>"
    )
    parts = [
        title,
        _contents(report),
        '<section id="summary">'
        + record_html(record, genes=report.genes, outcomes=outcomes)
        + _gene_notes(report)
        + "</section>",
        '<section id="current-findings"><h2>Findings on current medications</h2>'
        + findings_html(report.current_findings, empty="no rule fired on the current medications")
        + "</section>",
    ]
    if record.is_deceased:
        parts.append(
            '<p class="note"><b>The record says the patient is deceased.</b> Check the record before '
            "acting on anything below.</p>"
        )
    if not report.recommendations:
        parts.append(
            '<p class="note">The patient has no active condition of a therapeutic area planner knows, so '
            "no plan was made.</p>"
        )
    for r in report.recommendations:
        fig = figure_html(r) if plots else ""
        parts.append(
            f'<section id="area-{esc(r.area)}">'
            + recommendation_html(r, figure=fig, current_findings=False)
            + "</section>"
        )
    parts.append(_provenance(report))
    return "".join(parts)


def render_page(report: ReviewReport, *, plots: bool = True) -> str:
    """The report as one self-contained HTML document."""
    title = f"Treatment plan review: {report.record.patient_id}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="planner"><title>{esc(title)}</title>'
        f"<style>body{{margin:0;padding:16px 24px;background:#fff}} .planner{{margin:0 auto}}\n{css()}</style>"
        f'</head><body><main class="planner">{_body(report, plots=plots)}</main></body></html>\n'
    )
