"""Output format ``html``: one self-contained page a pharmacist opens in a browser.

The page needs nothing from the network: CSS and a little JavaScript are inline, the
charts are inline SVG.  A Content-Security-Policy ``<meta>`` forbids every remote load
and allows exactly the page's own script and style (by their SHA-256), so even a value
that escaped escaping could not run script.  Every value that comes from the input
(drug names, patient ids, messages, file names ...) goes through :func:`html.escape`;
no value is ever written inside the ``<script>`` and every attribute is quoted and
escaped.  The script reads the table from the DOM; it never writes HTML (no
``innerHTML``), it only hides rows, reorders them and sets text.

The page is built by one generic renderer, :func:`render_page` (title, facts, charts,
a table, notices, accounting), so that other page kinds share it:

* :func:`write_html` renders a screening :class:`~b12drugs.models.Report` (the alerts);
* :func:`write_gaps_html` renders the care-gap list of the ``gaps`` command from plain
  dicts.

The table's filter and sort state can be given in the address's fragment, e.g.
``report.html#q=metformin&severity=warning&sort=patient:desc``; the page keeps the
fragment up to date, so a filtered view can be bookmarked or sent on.
"""

from __future__ import annotations

import base64
import codecs
import datetime as dt
import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import IO

from ..models import SEVERITIES, Alert, Notice, Report

__all__ = [
    "Bar",
    "BarChart",
    "Cell",
    "Column",
    "Segment",
    "render_page",
    "write_gaps_html",
    "write_html",
]

#: Colour classes a chart segment, a fact or a badge may use (CSS below).  Anything else
#: falls back to ``neutral``, so no caller's string ever reaches a class attribute.
TONES = frozenset({"critical", "warning", "info", "ok", "neutral", "muted", "accent"})


def _e(value: object) -> str:
    """Escape any value for HTML text and quoted attribute values."""
    return escape("" if value is None else str(value), quote=True)


# --------------------------------------------------------------------------------------
# The generic page: what a page is made of.


@dataclass(frozen=True)
class Segment:
    """One part of a bar: ``value`` items of one series (e.g. 3 ``warning`` alerts)."""

    series: str
    value: int
    tone: str = "neutral"


@dataclass(frozen=True)
class Bar:
    """One labelled bar of a chart, made of one or more stacked segments."""

    label: str
    segments: tuple[Segment, ...]

    @property
    def total(self) -> int:
        return sum(s.value for s in self.segments)


@dataclass(frozen=True)
class BarChart:
    """A horizontal bar chart (inline SVG); ``legend`` names series and their tones.

    With ``filter_column`` (the key of a table column with ``filter=True``), clicking a
    bar filters the table to the rows whose value in that column is the bar's label.
    """

    title: str
    bars: tuple[Bar, ...]
    legend: tuple[tuple[str, str], ...] = ()
    empty_text: str = "nothing to count"
    filter_column: str | None = None


@dataclass(frozen=True)
class Column:
    """A table column: ``key`` into each row, header ``label``.

    ``numeric`` sorts by number; ``filter`` adds a drop-down of the column's values;
    ``wide`` lets the column take the remaining width.
    """

    key: str
    label: str
    numeric: bool = False
    filter: bool = False
    wide: bool = False


@dataclass(frozen=True)
class Cell:
    """A table cell: ``text`` as shown; optional ``sort`` key (defaults to the text),
    a ``tone`` badge, a ``note`` (smaller second line) and ``details`` (label, text)
    pairs shown in an expandable block.  Text in details may use ``**bold**``."""

    text: str
    sort: str | float | None = None
    tone: str | None = None
    note: str | None = None
    details: tuple[tuple[str, str], ...] = ()


CellValue = Cell | str | int | float | None


@dataclass(frozen=True)
class Fact:
    """A headline figure at the top of the page (e.g. ``Alerts 7``)."""

    label: str
    value: str
    tone: str = "neutral"


@dataclass(frozen=True)
class PageNotice:
    """One row of the notices section."""

    kind: str
    where: str
    message: str
    tone: str = "neutral"


@dataclass(frozen=True)
class Accounting:
    """The run's accounting: named figures and a sentence saying whether they add up."""

    figures: tuple[tuple[str, int], ...]
    check: str = ""
    balanced: bool = True


@dataclass(frozen=True)
class TextEntry:
    """One entry of a :class:`TextSection`: a heading, an optional badge and
    (label, text) pairs; text may use ``**bold**`` and line breaks."""

    heading: str
    items: tuple[tuple[str, str], ...]
    badge: str = ""
    tone: str = "neutral"


@dataclass(frozen=True)
class TextSection:
    """A section of reading matter after the table (e.g. guidance per drug class)."""

    title: str
    entries: tuple[TextEntry, ...]
    intro: str = ""


@dataclass(frozen=True)
class _Page:
    title: str
    subtitle: str
    meta: tuple[tuple[str, str], ...]
    facts: tuple[Fact, ...]
    banner: str
    charts: tuple[BarChart, ...]
    table_title: str
    columns: tuple[Column, ...]
    rows: Sequence[Mapping[str, CellValue]]
    empty_table: str
    notices: tuple[PageNotice, ...]
    accounting: Accounting | None
    table_note: str = ""
    sections: tuple[TextSection, ...] = ()
    footer: str = ""


# --------------------------------------------------------------------------------------
# Static parts: the style sheet and the script (hashed into the CSP).

_CSS = """
:root{--ink:#1d2733;--ink2:#4a5868;--line:#d8dee6;--bg:#f4f6f9;--card:#fff;
--critical:#b3261e;--critical-bg:#fbe9e7;--warning:#a15c00;--warning-bg:#fff3dc;
--info:#1f5f99;--info-bg:#e6f0fa;--ok:#2e7d32;--ok-bg:#e8f5e9;--neutral:#5b6b7c;
--neutral-bg:#edf0f3;--muted:#9aa6b2;--accent:#5e35b1;--accent-bg:#efe9fa}
*{box-sizing:border-box}
html{font-size:15px}
body{margin:0;background:var(--bg);color:var(--ink);line-height:1.45;
font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Liberation Sans",
Arial,sans-serif}
header.top{background:#17324d;color:#fff;padding:18px 32px 16px}
header.top h1{margin:0;font-size:1.55rem;font-weight:600;letter-spacing:.01em}
header.top .sub{margin:2px 0 10px;color:#c9d6e3}
dl.meta{display:flex;flex-wrap:wrap;gap:4px 28px;margin:0;font-size:.86rem}
dl.meta div{display:flex;gap:6px}
dl.meta dt{color:#9fb4c9}
dl.meta dd{margin:0;color:#fff;overflow-wrap:anywhere}
main{padding:20px 32px 32px;max-width:1500px}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:16px 20px;margin:0 0 18px}
h2{font-size:1.12rem;margin:0 0 12px;font-weight:600}
h2 .count{color:var(--ink2);font-weight:400}
.facts{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px;
margin:0 0 18px}
.fact{background:var(--card);border:1px solid var(--line);border-left:5px solid
var(--neutral);border-radius:8px;padding:10px 14px}
.fact .v{font-size:1.7rem;font-weight:650;line-height:1.15}
.fact .l{color:var(--ink2);font-size:.86rem}
.fact.t-critical{border-left-color:var(--critical)}.fact.t-critical .v{color:var(--critical)}
.fact.t-warning{border-left-color:#e09a2b}.fact.t-warning .v{color:var(--warning)}
.fact.t-info{border-left-color:var(--info)}.fact.t-info .v{color:var(--info)}
.fact.t-ok{border-left-color:var(--ok)}.fact.t-ok .v{color:var(--ok)}
.fact.t-accent{border-left-color:var(--accent)}
.banner{border-radius:8px;padding:10px 16px;margin:0 0 18px;background:var(--warning-bg);
border:1px solid #f0c987;color:#5c3b00}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:18px;
margin:0 0 18px}
.charts section{margin:0}
figure{margin:0}
svg.chart{display:block;width:100%;max-width:640px;height:auto}
svg.chart text{font-family:inherit;font-size:13px;fill:var(--ink)}
svg.chart text.val{fill:var(--ink2);font-variant-numeric:tabular-nums}
svg.chart line.axis{stroke:var(--line)}
svg.chart [data-filter-col]{cursor:pointer}
svg.chart [data-filter-col]:hover rect{opacity:.8}
.s-critical{fill:var(--critical)}.s-warning{fill:#e09a2b}.s-info{fill:#4a8fd0}
.s-ok{fill:#4caf50}.s-neutral{fill:#8c9bab}.s-muted{fill:#c5ced7}.s-accent{fill:#7e57c2}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;margin:8px 0 0;padding:0;
list-style:none;font-size:.85rem;color:var(--ink2)}
.legend li{display:flex;align-items:center;gap:6px}
.legend svg{width:12px;height:12px}
.empty{color:var(--ink2);font-style:italic;margin:4px 0}
.controls{display:flex;flex-wrap:wrap;gap:10px 16px;align-items:end;margin:0 0 12px}
.controls label{display:flex;flex-direction:column;font-size:.8rem;color:var(--ink2);gap:3px}
.controls input,.controls select{font:inherit;font-size:.92rem;padding:5px 8px;
border:1px solid #b9c3ce;border-radius:5px;background:#fff;color:var(--ink);min-width:150px}
.controls input[type=search]{min-width:260px}
.controls button{font:inherit;font-size:.88rem;padding:5px 12px;border:1px solid #b9c3ce;
border-radius:5px;background:var(--neutral-bg);color:var(--ink);cursor:pointer}
.shown{color:var(--ink2);font-size:.88rem;margin-left:auto}
.tablewrap{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;vertical-align:top;padding:7px 10px;border-bottom:1px solid var(--line)}
thead th{background:#eef2f6;position:sticky;top:0;font-weight:600;white-space:nowrap}
#rows thead th{padding:0}
thead th button{all:unset;display:block;padding:8px 22px 8px 10px;cursor:pointer;
position:relative;width:100%;box-sizing:border-box}
thead th button::after{content:"\\2195";position:absolute;right:7px;color:var(--muted);
font-size:.8em;top:10px}
thead th[aria-sort=ascending] button::after{content:"\\25B2";color:var(--ink)}
thead th[aria-sort=descending] button::after{content:"\\25BC";color:var(--ink)}
thead th button:focus-visible{outline:2px solid var(--info);outline-offset:-2px}
tbody tr:nth-child(even){background:#fafbfc}
tbody tr:hover{background:#f1f6fb}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
th.num button{text-align:right}
td.wide{min-width:320px}
td .note{display:block;color:var(--ink2);font-size:.82rem}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;font-size:.8rem;
font-weight:600;white-space:nowrap;background:var(--neutral-bg);color:var(--neutral)}
.badge.t-critical{background:var(--critical-bg);color:var(--critical)}
.badge.t-warning{background:var(--warning-bg);color:var(--warning)}
.badge.t-info{background:var(--info-bg);color:var(--info)}
.badge.t-ok{background:var(--ok-bg);color:var(--ok)}
.badge.t-accent{background:var(--accent-bg);color:var(--accent)}
.badge.t-muted{background:#f3f5f7;color:var(--muted)}
details{margin-top:4px}
details summary{cursor:pointer;color:var(--info);font-size:.84rem}
details dl{margin:6px 0 2px;font-size:.86rem}
details dt{font-weight:600;color:var(--ink2);margin-top:6px}
details dd{margin:2px 0 0}
details dd p{margin:0 0 3px}
ul.tokens{list-style:none;margin:0;padding:0}
.acct{display:flex;flex-wrap:wrap;gap:10px 28px;align-items:baseline;margin:0}
.acct div{display:flex;flex-direction:column}
.acct dt{color:var(--ink2);font-size:.84rem}
.acct dd{margin:0;font-size:1.3rem;font-weight:600;font-variant-numeric:tabular-nums}
.check{margin:10px 0 0;color:var(--ok)}
.check.bad{color:var(--critical);font-weight:600}
footer{color:var(--ink2);font-size:.82rem;padding:0 32px 24px;max-width:1500px}
tr[hidden]{display:none}
.tnote{margin:-4px 0 12px;color:var(--ink2);font-size:.88rem}
section.text .intro{margin:-4px 0 12px;color:var(--ink2);font-size:.88rem}
.entries{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:12px 24px}
article{border-top:1px solid var(--line);padding-top:8px}
article h3{font-size:.98rem;margin:0 0 4px;display:flex;gap:8px;align-items:center}
article dl{margin:0;font-size:.86rem}
article dt{font-weight:600;color:var(--ink2);margin-top:6px}
article dd{margin:2px 0 0}
article dd p{margin:0 0 3px}
@media print{
body{background:#fff}header.top{background:#fff;color:#000;border-bottom:2px solid #000}
header.top .sub,dl.meta dt,dl.meta dd{color:#000}.controls{display:none}
section{border:0;padding:0 0 12px}thead th{position:static}}
"""

_JS = """
(function () {
  "use strict";
  var table = document.getElementById("rows");
  if (!table) { document.documentElement.setAttribute("data-ready", "1"); return; }
  var tbody = table.tBodies[0];
  var rows = Array.prototype.slice.call(tbody.rows);
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var search = document.getElementById("q");
  var selects = Array.prototype.slice.call(document.querySelectorAll("select[data-col]"));
  var shown = document.getElementById("shown");
  var reset = document.getElementById("reset");
  var keys = heads.map(function (th) { return th.getAttribute("data-key"); });
  var numeric = heads.map(function (th) { return th.hasAttribute("data-numeric"); });
  var texts = rows.map(function (tr) { return tr.textContent.toLowerCase(); });
  rows.forEach(function (tr, i) { tr.setAttribute("data-pos", String(i)); });
  var sortKey = null, sortDir = 1;

  function cellKey(tr, col) {
    var td = tr.cells[col];
    if (!td) { return ""; }
    var v = td.getAttribute("data-sort");
    return v === null ? td.textContent.trim().toLowerCase() : v;
  }
  function cellValue(tr, col) {
    var td = tr.cells[col];
    if (!td) { return ""; }
    var v = td.getAttribute("data-value");
    return v === null ? td.textContent.trim() : v;
  }
  function apply() {
    var q = search ? search.value.trim().toLowerCase() : "";
    var terms = q ? q.split(/\\s+/) : [];
    var wanted = selects.map(function (s) {
      return [keys.indexOf(s.getAttribute("data-col")), s.value];
    });
    var n = 0;
    rows.forEach(function (tr, i) {
      var ok = terms.every(function (t) { return texts[i].indexOf(t) >= 0; });
      ok = ok && wanted.every(function (w) {
        return w[1] === "" || w[0] < 0 || cellValue(tr, w[0]) === w[1];
      });
      if (tr.hidden === ok) { tr.hidden = !ok; }
      if (ok) { n++; }
    });
    if (shown) { shown.textContent = "Showing " + n + " of " + rows.length; }
    saveHash();
  }
  function sortBy(key, dir) {
    var col = keys.indexOf(key);
    if (col < 0) { return; }
    sortKey = key; sortDir = dir;
    var num = numeric[col];
    var order = rows.slice().sort(function (a, b) {
      var x = cellKey(a, col), y = cellKey(b, col), c;
      if (num) {
        var fx = parseFloat(x), fy = parseFloat(y);
        fx = isNaN(fx) ? Infinity : fx; fy = isNaN(fy) ? Infinity : fy;
        c = fx < fy ? -1 : fx > fy ? 1 : 0;
      } else {
        c = x.localeCompare(y, undefined, {numeric: true, sensitivity: "base"});
      }
      if (c === 0) {
        c = Number(a.getAttribute("data-pos")) - Number(b.getAttribute("data-pos"));
        return c;
      }
      return c * dir;
    });
    order.forEach(function (tr) { tbody.appendChild(tr); });
    heads.forEach(function (th, i) {
      if (i === col) { th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending"); }
      else { th.removeAttribute("aria-sort"); }
    });
  }
  function saveHash() {
    var parts = [];
    if (search && search.value) { parts.push("q=" + encodeURIComponent(search.value)); }
    selects.forEach(function (s) {
      if (s.value) {
        parts.push(encodeURIComponent(s.getAttribute("data-col")) + "=" +
                   encodeURIComponent(s.value));
      }
    });
    if (sortKey) {
      parts.push("sort=" + encodeURIComponent(sortKey) + (sortDir < 0 ? ":desc" : ""));
    }
    var h = parts.join("&");
    if (("#" + h) !== location.hash && !(h === "" && location.hash === "")) {
      try { history.replaceState(null, "", h ? "#" + h : location.pathname); }
      catch (err) { /* file:// in some browsers: the view still works */ }
    }
  }
  function loadHash() {
    var h = location.hash.replace(/^#/, "");
    var sort = null;
    h.split("&").forEach(function (part) {
      if (!part) { return; }
      var eq = part.indexOf("=");
      var k, v;
      try {
        k = decodeURIComponent(eq < 0 ? part : part.slice(0, eq));
        v = decodeURIComponent(eq < 0 ? "" : part.slice(eq + 1));
      } catch (err) { return; }
      if (k === "q" && search) { search.value = v; }
      else if (k === "sort") { sort = v; }
      else {
        selects.forEach(function (s) {
          if (s.getAttribute("data-col") === k) {
            var found = Array.prototype.some.call(s.options, function (o) {
              return o.value === v;
            });
            if (found) { s.value = v; }
          }
        });
      }
    });
    if (sort) {
      var desc = /:desc$/.test(sort);
      sortBy(sort.replace(/:(desc|asc)$/, ""), desc ? -1 : 1);
    }
  }
  heads.forEach(function (th) {
    var button = th.querySelector("button");
    if (!button) { return; }
    button.addEventListener("click", function () {
      var key = th.getAttribute("data-key");
      sortBy(key, sortKey === key ? -sortDir : (numeric[keys.indexOf(key)] ? -1 : 1));
      saveHash();
    });
  });
  if (search) { search.addEventListener("input", apply); }
  selects.forEach(function (s) { s.addEventListener("change", apply); });
  if (reset) {
    reset.addEventListener("click", function () {
      if (search) { search.value = ""; }
      selects.forEach(function (s) { s.value = ""; });
      sortKey = null;
      rows.forEach(function (tr) { tbody.appendChild(tr); });
      heads.forEach(function (th) { th.removeAttribute("aria-sort"); });
      apply();
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("[data-filter-col]"), function (el) {
    el.addEventListener("click", function () {
      var col = el.getAttribute("data-filter-col"), val = el.getAttribute("data-filter-value");
      selects.forEach(function (s) {
        if (s.getAttribute("data-col") === col) { s.value = s.value === val ? "" : val; }
      });
      apply();
      table.scrollIntoView({block: "start"});
    });
  });
  loadHash();
  apply();
  document.documentElement.setAttribute("data-ready", "1");
})();
"""


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


#: Nothing may be loaded from anywhere; only this page's own script and style run.
CSP = (
    "default-src 'none'; "
    f"script-src '{_sha256(_JS)}'; "
    f"style-src '{_sha256(_CSS)}'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)


# --------------------------------------------------------------------------------------
# Rendering.


def _tone(tone: str | None) -> str:
    return tone if tone in TONES else "neutral"


_BOLD = re.compile(r"\*\*(.+?)\*\*")


def _rich(text: str) -> str:
    """Escaped text with ``**bold**`` as ``<strong>`` and line breaks as paragraphs.

    Safe: the markup is added after escaping, and the bold pattern's content is
    already escaped text."""
    paras = [p for p in text.split("\n") if p.strip()]
    return "".join("<p>" + _BOLD.sub(r"<strong>\1</strong>", _e(p)) + "</p>" for p in paras)


def _chart_svg(chart: BarChart, chart_id: str) -> Iterator[str]:
    bars = [b for b in chart.bars if b.total > 0]
    if not bars:
        yield f'<p class="empty">{_e(chart.empty_text)}</p>'
        return
    label_w, value_w, plot_w, row_h, bar_h = 170, 44, 300, 28, 18
    width = label_w + plot_w + value_w
    height = row_h * len(bars) + 8
    top = max(b.total for b in bars)
    desc = "; ".join(
        f"{b.label}: {b.total}"
        + (" (" + ", ".join(f"{s.value} {s.series}" for s in b.segments if s.value) + ")"
           if len(b.segments) > 1 else "")
        for b in bars)
    yield (f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
           f'aria-labelledby="{chart_id}-t {chart_id}-d" xmlns="http://www.w3.org/2000/svg">'
           f'<title id="{chart_id}-t">{_e(chart.title)}</title>'
           f'<desc id="{chart_id}-d">{_e(desc)}</desc>')
    yield (f'<line class="axis" x1="{label_w}" y1="0" x2="{label_w}" '
           f'y2="{height - 4}"></line>')
    for i, bar in enumerate(bars):
        y = i * row_h + 4
        label = bar.label if len(bar.label) <= 24 else bar.label[:23] + "…"
        attrs = ""
        if chart.filter_column is not None:
            attrs = (f' data-filter-col="{_e(chart.filter_column)}"'
                     f' data-filter-value="{_e(bar.label)}"')
        yield f'<g class="bar"{attrs}><title>{_e(bar.label)}: {bar.total}</title>'
        yield (f'<text x="{label_w - 8}" y="{y + bar_h - 4}" '
               f'text-anchor="end">{_e(label)}</text>')
        x = float(label_w)
        for seg in bar.segments:
            if seg.value <= 0:
                continue
            w = max(plot_w * seg.value / top, 2.0)
            yield (f'<rect class="s-{_tone(seg.tone)}" x="{x:.1f}" y="{y}" width="{w:.1f}" '
                   f'height="{bar_h}" rx="2"><title>{_e(bar.label)}: {seg.value} '
                   f'{_e(seg.series)}</title></rect>')
            x += w
        yield (f'<text class="val" x="{x + 6:.1f}" y="{y + bar_h - 4}">{bar.total}</text>'
               '</g>')
    yield "</svg>"
    if chart.legend:
        yield '<ul class="legend">'
        for name, tone in chart.legend:
            yield (f'<li><svg viewBox="0 0 12 12" aria-hidden="true"><rect class="s-{_tone(tone)}"'
                   f' width="12" height="12" rx="2"></rect></svg>{_e(name)}</li>')
        yield "</ul>"


def _cell(column: Column, value: CellValue) -> str:
    if not isinstance(value, Cell):
        if value is None:
            value = Cell("–", sort="")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = Cell(str(value), sort=value)
        else:
            value = Cell(str(value))
    classes = [c for c, on in (("num", column.numeric), ("wide", column.wide)) if on]
    attrs = f' class="{" ".join(classes)}"' if classes else ""
    if value.sort is not None:
        attrs += f' data-sort="{_e(value.sort)}"'
    if column.filter:
        attrs += f' data-value="{_e(value.text)}"'
    body = (f'<span class="badge t-{_tone(value.tone)}">{_e(value.text)}</span>'
            if value.tone else _e(value.text))
    if value.note:
        body += f'<span class="note">{_e(value.note)}</span>'
    if value.details:
        body += "<details><summary>details</summary><dl>" + "".join(
            f"<dt>{_e(k)}</dt><dd>{_rich(v)}</dd>" for k, v in value.details) + "</dl></details>"
    return f"<td{attrs}>{body}</td>"


def _filter_values(column: Column, rows: Sequence[Mapping[str, CellValue]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        v = row.get(column.key)
        text = v.text if isinstance(v, Cell) else ("–" if v is None else str(v))
        seen.setdefault(text, None)
    return sorted(seen, key=str.lower)


def _render(page: _Page) -> Iterator[str]:
    yield ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
           f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">'
           '<meta name="viewport" content="width=device-width, initial-scale=1">'
           '<meta name="referrer" content="no-referrer">'
           '<meta name="generator" content="b12drugs">'
           f"<title>{_e(page.title)}</title><style>{_CSS}</style></head><body>")
    yield f'<header class="top"><h1>{_e(page.title)}</h1>'
    if page.subtitle:
        yield f'<p class="sub">{_e(page.subtitle)}</p>'
    if page.meta:
        yield '<dl class="meta">' + "".join(
            f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in page.meta) + "</dl>"
    yield "</header><main>"
    if page.facts:
        yield '<div class="facts">' + "".join(
            f'<div class="fact t-{_tone(f.tone)}"><div class="v">{_e(f.value)}</div>'
            f'<div class="l">{_e(f.label)}</div></div>' for f in page.facts) + "</div>"
    if page.banner:
        yield f'<p class="banner" role="note">{_e(page.banner)}</p>'
    if page.charts:
        yield '<div class="charts">'
        for i, chart in enumerate(page.charts):
            yield f'<section class="chartbox"><h2>{_e(chart.title)}</h2><figure>'
            yield from _chart_svg(chart, f"chart{i}")
            yield "</figure></section>"
        yield "</div>"

    yield (f'<section id="table"><h2>{_e(page.table_title)} '
           f'<span class="count">({len(page.rows)})</span></h2>')
    if page.table_note:
        yield f'<p class="tnote">{_e(page.table_note)}</p>'
    if page.rows:
        yield ('<div class="controls" role="search"><label>Search'
               '<input type="search" id="q" placeholder="patient, drug, class, text …" '
               'autocomplete="off"></label>')
        for col in page.columns:
            if not col.filter:
                continue
            yield (f'<label>{_e(col.label)}<select data-col="{_e(col.key)}">'
                   '<option value="">all</option>')
            for v in _filter_values(col, page.rows):
                yield f'<option value="{_e(v)}">{_e(v)}</option>'
            yield "</select></label>"
        yield ('<button type="button" id="reset">Reset</button>'
               f'<span class="shown" id="shown" aria-live="polite">{len(page.rows)} rows'
               "</span></div>")
        yield '<div class="tablewrap"><table id="rows"><thead><tr>'
        for col in page.columns:
            num = ' class="num" data-numeric=""' if col.numeric else ""
            yield (f'<th scope="col" data-key="{_e(col.key)}"{num}>'
                   f'<button type="button">{_e(col.label)}</button></th>')
        yield "</tr></thead><tbody>"
        for row in page.rows:
            yield "<tr>" + "".join(_cell(c, row.get(c.key)) for c in page.columns) + "</tr>\n"
        yield "</tbody></table></div>"
    else:
        yield f'<p class="empty">{_e(page.empty_table)}</p>'
    yield "</section>"

    yield (f'<section id="notices"><h2>Notices <span class="count">({len(page.notices)})'
           "</span></h2>")
    if page.notices:
        yield ('<div class="tablewrap"><table class="notices"><thead><tr>'
               '<th scope="col" class="plain">Kind</th><th scope="col">Where</th>'
               '<th scope="col">Message</th></tr></thead><tbody>')
        for n in page.notices:
            yield (f'<tr><td><span class="badge t-{_tone(n.tone)}">{_e(n.kind)}</span></td>'
                   f"<td>{_e(n.where)}</td><td>{_e(n.message)}</td></tr>\n")
        yield "</tbody></table></div>"
    else:
        yield '<p class="empty">No notices.</p>'
    yield "</section>"

    if page.accounting is not None:
        acc = page.accounting
        yield '<section id="accounting"><h2>Accounting</h2><dl class="acct">'
        yield "".join(f"<div><dt>{_e(k)}</dt><dd>{v:,}</dd></div>" for k, v in acc.figures)
        yield "</dl>"
        if acc.check:
            yield f'<p class="check{"" if acc.balanced else " bad"}">{_e(acc.check)}</p>'
        yield "</section>"
    for section in page.sections:
        yield f'<section class="text"><h2>{_e(section.title)}</h2>'
        if section.intro:
            yield f'<p class="intro">{_e(section.intro)}</p>'
        yield '<div class="entries">'
        for entry in section.entries:
            badge = (f' <span class="badge t-{_tone(entry.tone)}">{_e(entry.badge)}</span>'
                     if entry.badge else "")
            yield (f'<article><h3>{_e(entry.heading)}{badge}</h3><dl>' + "".join(
                f"<dt>{_e(k)}</dt><dd>{_rich(v)}</dd>" for k, v in entry.items)
                + "</dl></article>")
        yield "</div></section>"

    yield "</main>"
    if page.footer:
        yield f"<footer>{_e(page.footer)}</footer>"
    yield f"<script>{_JS}</script></body></html>\n"


def render_page(
    title: str,
    counts_charts: Sequence[BarChart],
    table_columns: Sequence[Column],
    rows: Sequence[Mapping[str, CellValue]],
    notices: Sequence[PageNotice],
    accounting: Accounting | None,
    *,
    subtitle: str = "",
    meta: Sequence[tuple[str, str]] = (),
    facts: Sequence[Fact] = (),
    banner: str = "",
    table_title: str = "Rows",
    empty_table: str = "Nothing to list.",
    table_note: str = "",
    sections: Sequence[TextSection] = (),
    footer: str = "",
) -> Iterator[str]:
    """The pieces of one self-contained HTML page; join them or write them in turn.

    ``rows`` map each column's ``key`` to a :class:`Cell` (or a plain str/number, or
    ``None`` shown as a dash).  ``facts`` are headline figures, ``banner`` a warning
    above the charts, ``sections`` reading matter after the accounting.  Every string
    is escaped here: callers pass plain text, never markup.
    """
    page = _Page(
        title=title, subtitle=subtitle, meta=tuple(meta), facts=tuple(facts), banner=banner,
        charts=tuple(counts_charts), table_title=table_title, columns=tuple(table_columns),
        rows=rows, empty_table=empty_table, notices=tuple(notices), accounting=accounting,
        table_note=table_note, sections=tuple(sections), footer=footer)
    return _render(page)


# --------------------------------------------------------------------------------------
# The screening report.

_SEVERITY_RANK = {s: i for i, s in enumerate(reversed(SEVERITIES))}  # critical first
_NOTICE_TONE = {
    "unresolved": "warning", "source_unavailable": "critical", "rejected": "critical",
    "plugin_error": "critical", "approximate": "accent", "skipped": "muted", "info": "info",
}
_NOT_CHECKED = ("unresolved", "source_unavailable", "rejected", "plugin_error")
_SPECIAL_LABELS = {
    "proton_pump_inhibitors": "Proton-pump inhibitors",
    "h2_blockers": "H2 blockers",
    "folate_masking": "Folate masking",
}
#: Up to this many alerts, each table row carries the alert's full text (expandable);
#: beyond it the page leaves that text out to stay quick in a browser.
DETAIL_LIMIT = 5000
_FOOTER = ("b12drugs supports, and does not replace, clinical judgement. "
           "Every value shown comes from the screened input or the knowledge base.")


def class_label(class_id: str) -> str:
    """``proton_pump_inhibitors`` -> ``Proton-pump inhibitors``."""
    if class_id in _SPECIAL_LABELS:
        return _SPECIAL_LABELS[class_id]
    words = class_id.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


_RISK_EXTRA = {"older_age": "older age", "on_b12_therapy": "on B12 therapy"}


def _risk_label(factor: str) -> str:
    """A risk-factor id as the alert summaries word it (``2+ B12-lowering drugs``)."""
    from ..assess.risk import RISK_LABELS, SHORT_LABELS

    label = _RISK_EXTRA.get(factor) or SHORT_LABELS.get(factor) or RISK_LABELS.get(factor)
    if label is None or "{" in label:
        label = _words(factor)
    return label


def _words(key: str) -> str:
    """``patients_on_b12_lowering_drugs`` -> ``patients on B12 lowering drugs``."""
    return re.sub(r"\bb12\b", "B12", key.replace("_", " "))


def _get(obj: object, name: str) -> object:
    """``obj.name`` or ``obj[name]``: monitoring may be a model or a plain dict."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _iso(value: object) -> str:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return "" if value is None else str(value)


def _result_cell(result: object, *, empty: str = "none on record") -> Cell:
    """A B12 status result ``{kind, value, unit, date, interpretation}`` (or None)."""
    if result is None:
        return Cell(empty, sort="", tone="muted")
    if isinstance(result, str):
        return Cell(result)
    kind = _get(result, "kind")
    value = _get(result, "value")
    unit = _get(result, "unit")
    date = _iso(_get(result, "date"))
    interp = _get(result, "interpretation")
    kind_text = {"b12": "B12", "mma": "MMA"}.get(str(kind), str(kind or "result"))
    amount = " ".join(str(p) for p in (value, unit) if p not in (None, ""))
    text = " ".join(p for p in (kind_text, amount) if p)
    tone = {"low": "critical", "borderline": "warning", "normal": "ok"}.get(str(interp))
    note = " · ".join(p for p in (str(interp) if interp else "", date) if p) or None
    return Cell(text, sort=date, tone=tone, note=note)


def _due_cell(monitoring: object) -> Cell:
    due = _get(monitoring, "due")
    due_date = _iso(_get(monitoring, "due_date"))
    if due is True:
        return Cell("due", sort="0" + due_date, tone="warning",
                    note=f"since {due_date}" if due_date else None)
    if due is False:
        return Cell("not due", sort="1" + due_date, tone="ok",
                    note=f"next {due_date}" if due_date else None)
    return Cell("–", sort="2")


def _alert_row(alert: Alert, with_monitoring: bool, with_details: bool,
               with_sources: bool) -> dict[str, CellValue]:
    details: list[tuple[str, str]] = []
    if with_details:
        details = [("Detail", alert.detail),
                   ("Evidence · rule", f"{alert.evidence} · {alert.rule}")]
        if with_sources and alert.sources:
            details.append(("Sources", "\n".join(alert.sources)))
    row: dict[str, CellValue] = {
        "severity": Cell(alert.severity, sort=str(_SEVERITY_RANK[alert.severity]),
                         tone=alert.severity),
        "patient": Cell(alert.patient_id or "–", sort=alert.patient_id or ""),
        "class": class_label(alert.class_id),
        "drugs": ", ".join(alert.drugs),
        "orders": ", ".join(alert.orders),
        "risk": Cell(", ".join(_risk_label(r) for r in alert.risk_factors) or "–",
                     sort=str(len(alert.risk_factors)).zfill(3)),
        "summary": Cell(alert.summary, details=tuple(details)),
    }
    if with_monitoring:
        monitoring = getattr(alert, "monitoring", None)
        if monitoring is None:
            row["last_result"] = Cell("–", sort="")
            row["due"] = Cell("–", sort="2")
        else:
            row["last_result"] = _result_cell(_get(monitoring, "last_result"))
            row["due"] = _due_cell(monitoring)
    return row


def _notice_rows(notices: Iterable[Notice]) -> list[PageNotice]:
    out = []
    for n in notices:
        where = n.location or n.order_id or n.source or "–"
        if n.order_id and n.location:
            where = f"{n.location} (order {n.order_id})"
        out.append(PageNotice(n.kind, where, n.message, _NOTICE_TONE.get(n.kind, "neutral")))
    return out


def _guidance(alerts: Sequence[Alert]) -> TextSection | None:
    """What to do, per class: each distinct recommendation once, not once per alert."""
    seen: dict[tuple[str, str], Alert] = {}
    for a in alerts:
        seen.setdefault((a.class_id, a.recommendation), a)
    if not seen:
        return None
    entries = tuple(
        TextEntry(class_label(a.class_id),
                  (("Recommendation", a.recommendation),
                   *((("References", "\n".join(a.references)),) if a.references else ())),
                  badge=f"evidence: {a.evidence}", tone="neutral")
        for a in sorted(seen.values(), key=lambda a: (class_label(a.class_id),
                                                      a.recommendation)))
    return TextSection("Guidance by drug class", entries,
                       "What the knowledge base advises for each class with alerts, with its "
                       "references.")


def _severity_legend() -> tuple[tuple[str, str], ...]:
    return tuple((s, s) for s in reversed(SEVERITIES))


def report_page(report: Report) -> Iterator[str]:
    """The pieces of the HTML page for a screening report."""
    alerts = report.alerts
    by_severity = Counter(a.severity for a in alerts)
    by_class: dict[str, Counter[str]] = {}
    for a in alerts:
        by_class.setdefault(a.class_id, Counter())[a.severity] += 1
    class_bars = sorted(
        (Bar(class_label(cid), tuple(Segment(s, c[s], s) for s in reversed(SEVERITIES)))
         for cid, c in by_class.items()),
        key=lambda b: (-b.total, b.label))
    severity_chart = BarChart(
        "Alerts by severity",
        tuple(Bar(s, (Segment(s, by_severity[s], s),)) for s in reversed(SEVERITIES)),
        empty_text="No alerts.", filter_column="severity")
    class_chart = BarChart("Alerts by drug class", tuple(class_bars), _severity_legend(),
                           empty_text="No alerts.", filter_column="class")
    notice_kinds: Counter[str] = Counter(n.kind for n in report.notices)
    notice_chart = BarChart(
        "Notices by kind",
        tuple(Bar(k, (Segment(k, v, _NOTICE_TONE.get(k, "neutral")),))
              for k, v in sorted(notice_kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
        empty_text="No notices.")
    c = report.counts
    accounting_chart = BarChart(
        "Records read",
        (Bar("screened", (Segment("screened", c.screened, "ok"),)),
         Bar("skipped", (Segment("skipped", c.skipped, "muted"),)),
         Bar("rejected", (Segment("rejected", c.rejected, "critical"),))),
        empty_text="No records were read.")

    with_monitoring = any(getattr(a, "monitoring", None) is not None for a in alerts)
    columns = [
        Column("severity", "Severity", filter=True),
        Column("patient", "Patient"),
        Column("class", "Class", filter=True),
        Column("drugs", "Drugs"),
        Column("orders", "Orders"),
        Column("risk", "Risk factors"),
    ]
    if with_monitoring:
        columns += [Column("last_result", "Last B12 result"), Column("due", "Test")]
    columns.append(Column("summary", "Summary", wide=True))
    with_details = len(alerts) <= DETAIL_LIMIT
    with_sources = len(report.sources) > 1
    rows = [_alert_row(a, with_monitoring, with_details, with_sources) for a in alerts]
    table_note = "" if with_details else (
        f"{len(alerts):,} alerts: to keep the page quick, the text of each alert is left out "
        f"here (pages with up to {DETAIL_LIMIT:,} alerts have it); the guidance per class is "
        "below, and --format json has every alert in full.")
    guidance = _guidance(alerts)

    patients = len({a.patient_id for a in alerts})
    not_checked = sum(v for k, v in notice_kinds.items() if k in _NOT_CHECKED)
    facts = [
        Fact("alerts", f"{len(alerts):,}", "accent" if alerts else "ok"),
        Fact("patients with alerts", f"{patients:,}"),
        *(Fact(s, f"{by_severity[s]:,}", s if by_severity[s] else "neutral")
          for s in reversed(SEVERITIES)),
        Fact("records screened", f"{c.screened:,}", "ok"),
        Fact("notices", f"{len(report.notices):,}", "warning" if not_checked else "neutral"),
    ]
    banner = ""
    unchecked = [f"{notice_kinds[k]} {k.replace('_', ' ')}" for k in _NOT_CHECKED
                 if notice_kinds[k]]
    if unchecked:
        banner = ("Not everything could be checked: " + ", ".join(unchecked)
                  + ". See the notices below; no alert for those records does not mean "
                  "no risk.")
    balanced = c.read == c.screened + c.skipped + c.rejected
    check = (f"read {c.read:,} = screened {c.screened:,} + skipped {c.skipped:,} "
             f"+ rejected {c.rejected:,}" + (" ✓" if balanced else " — does NOT add up"))
    meta = [
        ("Generated", report.generated_at.strftime("%Y-%m-%d %H:%M UTC")
         if report.generated_at.utcoffset() in (None, dt.timedelta(0))
         else report.generated_at.isoformat(timespec="minutes")),
        ("Input", ", ".join(report.sources) or "–"),
        ("b12drugs", report.b12drugs_version),
        ("Knowledge base", report.knowledge_version),
        ("Report schema", report.schema_version),
    ]
    return render_page(
        "Vitamin B12 drug screening",
        (severity_chart, class_chart, accounting_chart, notice_chart),
        columns, rows, _notice_rows(report.notices),
        Accounting((("read", c.read), ("screened", c.screened), ("skipped", c.skipped),
                    ("rejected", c.rejected)), check, balanced),
        subtitle="Prescriptions checked for drugs that can lower vitamin B12",
        meta=meta, facts=facts, banner=banner, table_title="Alerts",
        empty_table=("No B12 alerts: every screened order was checked and nothing was found"
                     + (" (but see the notices: some records could not be checked)."
                        if unchecked else ".")),
        table_note=table_note, sections=(guidance,) if guidance else (),
        footer=_FOOTER)


def _write(pieces: Iterable[str], stream: IO[str]) -> None:
    """Write a page; to a stream that is not UTF-8 (stdout under a legacy locale) as
    ASCII with character references, which is still the UTF-8 the page declares.
    (The script and style sheet are ASCII, so their CSP hashes hold either way.)"""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        utf8 = codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        utf8 = False
    for piece in pieces:
        stream.write(piece if utf8 else piece.encode("ascii", "xmlcharrefreplace").decode())


def write_html(report: Report, stream: IO[str]) -> None:
    """Write the report as one self-contained HTML page (output format ``html``)."""
    _write(report_page(report), stream)


# --------------------------------------------------------------------------------------
# The care-gap list (``b12drugs gaps``).


def _seq(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    return [str(value)]


def _overdue_band(days: object) -> tuple[str, str]:
    if days is None:
        return "never tested", "critical"
    n = int(days) if isinstance(days, (int, float)) else 0
    if n > 365:
        return "> 1 year overdue", "critical"
    if n > 90:
        return "3–12 months overdue", "warning"
    if n > 0:
        return "≤ 3 months overdue", "info"
    return "due now", "ok"


_BANDS = ("never tested", "> 1 year overdue", "3–12 months overdue", "≤ 3 months overdue",
          "due now")


def _gap_row(gap: Mapping[str, object]) -> dict[str, CellValue]:
    classes = _seq(gap.get("classes"))
    days = gap.get("days_overdue")
    band, tone = _overdue_band(days)
    if days is None:
        overdue = Cell("never tested", sort="", tone="critical")
    else:
        overdue = Cell(f"{days}", sort=float(days) if isinstance(days, (int, float)) else "",
                       tone=tone if tone != "ok" else None)
    return {
        "patient": Cell(str(gap.get("patient_id") or "–"), sort=str(gap.get("patient_id") or "")),
        "classes": ", ".join(class_label(c) for c in classes) or "–",
        "drugs": ", ".join(_seq(gap.get("drugs"))) or "–",
        "risk": Cell(", ".join(_risk_label(r) for r in _seq(gap.get("risk_factors"))) or "–",
                     sort=str(len(_seq(gap.get("risk_factors")))).zfill(3)),
        "last_result": _result_cell(gap.get("last_result"), empty="never tested"),
        "due_date": Cell(_iso(gap.get("due_date")) or "–", sort=_iso(gap.get("due_date"))),
        "overdue": overdue,
        "band": band,
    }


def gaps_page(gaps: Sequence[Mapping[str, object]], counts: Mapping[str, int], *,
              title: str = "Vitamin B12 care gaps", as_of: str | None = None,
              meta: Sequence[tuple[str, str]] = (),
              notices: Sequence[PageNotice] = ()) -> Iterator[str]:
    """The pieces of the HTML page for a care-gap list (see :func:`write_gaps_html`)."""
    by_class: Counter[str] = Counter()
    by_band: Counter[str] = Counter()
    for g in gaps:
        for cid in _seq(g.get("classes")):
            by_class[class_label(cid)] += 1
        by_band[_overdue_band(g.get("days_overdue"))[0]] += 1
    band_tone = {b: _overdue_band(d)[1] for b, d in zip(
        _BANDS, (None, 400, 100, 1, 0), strict=True)}
    charts = (
        BarChart("Patients due by time overdue",
                 tuple(Bar(b, (Segment(b, by_band[b], band_tone[b]),)) for b in _BANDS),
                 empty_text="No patient is due.", filter_column="band"),
        BarChart("Patients due by drug class",
                 tuple(Bar(k, (Segment("patients", v, "accent"),))
                       for k, v in sorted(by_class.items(), key=lambda kv: (-kv[1], kv[0]))),
                 empty_text="No patient is due."),
    )
    columns = (
        Column("patient", "Patient"),
        Column("classes", "Classes"),
        Column("drugs", "Drugs"),
        Column("risk", "Risk factors"),
        Column("last_result", "Last result"),
        Column("due_date", "Due date"),
        Column("overdue", "Days overdue", numeric=True),
        Column("band", "Overdue", filter=True),
    )
    rows = [_gap_row(g) for g in gaps]
    never = by_band["never tested"]
    facts = [
        Fact("patients due", f"{len(gaps):,}", "accent" if gaps else "ok"),
        Fact("never tested", f"{never:,}", "critical" if never else "neutral"),
        Fact("> 1 year overdue", f"{by_band['> 1 year overdue']:,}",
             "warning" if by_band["> 1 year overdue"] else "neutral"),
    ]
    figures = tuple((_words(str(k)), int(v)) for k, v in counts.items())
    page_meta = ([("As of", as_of)] if as_of else []) + list(meta)
    return render_page(
        title, charts, columns, rows, notices,
        Accounting(figures) if figures else None,
        subtitle="Patients on a B12-lowering drug who are due for a B12 status test, "
                 "in priority order",
        meta=page_meta, facts=facts, table_title="Patients due",
        empty_table="No patient on a B12-lowering drug is due for a B12 status test.",
        footer=_FOOTER)


def write_gaps_html(gaps: Sequence[Mapping[str, object]], counts: Mapping[str, int],
                    stream: IO[str], *, title: str = "Vitamin B12 care gaps",
                    as_of: str | None = None, meta: Sequence[tuple[str, str]] = (),
                    notices: Sequence[PageNotice] = ()) -> None:
    """Write a care-gap list as one self-contained HTML page.

    ``gaps`` are plain dicts with ``patient_id``, ``classes``, ``drugs``,
    ``risk_factors`` (lists of str, or one str), ``last_result`` (``None`` or a dict
    ``{kind, value, unit, date, interpretation}``), ``due_date`` (ISO date or date or
    ``None``) and ``days_overdue`` (int, ``None`` if never tested), in the order to
    show them.  ``counts`` are shown as the run's accounting, in their order.
    """
    _write(gaps_page(gaps, counts, title=title, as_of=as_of, meta=meta, notices=notices),
           stream)
