"""Tools for developers: demo data and the Chromium checker of reports.

* :mod:`analysis.devtools.simulate` generates realistic experiment data with
  known true effects (``proof simulate``, ``proof demo``, tests, benchmarks).
* :mod:`analysis.devtools.browser` opens the published reports in headless
  Chromium and checks what a reader sees (``make check-report``, tests).

The run's walk (engines, statistics, report rendering) never imports this
package: only the CLI's ``simulate`` command, tests and scripts do.
"""
