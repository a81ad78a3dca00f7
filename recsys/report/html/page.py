"""The HTML around the sections: one self-contained page (inline CSS, inline SVG, no network).

Every piece of text that comes from a table goes through :func:`esc`. A tiny
script in the head records any JavaScript error into ``#js-errors`` (its
``data-count`` attribute), and the last script marks ``<body data-rendered="yes">``,
so a headless browser's DOM dump shows whether the page rendered cleanly.

>>> esc("<b>mf & co</b>")
'&lt;b&gt;mf &amp; co&lt;/b&gt;'
>>> print(table_html(pl.DataFrame({"model": ["<mf>"], "ndcg": [0.123456]})))
<table><thead><tr><th>model</th><th>ndcg</th></tr></thead><tbody><tr><td>&lt;mf&gt;</td><td class="num">0.1235</td></tr></tbody></table>
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #ffffff; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--fg);
       background: var(--bg); margin: 0; }
header { background: #24292f; color: #fff; padding: 14px 28px; }
header h1 { margin: 0; font-size: 20px; }
header .sub { color: #c9d1d9; font-size: 13px; }
nav { position: sticky; top: 0; background: var(--soft); border-bottom: 1px solid var(--line);
      padding: 6px 28px; z-index: 2; }
nav a { margin-right: 16px; color: #0969da; text-decoration: none; }
main { padding: 8px 28px 40px; max-width: 1200px; }
section { border-bottom: 1px solid var(--line); padding: 8px 0 18px; }
h2 { font-size: 18px; margin: 18px 0 8px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
p.note, .muted { color: var(--muted); }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: var(--soft); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 8px 0 14px; }
figure svg { max-width: 100%; height: auto; }
.pair { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.pair figure { flex: 1 1 420px; }
figcaption { color: var(--muted); font-size: 12px; }
.finding { border: 1px solid var(--line); border-left-width: 6px; border-radius: 4px; padding: 6px 10px;
           margin: 8px 0; }
.finding.critical { border-left-color: #cf222e; } .finding.warning { border-left-color: #bf8700; }
.finding.info { border-left-color: #0969da; }
.badge { display: inline-block; padding: 0 6px; border-radius: 10px; font-size: 12px; color: #fff; }
.badge.critical { background: #cf222e; } .badge.warning { background: #bf8700; } .badge.info { background: #0969da; }
pre { background: var(--soft); padding: 6px; overflow-x: auto; font-size: 12px; }
#js-errors { color: #cf222e; }
"""

ERROR_RECORDER = """<script>
window.__recsysErrors = [];
window.addEventListener("error", function (event) {
  window.__recsysErrors.push(String(event.message));
  var box = document.getElementById("js-errors");
  if (box) { box.setAttribute("data-count", String(window.__recsysErrors.length));
             box.textContent = window.__recsysErrors.join("\\n"); }
});
</script>"""

RENDERED_MARK = """<script>
document.body.setAttribute("data-rendered", "yes");
var box = document.getElementById("js-errors");
box.setAttribute("data-count", String(window.__recsysErrors.length));
</script>"""


def esc(value) -> str:
    """Text from a table, escaped for HTML (``None`` becomes an empty string)."""
    return "" if value is None else html.escape(str(value), quote=True)


def fmt(value, digits: int = 4) -> str:
    """A cell value as text: floats to ``digits`` significant digits, NaN and None as a dash.

    >>> fmt(0.123456), fmt(None), fmt(float("nan")), fmt(12345.678), fmt(3)
    ('0.1235', '-', '-', '1.235e+04', '3')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def table_html(frame: pl.DataFrame, max_rows: int = 200) -> str:
    """``frame`` as an HTML table, every cell escaped; numbers right-aligned."""
    numeric = {name for name, dtype in frame.schema.items() if dtype.is_numeric()}
    head = "".join(f"<th>{esc(name)}</th>" for name in frame.columns)
    body = []
    for row in frame.head(max_rows).iter_rows(named=True):
        cells = "".join(f'<td class="num">{esc(fmt(v))}</td>' if k in numeric else f"<td>{esc(fmt(v))}</td>"
                        for k, v in row.items())
        body.append(f"<tr>{cells}</tr>")
    more = (f'<p class="note">showing {max_rows} of {frame.height} rows</p>'
            if frame.height > max_rows else "")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def figure_html(svg: str, caption: str = "") -> str:
    """An inline SVG plot with an optional caption (escaped)."""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f"<figure>{svg}{cap}</figure>"


def pair(*figures: str) -> str:
    """Figures side by side (wrapping on narrow screens)."""
    return f'<div class="pair">{"".join(figures)}</div>'


def note(text: str) -> str:
    """One muted line of text (escaped)."""
    return f'<p class="note">{esc(text)}</p>'


@dataclass
class Section:
    """One titled part of the page; ``body`` is HTML already escaped by whoever built it."""

    anchor: str
    title: str
    body: str

    def html(self) -> str:
        return f'<section id="{esc(self.anchor)}"><h2>{esc(self.title)}</h2>{self.body}</section>'


def page_html(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole document: head (CSS, error recorder), header, navigation, sections."""
    nav = "".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a>' for s in sections)
    body = "".join(s.html() for s in sections)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style>{ERROR_RECORDER}</head>"
        f"<body><header><h1>{esc(title)}</h1><div class=\"sub\">{esc(subtitle)}</div></header>"
        f"<nav>{nav}</nav><main>{body}"
        '<div id="js-errors" data-count="0"></div></main>'
        f"{RENDERED_MARK}</body></html>\n"
    )
