"""Small HTML builders for the backtest report: tables, figures, notes, one inline style sheet.

Every value that comes from data passes through :func:`html.escape` here, in one place,
so a rule id or a model version can never inject markup or a script into the report.
The page carries its CSS inline and references nothing outside itself.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["figure", "fmt", "kv_table", "note", "page", "section", "table", "tiles"]

_CSS = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa; --accent: #3b6fb6; }
* { box-sizing: border-box; }
body { font: 14px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--ink);
       margin: 0; background: #fff; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 40px 0 6px; padding-bottom: 4px;
     border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; }
p.lead { color: var(--muted); margin: 0 0 12px; }
p.how { color: var(--muted); margin: 4px 0 12px; max-width: 80ch; }
p.note { background: #fff8e5; border-left: 3px solid #e3a33b; padding: 6px 10px; margin: 8px 0; }
nav { font-size: 13px; margin: 8px 0 0; }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; white-space: nowrap; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left;
         vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: 12px; background: var(--soft); padding: 1px 4px; border-radius: 3px; }
figure { margin: 8px 0 16px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; margin: 10px 0 6px; }
.tile { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 130px; }
.tile .label { color: var(--muted); font-size: 12px; }
.tile .value { font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
"""


def fmt(value: Any, digits: int = 4) -> str:
    """A value as display text (escaped): ``—`` for missing, thousands separators for ints."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, list | tuple):
        return html.escape(", ".join(str(item) for item in value))
    if isinstance(value, dict):
        return html.escape(", ".join(f"{key}={item}" for key, item in value.items()))
    return html.escape(str(value))


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[bool] | None = None
) -> str:
    """A table of formatted cells; ``numeric`` right-aligns the matching columns."""
    align = list(numeric) if numeric is not None else [False] * len(headers)
    head = "".join(
        f"<th{_cls(num)}>{html.escape(name)}</th>" for name, num in zip(headers, align, strict=True)
    )
    body = "".join(
        "<tr>"
        + "".join(f"<td{_cls(num)}>{fmt(cell)}</td>" for cell, num in zip(row, align, strict=True))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def kv_table(pairs: Iterable[tuple[str, Any]]) -> str:
    """A two-column key/value table (keys are escaped too: they may come from data)."""
    body = "".join(
        f"<tr><th>{html.escape(key)}</th><td>{fmt(value)}</td></tr>" for key, value in pairs
    )
    return f"<table><tbody>{body}</tbody></table>"


def tiles(pairs: Iterable[tuple[str, str]]) -> str:
    """Headline figures as tiles; values must already be formatted (escaped) text."""
    cells = "".join(
        f'<div class="tile"><div class="label">{html.escape(label)}</div>'
        f'<div class="value">{value}</div></div>'
        for label, value in pairs
    )
    return f'<div class="tiles">{cells}</div>'


def figure(png_base64: str, alt: str) -> str:
    """An inline PNG image (base64 data URI) with an escaped alternative text."""
    return (
        f'<figure><img src="data:image/png;base64,{png_base64}" alt="{html.escape(alt)}"></figure>'
    )


def note(text: str) -> str:
    """A highlighted remark, e.g. why a chart is missing (escaped)."""
    return f'<p class="note">{html.escape(text)}</p>'


def section(anchor: str, title: str, how_to_read: str, body: str) -> str:
    """One report section: an ``<h2>`` title, how to read it, then its content."""
    return (
        f'<section id="{anchor}"><h2>{html.escape(title)}</h2>'
        f'<p class="how">{html.escape(how_to_read)}</p>{body}</section>'
    )


def page(title: str, lead: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole document; ``sections`` are (anchor, title, rendered section html)."""
    links = "".join(f'<a href="#{anchor}">{html.escape(name)}</a>' for anchor, name, _ in sections)
    content = "".join(body for _, _, body in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
        f'<body><main><h1>{html.escape(title)}</h1><p class="lead">{html.escape(lead)}</p>'
        f"<nav>{links}</nav>{content}</main></body></html>\n"
    )


def _cls(numeric: bool) -> str:
    return ' class="num"' if numeric else ""
