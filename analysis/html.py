"""The page: sections with a table of contents, print CSS, plotly.js embedded once, a render check.

Figures are emitted with ``include_plotlyjs=False``; the single copy of plotly.js sits in the head,
so the file opens offline. A small script collects script errors and counts rendered figures after
load: the result is shown at the top of the page (``#render-status``) and written to ``<body>``
attributes (``data-figures``, ``data-figures-rendered``, ``data-errors``, ``data-ready-ms`` and
``data-render-ms``: milliseconds from navigation start to the page shown and to every figure drawn; and
``data-tables-overflowing``, ``data-empty-panels``, ``data-legends-missing``: JSON lists of the sections whose
table scrolls sideways, the subplots with no data, the figures whose legend is absent or cut off) for
automated checks. Figures are drawn one per task after the page has loaded, so the text, tables
and contents are readable at once however many figures follow.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Sequence

import pandas as pd
import plotly.graph_objects as go

FIGURE_COUNT_META = "svconv-figure-count"

CSS = """
:root { --fg:#1d2430; --muted:#5b6472; --line:#d9dee5; --accent:#1f5fae; --paper:#fff7e0; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); margin: 0; }
header.top { padding: 18px 28px 6px; border-bottom: 1px solid var(--line); }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 30px 0 8px; padding-top: 8px; border-top: 2px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 6px; }
main { padding: 0 28px 40px; max-width: 1500px; }
nav.toc { padding: 10px 28px; background: #f6f8fa; border-bottom: 1px solid var(--line); font-size: 13px; }
nav.toc ol { margin: 4px 0; padding-left: 20px; } nav.toc li { margin: 1px 0; break-inside: avoid; }
nav.toc > ol { columns: 3 260px; }
nav.toc a { color: var(--accent); text-decoration: none; }
.missing { color: #7a4b00; background: #fff4e0; border-left: 4px solid #f0a020; padding: 6px 10px; margin: 8px 0; }
.note { color: var(--muted); font-size: 12.5px; margin: 4px 0 10px; }
#render-status { margin: 8px 28px; padding: 6px 10px; background: #fde8e8; border-left: 4px solid #c0392b; }
.tablewrap { overflow-x: auto; max-height: 640px; overflow-y: auto; border: 1px solid var(--line); margin: 6px 0 14px; }
table { border-collapse: collapse; font-size: 12.5px; }
th, td { padding: 3px 6px; border-bottom: 1px solid var(--line); text-align: right; }
th { min-width: 3.5em; max-width: 9em; }  /* headers wrap at spaces, so wide tables fit the page */
td.text { max-width: 22em; }
th { background: #eef1f5; position: sticky; top: 0; text-align: center; }
td.text, th.text { text-align: left; }
tr.paper td { background: var(--paper); font-style: italic; }
tr.unlearned td { color: var(--muted); }  /* a configuration with trials that did not learn (trials column learned) */
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 8px 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
.figure { margin: 10px 0 18px; break-inside: avoid; page-break-inside: avoid; }
details.error pre { white-space: pre-wrap; font-size: 12px; margin: 2px 0; }
@media print {
  body { font-size: 10pt; }
  nav.toc { page-break-after: always; background: none; }
  .tablewrap { max-height: none; overflow: visible; border: none; }
  table { font-size: 7.5pt; white-space: normal; }
  th { position: static; }
  h2 { page-break-before: always; border-top: none; }
  .modebar-container, #render-status { display: none !important; }
  .figure { width: 100%; }
}
"""

RENDER_CHECK_HEAD = """
window.svconvErrors = [];
window.svconvDraw = [];  // figures are drawn after the page is shown, one per task
(function () {
  function note(m) { window.svconvErrors.push(String(m).slice(0, 500)); }
  window.addEventListener("error", function (e) {
    var t = e.target;
    note(e.message || ("failed to load " + ((t && (t.src || t.href)) || "a resource")));
  }, true);
  window.addEventListener("unhandledrejection", function (e) { note("unhandled rejection: " + e.reason); });
  var ce = console.error;
  console.error = function () { note(Array.prototype.join.call(arguments, " ")); return ce.apply(console, arguments); };
})();
"""

RENDER_CHECK_TAIL = r"""
window.addEventListener("load", function () {
  var b = document.body, queue = window.svconvDraw;
  b.setAttribute("data-ready-ms", String(Math.round(performance.now())));  // text and tables shown
  function check() {
    var want = parseInt(b.getAttribute("data-figures"), 10);
    var plots = document.querySelectorAll(".js-plotly-plot"), done = 0;
    for (var i = 0; i < plots.length; i++) { if (plots[i].querySelector(".main-svg")) done++; }
    b.setAttribute("data-figures-rendered", String(done));
    b.setAttribute("data-render-ms", String(Math.round(performance.now())));  // since navigation start
    b.setAttribute("data-errors", JSON.stringify(window.svconvErrors));
    layoutCheck(plots);
    if (done !== want || window.svconvErrors.length) {
      var box = document.getElementById("render-status");
      box.hidden = false;
      box.textContent = "Rendered " + done + " of " + want + " figures; errors: " +
        (window.svconvErrors.join(" | ") || "none");
    }
  }
  // what a reader would see: tables wider than the page, subplots without data, legends cut off or absent
  function layoutCheck(plots) {
    var over = [], wraps = document.querySelectorAll(".tablewrap"), width = document.documentElement.clientWidth;
    for (var i = 0; i < wraps.length; i++) {
      if (wraps[i].scrollWidth > wraps[i].clientWidth + 1) over.push(wraps[i].closest("section").id);
    }
    var empty = [], legend = [];
    for (var j = 0; j < plots.length; j++) {
      var gd = plots[j], counts = {}, named = 0;
      Object.keys(gd.layout || {}).forEach(function (k) { var m = /^xaxis(\d*)$/.exec(k); if (m) counts["x" + m[1]] = 0; });
      (gd.data || []).forEach(function (t) {
        var x = t.x || [], n = x.length || (x.bdata ? 1 : 0), ax = t.xaxis || "x";
        if (ax in counts) counts[ax] += n;
        if (t.name && t.showlegend !== false) named++;
      });
      Object.keys(counts).forEach(function (k) { if (counts[k] === 0) empty.push(gd.id + " " + k); });
      var lg = gd.querySelector(".legend"), r = lg && lg.getBoundingClientRect();
      if (named > 1 && !(r && r.width > 0 && r.right <= width + 1)) legend.push(gd.id);
    }
    b.setAttribute("data-tables-overflowing", JSON.stringify(over));
    b.setAttribute("data-empty-panels", JSON.stringify(empty));
    b.setAttribute("data-legends-missing", JSON.stringify(legend));
  }
  function draw(i) {
    if (i >= queue.length) { check(); return; }
    try { queue[i](); } catch (e) { console.error("figure " + (i + 1) + ": " + ((e && e.stack) || e)); }
    setTimeout(function () { draw(i + 1); }, 0);
  }
  setTimeout(function () { draw(0); }, 0);
});
"""


def esc(v: object) -> str:
    return html.escape("" if v is None else str(v))


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


@dataclass
class Section:
    """A heading with its body (HTML fragments) and subsections; ``id`` is the anchor in the TOC."""

    title: str
    id: str = ""
    body: list[str] = field(default_factory=list)
    children: list["Section"] = field(default_factory=list)

    def add(self, fragment: str) -> None:
        self.body.append(fragment)

    def sub(self, title: str, id: str) -> "Section":
        s = Section(title, id)
        self.children.append(s)
        return s


class Page:
    """Collects sections and figures and renders the one HTML file."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.sections: list[Section] = []
        self.n_figures = 0
        self._ids: set[str] = set()

    def section(self, title: str) -> Section:
        s = Section(title, self._unique(slug(title)))
        self.sections.append(s)
        return s

    def subsection(self, parent: Section, title: str) -> Section:
        return parent.sub(title, self._unique(f"{parent.id}-{slug(title)}"))

    def _unique(self, base: str) -> str:
        name, k = base, 2
        while name in self._ids:
            name, k = f"{base}-{k}", k + 1
        self._ids.add(name)
        return name

    def figure(self, fig: go.Figure, caption: str = "") -> str:
        """The HTML of one figure (no plotly.js); counted for the render check."""
        self.n_figures += 1
        div = fig.to_html(
            include_plotlyjs=False, full_html=False, div_id=f"fig-{self.n_figures}",
            default_width="100%", default_height=f"{fig.layout.height or 450}px",
            config={"displaylogo": False, "responsive": True},
        )  # fmt: skip
        # plotly's inline script draws at parse time; queue it instead, so the page shows first
        div, n = re.subn(r"<script([^>]*)>(.*)</script>", r"<script\1>svconvDraw.push(function () {\2});</script>", div, count=1, flags=re.S)
        if n != 1:
            raise RuntimeError("plotly's figure HTML has no <script> to defer; did its output format change?")
        cap = f'<p class="note">{esc(caption)}</p>' if caption else ""
        return f'<div class="figure">{div}{cap}</div>'

    def render(self, plotly_js: str, header_html: str = "") -> str:
        toc = "".join(_toc_item(s) for s in self.sections)
        body = "".join(_section_html(s, 2) for s in self.sections)
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="{FIGURE_COUNT_META}" content="{self.n_figures}">'
            f"<title>{esc(self.title)}</title><style>{CSS}</style>"
            f"<script>{RENDER_CHECK_HEAD}</script>"
            f'<script type="text/javascript">{_safe_script(plotly_js)}</script>'
            f'</head><body data-figures="{self.n_figures}">'
            f'<header class="top"><h1>{esc(self.title)}</h1>{header_html}</header>'
            '<div id="render-status" hidden></div>'
            f'<nav class="toc"><strong>Contents</strong><ol>{toc}</ol></nav>'
            f"<main>{body}</main><script>{RENDER_CHECK_TAIL}</script></body></html>\n"
        )


def _safe_script(js: str) -> str:
    # a literal "</script" inside the bundle would end the tag early
    return js.replace("</script", "<\\/script")


def _toc_item(s: Section) -> str:
    kids = f"<ol>{''.join(_toc_item(c) for c in s.children)}</ol>" if s.children else ""
    return f'<li><a href="#{s.id}">{esc(s.title)}</a>{kids}</li>'


def _section_html(s: Section, level: int) -> str:
    inner = "".join(s.body) + "".join(_section_html(c, level + 1) for c in s.children)
    return f'<section id="{s.id}"><h{level}>{esc(s.title)}</h{level}>{inner}</section>'


def missing(text: str) -> str:
    """A visible note that says which data a section lacks."""
    return f'<p class="missing">{esc(text)}</p>'


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def facts(items: Sequence[tuple[str, object]]) -> str:
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items)
    return f'<dl class="facts">{rows}</dl>'


def table(
    frame: pd.DataFrame,
    row_classes: Sequence[str] | None = None,
    text_columns: Sequence[str] = (),
    html_columns: Sequence[str] = (),
) -> str:
    """An HTML table of ``frame``: values escaped, except in ``html_columns`` (fragments built with
    :func:`esc` by the caller); ``text_columns`` and ``html_columns`` left-aligned."""
    raw = set(html_columns)
    text = set(text_columns) | raw
    head = "".join(f'<th class="{"text" if c in text else ""}">{esc(c)}</th>' for c in frame.columns)
    cols = [frame[c].tolist() for c in frame.columns]
    align = ["text" if c in text else "" for c in frame.columns]
    classes = row_classes or [""] * len(frame)
    rows = []
    for i in range(len(frame)):
        cells = "".join(
            f'<td class="{a}">{col[i] if name in raw else _cell(col[i])}</td>' for name, col, a in zip(frame.columns, cols, align)
        )
        rows.append(f'<tr class="{classes[i]}">{cells}</tr>')
    return f'<div class="tablewrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def error_cell(text: object) -> str:
    """A trial's error: its last line, with the whole traceback folded underneath."""
    if text is None or (isinstance(text, float) and text != text):
        return ""
    lines = [ln for ln in str(text).strip().splitlines() if ln.strip()]
    if len(lines) <= 1:
        return esc(text)
    return f'<details class="error"><summary>{esc(lines[-1])}</summary><pre>{esc(text)}</pre></details>'


def _cell(v: object) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))  # counts and ranks that pandas turned into floats
    if v is None or (isinstance(v, float) and v != v) or v is pd.NaT:
        return ""
    return esc(v)
