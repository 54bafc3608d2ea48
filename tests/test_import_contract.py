"""The import contract: which part of Proof may import what (docs/architecture.md).

Read from the source with ``ast`` (nothing is imported), following imports
inside Proof transitively, so a rule cannot be dodged through a helper module:

- the library (``analysis``) never imports Prefect: it runs without a server;
- the flows import no statistics (scipy, numpy, statsmodels, ``analysis.stats``):
  they orchestrate, the library computes;
- the report reads only the results and its own formatting: it cannot reach
  back into data, engines or statistics;
- the statistics and the measurement contract import no dataframe library and
  no GX: only sufficient statistics cross into them;
- the run's walk never imports the developer tools (``analysis.devtools``);
- only ``analysis.engines`` chooses an engine: nothing else reads the
  ``pushdown`` or ``validate_in_database`` settings.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("analysis", "flows")
DATAFRAMES = ("polars", "pandas", "pyarrow", "duckdb", "great_expectations", "sqlalchemy")
STATISTICS = ("scipy", "numpy", "statsmodels", "analysis.stats")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _resolve(name: str, level: int, here: str, is_package: bool) -> str:
    if level == 0:
        return name
    base = here.split(".") if is_package else here.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


@functools.cache
def direct_imports(module: str) -> frozenset[str]:
    """Every module ``module`` imports, at any depth of its body (lazy imports count)."""
    path = _modules()[module]
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module or "", node.level, module, is_package)
            found.add(base)
            # `from analysis import stats` imports the module analysis.stats
            found.update(
                f"{base}.{alias.name}"
                for alias in node.names
                if f"{base}.{alias.name}" in _modules()
            )
    return frozenset(found)


def _internal(name: str) -> Iterable[str]:
    """The Proof modules an import of ``name`` runs: the module and its parent packages."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if prefix in _modules():
            yield prefix


@functools.cache
def closure(module: str) -> frozenset[str]:
    """Every module importing ``module`` brings in, Proof's own followed transitively."""
    seen: set[str] = set()
    todo = [module, *_internal(module)]
    external: set[str] = set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for name in direct_imports(current):
            inside = list(_internal(name))
            if inside:
                todo.extend(inside)
            else:
                external.add(name)
    return frozenset(seen | external)


def _hits(names: Iterable[str], banned: Iterable[str]) -> list[str]:
    banned = tuple(banned)
    return sorted(n for n in names if any(n == b or n.startswith(b + ".") for b in banned))


def _library(prefix: str = "analysis") -> list[str]:
    return [m for m in _modules() if m == prefix or m.startswith(prefix + ".")]


def test_the_graph_is_read() -> None:
    """The walk finds known edges, so that the rules below are not vacuous."""
    assert "prefect" in closure("flows.analyze")
    assert "analysis.engines" in closure("flows.analyze")
    assert "polars" in closure("analysis.engines.polars_engine")
    assert "scipy" in closure("analysis.pipeline")
    assert "analysis.measurement" in closure("analysis.stats.quantile") or (
        "analysis.aggregates" in closure("analysis.stats.quantile")
    )


@pytest.mark.parametrize("module", _library())
def test_the_library_never_imports_prefect(module: str) -> None:
    assert _hits(closure(module), ["prefect"]) == []


@pytest.mark.parametrize("module", _library("flows"))
def test_the_flows_compute_no_statistic(module: str) -> None:
    assert _hits(direct_imports(module), STATISTICS) == []


@pytest.mark.parametrize("module", _library("analysis.report"))
def test_the_report_reads_only_results_and_formatting(module: str) -> None:
    own = [n for n in direct_imports(module) if n == "analysis" or n.startswith("analysis.")]
    allowed = ("analysis.report", "analysis.results", "analysis.results_model")
    assert [n for n in own if not _hits([n], allowed)] == []


@pytest.mark.parametrize("module", [*_library("analysis.stats"), "analysis.measurement"])
def test_statistics_and_the_measurement_import_no_dataframe(module: str) -> None:
    assert _hits(closure(module), DATAFRAMES) == []


@pytest.mark.parametrize("module", [m for m in _library() if not m.startswith("analysis.devtools")])
def test_the_run_never_imports_the_developer_tools(module: str) -> None:
    assert _hits(closure(module), ["analysis.devtools"]) == []


def test_only_the_engines_choose_an_engine() -> None:
    """``engine_for`` is the one reader of the settings that choose an engine."""
    setting = re.compile(r"\.(pushdown|validate_in_database)\b")
    readers = sorted(
        name
        for name, path in _modules().items()
        if setting.search(path.read_text()) and name != "analysis.engines"
    )
    assert readers == []


def test_no_module_of_the_library_is_over_400_lines() -> None:
    """Small modules with one job (the generated and the developer tools included)."""
    long = {
        name: n
        for name, path in _modules().items()
        if name.startswith("analysis") and (n := len(path.read_text().splitlines())) > 400
    }
    assert long == {}
