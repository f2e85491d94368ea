"""Renderers, one module per output format, each a pure function from a Report to a string; this
module maps the names the CLI accepts to them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nnprobe.core.engine import Report
from nnprobe.report import github, json, sarif, text


@dataclass(frozen=True)
class RenderOptions:
    """Everything a front door may ask of a renderer; each format reads what applies to it."""

    color: bool = False
    show_fixes: bool = False
    statistics: bool = False
    quiet: bool = False
    root: Path | None = None


Renderer = Callable[[Report, RenderOptions], str]


def _text(report: Report, options: RenderOptions) -> str:
    return text.render(
        report,
        color=options.color,
        show_fixes=options.show_fixes,
        statistics=options.statistics,
        quiet=options.quiet,
    )


RENDERERS: dict[str, Renderer] = {
    "text": _text,
    "json": lambda report, options: json.render(report),
    "sarif": lambda report, options: sarif.render(report, root=options.root),
    "github": lambda report, options: github.render(report),
}
FORMATS = tuple(RENDERERS)


def render(output_format: str, report: Report, options: RenderOptions | None = None) -> str:
    return RENDERERS[output_format](report, options or RenderOptions())
