"""The report page and the notebook displays, without a browser: content, self-containment, escaping,
determinism; the what-if and comparison helpers. (tests/test_report_browser.py opens the pages in Chromium.)"""

from __future__ import annotations

import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from report_cases import FIXTURES, MARKUP, depression_vignette, markup_vignette

from planner.errors import ConfigError
from planner.ingest import read_record
from planner.record import Findings
from planner.render.report import build_report, render_page
from planner.render.review import compare, what_changed, why_excluded, with_genotype, with_lab, with_medication

ROOT = Path(__file__).resolve().parent.parent
MORRIS = next((FIXTURES / "synthea").glob("Morris_Lockman_*.json"))
JED = next((FIXTURES / "synthea").glob("Jed_Pollich_*.json"))


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: str) -> _Tags:
    p = _Tags()
    p.feed(page)
    return p


@pytest.fixture(scope="module")
def planner():
    from planner import Planner

    return Planner.load()


@pytest.fixture(scope="module")
def morris_page(planner) -> str:
    record = read_record(MORRIS)
    return render_page(build_report(record, planner.recommend_all(record, top=5), planner.ruleset))


def test_cli_writes_one_self_contained_page() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, "-m", "planner.cli", "recommend", str(MORRIS), "--format", "html"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    ).stdout
    assert out.startswith("<!DOCTYPE html>") and out.count("<html") == 1 and out.rstrip().endswith("</html>")
    assert "Hypertension" in out and "Type 2 diabetes" in out  # both of the patient's areas on one page


def test_page_loads_nothing_from_outside(morris_page: str) -> None:
    tags = _parse(morris_page).tags
    names = {t for t, _ in tags}
    assert not names & {"script", "link", "iframe", "object", "embed", "base", "form"}
    for tag, attrs in tags:
        if "src" in attrs:
            assert (attrs["src"] or "").startswith("data:image/png;base64,"), tag
        if tag == "a":
            assert (attrs.get("href") or "").startswith(("#", "https://", "http://"))
    assert "url(" not in morris_page.replace("data:", "")  # no stylesheet fetch
    csp = [a for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in (csp[0]["content"] or "")
    assert "@media print" in morris_page


def test_page_has_every_section_and_every_plan(planner, morris_page: str) -> None:
    for heading in (
        "Patient summary",
        "Active problems",
        "Current medications",
        "Latest measurements",
        "Pharmacogenomic results",
        "Findings on current medications",
        "Ranked plans",
        "Excluded regimens",
        "Data gaps",
        "Provenance",
    ):
        assert heading in morris_page, heading
    recs = planner.recommend_all(read_record(MORRIS), top=5)
    text = "".join(_parse(morris_page).text)
    for rec in recs:
        assert rec.provenance.rules_version in text
        for p in rec.plans:
            assert p.rationale in text and f"{p.p_target:.2f}" in text and f"{p.predicted.mean:.2f}" in text
        for gap in rec.data_gaps:
            assert gap.message in text and (gap.suggestion or "") in text
    tags = _parse(morris_page).tags
    imgs = [a for t, a in tags if t == "img"]
    assert len(imgs) == sum(1 for r in recs if r.plans) and all(len(a.get("alt") or "") > 40 for a in imgs)
    assert morris_page.count("<table") == morris_page.count("<thead>")


def test_excluded_regimens_name_their_rule(planner) -> None:
    record = with_lab(read_record(MORRIS), "egfr", 25)
    rec = planner.recommend(record, area="t2d", top=5)
    page = render_page(build_report(record, [rec], planner.ruleset))
    assert rec.excluded
    for e in rec.excluded:
        for f in e.findings:
            if f.action == "exclude":
                assert f.rule_id in page
    assert "lab.metformin-egfr-30" in page and "Do not use metformin with eGFR 25" in page


def test_markup_in_the_record_is_escaped(planner) -> None:
    record = read_record(markup_vignette(), as_of="2024-06-01")
    page = render_page(build_report(record, planner.recommend_all(record), planner.ruleset))
    assert "<script" not in page.lower() and "&lt;script&gt;" in page
    tags = _parse(page).tags
    assert not [(t, a) for t, a in tags for k in a if k.startswith("on")]  # no event-handler attribute anywhere
    assert all((a.get("src") or "").startswith("data:image/png") for t, a in tags if t == "img")
    assert MARKUP in "".join(_parse(page).text)  # the reader sees the text as written
    assert "not resolved" in page  # the medication that could not be resolved is flagged


def test_untested_and_indeterminate_genes_are_never_normal(planner) -> None:
    record = read_record(depression_vignette(), as_of="2024-06-01")
    report = build_report(record, planner.recommend_all(record), planner.ruleset)
    assert report.genes["CYP2D6"].status == "indeterminate"
    assert report.genes["CYP2C19"].status == "tested"
    untested = [g for g, r in report.genes.items() if r.status == "not-tested"]
    assert untested  # a gene a plan depends on, with no result
    page = render_page(report)
    assert "indeterminate" in page and "not tested" in page
    for g in untested:
        row = page.split(f"<b>{g}</b>", 1)[1].split("</tr>", 1)[0]
        assert "not tested" in row and "Normal" not in row


def test_same_input_same_page(planner) -> None:
    record = read_record(JED)
    pages = [
        render_page(build_report(record, planner.recommend_all(record, seed=3), planner.ruleset)) for _ in range(2)
    ]
    assert pages[0] == pages[1]


def test_notebook_displays_are_html(planner) -> None:
    record = read_record(MORRIS)
    rec = planner.recommend(record, area="t2d")
    for obj in (
        record,
        rec,
        Findings(planner.ruleset.check(with_lab(record, "egfr", 25))),
        build_report(record, [rec], planner.ruleset),
    ):
        html = obj._repr_html_()
        assert html.startswith('<div class="planner"><style>') and "<table" in html
    dirk = planner.recommend(read_record(next((FIXTURES / "synthea").glob("Dirk_Kuhlman_*.json"))), area="t2d")
    assert isinstance(dirk.current_findings, Findings) and dirk.current_findings  # HLA-B for carbamazepine
    assert "carbamazepine" in dirk.current_findings._repr_html_()
    assert all(isinstance(p.findings, Findings) for p in dirk.plans)
    found = planner.ruleset.check(with_lab(record, "egfr", 25))
    assert found and "metformin" in found[0]._repr_html_()
    assert "no findings" in Findings(planner.ruleset.check(record))._repr_html_()


def test_what_if_moves_plans_and_findings(planner) -> None:
    jed = read_record(JED)
    before = planner.recommend(jed, area="lipids", top=5)
    assert any("simvastatin" in p.key for p in before.plans)
    slco = planner.recommend(with_genotype(jed, "SLCO1B1", "*5/*5"), area="lipids", top=5)
    assert not any("simvastatin" in p.key for p in slco.plans)
    assert "simvastatin" in why_excluded(slco, "simvastatin") and "cpic." in why_excluded(slco, "simvastatin")
    moved = what_changed(before, slco)
    assert "gone" in moved and "Newly excluded" in moved
    clari = planner.recommend(with_medication(jed, "clarithromycin", 1000), area="lipids", top=5)
    assert any("clarithromycin" in f.drugs for f in clari.current_findings)
    assert "new:" in what_changed(before, clari)
    hi = planner.recommend(with_lab(jed, "ldl", 190), area="lipids")
    assert hi.outcome.baseline == 190.0
    side = compare(before, 1, 1, other=slco)
    assert "<h3>Before: plan 1</h3>" in side and "<h3>After: plan 1</h3>" in side and side.count("P(target)") == 2
    assert compare(before, 1, 2).count("<h3>Plan ") == 2
    with pytest.raises(ConfigError, match="no such plan"):
        compare(before, 1, 99)


def test_what_if_errors_name_the_value() -> None:
    record = read_record(JED)
    with pytest.raises(ConfigError, match="nosuchdrug"):
        with_medication(record, "nosuchdrug")
    with pytest.raises(ConfigError, match="glucosity"):
        with_lab(record, "glucosity", 1.0)


def test_odd_records_still_render(planner) -> None:
    """Missing dates, displays, ingredients and birth date; duplicate ingredients; PGx with only a score."""
    import datetime as dt

    from planner.record import Condition, DataWarning, Medication, PgxResult

    base = read_record(JED)
    odd = base.model_copy(
        update={
            "birth_date": None,
            "sex": None,
            "conditions": (*base.conditions, Condition(code="44054006", system="http://snomed.info/sct")),
            "medications": (
                *base.medications,
                Medication(rxcui="36567", ingredient="simvastatin", dose_mg_day=None, status="active"),
                Medication(
                    rxcui="36567", ingredient="simvastatin", dose_mg_day=20, status="active", start=dt.date(2020, 1, 1)
                ),
                Medication(status="active", source_display=None),
            ),
            "pgx": (
                PgxResult(gene="CYP2D6", activity_score=1.5, source="pharmcat-tsv"),
                PgxResult(gene="HLA-B", allele="*57:01", allele_status="negative", source="fhir-hla"),
            ),
            "warnings": (DataWarning(code="x", message="<b>odd</b>", field="a.b", value="<i>v</i>"),),
        }
    )
    recs = planner.recommend_all(odd)
    page = render_page(build_report(odd, recs, planner.ruleset))
    assert "(unknown ingredient)" in page and "(no display)" in page and "not recorded" in page
    assert "&lt;b&gt;odd&lt;/b&gt;" in page and "&lt;i&gt;v&lt;/i&gt;" in page and "CYP2D6" in page
    assert odd._repr_html_() and "HLA-B" in odd._repr_html_()


def test_review_notebook_is_committed_without_outputs() -> None:
    import json

    path = ROOT / "notebooks" / "clinician_review.ipynb"
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    assert path.stat().st_size < 50_000
