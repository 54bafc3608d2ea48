"""Colours, symbols and patterns of the report: verdicts and arms, readable without colour."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from analysis.results.model import Results

__all__ = [
    "ARM_DASHES",
    "ARM_PATTERNS",
    "ARM_SYMBOLS",
    "VERDICT_COLORS",
    "VERDICT_MARKS",
    "VERDICT_SYMBOLS",
    "arm_style",
    "arm_styles",
]

#: Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
VERDICT_COLORS: Final[Mapping[str, str]] = {
    "better": "#0072B2",  # blue
    "worse": "#D55E00",  # vermillion
    "inconclusive": "#999999",  # grey
}
#: A second, redundant channel in figures: the verdict is readable without colour.
VERDICT_SYMBOLS: Final[Mapping[str, str]] = {
    "better": "circle",
    "worse": "x",
    "inconclusive": "diamond-open",
}
#: The same shapes as text, for tables and cells.
VERDICT_MARKS: Final[Mapping[str, str]] = {
    "better": "\u25cf",  # ● filled circle
    "worse": "\u2715",  # ✕ cross
    "inconclusive": "\u25c7",  # ◇ open diamond
}

#: Arm colours (Okabe-Ito, avoiding the verdict blue and vermillion), each with
#: a line dash, a marker symbol and a bar pattern so arms differ without colour.
_CONTROL_COLOR: Final = "#4D4D4D"
_TREATMENT_COLORS: Final[tuple[str, ...]] = ("#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#000000")
ARM_DASHES: Final[tuple[str, ...]] = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
ARM_SYMBOLS: Final[tuple[str, ...]] = ("circle", "square", "diamond", "triangle-up", "star", "x")
ARM_PATTERNS: Final[tuple[str, ...]] = ("", "/", "x", ".", "\\", "+")


def arm_styles(results: Results) -> dict[str, dict[str, str]]:
    """A colour, dash, symbol and pattern per arm, stable across the report's figures.

    Arms are taken in the experiment's order (the control first), then any
    other arm name found in the results.
    """
    control = results.experiment.control
    names: list[str] = [control] if control is not None else []
    names += [*results.experiment.variants, *results.data.units]
    styles: dict[str, dict[str, str]] = {}
    treatment_index = 0
    for name in dict.fromkeys(names):
        if name == control:
            color, index = _CONTROL_COLOR, 0
        else:
            color = _TREATMENT_COLORS[treatment_index % len(_TREATMENT_COLORS)]
            treatment_index += 1
            index = treatment_index
        styles[name] = {
            "color": color,
            "dash": ARM_DASHES[index % len(ARM_DASHES)],
            "symbol": ARM_SYMBOLS[index % len(ARM_SYMBOLS)],
            "pattern": ARM_PATTERNS[index % len(ARM_PATTERNS)],
        }
    return styles


def arm_style(styles: Mapping[str, Mapping[str, str]], name: object) -> Mapping[str, str]:
    """The style of an arm, or a neutral one for a name the experiment does not list."""
    return styles.get(str(name)) or {
        "color": "#000000",
        "dash": "solid",
        "symbol": "circle-open",
        "pattern": "",
    }
