"""The report in a real browser: headless Chromium with the network off renders every figure with no
console errors; a screenshot is kept as a test artefact (and copied to $SVCONV_TEST_ARTIFACTS)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from analysis.browser import find_chromium, open_page, screenshot
from analysis.load import load_results
from analysis.report import render_report
from analysis.synthetic import write_synthetic_results

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Chromium (chromium, chromium-browser or google-chrome on PATH, or SVCONV_CHROMIUM)"
)


def _keep(path: Path) -> None:
    """Copy a test artefact to $SVCONV_TEST_ARTIFACTS when set (CI uploads that folder)."""
    dest = os.environ.get("SVCONV_TEST_ARTIFACTS")
    if dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, Path(dest) / path.name)


@pytest.fixture(scope="module")
def synthetic_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    write_synthetic_results(root / "res", 150)
    report = render_report(load_results(root / "res"), "res")
    path = root / "report.html"
    path.write_text(report.html, encoding="utf-8")
    return path, report


def test_every_figure_renders_without_errors(synthetic_report):
    path, report = synthetic_report
    page = open_page(path, CHROMIUM)
    assert report.n_figures == 37
    assert page.figures == report.n_figures  # the count the page declares
    assert page.rendered == report.n_figures  # ... each with a drawn plot
    assert page.errors == []
    assert page.console == []  # Chromium logged no console message at all (errors, warnings, failed loads)
    assert 'id="render-status" hidden' in page.dom


def test_the_page_fits_1400_px_with_no_empty_panel_and_every_legend_in_view(synthetic_report):
    path, _ = synthetic_report
    page = open_page(path, CHROMIUM, width=1400)
    assert "data-tables-overflowing" in page.dom  # the check ran
    assert page.overflowing == [] and page.empty_panels == [] and page.legends_missing == []


def test_results_without_autoattack_or_corruption_draw_no_empty_panel(tmp_path):
    """The demo's results: no AutoAttack, no corruption accuracy, CPU. Their panels are left out with one note."""
    res = write_synthetic_results(tmp_path / "res", 40, with_bench=False, failed_every=0, device_name="cpu",
                                  without=("autoattack_025", "autoattack_05", "autoattack_36", "corruption_acc"))  # fmt: skip
    report = render_report(load_results(res), "res")
    path = tmp_path / "report.html"
    path.write_text(report.html, encoding="utf-8")
    page = open_page(path, CHROMIUM)
    assert page.rendered == report.n_figures > 0 and page.errors == []
    assert page.empty_panels == [] and page.overflowing == [] and page.legends_missing == []
    assert "Not drawn, for want of data in these trials: AutoAttack ε=0.25 px (%), Corruption acc. (%)." in page.dom
    assert "training time (CPU-hours)" in report.html and ">no data<" not in report.html


def test_the_layout_check_catches_overflow_and_empty_panels(synthetic_report, tmp_path):
    """Not vacuous: at 500 px the summary tables scroll sideways; an empty subplot is reported."""
    path, report = synthetic_report
    assert open_page(path, CHROMIUM, width=500).overflowing
    empty = report.html.replace('"xaxis2":{', '"xaxis99":{"anchor":"y99"},"xaxis2":{', 1)
    broken = tmp_path / "empty_panel.html"
    broken.write_text(empty, encoding="utf-8")
    assert any(p.endswith(" x99") for p in open_page(broken, CHROMIUM).empty_panels)


def test_screenshot_artefact(synthetic_report, tmp_path):
    path, _ = synthetic_report
    png = screenshot(path, tmp_path / "svconv_report.png", CHROMIUM, size=(1400, 2400))
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000  # a page with figures, not a blank one
    _keep(png)


def test_empty_report_renders(tmp_path):
    (tmp_path / "empty").mkdir()
    report = render_report(load_results(tmp_path / "empty"), "empty")
    path = tmp_path / "empty.html"
    path.write_text(report.html, encoding="utf-8")
    page = open_page(path, CHROMIUM)
    assert (page.figures, page.rendered, page.errors, page.console) == (0, 0, [], [])


def test_the_check_catches_a_broken_figure(synthetic_report, tmp_path):
    """The page's check is not vacuous: a figure whose plotting call fails is reported."""
    _, report = synthetic_report
    broken = report.html.replace("Plotly.newPlot(", "Plotly.noSuchCall(", 1)
    path = tmp_path / "broken.html"
    path.write_text(broken, encoding="utf-8")
    page = open_page(path, CHROMIUM)
    assert page.figures == report.n_figures and page.rendered == report.n_figures - 1
    assert any("noSuchCall" in e for e in page.errors)
    assert any("noSuchCall" in m for m in page.console)
    assert 'id="render-status" hidden' not in page.dom and "Rendered 36 of 37 figures" in page.dom
