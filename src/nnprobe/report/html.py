"""`nnprobe report`: one self-contained HTML file (no CDN, no external request) with the findings
grouped by file and linked to their rule pages, and the pictures of each checkpoint: PNGs inlined
as data URIs, embedding previews as an inline SVG scatter with a few lines of JS (click a class in
the legend to highlight it; hover a point for its index and label)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from itertools import groupby
from typing import Any

from nnprobe.core.engine import Report

PALETTE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#c7c7c7",
    "#dbdb8d",
    "#9edae5",
]
WIDTH, HEIGHT, MARGIN = 520, 440, 12

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:22px}h2{font-size:17px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;width:100%;margin:8px 0}td,th{padding:3px 8px;text-align:left;
border-bottom:1px solid #eee;vertical-align:top}
.error{color:#b00}.warning{color:#a60}.info{color:#357}
figure{display:inline-block;margin:10px 16px 10px 0;vertical-align:top}figcaption{font-size:12px;
max-width:560px;color:#444}img{max-width:560px;border:1px solid #ddd}.note{color:#777}
svg circle{stroke:none}svg.picked circle{opacity:.12}svg.picked circle.on{opacity:1}
.legend span{cursor:pointer;margin-right:8px;font-size:12px;white-space:nowrap}
.legend i{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:3px}
"""

SCRIPT = """
document.querySelectorAll('.legend span').forEach(function(s){s.onclick=function(){
var svg=document.getElementById(s.parentNode.dataset.svg),l=s.dataset.l,on=svg.dataset.l!==l;
svg.dataset.l=on?l:'';svg.classList.toggle('picked',on);
svg.querySelectorAll('circle').forEach(function(c){c.classList.toggle('on',on&&c.dataset.l===l)});};});
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def scatter_svg(payload: Mapping[str, Any], ident: str) -> str:
    points: Sequence[Sequence[float]] = payload.get("points", [])
    labels: Sequence[Any] = payload.get("labels", [])
    if not points:
        return '<p class="note">no points</p>'
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (WIDTH - 2 * MARGIN) / ((x1 - x0) or 1.0)
    sy = (HEIGHT - 2 * MARGIN) / ((y1 - y0) or 1.0)
    classes = sorted({str(label) for label in labels}, key=lambda s: (len(s), s))
    colour = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(classes)}
    circles = []
    for i, ((x, y), label) in enumerate(zip(points, labels, strict=True)):
        # An axis with no spread (a dead layer maps every input to one point) sits in the middle.
        cx = MARGIN + (x - x0) * sx if x1 > x0 else WIDTH / 2
        cy = HEIGHT - MARGIN - (y - y0) * sy if y1 > y0 else HEIGHT / 2
        circles.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.4" fill="{colour[str(label)]}" '
            f'data-l="{_e(label)}"><title>#{i} {_e(label)}</title></circle>'
        )
    legend = "".join(
        f'<span data-l="{_e(c)}"><i style="background:{colour[c]}"></i>{_e(c)}</span>'
        for c in classes
    )
    note = ""
    if x1 == x0 and y1 == y0 and len(points) > 1:
        same = "the layer gives every input the same output"
        note = f'<p class="note">all {len(points)} points coincide: {same}</p>'
    return (
        f'<svg id="{ident}" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg" style="border:1px solid #ddd">'
        + "".join(circles)
        + f'</svg><div class="legend" data-svg="{ident}">{legend}</div>{note}'
    )


def picture_html(payload: Mapping[str, Any], ident: str) -> str:
    title = _e(payload.get("title", ""))
    if "error" in payload:
        error = payload["error"]
        return f'<p class="note">{_e(error.get("code", ""))}: {_e(error.get("message", ""))}</p>'
    if payload.get("kind") == "scatter":
        from nnprobe.visuals.jobs import subtitle

        meta = payload.get("meta", {})
        caption = f"{title}<br>{_e(subtitle(meta))}"
        return f"<figure>{scatter_svg(payload, ident)}<figcaption>{caption}</figcaption></figure>"
    if payload.get("kind") == "image":
        src = f"data:{payload.get('mime', 'image/png')};base64,{payload.get('data', '')}"
        return f'<figure><img src="{src}" alt="{title}"><figcaption>{title}</figcaption></figure>'
    return f'<p class="note">{_e(payload.get("reason", "no picture"))}</p>'


def findings_html(report: Report) -> str:
    if not report.findings:
        return '<p class="note">No findings.</p>'
    parts = []
    ordered = sorted(report.findings, key=lambda f: (f.path, f.range.start.line, f.code))
    for path, group in groupby(ordered, key=lambda f: f.path):
        rows = "".join(
            f'<tr><td class="{_e(f.severity.value)}">{_e(f.severity.value)}</td>'
            f"<td>{f.range.start.line}</td>"
            f'<td><a href="{_e(f.url)}">{_e(f.code)}</a> {_e(f.name)}</td>'
            f"<td>{_e(f.message)}</td></tr>"
            for f in group
        )
        parts.append(
            f"<h3>{_e(path)}</h3><table><tr><th>severity</th><th>line</th><th>rule</th>"
            f"<th>message</th></tr>{rows}</table>"
        )
    return "".join(parts)


def render_report(
    report: Report, pictures: Mapping[str, Sequence[Mapping[str, Any]]], title: str
) -> str:
    sections = [f"<h1>{_e(title)}</h1>", "<h2>Findings</h2>", findings_html(report)]
    for n, (path, payloads) in enumerate(pictures.items()):
        sections.append(f"<h2>Pictures: {_e(path)}</h2>")
        sections += [picture_html(p, f"scatter{n}_{i}") for i, p in enumerate(payloads)]
    body = "\n".join(sections)
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{STYLE}</style></head><body>{body}<script>{SCRIPT}</script></body></html>\n"
    )
