"""Reports: Plotly figures, HTML pages and the static site, drawn from results only.

The report sees a run's results (:class:`analysis.results.Results`, the typed
``results.json``; a parsed results.json dict is read into it first), never
data, and never recomputes a statistic: it formats, arranges and publishes.

Typical use, after the analysis built ``results`` and its JSON text
(:func:`analysis.results.to_json`)::

    from analysis.report import (
        REPORT_PLOTLY_SRC, ensure_plotly_asset, publish_run, render_run_files, write_index,
    )

    ensure_plotly_asset(out_dir)
    pages = render_run_files(results, plotly_src=REPORT_PLOTLY_SRC)  # report + validation
    publish_run(out_dir, experiment_id, run_id, {"results.json": to_json(results), **pages})
    write_index(out_dir)

The published site is checked in headless Chromium by :mod:`analysis.devtools.browser`
(``make check-report``), a developer tool this package never imports.
"""

from analysis.report.figures_ai import funnel_chart, time_on_task_chart, trust_chart
from analysis.report.figures_lift import forest_plot
from analysis.report.figures_power import power_chart, units_bar
from analysis.report.figures_segments import segment_heatmap
from analysis.report.figures_time import exposure_trend_chart, over_time_chart
from analysis.report.publish import (
    REPORT_PLOTLY_SRC,
    ensure_plotly_asset,
    publish_run,
    write_text_atomic,
)
from analysis.report.render import (
    REPORT_PAGE,
    VALIDATION_PAGE,
    render_index,
    render_report,
    render_run_files,
    render_validation,
)
from analysis.report.site_index import collect_index_entries, write_index

__all__ = [
    "REPORT_PAGE",
    "REPORT_PLOTLY_SRC",
    "VALIDATION_PAGE",
    "collect_index_entries",
    "ensure_plotly_asset",
    "exposure_trend_chart",
    "forest_plot",
    "funnel_chart",
    "over_time_chart",
    "power_chart",
    "publish_run",
    "render_index",
    "render_report",
    "render_run_files",
    "render_validation",
    "segment_heatmap",
    "time_on_task_chart",
    "trust_chart",
    "units_bar",
    "write_index",
    "write_text_atomic",
]
