"""Rule pages rendered from rule docstrings: one source for docs/rules/*.md, `nnprobe rule` and the
help text in SARIF, so what a user reads offline, online and in code scanning never drifts apart."""

from __future__ import annotations

import json

from nnprobe.core.registry import all_rules
from nnprobe.core.rule import DOC_HEADINGS, OptionValue, Rule

INDEX = "README.md"


def page_name(rule_cls: type[Rule]) -> str:
    return f"{rule_cls.code}.md"


def metadata_line(rule_cls: type[Rule]) -> str:
    parts = [
        f"**Default severity:** {rule_cls.severity}",
        f"**Confidence:** {rule_cls.confidence}",
        f"**Evidence:** {rule_cls.evidence}",
        f"**Fix:** {'available' if rule_cls.fixable else 'not available'}",
        f"**Enabled by default:** {'yes' if rule_cls.enabled_by_default else 'no'}",
        f"**Since:** {rule_cls.since}",
    ]
    return " · ".join(parts)


def toml_value(value: OptionValue) -> str:
    """A default as it would be written in pyproject.toml."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | list):
        return json.dumps(value)
    return repr(value)


def _options(rule_cls: type[Rule]) -> list[str]:
    if not rule_cls.options:
        return []
    lines = ["| key | default | description |", "|---|---|---|"]
    for key, option in rule_cls.options.items():
        description = option.description.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{key}` | `{toml_value(option.default)}` | {description} |")
    key, option = next(iter(rule_cls.options.items()))
    lines += [
        "",
        "```toml",
        f"[tool.nnprobe.rules.{rule_cls.code}]",
        f"{key} = {toml_value(option.default)}",
        "```",
    ]
    return lines


def render_rule_page(rule_cls: type[Rule]) -> str:
    sections = rule_cls.doc_sections()
    out = [f"# {rule_cls.code}: {rule_cls.name}", "", metadata_line(rule_cls)]
    extra = [h for h in sections if h not in DOC_HEADINGS]
    for heading in (*DOC_HEADINGS, *extra):
        body = sections.get(heading, "")
        table = _options(rule_cls) if heading == "Options" else []
        if not body and not table:
            continue
        out += ["", f"## {heading}"]
        if body:
            out += ["", body]
        if table:
            out += ["", *table]
    return "\n".join(out) + "\n"


def render_index(rules: list[type[Rule]]) -> str:
    out = [
        "# nnprobe rules",
        "",
        "Generated from the rule docstrings by `scripts/gen_docs.py`; do not edit by hand.",
        "",
        "| code | name | summary | default severity | evidence | fix |",
        "|---|---|---|---|---|---|",
    ]
    for rule in rules:
        summary = rule.summary().replace("|", "\\|")
        fix = "yes" if rule.fixable else ""
        out.append(
            f"| [{rule.code}]({page_name(rule)}) | {rule.name} | {summary} | {rule.severity} "
            f"| {rule.evidence} | {fix} |"
        )
    return "\n".join(out) + "\n"


def expected_pages() -> dict[str, str]:
    """Every file docs/rules/ should hold, by file name."""
    rules = all_rules()
    pages = {page_name(rule): render_rule_page(rule) for rule in rules}
    pages[INDEX] = render_index(rules)
    return pages
