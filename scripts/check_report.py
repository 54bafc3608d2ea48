"""Open the reports in headless Chromium and check what a reader sees (``make check-report``).

By default the demo site is built from the test fixtures (tests/fixtures: results
the engine produced on the demo data) into a temporary directory; with
``--site reports`` the latest run of every experiment of a published site is
checked instead (for example after ``make demo``).

For every page: no console error, warning or failed load, every figure drew
its SVG, every bar has a fill a reader can see (a hatch needs a background
colour), the verdict (or the page's summary) is on the first screen, first
contentful paint within budget, no sideways scrolling on a phone, and each
report under 1 MB with plotly.js shared, not inlined.  In every report, one
chart of each bar kind (AI funnel, trust answers, power, units per arm) is
screenshotted and the inside of each bar must be mostly painted.  Screenshots
of a report, of those four charts and of the index are written to
``docs/img/`` for the README.

Exit status: 0 when every check passes, 1 otherwise (2 when Chromium is missing).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.report_fixtures builds the demo site

from analysis.devtools.browser import (  # noqa: E402
    BAR_FIGURES,
    DESKTOP,
    PHONE,
    Browser,
    BrowserError,
    PageCheck,
    find_chromium,
    serve_directory,
)
from analysis.report.publish import ASSET_DIR, PLOTLY_ASSET  # noqa: E402
from analysis.report.site_index import collect_index_entries  # noqa: E402

REPORT_BUDGET_BYTES = 1_000_000
FIRST_PAINT_BUDGET_MS = 1000.0
FIRST_SCREEN = {
    "report.html": "#verdict",
    "validation.html": "#summary",
    "index.html": "#experiments",
}


def site_pages(site: Path) -> list[str]:
    """index.html, then the latest run's report and data quality page of every experiment."""
    pages = ["index.html"]
    for entry in collect_index_entries(site):
        for key in ("report_href", "validation_href"):
            href = entry["latest"].get(key)
            if href:
                pages.append(str(href))
    return pages


def check_sizes(site: Path, pages: list[str]) -> list[str]:
    problems = []
    if not (site / ASSET_DIR / PLOTLY_ASSET).is_file():
        problems.append(f"{ASSET_DIR}/{PLOTLY_ASSET} is missing")
    copies = [p for p in site.rglob("*.js") if p.stat().st_size > 1_000_000]
    if len(copies) > 1:
        problems.append(f"plotly.js is shipped more than once: {copies}")
    for page in pages:
        if not page.endswith("report.html"):
            continue
        html = (site / page).read_text(encoding="utf-8")
        size = len(html.encode())
        if size > REPORT_BUDGET_BYTES:
            problems.append(f"{page}: {size:,} bytes, over the {REPORT_BUDGET_BYTES:,} budget")
        if "plotly.js v" in html.lower():
            problems.append(f"{page}: plotly.js is inlined")
    return problems


def _row(page: str, check: PageCheck, site: Path) -> str:
    size = (site / page).stat().st_size
    paint = f"{check.first_paint_ms:.0f}" if check.first_paint_ms is not None else "-"
    row = (
        f"{page:<58} {check.viewport[0]:>5}px {size / 1024:>7.0f} KiB {len(check.figures):>3} fig "
        f"paint {paint:>5} ms  ready {check.seconds:>4.1f} s"
    )
    if check.bars:
        row += f"  {len(check.bars)} bars"
    for figure, bars in check.samples.items():
        measured = [b.painted for b in bars if b.painted is not None]
        least = f"{min(measured):.0%}" if measured else "-"
        row += f"\n    {figure:<16} {len(measured):>3}/{len(bars)} bars sampled"
        row += f", least painted {least}"
    return row


def run(site: Path, pages: list[str], screenshots: Path | None, chromium: str) -> list[str]:
    problems = check_sizes(site, pages)
    report = next((p for p in pages if p.endswith("report.html") and "auto-triage" in p), None)
    report = report or next((p for p in pages if p.endswith("report.html")), None)
    with serve_directory(site) as base, Browser(chromium) as browser:
        for page in pages:
            first = [FIRST_SCREEN[Path(page).name]]
            shot = None
            if screenshots is not None and page in {report, "index.html"}:
                shot = screenshots / ("index.png" if page == "index.html" else "report.png")
            is_report = page.endswith("report.html")
            check = browser.check(
                base + page,
                DESKTOP,
                first,
                shot,
                sample_bars=BAR_FIGURES if is_report else (),
                figure_screenshots=screenshots if page == report else None,
            )
            print(_row(page, check, site))
            problems += check.problems(first, FIRST_PAINT_BUDGET_MS)
            if is_report and (not check.figures or 0 in check.figures.values()):
                problems.append(f"{page}: a figure did not draw: {check.figures}")
        for page in [p for p in (report, "index.html") if p]:
            first = [FIRST_SCREEN[Path(page).name]]
            shot = screenshots / "report-phone.png" if screenshots and page == report else None
            check = browser.check(base + page, PHONE, first, shot)
            print(_row(page, check, site))
            problems += check.problems(first)
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--site", type=Path, help="a published site to check (default: the demo)")
    parser.add_argument(
        "--screenshots", type=Path, default=ROOT / "docs" / "img", help="where to save PNGs"
    )
    parser.add_argument("--no-screenshots", action="store_true", help="save no screenshots")
    parser.add_argument("--chromium", help="the Chromium executable (default: found on PATH)")
    args = parser.parse_args()
    try:
        chromium = args.chromium or find_chromium()
    except BrowserError as exc:
        print(f"check-report: {exc}", file=sys.stderr)
        return 2
    screenshots = None if args.no_screenshots else args.screenshots
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="proof-site-") as tmp:
        if args.site is not None:
            site = args.site.resolve()
            pages = site_pages(site)
        else:
            from tests.report_fixtures import build_demo_site

            site = Path(tmp)
            pages = build_demo_site(site)
        problems = run(site, pages, screenshots, chromium)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    verdict = "FAILED" if problems else "passed"
    where = f"; screenshots in {screenshots}" if screenshots and not problems else ""
    seconds = time.perf_counter() - started
    print(f"check-report {verdict}: {len(pages)} pages in {seconds:.1f} s{where}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
