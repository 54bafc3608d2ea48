"""Reports: Plotly figures, HTML pages and the static site, drawn from results only.

The report sees ``results.json`` (schema_version 1), never data, and never
recomputes a statistic: it formats, arranges and publishes.

Typical use, after the analysis wrote ``results`` and its JSON text::

    from analysis.report import REPORT_PLOTLY_SRC, publish_run, render_report

    ensure_plotly_asset(out_dir)
    html = render_report(results, plotly_src=REPORT_PLOTLY_SRC)
    publish_run(out_dir, experiment_id, run_id,
                {"results.json": results_json, "report.html": html})
    write_index(out_dir)
"""

from analysis.report.figures import forest_plot, units_bar
from analysis.report.publish import (
    REPORT_PLOTLY_SRC,
    collect_index_entries,
    ensure_plotly_asset,
    publish_run,
    write_index,
    write_text_atomic,
)
from analysis.report.render import render_index, render_report

__all__ = [
    "REPORT_PLOTLY_SRC",
    "collect_index_entries",
    "ensure_plotly_asset",
    "forest_plot",
    "publish_run",
    "render_index",
    "render_report",
    "units_bar",
    "write_index",
    "write_text_atomic",
]
