"""What :mod:`analysis.devtools.browser` checks in a page: the probes and their results.

The JavaScript run in the page (:data:`_PROBE`, :data:`_BARS`, ...), the PNG
decoder of screenshots (:func:`decode_png`), one drawn bar (:class:`Bar`) and
what a reader of one page saw (:class:`PageCheck`, whose ``problems`` lists
what is wrong).

Bars are checked for what is drawn, not only that an SVG exists: every bar
must have a fill a reader can see against the plot's background (a hatch
pattern needs a background colour; white lines on nothing are invisible), and
for the figures named in ``sample_bars`` a screenshot of each is decoded and
the pixels inside every bar are counted.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

#: The report's bar charts, one of each kind: the AI funnel, trust answers, power, units per arm.
BAR_FIGURES: Final[tuple[str, ...]] = ("fig-ai-funnel", "fig-trust", "fig-power", "fig-units")
#: The least share of a bar's inside (in a screenshot) that must differ from the background.
MIN_PAINTED: Final = 0.5
#: How far (0-255, largest channel) a colour must be from the background to count as seen.
_SEEN: Final = 24
_INSET_PX: Final = 2  # a bar's anti-aliased edge is not sampled

#: ``(root) => [bar, ...]``: every bar drawn in the Plotly figures under ``root`` (a figure
#: div or the document), with its box in page pixels, its fill and why it cannot be seen
#: ("" when it can).  A pattern fill is seen through its background ``rect`` (the
#: pattern's ``bgcolor``); without one only the hatch lines are drawn.
_BARS: Final = """
((root) => {
  const swatch = document.createElement("span");
  swatch.style.display = "none";
  document.body.appendChild(swatch);
  const rgba = (css) => {
    if (!css || css === "none" || css.startsWith("url(")) { return null; }
    swatch.style.color = "";
    swatch.style.color = css;
    if (!swatch.style.color) { return null; }
    const v = (getComputedStyle(swatch).color.match(/[0-9.]+/g) || []).map(Number);
    return v.length < 3 ? null : [v[0], v[1], v[2], v.length > 3 ? v[3] : 1];
  };
  const opacity = (el) => {
    let o = 1;
    for (let e = el; e && e.tagName.toLowerCase() !== "svg"; e = e.parentElement) {
      o *= Number(getComputedStyle(e).opacity);
    }
    return o;
  };
  const css = (c) => `rgba(${c.map((v) => Math.round(v * 100) / 100).join(", ")})`;
  const figures = root.classList && root.classList.contains("plotly-graph-div")
    ? [root] : Array.from(root.querySelectorAll(".plotly-graph-div"));
  const out = [];
  for (const gd of figures) {
    const layout = gd._fullLayout || {};
    let back = rgba(layout.plot_bgcolor);
    if (!back || back[3] === 0) { back = rgba(layout.paper_bgcolor); }
    if (!back || back[3] === 0) { back = [255, 255, 255, 1]; }
    gd.querySelectorAll(".barlayer .trace").forEach((group, t) => {
      const data = group.__data__;
      const trace = data && data[0] && data[0].trace;
      const name = trace && trace.name !== undefined ? String(trace.name) : `trace ${t + 1}`;
      group.querySelectorAll(".point > path").forEach((path, i) => {
        const r = path.getBoundingClientRect(), style = getComputedStyle(path);
        const paint = style.fill;
        let color = rgba(paint), alpha = opacity(path) * Number(style.fillOpacity), why = "";
        if (paint.startsWith("url(")) {
          const id = (paint.match(/#([^"')]+)/) || [])[1];
          const pattern = id ? document.getElementById(id) : null;
          const under = pattern ? pattern.querySelector("rect") : null;
          if (!pattern) {
            why = `its pattern ${paint} is missing`;
          } else if (!under) {
            why = "a hatch pattern without a background: only its lines are drawn";
          } else {
            const s = getComputedStyle(under);
            color = rgba(s.fill);
            alpha *= Number(s.fillOpacity) * Number(s.opacity);
            if (!color) { why = `its pattern's background is ${s.fill}`; }
          }
        } else if (!color) {
          why = `its fill is ${paint}`;
        }
        if (!why) {
          const a = alpha * color[3];
          const seen = a * Math.max(...[0, 1, 2].map((k) => Math.abs(color[k] - back[k])));
          if (seen < __SEEN__) {
            why = `its fill ${css(color)} at opacity ${a.toFixed(2)} does not stand out from `
              + `the background ${css(back)}`;
          }
        }
        out.push({figure: gd.id, trace: name, point: i, left: r.left + scrollX,
                  top: r.top + scrollY, width: r.width, height: r.height, fill: paint,
                  unseen: why, background: back.slice(0, 3)});
      });
    });
  }
  swatch.remove();
  return out;
})
""".replace("__SEEN__", str(_SEEN))

#: Scrolls figure ``__ID__`` to the top of the screen; its box and bars, in page pixels.
_FIGURE_IN_VIEW: Final = """
new Promise((resolve) => {
  const gd = document.getElementById(__ID__);
  if (gd === null) { resolve(null); return; }
  gd.scrollIntoView({block: "start"});
  requestAnimationFrame(() => requestAnimationFrame(() => {
    const r = gd.getBoundingClientRect();
    resolve({left: r.left + scrollX, top: r.top + scrollY, width: r.width,
             height: Math.min(r.height, innerHeight - r.top), bars: (__BARS__)(gd)});
  }));
})
"""

#: Runs in the page once the figures have drawn; returns what the checks need.
_PROBE: Final = """
(() => {
  const visible = (el) => {
    if (!el) { return null; }
    const r = el.getBoundingClientRect(), s = getComputedStyle(el);
    return {top: r.top, bottom: r.bottom, height: r.height, text: el.innerText.slice(0, 400),
            shown: r.height > 0 && r.width > 0 && s.visibility !== "hidden"
              && s.display !== "none"};
  };
  const figures = Array.from(document.querySelectorAll(".plotly-graph-div")).map((d) => ({
    id: d.id, svg: d.querySelectorAll(".main-svg").length}));
  const ids = Array.from(document.querySelectorAll("[id]")).map((e) => e.id);
  const duplicates = ids.filter((id, i) => ids.indexOf(id) !== i);
  const paint = performance.getEntriesByType("paint")
    .find((e) => e.name === "first-contentful-paint");
  const wanted = __WANTED__;
  const elements = {};
  for (const sel of wanted) { elements[sel] = visible(document.querySelector(sel)); }
  return {title: document.title, figures: figures, elements: elements,
          scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
          innerHeight: window.innerHeight, xss: window.__xss === true, duplicates: duplicates,
          firstPaintMs: paint ? paint.startTime : null, bars: (__BARS__)(document)};
})()
"""
_FIGURES_DRAWN: Final = """
(() => {
  if (document.querySelector(".proof-figure") !== null) {  // Proof's loader says when it is done
    return document.documentElement.getAttribute("data-figures") === "drawn";
  }
  return Array.from(document.querySelectorAll(".plotly-graph-div"))
    .every((x) => x.querySelector(".main-svg") !== null);
})()
"""

_PAINTED: Final = """
new Promise((resolve) => requestAnimationFrame(() => resolve(
  performance.getEntriesByType("paint").some((e) => e.name === "first-contentful-paint"))))
"""


_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS: Final[Mapping[int, int]] = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> channels


def decode_png(data: bytes) -> npt.NDArray[np.uint8]:
    """The pixels of an 8-bit, non-interlaced PNG (what Chromium writes): (height, width, channels).

    Grey, grey+alpha, RGB and RGBA; ValueError for anything else.  The None,
    Sub and Up filters are undone with numpy, Average and Paeth row by row.
    """
    if not data.startswith(_PNG_SIGNATURE):
        msg = "not a PNG"
        raise ValueError(msg)
    pos, header, chunks = len(_PNG_SIGNATURE), b"", []
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        elif kind == b"IEND":
            break
    if len(header) != 13:
        msg = "PNG without a header"
        raise ValueError(msg)
    width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    channels = _PNG_CHANNELS.get(color_type)
    if depth != 8 or channels is None or interlace != 0:
        msg = f"unsupported PNG: bit depth {depth}, colour type {color_type}, interlace {interlace}"
        raise ValueError(msg)
    stride = width * channels
    raw = np.frombuffer(zlib.decompress(b"".join(chunks)), dtype=np.uint8)
    if raw.size != height * (stride + 1):
        msg = f"PNG data is {raw.size} bytes, not {height * (stride + 1)}"
        raise ValueError(msg)
    rows = raw.reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        method, line = int(rows[y, 0]), rows[y, 1:]
        if method == 0:
            current = line.copy()
        elif method == 1:  # Sub: a running sum (mod 256) along the row, per channel
            current = np.cumsum(line.reshape(width, channels), axis=0, dtype=np.uint8).reshape(-1)
        elif method == 2:  # Up
            current = line + previous
        elif method in (3, 4):
            current = _unfilter_row(method, line.tobytes(), previous.tobytes(), channels)
        else:
            msg = f"unknown PNG filter {method} in row {y}"
            raise ValueError(msg)
        out[y] = current
        previous = current
    return out.reshape(height, width, channels)


def _unfilter_row(kind: int, line: bytes, previous: bytes, bpp: int) -> npt.NDArray[np.uint8]:
    """Undo the Average (3) or Paeth (4) filter of one row."""
    row = bytearray(line)
    for i, value in enumerate(row):
        left = row[i - bpp] if i >= bpp else 0
        up = previous[i]
        if kind == 3:
            row[i] = (value + ((left + up) >> 1)) & 0xFF
            continue
        corner = previous[i - bpp] if i >= bpp else 0
        guess = left + up - corner
        to_left, to_up, to_corner = abs(guess - left), abs(guess - up), abs(guess - corner)
        if to_left <= to_up and to_left <= to_corner:
            row[i] = (value + left) & 0xFF
        elif to_up <= to_corner:
            row[i] = (value + up) & 0xFF
        else:
            row[i] = (value + corner) & 0xFF
    return np.frombuffer(bytes(row), dtype=np.uint8)


@dataclass(frozen=True)
class Bar:
    """One bar of a Plotly figure as the browser drew it."""

    figure: str  # the figure's div id
    trace: str  # the trace's name
    point: int  # the bar's index in its trace
    box: tuple[float, float, float, float]  # left, top, width, height in page pixels
    fill: str  # the computed SVG fill: a colour, or url("#pattern")
    unseen: str  # why a reader cannot see the fill; "" when they can
    background: tuple[int, int, int]  # the plot's background
    painted: float | None = None  # share of the bar's inside not background in a screenshot

    @classmethod
    def from_probe(cls, record: Mapping[str, Any]) -> Bar:
        back = record["background"]
        return cls(
            figure=str(record["figure"]),
            trace=str(record["trace"]),
            point=int(record["point"]),
            box=(
                float(record["left"]),
                float(record["top"]),
                float(record["width"]),
                float(record["height"]),
            ),
            fill=str(record["fill"]),
            unseen=str(record["unseen"]),
            background=(int(back[0]), int(back[1]), int(back[2])),
        )

    @property
    def drawn(self) -> bool:
        """Whether the bar has an area (a bar of 0 has none)."""
        return self.box[2] >= 1 and self.box[3] >= 1

    def describe(self) -> str:
        return f"figure #{self.figure}: bar {self.point + 1} of {self.trace!r}"


@dataclass
class PageCheck:
    """What a reader of one page saw, and what went wrong."""

    url: str
    viewport: tuple[int, int]
    title: str = ""
    errors: list[str] = field(default_factory=list)
    figures: dict[str, int] = field(default_factory=dict)  # div id -> number of SVG layers
    elements: dict[str, Mapping[str, Any] | None] = field(default_factory=dict)
    overflow_px: int = 0
    xss: bool = False
    duplicate_ids: list[str] = field(default_factory=list)
    first_paint_ms: float | None = None
    seconds: float = 0.0
    script_result: Any = None
    bars: list[Bar] = field(default_factory=list)  # every bar of every figure
    #: figure id -> its bars with ``painted`` measured in a screenshot (``sample_bars``)
    samples: dict[str, list[Bar]] = field(default_factory=dict)

    def problems(
        self, first_screen: Sequence[str] = (), first_paint_budget_ms: float | None = None
    ) -> list[str]:
        """Everything wrong with the page, as sentences; empty when it is fine.

        ``first_screen``: selectors that must be visible without scrolling.
        ``first_paint_budget_ms``: the longest acceptable first contentful paint.
        """
        found = [f"console/page error: {e}" for e in self.errors]
        found += [f"duplicate element id {i!r}" for i in self.duplicate_ids]
        if first_paint_budget_ms is not None and (
            self.first_paint_ms is None or self.first_paint_ms > first_paint_budget_ms
        ):
            found.append(
                f"first paint after {self.first_paint_ms} ms (budget {first_paint_budget_ms:.0f})"
            )
        found += [f"figure #{fid} has no SVG" for fid, n in self.figures.items() if n == 0]
        found += [
            f"{bar.describe()} cannot be seen: {bar.unseen}"
            for bar in self.bars
            if bar.drawn and bar.unseen
        ]
        for figure, bars in self.samples.items():
            if not any(bar.painted is not None for bar in bars):
                found.append(f"figure #{figure}: no bar to sample in a screenshot")
            found += [
                f"{bar.describe()} is {bar.painted:.0%} painted in a screenshot "
                f"(at least {MIN_PAINTED:.0%} must differ from the background)"
                for bar in bars
                if bar.painted is not None and bar.painted < MIN_PAINTED
            ]
        for selector in first_screen:
            box = self.elements.get(selector)
            if box is None:
                found.append(f"{selector} is missing")
            elif not box["shown"]:
                found.append(f"{selector} is not visible")
            elif float(box["top"]) >= self.viewport[1]:
                found.append(f"{selector} starts below the first screen (top {box['top']:.0f}px)")
        if self.overflow_px > 1:
            found.append(f"the page scrolls sideways by {self.overflow_px}px")
        if self.xss:
            found.append("an injected script ran (window.__xss is set)")
        return [f"{self.url} @{self.viewport[0]}px: {p}" for p in found]
