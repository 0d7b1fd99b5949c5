"""planner's objects as HTML: the fragments Jupyter shows (``_repr_html_``) and the report page is built from.

Every value that comes from a record, a rule or a model is escaped here (:func:`esc`): EHR fields may contain
markup. Fragments are wrapped by :func:`fragment` in ``<div class="planner">`` with the shared stylesheet
(``report.css``), so a notebook and the report page look the same.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.resources
from collections.abc import Iterable, Mapping, Sequence
from html import escape

from ..recommendation import DataGap, ExcludedRegimen, Plan, PlanDrug, Recommendation
from ..record import Finding, Medication, PatientRecord, PgxResult
from ..status import GeneStatus
from ..units import num, unit_display

__all__ = [
    "css",
    "dose",
    "drugs_html",
    "esc",
    "excluded_html",
    "finding_html",
    "findings_html",
    "fragment",
    "gaps_html",
    "num",
    "plans_html",
    "quantity_label",
    "recommendation_html",
    "record_html",
    "render_html",
    "table",
    "unit",
]

# what each gene status means to a reader; a gene with no result is never shown as normal
GENE_STATUS_TEXT: dict[str, str] = {
    GeneStatus.TESTED: "tested",
    GeneStatus.NOT_TESTED: "not tested",
    GeneStatus.INDETERMINATE: "indeterminate (result could not be interpreted)",
    GeneStatus.CONFLICT: "conflict (sources disagree; the most cautious reading is used)",
}


def esc(value: object) -> str:
    """Escaped text of any value (``None`` -> empty), quotes included (safe in attributes too)."""
    return escape("" if value is None else str(value), quote=True)


@functools.lru_cache(maxsize=1)
def css() -> str:
    return importlib.resources.files(__package__).joinpath("report.css").read_text(encoding="utf-8")


def fragment(body: str, *, style: bool = True) -> str:
    """``body`` (already-escaped HTML) inside the scoped container, with the stylesheet for notebooks."""
    return '<div class="planner">' + (f"<style>{css()}</style>" if style else "") + body + "</div>"


def unit(u: str) -> str:
    """A UCUM unit for reading (``rules/codes/units.yaml``: ``mm[Hg]`` -> ``mmHg``, ``{score}`` -> ``points``;
    an unlisted one loses its braces and brackets, ``10*3/uL`` -> ``10^3/uL``)."""
    return unit_display(u)


def dose(mg_day: float | None, drug: str | None = None) -> str:
    """A dose as prescribed (``planner.dosing``: units for insulin, weekly injectables, times a day);
    a drug the prescribing file does not know reads in mg/day. ``None``: dose unknown."""
    from ..dosing import dosage

    if mg_day is None:
        return "dose unknown"
    d = dosage(drug, mg_day) if drug else None
    if d is None or d.route == "unknown":
        return f"{mg_day:g} mg/day"
    return d.text


def plan_dose(d: PlanDrug) -> str:
    """A plan drug's dose as prescribed (its ``dosage`` when the ranking set one)."""
    from ..dosing import dose_text

    return dose_text(d) if d.dose_mg_day is not None else "dose unknown"


def table(
    headers: Sequence[str | tuple[str, str]],
    rows: Iterable[Sequence[str]],
    *,
    caption: str | None = None,
    widths: Sequence[int] | None = None,
    row_classes: Sequence[str] | None = None,
    empty: str = "none",
) -> str:
    """A table with a header row. ``headers``: plain text, or ``(text, "num")`` for right-aligned numbers;
    ``rows``: cells of already-escaped HTML; ``widths``: column widths in percent."""
    heads = [(h, "") if isinstance(h, str) else h for h in headers]
    rows = list(rows)
    if not rows:
        return f'<p class="muted">{esc(caption)}: {esc(empty)}</p>' if caption else f'<p class="muted">{esc(empty)}</p>'
    cols = "".join(f'<col style="width:{w}%">' for w in widths) if widths else ""
    head = "".join(
        f'<th scope="col" class="{c}">{esc(h)}</th>' if c else f'<th scope="col">{esc(h)}</th>' for h, c in heads
    )
    body = []
    for i, r in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = "".join(
            f'<td class="{heads[j][1]}">{v}</td>' if heads[j][1] else f"<td>{v}</td>" for j, v in enumerate(r)
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (
        f"<table>{cap}<colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def _source(src: str | None) -> str:
    """A rule's source: a link for web addresses (no other scheme is ever made a link), text otherwise."""
    if not src:
        return ""
    if src.startswith(("https://", "http://")):
        return f'<a href="{esc(src)}" rel="noreferrer noopener">{esc(src)}</a>'
    return esc(src)


def finding_html(f: Finding, *, source: bool = True) -> str:
    strength = f' <span class="muted">({esc(f.strength)})</span>' if f.strength else ""
    pheno = f' <span class="muted">[{esc(f.phenotype)}]</span>' if f.phenotype else ""
    src = f' <span class="small muted">source: {_source(f.source)}</span>' if source and f.source else ""
    adds = getattr(f, "plan_adds", ())
    if adds:
        src = f' <span class="small">(started by this plan: {esc(", ".join(adds))})</span>' + src
    return (
        f'<div class="finding"><span class="act act-{esc(f.action)}">{esc(f.action.replace("_", " "))}'
        f'</span> {esc(f.message)}{strength}{pheno} <span class="rule">{esc(f.rule_id)} v{esc(f.rule_version)}'
        f"</span>{src}</div>"
    )


def findings_html(findings: Sequence[Finding], *, caption: str | None = None, empty: str = "no findings") -> str:
    """Findings as a table: action, what, the drugs and genes involved, the rule and its source."""
    rows = [
        [
            f'<span class="act act-{esc(f.action)}">{esc(f.action.replace("_", " "))}</span>',
            esc(f.message) + (f' <span class="muted">[{esc(f.phenotype)}]</span>' if f.phenotype else ""),
            esc(", ".join(f.drugs + f.genes)) or "-",
            esc(f.strength or "-"),
            f'<span class="rule">{esc(f.rule_id)} v{esc(f.rule_version)}</span><br>{_source(f.source)}',
        ]
        for f in findings
    ]
    return table(
        ["action", "finding", "drugs / genes", "strength", "rule and source"],
        rows,
        caption=caption,
        widths=(9, 41, 14, 11, 25),
        empty=empty,
    )


def drugs_html(drugs: Sequence[PlanDrug], stopped: Sequence[PlanDrug] = ()) -> str:
    """A plan's drugs, each with its dose and what the plan changes (continue, add, switch, dose change, stop)."""
    items = []
    for d in drugs:
        if d.change == "dose-change":
            what = f"dose change from {esc(dose(d.previous_dose_mg_day, d.drug))}"
        elif d.change == "continue" and d.dose_mg_day is None:
            what = "continue; dose unknown"
        elif d.change == "continue" and d.previous_dose_mg_day is None and d.dose_mg_day is not None:
            what = "continue at this dose; current dose unknown"
        else:
            what = esc(d.change)
        adj = (
            f' <span class="small">dose set by rule <span class="rule">{esc(d.dose_adjusted_by)}</span></span>'
            if d.dose_adjusted_by
            else ""
        )
        shown = "" if d.dose_mg_day is None else " " + esc(plan_dose(d))
        items.append(f'<b>{esc(d.drug)}</b>{shown} <span class="change-{esc(d.change)}">({what})</span>{adj}')
    items += [f'<s>{esc(d.drug)}</s> <span class="change-stop">(stop)</span>' for d in stopped]
    return "<br>".join(items) or "<em>no drug therapy</em>"


# ---- the record ---------------------------------------------------------------------------------------------


def _quantity_labels() -> Mapping[str, tuple[str, str]]:
    from ..ingest.codes import code_tables

    return {name: (q.label, q.unit) for name, q in code_tables().quantities.items()}


def quantity_label(name: str) -> str:
    """The reader's name of a quantity (``phq9`` -> ``PHQ-9 total score``), from the code tables."""
    try:
        return _quantity_labels().get(name, (name, ""))[0]
    except Exception:  # noqa: BLE001 - a label is cosmetic: never fail a render for it
        return name


def _coded(system: str | None, code: str | None) -> str:
    short = {
        "http://snomed.info/sct": "SNOMED",
        "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
        "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
        "http://loinc.org": "LOINC",
    }
    return f"{short.get(system or '', system or '')} {code}".strip() if code else ""


def unresolved(m: Medication) -> bool:
    """A medication that could not be resolved to an ingredient: the safety rules could not check it."""
    return m.rxcui is None and m.ingredient is None


def _med_dose(m: Medication) -> str:
    """A current medication's dose as the record gives it: as prescribed, a range, assumed or unknown."""
    rng = m.dose_range_mg_day
    if m.dose_mg_day is None and rng is not None:
        text = f"{rng[0]:g}-{rng[1]:g} mg/day (a range)"
    else:
        text = dose(m.dose_mg_day, m.ingredient)
    if m.dose_assumed and m.dose_mg_day is not None:
        text += " (assumed: see the data-quality warnings)"
    if m.as_needed:
        text += "; as needed"
    return esc(text)


def _medications_html(record: PatientRecord) -> str:
    meds = sorted(
        record.active_medications(), key=lambda m: (not unresolved(m), m.ingredient or "", m.start or dt.date.min)
    )
    rows, classes = [], []
    for m in meds:
        name = f"<b>{esc(m.ingredient)}</b>" if m.ingredient else "<b>(unknown ingredient)</b>"
        if unresolved(m):
            name += (
                ' <span class="flag">not resolved</span><br><span class="small">could not be matched to an '
                "ingredient, so the safety rules did not check it: review by hand</span>"
            )
        code = f'<br><span class="rule">code {esc(m.source_code)}</span>' if m.source_code else ""
        rows.append(
            [name, esc(m.source_display or "-") + code, _med_dose(m), esc(m.start or "-"), esc(m.status or "-")]
        )
        classes.append("unresolved" if unresolved(m) else "")
    return table(
        ["medication", "as written", "dose", "since", "status"],
        rows,
        caption="Current medications",
        widths=(24, 33, 17, 13, 13),
        row_classes=classes,
        empty="none recorded",
    )


def _labs_html(record: PatientRecord, first: Sequence[str] = ()) -> str:
    labels = _quantity_labels()
    names = [q for q in first if q in record.observations] + sorted(q for q in record.observations if q not in first)
    rows = []
    for q in names:
        m = record.latest(q)
        if m is None:
            continue
        label = labels.get(q, (q, m.unit))[0]
        n = len(record.series(q))
        age = (record.as_of - m.date).days
        rows.append(
            [
                esc(label) + (' <span class="small muted">(outcome)</span>' if q in first else ""),
                f"{num(m.value)} {esc(unit(m.unit))}",
                esc(m.date),
                f"{age}",
                f"{n}",
                f'<span class="rule">LOINC {esc(m.loinc)}</span>',
            ]
        )
    return table(
        ["quantity", ("latest value", "num"), "date", ("days before as-of", "num"), ("values", "num"), "code"],
        rows,
        caption="Latest measurements",
        widths=(26, 16, 14, 14, 10, 20),
        empty="no measurements on record",
    )


def _pgx_raw(p: PgxResult) -> str:
    parts = [
        p.diplotype and f"diplotype {p.diplotype}",
        p.phenotype,
        p.activity_score is not None and f"activity score {p.activity_score:g}",
        p.allele and f"{p.allele} {p.allele_status or ''}",
    ]
    return esc("; ".join(x for x in parts if x) or "no result")


def pgx_html(record: PatientRecord, genes: Mapping[str, object] | None = None) -> str:
    """Pharmacogenomic results. With ``genes`` (``RuleSet.phenotypes`` plus any gene a decision depends on,
    as :class:`GeneResult`), the interpreted status of each, "not tested" and "indeterminate" said as such;
    without, the results as reported (any gene not listed is not tested)."""
    if genes is None:
        rows = [[f"<b>{esc(p.gene)}</b>", _pgx_raw(p), esc(p.source), esc(p.date or "-")] for p in record.pgx]
        return table(
            ["gene", "result as reported", "source", "date"],
            rows,
            caption="Pharmacogenomic results (genes not listed: not tested)",
            widths=(14, 46, 22, 18),
            empty="none: every gene is not tested",
        )
    rows = []
    for g, r in sorted(genes.items()):
        status = getattr(r, "status", GeneStatus.NOT_TESTED)
        conv = getattr(r, "phenoconverted_by", ())
        reported = (
            "<br>".join(_pgx_raw(p) + f' <span class="small muted">({esc(p.source)})</span>' for p in record.pgx_for(g))
            or "-"
        )
        pheno = esc(
            getattr(r, "phenotype", None) or (GeneStatus.NOT_TESTED.label if status == GeneStatus.NOT_TESTED else "-")
        )
        if conv:
            pheno += f'<br><span class="small">phenoconverted by {esc(", ".join(conv))}</span>'
        alleles = ", ".join(f"{a} {s}" for a, s in getattr(r, "alleles", ()))
        status_cell = f'<span class="status-{esc(status)}">{esc(GENE_STATUS_TEXT.get(status, status))}</span>'
        rows.append(
            [
                f"<b>{esc(g)}</b>",
                status_cell,
                esc(getattr(r, "diplotype", None) or alleles or "-"),
                pheno,
                esc(getattr(r, "activity_score", None) or "-"),
                reported,
            ]
        )
    return table(
        ["gene", "status", "diplotype / alleles", "phenotype used", "activity score", "as reported"],
        rows,
        caption="Pharmacogenomic results (every gene tested, and every gene a current drug or a plan depends on)",
        widths=(10, 18, 16, 20, 10, 26),
        empty="no gene tested and none needed",
    )


def record_html(
    record: PatientRecord,
    *,
    genes: Mapping[str, object] | None = None,
    outcomes: Sequence[str] = (),
    heading: bool = True,
) -> str:
    """A readable summary: who, active problems, current medications (unresolved flagged), allergies, latest
    measurements, pharmacogenomic results and the record's data-quality warnings."""
    age = record.age()
    facts = [
        ("patient", record.patient_id),
        ("sex", record.sex or "not recorded"),
        ("age", f"{age:.0f} years" if age is not None else "not recorded"),
        ("as of", record.as_of),
    ]
    if record.deceased or record.deceased_boolean:
        facts.append(("deceased", record.deceased or "yes (no date recorded)"))
    grid = "".join(f'<div><span class="muted">{esc(k)}</span><br><b>{esc(v)}</b></div>' for k, v in facts)
    conds = sorted(record.active_conditions(), key=lambda c: (c.onset or c.recorded or record.as_of, c.display or ""))
    problems = table(
        ["problem", "code", "since", "status"],
        [
            [
                esc(c.display or "(no display)"),
                f'<span class="rule">{esc(_coded(c.system, c.code))}</span>',
                esc(c.onset or c.recorded or "-"),
                esc(c.clinical_status or "-"),
            ]
            for c in conds
        ],
        caption="Active problems",
        widths=(50, 22, 14, 14),
        empty="none recorded",
    )
    allergies = table(
        ["substance", "criticality", "reactions", "status"],
        [
            [
                esc(a.display or a.ingredient or "(no display)"),
                esc(a.criticality or "-"),
                esc(", ".join(a.reactions) or "-"),
                esc(a.clinical_status or "-"),
            ]
            for a in record.allergies
        ],
        caption="Allergies and intolerances",
        widths=(40, 15, 30, 15),
        empty="none recorded",
    )
    warnings = table(
        ["warning", "what", "where"],
        [
            [
                f'<span class="rule">{esc(w.code)}</span>',
                esc(w.message) + (f'<br><span class="small muted">value: {esc(w.value)}</span>' if w.value else ""),
                esc(w.resource or "-") + (f'<br><span class="rule">{esc(w.field)}</span>' if w.field else ""),
            ]
            for w in record.warnings
        ],
        caption="Data-quality warnings (what could not be used, or was used with an assumption)",
        widths=(18, 57, 25),
        empty="none",
    )
    head = "<h2>Patient summary</h2>" if heading else ""
    return (
        head
        + f'<div class="summary-grid">{grid}</div>'
        + problems
        + _medications_html(record)
        + allergies
        + _labs_html(record, outcomes)
        + pgx_html(record, genes)
        + warnings
    )


# ---- the recommendation -------------------------------------------------------------------------------------


def _target_text(rec: Recommendation) -> str:
    o = rec.outcome
    sign = "&lt;" if o.direction == "lower" else "&gt;"
    label = f" ({esc(o.target_label)})" if o.target_label else ""
    return f"{sign} {o.target:g} {esc(unit(o.unit))}{label}"


def plans_html(rec: Recommendation) -> str:
    o = rec.outcome
    u = esc(unit(o.unit))
    level = round(rec.plans[0].predicted.level * 100) if rec.plans else 90
    rows = []
    for p in rec.plans:
        pr = p.predicted
        delta = (
            ""
            if pr.change_from_baseline is None
            else f'<br><span class="small">{pr.change_from_baseline:+.2f} from baseline</span>'
        )
        rows.append(
            [
                f"{p.rank}",
                drugs_html(p.regimen, p.stopped),
                (
                    f"<b>{pr.mean:.2f}</b> {u}<br>[{pr.lower:.2f}, {pr.upper:.2f}]{delta}"
                    f'<br><span class="small muted">next measurement [{pr.obs_lower:.2f}, {pr.obs_upper:.2f}]</span>'
                ),
                f"{p.p_target:.2f}",
                f"{p.p_best:.2f}",
                "".join(finding_html(f, source=False) for f in p.findings) or '<span class="muted">none</span>',
                f'<span class="small">{esc(p.rationale)}</span>',
            ]
        )
    predicted = f"predicted {quantity_label(o.quantity)} ({unit(o.unit)}), {level}% interval"
    return table(
        ["#", "regimen and changes", predicted, ("P(target)", "num"), ("P(best)", "num"), "findings (rules)", "why"],
        rows,
        caption="Ranked plans",
        widths=(4, 20, 15, 8, 7, 24, 22),
        empty="no plan could be ranked (see the data gaps)",
    )


def _regimen_text(drugs: Sequence[PlanDrug]) -> str:
    return (
        " + ".join(d.drug + ("" if d.dose_mg_day is None else f" {plan_dose(d)}") for d in drugs) or "no drug therapy"
    )


def excluded_html(excluded: Sequence[ExcludedRegimen], *, limit: int | None = None, caption: str | None = None) -> str:
    """Excluded regimens grouped by the findings that excluded them: one row per rule (or set of rules), with
    the rule's message and source and every regimen it removed (``limit``: regimens listed per row)."""
    groups: dict[tuple, tuple[list[Finding], list[ExcludedRegimen]]] = {}
    for e in excluded:
        why = [f for f in e.findings if f.action == "exclude"] or list(e.findings)
        key = tuple((f.rule_id, f.target_drug, f.message) for f in why)
        groups.setdefault(key, (why, []))[1].append(e)
    rows = []
    for why, regs in sorted(groups.values(), key=lambda g: (-len(g[1]), g[0][0].rule_id if g[0] else "")):
        shown = regs if limit is None else regs[:limit]
        names = "<br>".join(esc(_regimen_text(e.regimen) if e.regimen else e.key) for e in shown)
        more = f'<br><span class="muted">and {len(regs) - len(shown)} more</span>' if len(regs) > len(shown) else ""
        rows.append(
            ["".join(finding_html(f) for f in why), f"{len(regs)}", f'<span class="small">{names}{more}</span>']
        )
    return table(
        ["excluded by (rule, message, source)", ("regimens", "num"), "regimens excluded"],
        rows,
        caption=caption or f"Excluded regimens ({len(excluded)})",
        widths=(50, 10, 40),
        empty="none",
    )


def gaps_html(gaps: Sequence[DataGap]) -> str:
    rows = [[esc(g.message), esc(g.suggestion or "-"), f'<span class="rule">{esc(g.code)}</span>'] for g in gaps]
    return table(
        ["what is missing", "what to do", "code"], rows, caption="Data gaps", widths=(50, 35, 15), empty="none"
    )


def provenance_html(rec: Recommendation) -> str:
    p = rec.provenance
    return (
        f'<p class="small muted">planner {esc(p.planner_version)}; rules {esc(p.rules_version)}; area '
        f"{esc(rec.area)} {esc(p.area_version)}; model {esc(p.model)}; seed {p.seed}; as of {esc(p.as_of)}; "
        f"{p.num_samples} posterior draws; {p.candidates_considered} candidate regimens considered</p>"
    )


def recommendation_html(
    rec: Recommendation, *, figure: str = "", current_findings: bool = True, excluded_limit: int | None = None
) -> str:
    """One area's recommendation: outcome and target, current regimen, ranked plans (with ``figure``, an
    already-built ``<figure>``), excluded regimens, findings on current medications, data gaps, provenance."""
    o = rec.outcome
    base = (
        "no recent value" if o.baseline is None else f"{num(o.baseline)} {esc(unit(o.unit))} on {esc(o.baseline_date)}"
    )
    current = drugs_html(rec.current_regimen) if rec.current_regimen else "<em>none of this area's drugs</em>"
    return (
        f"<h2>{esc(rec.area_name)}</h2>"
        f"<p>Outcome <b>{esc(quantity_label(o.quantity))}</b> (LOINC {esc(o.loinc)}): baseline {base}; target {_target_text(rec)}.</p>"
        f"<p>Current regimen: {current}</p>"
        + plans_html(rec)
        + figure
        + excluded_html(rec.excluded, limit=excluded_limit)
        + (findings_html(rec.current_findings, caption="Findings on current medications") if current_findings else "")
        + gaps_html(rec.data_gaps)
        + provenance_html(rec)
    )


def render_html(rec: Recommendation) -> str:
    """A Recommendation as a notebook fragment (``Recommendation._repr_html_``)."""
    return fragment(recommendation_html(rec, excluded_limit=25))


def plan_card_html(rec: Recommendation, plan: Plan, *, title: str | None = None) -> str:
    """One plan on its own (for side-by-side comparison): drugs, predicted outcome, P(target), P(best), findings."""
    pr = plan.predicted
    u = esc(unit(rec.outcome.unit))
    found = "".join(finding_html(f) for f in plan.findings) or '<p class="muted">no findings</p>'
    return (
        f"<h3>{esc(title or f'Plan {plan.rank}')}</h3><p>{drugs_html(plan.regimen, plan.stopped)}</p>"
        f"<p>Predicted {esc(quantity_label(rec.outcome.quantity))} <b>{pr.mean:.2f}</b> {u} "
        f"({round(pr.level * 100)}% interval {pr.lower:.2f} to {pr.upper:.2f}); "
        f"P(target) <b>{plan.p_target:.2f}</b>; P(best) <b>{plan.p_best:.2f}</b></p>"
        f'<p><b>Findings</b></p>{found}<p class="small">{esc(plan.rationale)}</p>'
    )
