"""Inline suppression comments, read from comment tokens so a '#' inside a string never counts.

    x = SGD(params, lr=0.5)  # nnprobe: ignore[NP101]   one rule on this line
    x = SGD(params, lr=0.5)  # nnprobe: ignore          every rule on this line
    x = SGD(params, lr=0.5)  # noqa: NP101              flake8 spelling, NP codes only
    # nnprobe: ignore-file[NP103]                       anywhere in the file

A bare `# noqa` is left to the tool it was written for: it does not silence nnprobe.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from nnprobe.core.finding import Finding
from nnprobe.core.lines import split_lines
from nnprobe.core.registry import get_rule

_NNPROBE = re.compile(r"#\s*nnprobe:\s*ignore(-file)?\b(?:\[([^\]]*)\])?", re.IGNORECASE)
_NOQA = re.compile(r"#\s*noqa:\s*([A-Z]+\d+(?:[\s,]+[A-Z]+\d+)*)", re.IGNORECASE)
ALL = "*"


@dataclass
class Suppressions:
    by_line: dict[int, set[str]] = field(default_factory=dict)
    file_wide: set[str] = field(default_factory=set)

    def suppresses(self, finding: Finding) -> bool:
        if ALL in self.file_wide or finding.code in self.file_wide:
            return True
        for line in range(finding.range.start.line, finding.range.end.line + 1):
            codes = self.by_line.get(line)
            if codes and (ALL in codes or finding.code in codes):
                return True
        return False

    def filter(self, findings: Iterable[Finding]) -> list[Finding]:
        return [f for f in findings if not self.suppresses(f)]


def _codes(listed: str | None) -> set[str]:
    if listed is None:
        return {ALL}
    codes = set()
    for item in re.split(r"[\s,]+", listed.strip()):
        if not item:
            continue
        rule = get_rule(item)
        codes.add(rule.code if rule else item.upper())
    return codes


def _comments(text: str) -> Iterator[tuple[int, str]]:
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT:
                yield tok.start[0], tok.string
    except (tokenize.TokenError, SyntaxError, IndentationError):
        # Broken source: fall back to the text after the first '#' on each line.
        for number, line in enumerate(split_lines(text), start=1):
            if "#" in line:
                yield number, line[line.index("#") :]


def parse_suppressions(text: str) -> Suppressions:
    result = Suppressions()
    lowered = text.lower()
    if "nnprobe:" not in lowered and "noqa" not in lowered:
        return result
    for line, comment in _comments(text):
        for match in _NNPROBE.finditer(comment):
            codes = _codes(match.group(2))
            target = result.file_wide if match.group(1) else result.by_line.setdefault(line, set())
            target.update(codes)
        for match in _NOQA.finditer(comment):
            codes = {c for c in _codes(match.group(1)) if c.startswith("NP")}
            if codes:
                result.by_line.setdefault(line, set()).update(codes)
    return result
