"""The report page in a real headless Chromium (Debian package, installed by .ci/run).

For each patient of ``report_cases.cases()`` (the Synthea fixtures, the PGx fixtures, PharmCAT input and two
built vignettes): the page opens with no console error, no exception, no failed load and no network request;
every image loads from a data URI and has alt text; the page is not blank; nothing is wider than its column at
1280 px; every table has a header row; markup from the record shows as text. A full-page screenshot of each is
saved (``PLANNER_SCREENSHOTS`` if set, else a temporary folder) and checked not to be blank.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from chromium import Chromium, find_chromium
from report_cases import MARKUP, cases

CHECK_JS = r"""
(() => {
  const main = document.querySelector('main');
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
    + (typeof el.className === 'string' && el.className ? '.' + el.className.trim().split(/\s+/).join('.') : '');
  const out = {title: document.title, text: document.body.innerText, scripts: document.scripts.length,
    viewport: window.innerWidth, docWidth: document.documentElement.scrollWidth, images: [], overflow: [],
    tablesWithoutHeader: 0, headings: document.querySelectorAll('h1, h2').length,
    mainWidth: main ? main.getBoundingClientRect().width : 0};
  for (const img of document.images) {
    out.images.push({ok: img.complete && img.naturalWidth > 0, alt: img.alt, scheme: img.src.slice(0, 5),
                     width: img.getBoundingClientRect().width});
  }
  for (const t of document.querySelectorAll('table')) if (!t.querySelector('thead th')) out.tablesWithoutHeader++;
  if (!main) return out;
  const mr = main.getBoundingClientRect();
  for (const el of main.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (!r.width && !r.height) continue;
    const pr = el.parentElement.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (r.right > mr.right + 1 || r.left < mr.left - 1) {
      out.overflow.push(name(el) + ' outside the page column: ' + Math.round(r.left) + '-' + Math.round(r.right));
    } else if (style.display !== 'inline' && r.right > pr.right + 1) {
      out.overflow.push(name(el) + ' wider than its parent ' + name(el.parentElement));
    } else if (style.display !== 'inline' && style.overflowX === 'visible' && el.clientWidth > 0
               && el.scrollWidth > el.clientWidth + 1) {
      out.overflow.push(name(el) + ' content wider than its box: ' + el.scrollWidth + ' > ' + el.clientWidth);
    }
  }
  return out;
})()
"""


@pytest.fixture(scope="module")
def chromium_path() -> str:
    exe = find_chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run must install the Debian package `chromium`")
        pytest.skip("chromium not installed (apt-get install chromium; .ci/run does it)")
    return exe


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory, chromium_path: str) -> dict[str, tuple[str, object, Path]]:
    """name -> (page HTML, Chromium's report on it, screenshot path), for every case."""
    from planner import Planner
    from planner.render.report import build_report, render_page

    planner = Planner.load()
    out_dir = tmp_path_factory.mktemp("report")
    shots = Path(os.environ.get("PLANNER_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    result = {}
    with Chromium(chromium_path) as browser:
        for name, record in cases():
            recs = planner.recommend_all(record, top=5)
            page = render_page(build_report(record, recs, planner.ruleset))
            path = out_dir / f"{name}.html"
            path.write_text(page, encoding="utf-8")
            report = browser.open(path.as_uri(), CHECK_JS)
            shot = shots / f"{name}.png"
            shot.write_bytes(report.screenshot)
            result[name] = (page, report, shot, sum(1 for r in recs if r.plans))
            if name in PRINTED:  # the print stylesheet on A4 landscape (297 mm less 10 mm margins: ~1046 CSS px)
                printed = browser.open(path.as_uri(), CHECK_JS, width=PRINT_WIDTH, media="print", pdf=True)
                (shots / f"{name}-print.png").write_bytes(printed.screenshot)
                (shots / f"{name}.pdf").write_bytes(printed.pdf)
                result[name + ":print"] = (page, printed, shots / f"{name}-print.png", 0)
    return result


NAMES = [name for name, _ in cases()]
PRINTED = ("dirk", "depression-pgx")
PRINT_WIDTH = 1046


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_page_opens_cleanly(pages: dict, name: str) -> None:
    _, report, _, plotted = pages[name]
    assert report.console_errors == [], report.console_errors
    assert report.exceptions == []
    assert report.failed_loads == []
    assert report.network_requests == [], "the report must load nothing from a network"
    check = report.check
    assert check["scripts"] == 0
    assert check["headings"] >= 3 and len(check["text"]) > 400, "the page looks blank"
    assert check["tablesWithoutHeader"] == 0
    # every image loaded, from a data URI, with alt text; one plot per area with ranked plans
    assert len(check["images"]) == plotted
    for img in check["images"]:
        assert img["ok"] and img["scheme"] == "data:" and len(img["alt"]) > 40 and img["width"] > 300, img
    # nothing overflows its column at 1280 px
    assert check["viewport"] == 1280 and check["docWidth"] <= 1280
    assert check["overflow"] == [], check["overflow"][:10]
    assert check["mainWidth"] > 900
    assert "Contents" in check["text"]  # the screen has the contents list (print hides it)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_screenshot_saved_and_not_blank(pages: dict, name: str) -> None:
    import matplotlib.image as mpimg

    _, report, shot, _ = pages[name]
    assert shot.is_file() and shot.stat().st_size > 10_000
    pixels = mpimg.imread(io.BytesIO(report.screenshot), format="png")
    assert pixels.shape[1] == 1280 and pixels.shape[0] >= 900
    assert pixels[..., :3].std() > 0.05, "the screenshot is blank"


@pytest.mark.slow
@pytest.mark.parametrize("name", PRINTED)
def test_page_prints(pages: dict, name: str) -> None:
    report = pages[name + ":print"][1]
    assert report.console_errors == [] and report.network_requests == []
    check = report.check
    assert check["overflow"] == [], check["overflow"][:10]
    assert check["docWidth"] <= PRINT_WIDTH and check["tablesWithoutHeader"] == 0
    assert "Patient summary" in check["text"] and "Contents" not in check["text"]
    assert all(img["ok"] and img["width"] <= PRINT_WIDTH for img in check["images"])
    assert report.pdf.startswith(b"%PDF") and report.pdf.count(b"/Type /Page") >= 2


@pytest.mark.slow
def test_markup_shows_as_text(pages: dict) -> None:
    _, report, _, _ = pages["markup"]
    text = report.check["text"]
    assert MARKUP in text  # shown literally, never parsed: no script ran, no image was requested
    assert "not resolved" in text and "Herbal tonic" in text


@pytest.mark.slow
def test_untested_and_indeterminate_genes_are_said(pages: dict) -> None:
    text = pages["depression-pgx"][1].check["text"]
    assert "indeterminate" in text and "CYP2D6" in text
    assert "not tested" in pages["morris"][1].check["text"]


@pytest.mark.slow
def test_the_checks_can_fail(tmp_path: Path, chromium_path: str) -> None:
    """A page that overflows, fetches, throws and has a broken image is caught by every check above."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><body><main style="width:800px"><p>x</p>'
        '<div style="width:1500px">too wide</div><table><tr><td>no header</td></tr></table>'
        '<img src="missing.png" alt=""><img src="http://127.0.0.1:9/x.png" alt="remote">'
        "<script>console.error('boom'); undefinedFunction();</script></main></body></html>"
    )
    with Chromium(chromium_path) as browser:
        report = browser.open(bad.as_uri(), CHECK_JS)
    assert any("boom" in e for e in report.console_errors)
    assert report.exceptions and report.failed_loads
    assert report.network_requests == ["http://127.0.0.1:9/x.png"]
    check = report.check
    assert check["overflow"] and check["tablesWithoutHeader"] == 1 and check["scripts"] == 1
    assert not all(img["ok"] for img in check["images"])
