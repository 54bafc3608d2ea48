"""The published site in a real browser: headless Chromium over the DevTools protocol.

The demo site is built from the fixtures (tests/fixtures), published to a
temporary directory with the shared plotly.min.js, served on 127.0.0.1 and
opened in Debian's ``chromium`` (every other host name is unresolvable).  For
each page: no console error, warning or failed load; every figure drew its
SVG; every bar has a fill a reader can see, and in a screenshot of one chart
of each kind (AI funnel, trust answers, power, units per arm) the inside of
every bar is painted; the verdict is visible on the first screen; no sideways
scrolling on a phone; injected markup never runs.  Chromium is required: without it these
tests fail (CI installs it in .ci/run), they are never skipped.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

from analysis.devtools.browser import (
    BAR_FIGURES,
    DESKTOP,
    MIN_PAINTED,
    PHONE,
    Browser,
    BrowserError,
    decode_png,
    find_chromium,
)
from analysis.devtools.browser import serve_directory as serve
from analysis.report import ensure_plotly_asset, write_index
from tests import report_fixtures as fixtures

#: First contentful paint; the issue asks for under a second locally (about 0.3 s measured),
#: the test allows slower CI machines some room.
FIRST_PAINT_BUDGET_MS = 2000
FIRST_SCREEN = {
    "report.html": "#verdict",
    "validation.html": "#summary",
    "index.html": "#experiments",
}


class Site:
    def __init__(self, root: Path, pages: list[str], base: str) -> None:
        self.root, self.pages, self.base = root, pages, base

    def url(self, page: str) -> str:
        return self.base + page

    def figure_ids(self, page: str) -> set[str]:
        html = (self.root / page).read_text(encoding="utf-8")
        return set(re.findall(r'<div id="([^"]+)" class="plotly-graph-div', html))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("site")
    pages = fixtures.build_demo_site(root)
    extra = {
        "unhealthy-check": fixtures.unhealthy(fixtures.load("auto_triage")),
        "legacy-check": fixtures.legacy(fixtures.load("smart_compose")),
        "xss-check": fixtures.poison(
            fixtures.unhealthy(fixtures.load("auto_triage")), fixtures.XSS_IMG + fixtures.XSS_RUN
        ),
    }
    for experiment_id, results in extra.items():
        run = fixtures.publish(root, results, experiment_id)
        pages.append(str((run / "report.html").relative_to(root)))
    write_index(root)
    with serve(root) as base:
        yield Site(root, pages, base)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        chromium = find_chromium()
    except BrowserError as exc:
        pytest.fail(f"{exc}. The browser tests need it; CI installs it in .ci/run.")
    with Browser(chromium) as opened:
        yield opened


def _first_screen(page: str) -> list[str]:
    return [FIRST_SCREEN[Path(page).name]]


def test_every_page_renders_in_chromium(site: Site, browser: Browser) -> None:
    problems: list[str] = []
    for page in site.pages:
        check = browser.check(site.url(page), DESKTOP, _first_screen(page))
        problems += check.problems(_first_screen(page), FIRST_PAINT_BUDGET_MS)
        if page.endswith("report.html"):
            assert set(check.figures) == site.figure_ids(page), page
            assert len(check.figures) >= 6, page
            assert all(n > 0 for n in check.figures.values()), page  # .js-plotly-plot .main-svg
            assert check.bars, page  # units per arm and power at least: checked for a fill
    assert problems == []


def test_every_bar_is_painted_in_a_screenshot(site: Site, browser: Browser) -> None:
    """One chart of each kind, scrolled to and screenshotted: no bar is left blank.

    The AI arms are hatched; a hatch of white lines on no background drew
    nothing, and readers concluded the AI arms had 0 units.
    """
    report = next(p for p in site.pages if p.startswith("auto-triage/"))
    check = browser.check(site.url(report), DESKTOP, sample_bars=BAR_FIGURES)
    assert check.problems() == []
    assert set(check.samples) == set(BAR_FIGURES)
    traces = {figure: {bar.trace for bar in bars} for figure, bars in check.samples.items()}
    assert traces["fig-ai-funnel"] == {"ai", "ai_v2"}
    assert {t.split(" ")[0] for t in traces["fig-trust"]} == {"control", "ai", "ai_v2"}
    assert "short of the plan" in traces["fig-power"]
    assert traces["fig-units"] == {"arm without AI", "AI arm"}
    for figure, bars in check.samples.items():
        measured = [bar for bar in bars if bar.painted is not None]
        assert len(measured) >= len(bars) / 2, figure  # most bars are big enough to sample
        assert all(bar.painted >= MIN_PAINTED for bar in measured), figure


def test_verdict_is_readable_first_on_a_phone(site: Site, browser: Browser) -> None:
    report = next(p for p in site.pages if p.startswith("auto-triage/"))
    problems: list[str] = []
    for page in (report, "index.html"):
        check = browser.check(site.url(page), PHONE, _first_screen(page))
        problems += check.problems(_first_screen(page))
    assert problems == []
    desktop = browser.check(site.url(report), DESKTOP, ["#verdict"])
    verdict = desktop.elements["#verdict"]
    assert verdict is not None
    assert "SHIP" in verdict["text"]
    assert "Task completion rate" in verdict["text"]


def test_injected_markup_is_shown_as_text_and_never_runs(site: Site, browser: Browser) -> None:
    page = next(p for p in site.pages if p.startswith("xss-check/"))
    check = browser.check(site.url(page), DESKTOP, ["#verdict", "h1"])
    assert check.problems(["#verdict"]) == []
    assert check.xss is False
    title = check.elements["h1"]
    assert title is not None
    assert fixtures.XSS_IMG in title["text"]  # displayed literally, as text
    index = browser.check(site.url("index.html"), DESKTOP)
    assert index.problems() == []
    assert index.xss is False


def test_index_filters_and_sorts_in_the_page(site: Site, browser: Browser) -> None:
    script = """
    (async () => {
      const rows = () => Array.from(document.querySelectorAll("#experiments > tbody > tr"));
      const visible = () => rows().filter((r) => !r.hidden).map((r) => r.dataset.name);
      const out = {all: visible()};
      const text = document.getElementById("filter-text");
      text.value = "compose"; text.dispatchEvent(new Event("input"));
      out.text = visible();
      text.value = ""; text.dispatchEvent(new Event("input"));
      const problems = document.getElementById("filter-problems");
      problems.checked = true; problems.dispatchEvent(new Event("change"));
      out.problems = visible();
      problems.checked = false; problems.dispatchEvent(new Event("change"));
      document.querySelector('button[data-key="problems"]').click();
      document.querySelector('button[data-key="problems"]').click();
      out.sorted = rows().map((r) => r.dataset.problems);
      return out;
    })()
    """
    check = browser.check(site.url("index.html"), DESKTOP, script=script)
    assert check.problems() == []
    result = check.script_result
    assert len(result["all"]) == 5
    assert result["text"] == ["smart compose in the ticket editor"] * 2  # legacy-check is one too
    assert len(result["problems"]) == 2  # the unhealthy and the poisoned runs
    assert result["sorted"] == sorted(result["sorted"], key=int, reverse=True)


def test_screenshots(site: Site, browser: Browser, tmp_path: Path) -> None:
    report = next(p for p in site.pages if p.startswith("auto-triage/"))
    for page, name in ((report, "report.png"), ("index.html", "index.png")):
        check = browser.check(site.url(page), DESKTOP, screenshot=tmp_path / name)
        assert check.problems() == []
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert len(data) > 20_000  # a rendered page, not a blank one


def test_a_broken_page_is_caught(browser: Browser, tmp_path: Path) -> None:
    """The checks can fail: a report published without the shared plotly.min.js."""
    run = fixtures.publish(tmp_path, fixtures.load("smart_compose"))
    with serve(tmp_path) as base:
        page = str((run / "report.html").relative_to(tmp_path))
        check = browser.check(base + page, DESKTOP, ["#verdict"])
    problems = " ".join(check.problems(["#verdict"]))
    assert "404" in problems  # the failed load
    assert "plotly.js did not load" in problems  # the page's own error
    assert "has no SVG" in problems
    assert check.elements["#verdict"] is not None  # the verdict still reads without charts


def test_invisible_bars_are_caught(browser: Browser, tmp_path: Path) -> None:
    """The bar checks can fail: white hatch lines on no background, next to a plain bar."""
    fig = go.Figure()
    fig.add_bar(x=["control"], y=[10], name="control", marker={"color": "#4D4D4D"})
    fig.add_bar(
        x=["ai"],
        y=[9],
        name="ai",
        marker={"color": "#E69F00", "pattern": {"shape": "/", "fgcolor": "#ffffff"}},
    )
    fig.update_layout(  # plotly.py's default template would hatch over the colour
        template="none", plot_bgcolor="#ffffff", paper_bgcolor="#ffffff", width=700, height=400
    )
    ensure_plotly_asset(tmp_path)
    (tmp_path / "bars.html").write_text(
        '<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">'
        '<script src="assets/plotly.min.js"></script></head><body>'
        '<div id="fig-bars" class="plotly-graph-div"></div><script>'
        f"const fig = {fig.to_json()};"
        'Plotly.newPlot("fig-bars", fig.data, fig.layout);</script></body></html>',
        encoding="utf-8",
    )
    with serve(tmp_path) as base:
        check = browser.check(base + "bars.html", DESKTOP, sample_bars=["fig-bars", "fig-none"])
    assert set(check.samples) == {"fig-bars"}  # a figure not on the page is left out
    painted = {bar.trace: bar.painted for bar in check.samples["fig-bars"]}
    assert (painted["control"] or 0.0) > 0.95
    assert painted["ai"] is not None
    assert painted["ai"] < 0.05
    problems = check.problems()
    assert len(problems) == 2, problems
    assert "bar 1 of 'ai' cannot be seen: a hatch pattern without a background" in problems[0]
    assert "bar 1 of 'ai' is 0% painted in a screenshot" in problems[1]


def _png(pixels: np.ndarray) -> bytes:
    """A PNG of ``pixels`` (height, width, 3 or 4) whose rows use each filter in turn."""
    height, width, channels = pixels.shape
    flat = pixels.reshape(height, width * channels).astype(np.int32)
    rows = []
    for y in range(height):
        method, line = y % 5, flat[y]
        up = flat[y - 1] if y else np.zeros_like(line)
        left = np.concatenate([np.zeros(channels, np.int32), line[:-channels]])
        corner = np.concatenate([np.zeros(channels, np.int32), up[:-channels]])
        guess = left + up - corner
        to_left, to_up, to_corner = abs(guess - left), abs(guess - up), abs(guess - corner)
        paeth = np.where(
            (to_left <= to_up) & (to_left <= to_corner),
            left,
            np.where(to_up <= to_corner, up, corner),
        )
        predictor = [0 * line, left, up, (left + up) // 2, paeth][method]
        rows.append(bytes([method]) + ((line - predictor) % 256).astype(np.uint8).tobytes())

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    color_type = {3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("channels", [3, 4])
def test_decode_png_undoes_every_filter(channels: int) -> None:
    pixels = np.random.default_rng(7).integers(0, 256, (11, 9, channels), dtype=np.uint8)
    assert np.array_equal(decode_png(_png(pixels)), pixels)
    with pytest.raises(ValueError, match="not a PNG"):
        decode_png(json.dumps([1]).encode())
