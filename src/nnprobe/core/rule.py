"""What a rule is: stable metadata next to its check, and its documentation in its docstring."""

from __future__ import annotations

import functools
import inspect
import logging
import os
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from nnprobe.core.finding import Confidence, Evidence, Finding, Fix, Range, Severity

DOC_HEADINGS = (
    "What it does",
    "Why is this bad?",
    "Example",
    "How to fix",
    "Options",
    "References",
)

_DOCS_URL = "https://nnprobe.dev/rules/{code}"


def docs_url(code: str) -> str:
    """Where a rule's page lives; NNPROBE_DOCS_URL points it at a mirror or a local copy."""
    return _docs_template(os.environ.get("NNPROBE_DOCS_URL", _DOCS_URL)).format(code=code)


@functools.lru_cache(maxsize=4)
def _docs_template(template: str) -> str:
    """The template when its only replacement field is a plain `{code}` (so `{`, `{0}`,
    `{code.x}` or a `{code:>999999999}` width cannot crash or flood a run); else the default,
    with one warning."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        reason = str(exc)
    else:
        bad = [
            "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
            for _, name, spec, conv in fields
            if name is not None and (name, spec, conv) != ("code", "", None)
        ]
        if not bad:
            return template
        reason = f"{bad[0]} is not a plain {{code}}, the one field filled in"
    logging.getLogger("nnprobe").warning(
        "nnprobe: warning: NNPROBE_DOCS_URL=%r is not a usable template (%s): rule links use %s",
        template,
        reason,
        _DOCS_URL,
    )
    return _DOCS_URL


OptionValue = bool | int | float | str | list[str]


@dataclass(frozen=True)
class Option:
    """A configurable threshold (`[tool.nnprobe.rules.NP101] sgd-max = 0.05`)."""

    default: OptionValue
    description: str

    def coerce(self, key: str, value: object) -> OptionValue:
        """The value when it has the default's type (ints pass for floats); else ValueError."""
        expected = type(self.default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                raise ValueError(f"option {key!r} is beyond the range of a float") from None
        if expected is list and isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        if type(value) is expected:
            return value  # type: ignore[return-value,unused-ignore]
        raise ValueError(
            f"option {key!r} expects {expected.__name__}, got {type(value).__name__} ({value!r})"
        )


class Rule:
    """Base class: subclasses set the metadata and implement `check` for their evidence kind."""

    code: ClassVar[str]
    name: ClassVar[str]
    message: ClassVar[str]
    severity: ClassVar[Severity]
    confidence: ClassVar[Confidence]
    evidence: ClassVar[Evidence]
    fixable: ClassVar[bool] = False
    enabled_by_default: ClassVar[bool] = True
    options: ClassVar[Mapping[str, Option]] = {}
    since: ClassVar[str] = "0.1.0"

    def __init__(self, settings: Mapping[str, object] | None = None) -> None:
        values: dict[str, OptionValue] = {k: o.default for k, o in self.options.items()}
        for key, value in (settings or {}).items():
            if key not in self.options:
                raise ValueError(f"{self.code} has no option {key!r}")
            values[key] = self.options[key].coerce(key, value)
        self.settings = values

    def opt(self, key: str) -> Any:
        return self.settings[key]

    def check(self, ctx: Any) -> Iterable[Finding]:
        raise NotImplementedError

    def finding(
        self,
        path: str,
        range: Range,
        *,
        message: str | None = None,
        severity: Severity | None = None,
        confidence: Confidence | None = None,
        fix: Fix | None = None,
        module: str | None = None,
        params: Mapping[str, object] | None = None,
    ) -> Finding:
        """A finding of this rule; `message` defaults to the template formatted with params."""
        return Finding(
            code=self.code,
            name=self.name,
            severity=severity or self.severity,
            confidence=confidence or self.confidence,
            message=message if message is not None else self.message.format(**(params or {})),
            path=path,
            range=range,
            evidence=self.evidence,
            module=module,
            url=docs_url(self.code),
            fix=fix,
        )

    @classmethod
    def summary(cls) -> str:
        """The first line of the docs' "What it does" section."""
        text = cls.doc_sections().get("What it does", "").strip()
        return text.split("\n\n")[0].replace("\n", " ")

    @classmethod
    def doc_sections(cls) -> dict[str, str]:
        """The docstring split at its `## Heading` lines."""
        doc = inspect.cleandoc(cls.__doc__ or "")
        sections: dict[str, str] = {}
        current: str | None = None
        lines: list[str] = []
        for line in doc.splitlines():
            match = re.fullmatch(r"## (.+)", line.strip())
            if match:
                if current is not None:
                    sections[current] = "\n".join(lines).strip()
                current, lines = match.group(1).strip(), []
            elif current is not None:
                lines.append(line)
        if current is not None:
            sections[current] = "\n".join(lines).strip()
        return sections

    @classmethod
    def missing_headings(cls) -> list[str]:
        sections = cls.doc_sections()
        return [h for h in DOC_HEADINGS if not sections.get(h)]
